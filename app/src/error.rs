use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// What a server function reports to the page: the spec's stable `code`, a message safe to show,
/// and the form field it belongs to (shown next to that field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct PortalError {
    pub code: String,
    pub message: String,
    pub field: Option<String>,
}

impl PortalError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            field: None,
        }
    }
}

impl FromServerFnError for PortalError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) => {
                Self::new("invalid_request", format!("The request is not valid: {m}"))
            }
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => {
                Self::new("internal", "The server could not be reached. Try again.")
            }
            // Anything else is a server-side failure whose details belong in the log only.
            _ => Self::new("internal", "Something went wrong on our side. Try again."),
        }
    }
}

#[cfg(feature = "ssr")]
impl From<latchkey_core::Error> for PortalError {
    fn from(err: latchkey_core::Error) -> Self {
        if err.is_internal() {
            tracing::error!(error = %err, "server function failed");
        }
        // A server-function call answers with the spec's status for the code (401 for an
        // anonymous caller, 403 for a forbidden one, …) rather than a blanket 500. A page that
        // renders the error as a message (a used setup link, say) keeps its own status.
        use leptos::prelude::use_context;
        let server_fn_call = use_context::<axum::http::request::Parts>()
            .is_some_and(|parts| parts.uri.path().starts_with(crate::api::SERVER_FN_PREFIX));
        if server_fn_call
            && let Some(response) = use_context::<leptos_axum::ResponseOptions>()
            && let Ok(status) = axum::http::StatusCode::from_u16(err.code().http_status())
        {
            response.set_status(status);
            if let Some(seconds) = err.retry_after() {
                response.insert_header(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from(seconds),
                );
            }
        }
        Self {
            code: err.code().as_str().to_owned(),
            message: err.public_message(),
            field: err.field().map(str::to_owned),
        }
    }
}
