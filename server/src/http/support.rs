//! The support console's two plain-HTTP routes, besides its pages and server functions:
//!
//! - `GET /portal/export/audit.csv` / `audit.jsonl`: every audit event matching the page's
//!   filters, streamed by `latchkey_core::audit::export` a batch at a time. Needs the portal
//!   session; the service authorizes (tenant log: `support` and up; without `tenant`: the
//!   instance log, instance admins).
//! - `GET /provider-icons/{aaguid}/{light|dark}`: a passkey provider's icon from the compiled-in
//!   AAGUID list, so user pages link icons (cached by the browser) instead of inlining data URIs.

use app::{session::current_operator, state::AppState};
use axum::{
    Router,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use latchkey_core::{
    Error, Services,
    audit::{AuditScope, FilterText, export::ExportFormat},
    end_users::aaguid,
    tenants::parse_tenant_id,
};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::problem::ApiError;

/// Routes that need the portal session (mounted inside its layer).
pub fn portal_router() -> Router<AppState> {
    Router::new().route("/portal/export/{file}", get(export_audit))
}

/// Routes anyone may fetch.
pub fn public_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/provider-icons/{aaguid}/{variant}", get(provider_icon))
}

/// The export's query string: the audit page's filters, and the tenant (none: the instance log).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExportParams {
    tenant: String,
    #[serde(flatten)]
    filter: FilterText,
}

async fn export_audit(
    State(state): State<AppState>,
    session: Session,
    Path(file): Path<String>,
    Query(params): Query<ExportParams>,
) -> Response {
    match export(&state.services, &session, &file, params).await {
        Ok(response) => response,
        Err(err) => ApiError(err).into_response(),
    }
}

async fn export(
    services: &Services,
    session: &Session,
    file: &str,
    params: ExportParams,
) -> Result<Response, Error> {
    let format = ExportFormat::from_file_name(file).ok_or(Error::NotFound)?;
    let operator = current_operator(session, services)
        .await?
        .ok_or(Error::Unauthorized)?;
    let scope = match params.tenant.trim() {
        "" => AuditScope::Instance(operator),
        id => AuditScope::Tenant(services.tenant(&operator, parse_tenant_id(id)?).await?),
    };
    // The cursor is the export's own: a `before` in the query string is ignored.
    let filter = FilterText {
        before: String::new(),
        ..params.filter
    }
    .parse()?;
    let export = services.export_audit(scope, filter, format).await?;
    let mut response = Body::from_stream(export.chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(export.format.content_type()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", export.file_name))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

async fn provider_icon(Path((aaguid, variant)): Path<(String, String)>) -> Response {
    let not_found = || StatusCode::NOT_FOUND.into_response();
    let Some(provider) = Uuid::parse_str(&aaguid).ok().and_then(aaguid::provider) else {
        return not_found();
    };
    let uri = match variant.as_str() {
        "light" => provider.icon_light.as_deref(),
        "dark" => provider.icon_dark.as_deref(),
        _ => None,
    };
    let Some((content_type, bytes)) = uri.and_then(decode_data_uri) else {
        return not_found();
    };
    let Ok(content_type) = HeaderValue::from_str(&content_type) else {
        return not_found();
    };
    (
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=86400"),
            ),
            // An SVG opened on its own must not run anything.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// `data:<type>;base64,<data>` → (type, bytes). Only image types are served.
fn decode_data_uri(uri: &str) -> Option<(String, Vec<u8>)> {
    let rest = uri.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let content_type = meta.strip_suffix(";base64")?;
    if !content_type.starts_with("image/") {
        return None;
    }
    Some((content_type.to_owned(), STANDARD.decode(data).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_base64_image_data_uris_decode() {
        assert_eq!(
            decode_data_uri("data:image/svg+xml;base64,PHN2Zy8+"),
            Some(("image/svg+xml".to_owned(), b"<svg/>".to_vec()))
        );
        assert_eq!(decode_data_uri("data:text/html;base64,PGI+"), None);
        assert_eq!(decode_data_uri("https://example.com/x.png"), None);
    }
}
