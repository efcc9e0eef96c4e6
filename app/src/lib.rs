//! The portal: Leptos components, rendered on the server (`ssr`) and hydrated in the browser
//! (`hydrate`), plus the server functions the components call. Server functions are thin: they
//! authorize and call a `latchkey_core` service, nothing more.
// The portal's larger pages (the Passkeys page with its policy section, the Health table) nest
// view types deeper than the compiler's default query depth when it lays out their hydration
// futures in the wasm build; the pages also erase types (`into_any`) where it reads well.
#![recursion_limit = "256"]

pub mod api;
mod browser;
mod error;
mod forms;
mod layout;
mod pages;
#[cfg(feature = "ssr")]
mod security;
#[cfg(feature = "ssr")]
pub mod session;
#[cfg(feature = "ssr")]
pub mod state;

pub use error::PortalError;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    ParamSegment, StaticSegment,
    components::{Route, Router, Routes},
};

use crate::{
    layout::Layout,
    pages::{
        AffectedUsersPage, ApiKeysPage, AuditPage, DashboardPage, EnrollPage, EnrollmentTokensPage,
        HealthPage, HomePage, LoginPage, MembersPage, MetadataPage, NewTenantPage, NotFound,
        OperatorsPage, PasskeysPage, SecurityPage, TenantAuditPage, TenantsPage, UserPage,
        UsersPage, WebhooksPage,
    },
};

/// Pages anyone may open; every other page needs a signed-in operator (the server redirects to
/// `/login` otherwise).
pub const PUBLIC_PAGES: &[&str] = &["/login", "/setup", "/invite"];

/// The HTML document around the app; rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    security::set_page_policy();

    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="light dark" />
                <link rel="icon" href="/favicon.svg" type="image/svg+xml" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                // The portal's forms need JavaScript (see `layout::Layout`).
                // A stylesheet, not inline style: the page's CSP allows styles from 'self' only.
                <noscript><link rel="stylesheet" href="/noscript.css" /></noscript>
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/latchkey.css" />
        <Title formatter=|page: String| {
            if page.is_empty() { "Latchkey".to_owned() } else { format!("{page} · Latchkey") }
        } />
        <Router>
            <Layout>
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage />
                    <Route path=StaticSegment("login") view=LoginPage />
                    <Route path=StaticSegment("setup") view=|| view! { <EnrollPage setup=true /> } />
                    <Route path=StaticSegment("invite") view=|| view! { <EnrollPage setup=false /> } />
                    <Route path=StaticSegment("security") view=SecurityPage />
                    <Route path=StaticSegment("operators") view=OperatorsPage />
                    <Route path=StaticSegment("metadata") view=MetadataPage />
                    <Route path=StaticSegment("audit") view=AuditPage />
                    <Route path=StaticSegment("tenants") view=TenantsPage />
                    <Route path=(StaticSegment("tenants"), StaticSegment("new")) view=NewTenantPage />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("passkeys"))
                        view=PasskeysPage
                    />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("members"))
                        view=MembersPage
                    />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("api-keys"))
                        view=ApiKeysPage
                    />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("webhooks"))
                        view=WebhooksPage
                    />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("enrollment-tokens"))
                        view=EnrollmentTokensPage
                    />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("dashboard"))
                        view=DashboardPage
                    />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("users"))
                        view=UsersPage
                    />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("users"), ParamSegment("user"))
                        view=UserPage
                    />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("health"))
                        view=HealthPage
                    />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("passkeys"), StaticSegment("affected"))
                        view=AffectedUsersPage
                    />
                    <Route
                        path=(StaticSegment("tenants"), ParamSegment("id"), StaticSegment("audit"))
                        view=TenantAuditPage
                    />
                </Routes>
            </Layout>
        </Router>
    }
}
