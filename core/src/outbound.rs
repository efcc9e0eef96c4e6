//! Requests Latchkey makes to other sites (the origin doctor reads a tenant's `/.well-known`
//! files). Whoever configures a tenant chooses the hosts, so every fetch is guarded as if an
//! attacker chose them:
//!
//! - **No private addresses** unless the instance allows them (`LATCHKEY_OUTBOUND_ALLOW_PRIVATE`,
//!   for development and tests): a host name is resolved here and only public addresses are
//!   connected to, so a name that resolves (or re-resolves) to 127.0.0.1, 10.0.0.0/8, link-local
//!   metadata services and the like is refused at connection time, not just when checked.
//! - **No redirects to another host** (three at most on the same host); a refused redirect is
//!   reported, not followed.
//! - **Timeouts**: 3 s to connect, 5 s in all. **A size limit**: 64 KiB of body.
//! - GET only, no cookies, a `User-Agent` naming Latchkey.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use reqwest::{
    Url,
    dns::{Addrs, Name, Resolve, Resolving},
    redirect,
};

/// The largest body read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_REDIRECTS: usize = 3;

/// What a guarded GET answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// Set when the answer was a redirect that was not followed (to another host).
    pub refused_redirect: Option<String>,
}

/// Why a guarded GET has no answer, in words for the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Refused(String),
    #[error("no answer within {} seconds", TOTAL_TIMEOUT.as_secs())]
    Timeout,
    #[error("larger than {} KiB", MAX_BODY_BYTES / 1024)]
    TooLarge,
    #[error("{0}")]
    Unreachable(String),
}

/// What a guarded POST answered: the status and the start of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub status: u16,
    /// Up to [`MAX_EXCERPT_BYTES`] of the body, as text (invalid UTF-8 replaced).
    pub excerpt: String,
}

/// The most of a POST's answer read (the delivery log keeps an excerpt).
pub const MAX_EXCERPT_BYTES: usize = 4 * 1024;

/// The guarded HTTP client (cheap to clone).
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    /// Webhooks: POST, and no redirect is followed at all (a receiver that moved says so).
    poster: reqwest::Client,
    allow_private: bool,
}

impl Outbound {
    pub fn new(allow_private: bool) -> crate::Result<Self> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(PublicOnly { allow_private }))
            .redirect(redirect::Policy::custom(|attempt| {
                let first = attempt.previous().first().and_then(|u| u.host_str());
                if attempt.previous().len() > MAX_REDIRECTS {
                    attempt.stop()
                } else if attempt.url().host_str() == first {
                    attempt.follow()
                } else {
                    attempt.stop()
                }
            }))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .user_agent(concat!(
                "Latchkey/",
                env!("CARGO_PKG_VERSION"),
                " (origin doctor)"
            ))
            .build()
            .map_err(|e| crate::Error::Internal(format!("outbound client: {e}")))?;
        let poster = reqwest::Client::builder()
            .dns_resolver(Arc::new(PublicOnly { allow_private }))
            .redirect(redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .user_agent(concat!(
                "Latchkey/",
                env!("CARGO_PKG_VERSION"),
                " (webhooks)"
            ))
            .build()
            .map_err(|e| crate::Error::Internal(format!("outbound client: {e}")))?;
        Ok(Self {
            client,
            poster,
            allow_private,
        })
    }

    /// Whether private and loopback addresses are allowed (development and tests).
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// POSTs a JSON `body` with `headers` under the guards above, no redirect followed; reads
    /// at most [`MAX_EXCERPT_BYTES`] of the answer.
    pub async fn post_json(
        &self,
        url: &Url,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<Posted, FetchError> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(FetchError::Refused(format!(
                "{}: only http and https are sent to",
                url.scheme()
            )));
        }
        let mut request = self
            .poster
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let mut response = request.body(body).send().await.map_err(why)?;
        let status = response.status().as_u16();
        let mut excerpt = Vec::new();
        while excerpt.len() < MAX_EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                // The status is the answer; a body cut short does not change it.
                Ok(None) | Err(_) => break,
            }
        }
        excerpt.truncate(MAX_EXCERPT_BYTES);
        Ok(Posted {
            status,
            excerpt: String::from_utf8_lossy(&excerpt).into_owned(),
        })
    }

    /// GETs `url` under the guards above.
    pub async fn get(&self, url: &Url) -> Result<Fetched, FetchError> {
        if !matches!(url.scheme(), "https" | "http") {
            return Err(FetchError::Refused(format!(
                "{}: only http and https are fetched",
                url.scheme()
            )));
        }
        let mut response = self.client.get(url.clone()).send().await.map_err(why)?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let refused_redirect = status.is_redirection().then(|| {
            response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(no Location)")
                .to_owned()
        });
        if response
            .content_length()
            .is_some_and(|n| n > MAX_BODY_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(why)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched {
            status: status.as_u16(),
            content_type,
            body,
            refused_redirect,
        })
    }
}

fn why(err: reqwest::Error) -> FetchError {
    if err.is_timeout() {
        return FetchError::Timeout;
    }
    // The resolver's refusal travels as the error's source.
    let mut source: Option<&dyn std::error::Error> = Some(&err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<PrivateAddress>() {
            return FetchError::Refused(refused.to_string());
        }
        source = e.source();
    }
    if err.is_connect() {
        return FetchError::Unreachable("could not connect".into());
    }
    FetchError::Unreachable("the request failed".into())
}

#[derive(Debug, thiserror::Error)]
#[error("{0} resolves only to private or reserved addresses, which this instance does not fetch")]
struct PrivateAddress(String);

/// Resolves with the system's resolver, keeping public addresses only (unless allowed).
struct PublicOnly {
    allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(
                    Box::new(PrivateAddress(host)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(found.into_iter()) as Addrs)
        })
    }
}

/// Whether `ip` is a public unicast address: not loopback, private, link-local (cloud metadata
/// services live there), shared (CGNAT), documentation, benchmarking, multicast, unspecified or
/// reserved; IPv4-mapped IPv6 addresses are judged as their IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || first == 0x2001 && v6.segments()[1] == 0x0db8 // documentation
                || first == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_public;

    #[test]
    fn private_and_reserved_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2001:db8::1",
        ] {
            assert!(
                !is_public(ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"))),
                "{ip}"
            );
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(
                is_public(ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"))),
                "{ip}"
            );
        }
    }
}
