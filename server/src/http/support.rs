//! The support console's two plain-HTTP routes, besides its pages and server functions:
//!
//! - `GET /portal/export/audit.csv` / `audit.jsonl`: every audit event matching the page's
//!   filters, streamed a keyset batch at a time (a long log never sits in memory). Needs the
//!   portal session; the service authorizes (tenant log: `support` and up; without `tenant`: the
//!   instance log, instance admins).
//! - `GET /provider-icons/{aaguid}/{light|dark}`: a passkey provider's icon from the compiled-in
//!   AAGUID list, so user pages link icons (cached by the browser) instead of inlining data URIs.

use app::{api::AuditQuery, session::current_operator, state::AppState};
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
    Error, ErrorCode, Services,
    audit::{AUDIT_EXPORT_BATCH, AuditFilter, AuditPage, AuditRecord},
    authz::OperatorIdentity,
    end_users::aaguid,
};
use serde::Deserialize;
use tower_sessions::Session;
use uuid::Uuid;

use super::problem::{ApiError, Problem};

/// Routes that need the portal session (mounted inside its layer).
pub fn portal_router() -> Router<AppState> {
    Router::new().route("/portal/export/{file}", get(export_audit))
}

/// Routes anyone may fetch.
pub fn public_router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/provider-icons/{aaguid}/{variant}", get(provider_icon))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExportParams {
    tenant: String,
    actor: String,
    action: String,
    user: String,
    from: String,
    to: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    JsonLines,
}

const CSV_HEADER: [&str; 14] = [
    "id",
    "occurred_at",
    "tenant_id",
    "actor_kind",
    "actor_id",
    "actor_label",
    "action",
    "target_kind",
    "target_id",
    "outcome",
    "error_code",
    "ip",
    "user_agent",
    "details",
];

