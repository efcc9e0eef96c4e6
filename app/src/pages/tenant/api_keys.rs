//! A tenant's Server API keys (owners and admins): create one (its secret shown once), list
//! them, revoke one.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};

use super::{TenantNav, TenantScope};
use crate::{
    api::{ApiKeyRow, NewApiKey, TenantView, create_api_key, list_api_keys, revoke_api_key},
    forms::{FieldError, FormAlert, FormError, JsControls, SecretField, begin_submit},
};

#[component]
pub fn ApiKeysPage() -> impl IntoView {
    view! { <TenantScope title="API keys" page=|view| view! { <ApiKeys view /> } /> }
}

#[component]
fn ApiKeys(view: TenantView) -> impl IntoView {
    let TenantView { id, name, .. } = view;
    let tenant = StoredValue::new(id.clone());
    let version = RwSignal::new(0u32);
    let keys = Resource::new(
        move || version.get(),
        move |_| list_api_keys(tenant.get_value()),
    );
    let reload = move || version.update(|v| *v += 1);
    let key_name = RwSignal::new(String::new());
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let created = RwSignal::new(None::<NewApiKey>);

    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        created.set(None);
        let chosen = key_name.get_untracked();
        spawn_local(async move {
            match create_api_key(tenant.get_value(), chosen).await {
                Ok(new) => {
                    key_name.set(String::new());
                    created.set(Some(new));
                    reload();
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };

    view! {
        <TenantNav id=id.clone() name=name.clone() current="API keys" />
        <h1>"API keys"</h1>
        <section class="card" aria-labelledby="new-key-heading">
            <h2 id="new-key-heading">"Create an API key"</h2>
            <p class="hint">"Your backend sends it as Authorization: Bearer lk_sk_… to the Server API. Keep it secret; it is shown once."</p>
            <form class="stack" on:submit=on_submit novalidate>
                <JsControls>
                    <div class="field">
                        <label for="key-name">"Key name"</label>
                        <input id="key-name" type="text" maxlength="100" placeholder="e.g. checkout backend" aria-describedby="key-name-error" bind:value=key_name />
                        <FieldError error field="name" id="key-name-error" />
                    </div>
                    <FormAlert error />
                    <button type="submit" disabled=move || busy.get()>"Create API key"</button>
                </JsControls>
            </form>
            {move || created.get().map(|new| view! {
                <div class="issued" role="status">
                    <p>"Copy the key for " <strong>{new.key.name}</strong> " now: it will not be shown again."</p>
                    <SecretField id="new-api-key" label="New API key" secret=new.secret />
                </div>
            })}
        </section>
        <section class="card table-card" aria-label="API keys">
            <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match keys.await {
                        Ok(rows) if rows.is_empty() => view! { <p class="empty">"No API keys yet. Create one above for your backend: it issues enrollment tokens and validates sign-ins with it."</p> }.into_any(),
                        Ok(rows) => view! { <KeyTable rows tenant error on_change=reload /> }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn KeyTable(
    rows: Vec<ApiKeyRow>,
    tenant: StoredValue<String>,
    error: FormError,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <table class="data" data-testid="api-keys">
            <thead>
                <tr>
                    <th scope="col">"Name"</th>
                    <th scope="col">"Key"</th>
                    <th scope="col">"Created"</th>
                    <th scope="col">"Last used"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {rows.into_iter().map(|k| {
                    let key = StoredValue::new(k.id.clone());
                    let revoke = move |_| {
                        error.set(None);
                        spawn_local(async move {
                            match revoke_api_key(tenant.get_value(), key.get_value()).await {
                                Ok(()) => on_change(),
                                Err(err) => error.set(Some(err)),
                            }
                        });
                    };
                    let label = format!("Revoke {}", k.name);
                    let active = k.revoked_at.is_none();
                    view! {
                        <tr>
                            <td>{k.name}</td>
                            <td><code>{k.prefix} "…"</code></td>
                            <td>{k.created_at} <br /><small>"by " {k.created_by}</small></td>
                            <td>{k.last_used_at.unwrap_or_else(|| "never".to_owned())}</td>
                            <td>{k.revoked_at.map_or_else(|| "active".to_owned(), |at| format!("revoked {at}"))}</td>
                            <td>
                                {active.then(|| view! {
                                    <button type="button" class="secondary" aria-label=label on:click=revoke>"Revoke"</button>
                                })}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <FormAlert error />
    }
}
