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
            <div>
                <dt>"Database"</dt>
                <dd data-testid="status-database">{status.database}</dd>
            </div>
            <div>
                <dt>"Tenants"</dt>
                <dd data-testid="status-tenants">{status.tenants}</dd>
            </div>
            <div>
                <dt>"Operators"</dt>
                <dd data-testid="status-operators">{status.operators}</dd>
            </div>
            <div>
                <dt>"Checked at"</dt>
                <dd data-testid="status-checked-at">{status.checked_at}</dd>
            </div>
        </dl>
        {setup_note}
    }
}
