//! Who is signed in: the portal session (tower-sessions, stored by `latchkey_core::sessions`),
//! applying the core's lifetime rules (`latchkey_core::sessions::Lifetime`), rotating the id at
//! sign-in, and the request facts the audit log records. Shared by server functions and the
//! server's page guard.

use std::{net::SocketAddr, sync::Arc};

use axum::{extract::ConnectInfo, http::request::Parts};
use chrono::{DateTime, Utc};
use latchkey_core::{
    Error, Services,
    abuse::TrustedProxies,
    access::OperatorIdentity,
    audit::RequestMeta,
    sessions::{
        self, Lifetime, OPERATOR_ID_KEY, PASSKEY_VERIFIED_AT_KEY, SEEN_AT_KEY, SIGNED_IN_AT_KEY,
    },
};
use tower_sessions::{Expiry, Session};
use uuid::Uuid;

fn session_error(err: tower_sessions::session::Error) -> Error {
    Error::Internal(format!("session store: {err}"))
}

/// The session's own expiry at `end` (from the services' clock, which tests move).
fn expiry(end: DateTime<Utc>) -> Expiry {
    let end = time::OffsetDateTime::from_unix_timestamp(end.timestamp())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Expiry::AtDateTime(end)
}

async fn timestamp(session: &Session, key: &str) -> Result<Option<DateTime<Utc>>, Error> {
    let secs: Option<i64> = session.get(key).await.map_err(session_error)?;
    Ok(secs.and_then(|s| DateTime::from_timestamp(s, 0)))
}

/// The operator signed in with this session, if any. Ends sessions past their absolute lifetime
/// and sessions of operators who no longer exist or are disabled.
pub async fn current_operator(
    session: &Session,
    services: &Services,
) -> Result<Option<OperatorIdentity>, Error> {
    let id: Option<String> = session.get(OPERATOR_ID_KEY).await.map_err(session_error)?;
    let Some(id) = id.and_then(|id| Uuid::parse_str(&id).ok()) else {
        return Ok(None);
    };
    let now = services.clock().now();
    let lifetime = Lifetime::judge(
        now,
        timestamp(session, SIGNED_IN_AT_KEY).await?,
        timestamp(session, SEEN_AT_KEY).await?,
    );
    let Lifetime::Live { slide_to } = lifetime else {
        session.flush().await.map_err(session_error)?;
        return Ok(None);
    };
    let Some(operator) = services.operators().identity(id).await? else {
        session.flush().await.map_err(session_error)?;
        return Ok(None);
    };
    if let Some(end) = slide_to {
        // Modifying the session makes tower-sessions save it, with the new deadline.
        session.set_expiry(Some(expiry(end)));
        session
            .insert(SEEN_AT_KEY, now.timestamp())
            .await
            .map_err(session_error)?;
    }
    Ok(Some(operator))
}

/// Starts an operator's session. The id is rotated first, so an id planted before sign-in
/// (session fixation) is worthless afterwards.
pub async fn sign_in(
    session: &Session,
    services: &Services,
    operator: &OperatorIdentity,
) -> Result<(), Error> {
    session.cycle_id().await.map_err(session_error)?;
    let at = services.clock().now();
    session.set_expiry(Some(expiry(sessions::deadline(at, at))));
    let now = at.timestamp();
    session
        .insert(OPERATOR_ID_KEY, operator.id.to_string())
        .await
        .map_err(session_error)?;
    session
        .insert(SIGNED_IN_AT_KEY, now)
        .await
        .map_err(session_error)?;
    // Signing in is a user-verified passkey assertion (enrollment a user-verified creation).
    session
        .insert(PASSKEY_VERIFIED_AT_KEY, now)
        .await
        .map_err(session_error)?;
    session
        .insert(SEEN_AT_KEY, now)
        .await
        .map_err(session_error)
}

/// Records a step-up: the session's operator verified a passkey at `at`.
pub async fn record_passkey_verified(session: &Session, at: DateTime<Utc>) -> Result<(), Error> {
    session
        .insert(PASSKEY_VERIFIED_AT_KEY, at.timestamp())
        .await
        .map_err(session_error)
}

/// When the session's operator last verified a passkey, if recorded.
pub async fn passkey_verified_at(session: &Session) -> Result<Option<DateTime<Utc>>, Error> {
    timestamp(session, PASSKEY_VERIFIED_AT_KEY).await
}

/// Ends this session (the row and the cookie).
pub async fn sign_out(session: &Session) -> Result<(), Error> {
    session.flush().await.map_err(session_error)
}

/// The audit facts of a request: the peer address (or, behind a trusted proxy, the address it
/// reports) and the user agent.
pub fn request_meta(parts: &Parts) -> RequestMeta {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let client = peer.map(|peer| match parts.extensions.get::<Arc<TrustedProxies>>() {
        Some(proxies) => proxies.client(
            peer,
            parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok()),
        ),
        None => peer,
    });
    RequestMeta::new(
        client.map(|ip| ip.to_string()),
        parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    )
}

/// The operator the page guard found signed in, passed on with the request so that rendering
/// the page (the layout, each server function it calls) does not look them up again.
#[derive(Debug, Clone)]
pub struct SignedIn(pub OperatorIdentity);
