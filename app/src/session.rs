//! Who is signed in: the portal session (tower-sessions, stored by `latchkey_core::sessions`) and
//! its rules — absolute and idle expiry, id rotation at sign-in, the request facts the audit log
//! records. Shared by server functions and the server's page guard.

use std::{net::SocketAddr, sync::Arc};

use axum::{extract::ConnectInfo, http::request::Parts};
use chrono::{DateTime, Duration, Utc};
use latchkey_core::{
    Error, Services, abuse::TrustedProxies, audit::RequestMeta, authz::OperatorIdentity,
    sessions::OPERATOR_ID_KEY,
};
use tower_sessions::{Expiry, Session};
use uuid::Uuid;

/// A session ends this long after sign-in, however active it is.
pub const ABSOLUTE_LIFETIME: Duration = Duration::hours(12);
/// A session ends after this long without a request (the store's expiry, slid on activity).
pub const IDLE_TIMEOUT: Duration = Duration::hours(1);
/// How stale the idle deadline may get before a request pushes it back: sliding it on every
/// request would write the session row on every request.
const IDLE_REFRESH: Duration = Duration::minutes(1);

const SIGNED_IN_AT: &str = "signed_in_at";
const SEEN_AT: &str = "seen_at";
/// When this session last verified one of its operator's passkeys (sign-in, enrollment or a
/// step-up): what `latchkey_core::step_up` judges.
const PASSKEY_VERIFIED_AT: &str = "passkey_verified_at";

fn session_error(err: tower_sessions::session::Error) -> Error {
    Error::Internal(format!("session store: {err}"))
}

/// When a session seen at `now` ends unless used again: the idle deadline, capped by the
/// absolute one. Computed from the services' clock (which tests move) and stored as the
/// session's own expiry, so the store refuses it afterwards on every instance.
fn deadline(now: DateTime<Utc>, signed_in_at: DateTime<Utc>) -> Expiry {
    let end = (now + IDLE_TIMEOUT).min(signed_in_at + ABSOLUTE_LIFETIME);
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
    let signed_in_at = match timestamp(session, SIGNED_IN_AT).await? {
        Some(at) if now - at < ABSOLUTE_LIFETIME => at,
        _ => {
            session.flush().await.map_err(session_error)?;
            return Ok(None);
        }
    };
    let Some(operator) = services.operators().identity(id).await? else {
        session.flush().await.map_err(session_error)?;
        return Ok(None);
    };
    let seen_at = timestamp(session, SEEN_AT).await?;
    if seen_at.is_none_or(|at| now - at >= IDLE_REFRESH) {
        // Modifying the session makes tower-sessions save it, with the new deadline.
        session.set_expiry(Some(deadline(now, signed_in_at)));
        session
            .insert(SEEN_AT, now.timestamp())
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
    session.set_expiry(Some(deadline(at, at)));
    let now = at.timestamp();
    session
        .insert(OPERATOR_ID_KEY, operator.id.to_string())
        .await
        .map_err(session_error)?;
    session
        .insert(SIGNED_IN_AT, now)
        .await
        .map_err(session_error)?;
    // Signing in is a user-verified passkey assertion (enrollment a user-verified creation).
    session
        .insert(PASSKEY_VERIFIED_AT, now)
        .await
        .map_err(session_error)?;
    session.insert(SEEN_AT, now).await.map_err(session_error)
}

/// Records a step-up: the session's operator verified a passkey at `at`.
pub async fn record_passkey_verified(session: &Session, at: DateTime<Utc>) -> Result<(), Error> {
    session
        .insert(PASSKEY_VERIFIED_AT, at.timestamp())
        .await
        .map_err(session_error)
}

/// When the session's operator last verified a passkey, if recorded.
pub async fn passkey_verified_at(session: &Session) -> Result<Option<DateTime<Utc>>, Error> {
    timestamp(session, PASSKEY_VERIFIED_AT).await
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