async fn export_audit(
    State(state): State<AppState>,
    session: Session,
    Path(file): Path<String>,
    Query(params): Query<ExportParams>,
) -> Response {
    let format = match file.as_str() {
        "audit.csv" => Format::Csv,
        "audit.jsonl" => Format::JsonLines,
        _ => return Problem::new(ErrorCode::NotFound, "No such export.").into_response(),
    };
    let operator = match current_operator(&session, &state.services).await {
        Ok(Some(operator)) => operator,
        Ok(None) => {
            return Problem::new(ErrorCode::Unauthorized, "Sign in to the portal first.")
                .into_response();
        }
        Err(err) => return ApiError(err).into_response(),
    };
    let tenant = match params.tenant.trim() {
        "" => None,
        id => match Uuid::parse_str(id) {
            Ok(id) => Some(id),
            Err(_) => return ApiError(Error::NotFound).into_response(),
        },
    };
    let query = AuditQuery {
        actor: params.actor,
        action: params.action,
        user: params.user,
        from: params.from,
        to: params.to,
        before: String::new(),
    };
    let mut filter = match query.to_filter() {
        Ok(filter) => filter,
        Err(err) => return ApiError(err).into_response(),
    };
    filter.limit = Some(AUDIT_EXPORT_BATCH);
    // The first batch is read before answering, so a refusal is an error status, not a
    // truncated download.
    let services = state.services.clone();
    let first = match batch(&services, &operator, tenant, &filter).await {
        Ok(page) => page,
        Err(err) => return ApiError(err).into_response(),
    };
    let context = std::sync::Arc::new((services, operator, tenant, filter));
    let stream =
        futures_util::stream::unfold((Step::Page(first), true), move |(step, first_chunk)| {
            let context = context.clone();
            async move {
                let (services, operator, tenant, filter) = context.as_ref();
                let page = match step {
                    Step::Done => return None,
                    Step::Page(page) => page,
                    Step::After(before) => {
                        let filter = AuditFilter {
                            before: Some(before),
                            ..filter.clone()
                        };
                        match batch(services, operator, *tenant, &filter).await {
                            Ok(page) => page,
                            Err(err) => {
                                // Mid-stream there is no status left to send: the download ends
                                // short, loudly in the log.
                                tracing::error!(error = %err, "audit export ended early");
                                return None;
                            }
                        }
                    }
                };
                let chunk = render(format, first_chunk, &page.events);
                let next = page.next.map_or(Step::Done, Step::After);
                Some((Ok::<_, std::io::Error>(chunk), (next, false)))
            }
        });
    let (content_type, extension) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
        Format::JsonLines => ("application/x-ndjson", "jsonl"),
    };
    let name = match tenant {
        Some(id) => format!("latchkey-audit-{id}.{extension}"),
        None => format!("latchkey-audit-instance.{extension}"),
    };
    // Fused: the compression layer polls once more after the end, which `unfold` forbids.
    let mut response = Body::from_stream(futures_util::StreamExt::fuse(stream)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// Where the export stands between chunks.
enum Step {
    Page(AuditPage),
    After(i64),
    Done,
}

fn render(format: Format, first_chunk: bool, events: &[AuditRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    if first_chunk && format == Format::Csv {
        out.extend(csv_line(CSV_HEADER.iter().map(|h| (*h).to_owned())));
    }
    for event in events {
        match format {
            Format::Csv => out.extend(csv_line(csv_fields(event))),
            Format::JsonLines => {
                out.extend(json_line(event).to_string().into_bytes());
                out.push(b'\n');
            }
        }
    }
    out
}

async fn batch(
    services: &Services,
    operator: &OperatorIdentity,
    tenant: Option<Uuid>,
    filter: &AuditFilter,
) -> Result<AuditPage, Error> {
    let audit = services.audit();
    match tenant {
        Some(id) => audit.tenant_page(operator, id, filter).await,
        None => audit.instance_page(operator, filter).await,
    }
}

fn csv_fields(e: &AuditRecord) -> impl Iterator<Item = String> {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        e.id.to_string(),
        e.occurred_at.to_rfc3339(),
        e.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        e.actor_kind.clone(),
        opt(&e.actor_id),
        opt(&e.actor_label),
        e.action.clone(),
        opt(&e.target_kind),
        opt(&e.target_id),
        e.outcome.clone(),
        opt(&e.error_code),
        opt(&e.ip),
        opt(&e.user_agent),
        e.details
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_default(),
    ]
    .into_iter()
}

/// One RFC 4180 line. A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR
/// first) gets a leading `'`: user agents and labels come from strangers.
fn csv_line(fields: impl Iterator<Item = String>) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let fields: Vec<String> = fields
        .map(|f| {
            if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{f}")
            } else {
                f
            }
        })
        .collect();
    // Writing to memory cannot fail.
    let _ = writer.write_record(&fields);
    writer.into_inner().unwrap_or_default()
}

fn json_line(e: &AuditRecord) -> serde_json::Value {
    serde_json::json!({
        "id": e.id,
        "occurred_at": e.occurred_at.to_rfc3339(),
        "tenant_id": e.tenant_id,
        "actor": { "kind": e.actor_kind, "id": e.actor_id, "label": e.actor_label },
        "action": e.action,
        "target": e.target_kind.as_ref().map(|kind| serde_json::json!({ "kind": kind, "id": e.target_id })),
        "outcome": e.outcome,
        "error_code": e.error_code,
        "ip": e.ip,
        "user_agent": e.user_agent,
        "details": e.details,
    })
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
    fn csv_cells_are_quoted_and_formulas_defused() {
        let line = csv_line(
            ["a,b", "say \"hi\"", "=cmd()", "-1", "plain"]
                .into_iter()
                .map(str::to_owned),
        );
        assert_eq!(
            String::from_utf8(line).unwrap_or_default(),
            "\"a,b\",\"say \"\"hi\"\"\",'=cmd(),'-1,plain\r\n"
        );
    }

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
