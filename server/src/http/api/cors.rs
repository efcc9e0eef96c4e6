//! CORS for the Client API: browsers may call it from exactly the tenant's web origins.
//!
//! A request without `Origin` (an Android or iOS app, a server) passes untouched. A preflight
//! is answered here: allowed for the tenant named in the path, or — for registration, whose
//! preflight carries no token yet — for an origin of any tenant with passkeys on. An actual
//! request from an origin the tenant (of the path, or of the enrollment token) does not list is
//! refused with `origin_mismatch` before anything runs; an allowed one gets
//! `Access-Control-Allow-Origin` naming it. A path naming a tenant that does not exist answers
//! `not_found` (preflight or not), before the tenant's rate limit counts it and before anything
//! is written. The origins of a preflight that names no tenant are checked against a cached set
//! (`Tenants::web_origin_listed`), so a flood of them costs no database work per request.

use axum::{
    extract::{Request, State},
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use latchkey_core::{
    ErrorCode, Services,
    end_users::{ClientScope, OriginVerdict},
};
use uuid::Uuid;

use super::extract::bearer_of;
use crate::http::problem::Problem;

const CLIENT_PREFIX: &str = "/api/client/";
const TENANT_PREFIX: &str = "/api/client/v1/tenants/";
/// How long a browser may reuse a preflight answer.
const PREFLIGHT_MAX_AGE: &str = "600";

fn scope_of<'a>(path: &str, preflight: bool, token: Option<&'a str>) -> Option<ClientScope<'a>> {
    match path.strip_prefix(TENANT_PREFIX) {
        Some(rest) => rest
            .split('/')
            .next()
            .and_then(|id| Uuid::parse_str(id).ok())
            .map(ClientScope::Tenant),
        None if preflight => Some(ClientScope::AnyTenant),
        None => Some(ClientScope::Enrollment(token)),
    }
}

pub async fn client_cors(
    State(services): State<Services>,
    request: Request,
    next: Next,
) -> Response {
    if !request.uri().path().starts_with(CLIENT_PREFIX) {
        return next.run(request).await;
    }
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    // A tenant segment that is no tenant ID names no tenant: `not_found`, as an unknown one is,
    // before any origin is judged (the same answer on every edge).
    if let Some(rest) = request.uri().path().strip_prefix(TENANT_PREFIX)
        && let Err(err) =
            latchkey_core::tenants::parse_tenant_id(rest.split('/').next().unwrap_or_default())
    {
        return crate::http::problem::ApiError(err).into_response();
    }
    let token = bearer_of(request.headers()).map(str::to_owned);
    let scope = scope_of(request.uri().path(), preflight, token.as_deref());
    // Without `Origin` (an app, a server) only a tenant path is looked at: does the tenant exist.
    let asked = match scope {
        Some(scope @ ClientScope::Tenant(_)) => Some(scope),
        Some(scope) if origin.is_some() => Some(scope),
        None if origin.is_some() => None,
        _ => return next.run(request).await,
    };
    let verdict = match asked {
        Some(scope) => match services
            .end_users()
            .client_origin(scope, origin.as_deref())
            .await
        {
            Ok(verdict) => verdict,
            Err(err) => {
                tracing::error!(error = %err, "checking a client origin failed");
                return Problem::new(ErrorCode::Internal, ErrorCode::Internal.title())
                    .into_response();
            }
        },
        None => OriginVerdict::Refused,
    };
    if verdict == OriginVerdict::UnknownTenant {
        // Before the tenant's rate limit counts it and before anything is stored.
        return Problem::new(ErrorCode::NotFound, "No such tenant.").into_response();
    }
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    if verdict == OriginVerdict::Refused {
        let mut refused = Problem::new(
            ErrorCode::OriginMismatch,
            "This origin is not one of the tenant's expected web origins.",
        )
        .into_response();
        if preflight {
            *refused.status_mut() = StatusCode::FORBIDDEN;
        }
        return refused;
    }
    let origin = match HeaderValue::from_str(&origin) {
        Ok(value) => value,
        Err(_) => {
            return Problem::new(ErrorCode::OriginMismatch, "Malformed origin.").into_response();
        }
    };
    let mut response = if preflight {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
        response
    } else {
        next.run(request).await
    };
    name_origin(&mut response, origin);
    response
}

/// Lets a page at `origin` read `response` (and its `Retry-After`).
pub fn name_origin(response: &mut Response, origin: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after"),
    );
    headers.append(header::VARY, HeaderValue::from_static("origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_follows_the_path() {
        let id = Uuid::new_v4();
        let path = format!("{TENANT_PREFIX}{id}/authentication/options");
        assert!(matches!(scope_of(&path, true, None), Some(ClientScope::Tenant(t)) if t == id));
        assert!(scope_of(&format!("{TENANT_PREFIX}nope/x"), false, None).is_none());
        assert!(matches!(
            scope_of("/api/client/v1/registration/options", true, None),
            Some(ClientScope::AnyTenant)
        ));
        assert!(matches!(
            scope_of(
                "/api/client/v1/registration/verify",
                false,
                Some("lk_enr_x")
            ),
            Some(ClientScope::Enrollment(Some("lk_enr_x")))
        ));
    }
}
