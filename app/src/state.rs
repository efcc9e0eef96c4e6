//! Server-side state shared by the router, page rendering and server functions.

use axum::extract::FromRef;
use latchkey_core::Services;
use leptos::prelude::*;

use crate::PortalError;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub services: Services,
}

/// The services, from the request's context (provided by the router for every page render and
/// server-function call).
pub fn services() -> Result<Services, PortalError> {
    use_context::<AppState>()
        .map(|state| state.services)
        .ok_or_else(|| {
            tracing::error!("AppState missing from the Leptos context");
            PortalError::new("internal", "Something went wrong on our side. Try again.")
        })
}
