use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::{InstanceStatusView, instance_status};

#[component]
pub fn HomePage() -> impl IntoView {
    // Bumping the counter re-runs the server function.
    let refreshes = RwSignal::new(0u32);
    let status = Resource::new(move || refreshes.get(), |_| instance_status());

    view! {
        <Title text="" />
        <section class="hero">
            <h1>"Latchkey"</h1>
            <p class="lede">
                "Self-hosted passkeys for your applications: register and sign in your users with "
                "WebAuthn, manage tenants, keys and authenticators from this portal."
            </p>
        </section>
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
