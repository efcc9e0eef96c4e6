use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{FirstRunView, InstanceStatusView, first_run, instance_status};

#[component]
pub fn HomePage() -> impl IntoView {
    // Bumping the counter re-runs the server function.
    let refreshes = RwSignal::new(0u32);
    let status = Resource::new(move || refreshes.get(), |_| instance_status());
    let checklist = Resource::new(|| (), |()| first_run());

    view! {
        <Title text="" />
        <section class="hero">
            <h1>"Latchkey"</h1>
            <p class="lede">
                "Self-hosted passkeys for your applications: register and sign in your users with "
                "WebAuthn, manage tenants, keys and authenticators from this portal."
            </p>
        </section>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                // Errors (signed out) show on the status card below.
                checklist.await.ok().map(|run| view! { <Checklist run /> })
            })}
        </Transition>
        <section class="card" aria-labelledby="status-heading">
            <div class="card-header">
                <h2 id="status-heading">"Instance status"</h2>
                <button
                    type="button"
                    class="secondary"
                    on:click=move |_| refreshes.update(|n| *n += 1)
                >
                    "Refresh status"
                </button>
            </div>
            <Transition fallback=|| view! { <p aria-busy="true">"Checking…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        Ok(status) => view! { <StatusDetails status /> }.into_any(),
                        Err(err) => {
                            view! { <p class="error" role="alert">{err.message}</p> }.into_any()
                        }
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn StatusDetails(status: InstanceStatusView) -> impl IntoView {
    let setup_note = status.needs_setup.then(|| {
        view! {
            <p class="note">
                "No operator exists yet: this instance is waiting for its first-run setup."
            </p>
        }
    });
    view! {
        <dl class="facts" aria-live="polite">
            <Fact label="Database" test_id="status-database" value=status.database />
            <Fact label="Tenants" test_id="status-tenants" value=status.tenants.to_string() />
            <Fact label="Operators" test_id="status-operators" value=status.operators.to_string() />
            <Fact label="Checked at" test_id="status-checked-at" value=status.checked_at />
        </dl>
        {setup_note}
    }
}

/// Getting started, ticked as the operator's tenants get there; each step links to where it is
/// done. Folded away once everything is done.
#[component]
fn Checklist(run: FirstRunView) -> impl IntoView {
    let tenant = run.tenant.clone();
    let at = move |page: &str| match &tenant {
        Some((id, _)) if page.is_empty() => format!("/tenants/{id}"),
        Some((id, _)) => format!("/tenants/{id}/{page}"),
        None => "/tenants".to_owned(),
    };
    let tenant_name = run
        .tenant
        .as_ref()
        .map(|(_, name)| name.clone())
        .unwrap_or_default();
    let steps: Vec<(bool, String, String, String)> = vec![
        (
            run.tenant.is_some(),
            "Create a tenant".to_owned(),
            if run.tenant.is_some() {
                format!("“{tenant_name}” exists.")
            } else if run.may_create_tenant {
                "One per application (or environment) whose users sign in with passkeys.".to_owned()
            } else {
                "Ask an instance admin to create one and invite you.".to_owned()
            },
            if run.may_create_tenant && run.tenant.is_none() {
                "/tenants/new".to_owned()
            } else {
                "/tenants".to_owned()
            },
        ),
        (
            run.passkeys_configured,
            "Enable passkeys with an RP ID and an origin".to_owned(),
            "The domain your users sign in on, and the web (or Android app) origins they use."
                .to_owned(),
            at(""),
        ),
        (
            run.api_key_created,
            "Create an API key".to_owned(),
            "Your backend's secret for the Server API.".to_owned(),
            at("api-keys"),
        ),
        (
            run.enrollment_token_issued,
            "Issue a first enrollment token".to_owned(),
            "From your backend (POST /v1/enrollment-tokens), or here to try it.".to_owned(),
            at("enrollment-tokens"),
        ),
        (
            run.passkey_registered,
            "Register a first passkey".to_owned(),
            "A user opens the enrollment link and creates a passkey; it then appears under Users."
                .to_owned(),
            at("users"),
        ),
    ];
    let finished = steps.iter().filter(|s| s.0).count();
    let total = steps.len();
    view! {
        <section class="card checklist" aria-labelledby="checklist-heading" data-testid="checklist">
            <details open=!run.done>
                <summary>
                    <h2 id="checklist-heading">"Getting started"</h2>
                    <span class="progress">{format!("{finished} of {total} done")}</span>
                </summary>
                <ol>
                    {steps.into_iter().map(|(done, title, hint, href)| view! {
                        <li class:done=done data-done=done.to_string()>
                            <span class="tick" aria-hidden="true">{if done { "✓" } else { "" }}</span>
                            <div>
                                <a href=href>{title}</a>
                                <span class="visually-hidden">{if done { " (done)" } else { " (to do)" }}</span>
                                <p class="hint">{hint}</p>
                            </div>
                        </li>
                    }).collect_view()}
                </ol>
            </details>
        </section>
    }
}

/// One labelled value of a `<dl class="facts">`.
#[component]
fn Fact(label: &'static str, test_id: &'static str, value: String) -> impl IntoView {
    view! {
        <div>
            <dt>{label}</dt>
            <dd data-testid=test_id>{value}</dd>
        </div>
    }
}
