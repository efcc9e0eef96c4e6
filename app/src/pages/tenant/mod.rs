//! The pages inside one tenant (`/tenants/{id}/…`), and the frame and navigation they share.

mod api_keys;
mod dashboard;
mod enrollment_tokens;
mod health;
mod members;
mod passkeys;
mod policy;
mod users;
mod webhooks;

pub use api_keys::ApiKeysPage;
pub use dashboard::DashboardPage;
pub use enrollment_tokens::EnrollmentTokensPage;
pub use health::HealthPage;
pub use members::MembersPage;
pub use passkeys::PasskeysPage;
pub use policy::AffectedUsersPage;
pub use users::{UserPage, UsersPage};
pub use webhooks::WebhooksPage;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::api::{TenantView, tenant_details};

/// The tenant id of the current route (`/tenants/:id/…`).
pub fn tenant_id() -> impl Fn() -> String + Copy + Send + Sync + 'static {
    let params = use_params_map();
    move || params.read().get("id").unwrap_or_default()
}

/// The frame of a tenant's page: loads the tenant named by the route, then renders `page` with
/// it (or the refusal: a tenant the operator is not a member of is simply not found).
#[component]
pub fn TenantScope<F, V>(title: &'static str, page: F) -> impl IntoView
where
    F: Fn(TenantView) -> V + Copy + Send + Sync + 'static,
    V: IntoView + 'static,
{
    let tenant = Resource::new(tenant_id(), tenant_details);
    view! {
        <Title text=title />
        <Suspense fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match tenant.await {
                    Ok(view) => page(view).into_any(),
                    Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// The tabs of a tenant's pages: (label, path under `/tenants/{id}/`).
const TENANT_TABS: [(&str, &str); 9] = [
    ("Dashboard", "dashboard"),
    ("Users", "users"),
    ("Health", "health"),
    ("Passkeys", "passkeys"),
    ("API keys", "api-keys"),
    ("Enrollment tokens", "enrollment-tokens"),
    ("Webhooks", "webhooks"),
    ("Members", "members"),
    ("Audit log", "audit"),
];

/// The links between one tenant's pages; `current` is the label of the page shown.
///
/// Plain links (the router still navigates them in the browser), not `<A>`: this renders inside
/// `TenantScope`'s `Suspend`, where router hooks may find no router during server rendering
/// (a `Suspend` that is ready when first polled runs outside its owner) and panic the render.
#[component]
pub fn TenantNav(id: String, name: String, current: &'static str) -> impl IntoView {
    view! {
        <p class="crumbs"><a href="/tenants">"Tenants"</a> " / " <strong>{name}</strong></p>
        <nav class="tabs" aria-label="Tenant">
            {TENANT_TABS.iter().map(|(label, path)| view! {
                <a href=format!("/tenants/{id}/{path}") aria-current=(*label == current).then_some("page")>
                    {*label}
                </a>
            }).collect_view()}
        </nav>
    }
}
