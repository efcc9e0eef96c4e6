//! `POST /portal/metadata`: an instance admin uploads a FIDO metadata BLOB from the instance's
//! metadata page (a plain multipart form, field `blob`, so it works before the page hydrates).
//! The service verifies and imports it; the answer redirects back to the page with the outcome
//! in the query string (`?imported=<serial>` or `?error=<message>`).
//!
//! A plain route rather than a server function: a BLOB is megabytes, above the portal's other
//! bodies, and this route alone gets that limit. It sits inside the portal's guards (same origin,
//! session).

use app::{
    session::{current_operator, request_meta},
    state::AppState,
};
use axum::{
    Router,
    extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::post,
};
use latchkey_core::{
    Error, ErrorCode,
    metadata::{Imported, Importer, MAX_BLOB_BYTES},
};
use tower_sessions::Session;

/// Routes that need the portal session (mounted inside its layer).
pub fn portal_router() -> Router<AppState> {
    Router::new()
        .route("/portal/metadata", post(upload))
        // The form's other parts and multipart framing: well under 64 KiB.
        .layer(DefaultBodyLimit::max(MAX_BLOB_BYTES + 64 * 1024))
}

async fn upload(State(state): State<AppState>, session: Session, request: Request) -> Response {
    let operator = match current_operator(&session, &state.services).await {
        Ok(Some(operator)) => operator,
        Ok(None) => return StatusCode::UNAUTHORIZED.into_response(),
        Err(err) => return back(Err(err)),
    };
    let (parts, body) = request.into_parts();
    let meta = request_meta(&parts);
    let outcome = async {
        let mut form = Multipart::from_request(Request::from_parts(parts, body), &state)
            .await
            .map_err(|e| Error::invalid("blob", format!("The upload could not be read: {e}")))?;
        let mut blob = None;
        while let Some(field) = form
            .next_field()
            .await
            .map_err(|e| Error::invalid("blob", format!("The upload could not be read: {e}")))?
        {
            if field.name() == Some("blob") {
                let bytes = field.bytes().await.map_err(|e| {
                    Error::invalid("blob", format!("The upload could not be read: {e}"))
                })?;
                blob = Some(String::from_utf8(bytes.to_vec()).map_err(|_| {
                    Error::invalid("blob", "This is not a FIDO metadata BLOB (not text).")
                })?);
            }
        }
        let blob = blob.ok_or_else(|| Error::invalid("blob", "Choose a BLOB file to upload."))?;
        state
            .services
            .metadata()
            .import(Importer::Operator(&operator), blob, meta)
            .await
    }
    .await;
    back(outcome)
}

/// Back to the page, with the outcome. Internal errors are logged, never shown.
fn back(outcome: Result<Imported, Error>) -> Response {
    let query = match outcome {
        Ok(imported) => format!("imported={}", imported.serial),
        Err(err) if err.code() == ErrorCode::Internal => {
            tracing::error!(error = %err, "importing FIDO metadata failed");
            "error=internal".to_owned()
        }
        Err(err) => format!(
            "error={}",
            url::form_urlencoded::byte_serialize(err.to_string().as_bytes()).collect::<String>()
        ),
    };
    Redirect::to(&format!("/metadata?{query}")).into_response()
}
