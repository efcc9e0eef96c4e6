//! Which address a request came from when reverse proxies stand in front.

use std::net::IpAddr;

use ipnet::IpNet;

/// The reverse proxies allowed to name the client (`LATCHKEY_TRUSTED_PROXIES`): addresses or
/// networks. Empty: `X-Forwarded-For` is ignored and the peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and CIDR networks
    /// (`10.0.0.0/8, 192.0.2.1, 2001:db8::/32`).
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("`{entry}` is not an address or a network (CIDR)"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client of a request from `peer` carrying `forwarded_for` (`X-Forwarded-For`). Only a
    /// trusted peer's header counts; read right to left (each proxy appends the address it saw),
    /// the first address that is not a trusted proxy is the client. Anything a client wrote
    /// itself sits left of that and is never believed.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let mut client = peer;
        if !self.trusts(peer) {
            return client;
        }
        let Some(header) = forwarded_for else {
            return client;
        };
        for hop in header.rsplit(',').map(str::trim) {
            let Ok(hop) = hop.parse::<IpAddr>() else {
                // Unreadable: the last trusted hop is as far as the chain can be followed.
                return client;
            };
            client = hop;
            if !self.trusts(hop) {
                return client;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    #[test]
    fn only_trusted_proxies_name_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.0.2.1").unwrap_or_default();
        // No proxies configured: the header is ignored.
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.5"), Some("203.0.113.9")),
            ip("10.0.0.5")
        );
        // An untrusted peer cannot name anyone.
        assert_eq!(
            proxies.client(ip("198.51.100.1"), Some("203.0.113.9")),
            ip("198.51.100.1")
        );
        // A trusted peer names the client; what the client wrote on the left is ignored.
        assert_eq!(
            proxies.client(ip("10.0.0.5"), Some("1.1.1.1, 203.0.113.9")),
            ip("203.0.113.9")
        );
        // Through two trusted proxies.
        assert_eq!(
            proxies.client(ip("192.0.2.1"), Some("6.6.6.6, 203.0.113.9, 10.1.2.3")),
            ip("203.0.113.9")
        );
        // Unreadable entries stop the walk at the last trusted hop.
        assert_eq!(proxies.client(ip("10.0.0.5"), Some("junk")), ip("10.0.0.5"));
        assert_eq!(proxies.client(ip("10.0.0.5"), None), ip("10.0.0.5"));
        // IPv4-mapped peers match IPv4 networks.
        assert_eq!(
            proxies.client(ip("::ffff:10.0.0.5"), Some("203.0.113.9")),
            ip("203.0.113.9")
        );
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse("proxy.example").is_err());
        assert!(TrustedProxies::parse("").is_ok_and(|p| p.is_empty()));
    }
}
