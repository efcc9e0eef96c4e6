//! Where a request came from, as the limits count it.

use std::net::{IpAddr, Ipv6Addr};

use crate::audit::RequestMeta;

/// What one client controls: an IPv4 address, or an IPv6 /64 (a host typically gets a whole
/// /64, so counting single IPv6 addresses would let it use 2^64 of them). IPv4-mapped IPv6
/// addresses count as the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceKey(IpAddr);

impl SourceKey {
    pub fn of(ip: IpAddr) -> Self {
        Self(match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
            },
        })
    }

    /// The source of a request, when it has a parseable address.
    pub fn of_request(meta: &RequestMeta) -> Option<Self> {
        meta.ip().and_then(|ip| ip.parse().ok()).map(Self::of)
    }

    /// The address that stands for the source (the /64's first address for IPv6).
    pub fn address(self) -> IpAddr {
        self.0
    }
}

impl std::fmt::Display for SourceKey {
    /// `192.0.2.7` or `2001:db8:1:2::/64`: at most 43 characters.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let b: IpAddr = "2001:db8:1:2:bbbb::2"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(SourceKey::of(a), SourceKey::of(b));
        assert_ne!(SourceKey::of(a), SourceKey::of(other));
        assert_eq!(SourceKey::of(a).to_string(), "2001:db8:1:2::/64");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap_or(IpAddr::from([0; 4]));
        assert_eq!(SourceKey::of(mapped).to_string(), "192.0.2.7");
        let longest: IpAddr = "ffff:ffff:ffff:ffff::"
            .parse()
            .unwrap_or(IpAddr::from([0; 4]));
        assert!(SourceKey::of(longest).to_string().len() <= 43);
        let meta = RequestMeta::new(Some("not an address".into()), None);
        assert_eq!(SourceKey::of_request(&meta), None);
    }
}
