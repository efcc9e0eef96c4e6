//! Request IDs: one per request, in its log lines (the `http` span's `request_id`), in the
//! `X-Request-Id` response header and in problem+json bodies (`request_id`), so that support
//! can find the log line of a failure a user reports.
//!
//! A request from a trusted proxy (`LATCHKEY_TRUSTED_PROXIES`) keeps the `X-Request-Id` the
//! proxy set, when it is a plausible ID (1–128 characters of `A–Z a–z 0–9 - _ . :`), so one ID
//! follows the request through the proxy's logs and ours; anyone else's header is ignored, as
//! a client could otherwise write anything into our logs. Otherwise the ID is made here: a
//! random prefix per process and a counter — unique across instances and restarts without a
//! random draw per request.

use std::{
    net::SocketAddr,
    sync::{
        Arc, LazyLock,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{
    extract::{ConnectInfo, Request},
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use latchkey_core::abuse::TrustedProxies;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's ID, in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

tokio::task_local! {
    /// The ID of the request this task is answering: read where a response is built without
    /// the request at hand (problem+json bodies).
    static CURRENT: RequestId;
}

/// The ID of the request being answered, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.0.to_string()).ok()
}

static PREFIX: LazyLock<String> = LazyLock::new(|| {
    let mut bytes = [0u8; 4];
    // Without randomness the prefix is only less unique across processes; never fatal.
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
});
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn generate() -> RequestId {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    RequestId(format!("{}-{n:x}", *PREFIX).into())
}

fn plausible(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The proxy's ID, when the peer is a trusted proxy and the ID is plausible.
fn from_trusted_proxy(request: &Request) -> Option<RequestId> {
    let proxies = request.extensions().get::<Arc<TrustedProxies>>()?;
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()?
        .0
        .ip();
    if !proxies.trusts(peer) {
        return None;
    }
    let id = request.headers().get(&HEADER)?.to_str().ok()?;
    plausible(id).then(|| RequestId(id.into()))
}

/// Assigns the request its ID (outermost layer: every response, refusals included, carries it).
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = from_trusted_proxy(&request).unwrap_or_else(generate);
    request.extensions_mut().insert(id.clone());
    let mut response = CURRENT.scope(id.clone(), next.run(request)).await;
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_only_plausible_ones_are_kept() {
        let (a, b) = (generate(), generate());
        assert_ne!(a.0, b.0);
        assert!(plausible(&a.0));
        assert!(plausible("7f3c2a10-9b1e-4c1d-8f00-aa55aa55aa55"));
        assert!(!plausible(""));
        assert!(!plausible("two words"));
        assert!(!plausible("line\nbreak"));
        assert!(!plausible(&"x".repeat(129)));
    }
}
