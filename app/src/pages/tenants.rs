//! The operator's tenants and creating one. A tenant's own pages are in `tenant/`.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use leptos_meta::Title;

use crate::{
    api::{create_tenant, my_tenants, whoami},
    browser,
    forms::{FieldError, FormAlert, FormError, JsControls, begin_submit},
};

#[component]
pub fn TenantsPage() -> impl IntoView {
    let tenants = Resource::new(|| (), |_| my_tenants());
    let me = Resource::new(|| (), |_| whoami());
    view! {
        <Title text="Tenants" />
        <div class="page-header">
            <h1>"Tenants"</h1>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    let admin = me.await.ok().flatten().is_some_and(|m| m.is_instance_admin);
                    admin.then(|| view! { <a class="button" href="/tenants/new">"New tenant"</a> })
                })}
            </Suspense>
        </div>
        <section class="card table-card" aria-label="Your tenants">
            <Suspense fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match tenants.await {
                        Ok(rows) if rows.is_empty() => view! {
                            <p>"You are not a member of any tenant yet. Instance admins create tenants; owners add members."</p>
                        }.into_any(),
                        Ok(rows) => view! {
                            <table class="data" data-testid="tenants">
                                <thead>
                                    <tr>
                                        <th scope="col">"Name"</th>
                                        <th scope="col">"Your role"</th>
                                        <th scope="col">"Passkeys"</th>
                                        <th scope="col">"Relying Party ID"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|t| view! {
                                        <tr>
                                            <td><a href=format!("/tenants/{}/passkeys", t.id)>{t.name}</a></td>
                                            <td>{t.role}</td>
                                            <td>{if t.passkeys_enabled { "on" } else { "off" }}</td>
                                            <td>{t.rp_id.unwrap_or_else(|| "—".to_owned())}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
pub fn NewTenantPage() -> impl IntoView {
    let name = RwSignal::new(String::new());
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        let chosen = name.get_untracked();
        spawn_local(async move {
            match create_tenant(chosen).await {
                Ok(id) => browser::navigate_to(&format!("/tenants/{id}/passkeys")),
                Err(err) => {
                    error.set(Some(err));
                    busy.set(false);
                }
            }
        });
    };
    view! {
        <Title text="New tenant" />
        <section class="card narrow" aria-labelledby="new-tenant-heading">
            <h1 id="new-tenant-heading">"New tenant"</h1>
            <p>"A tenant is one application (or brand) whose users sign in with passkeys. You become its owner."</p>
            <form class="stack" on:submit=on_submit novalidate>
                <JsControls>
                    <div class="field">
                        <label for="tenant-name">"Tenant name"</label>
                        <input id="tenant-name" type="text" maxlength="100" aria-describedby="tenant-name-error" bind:value=name />
                        <FieldError error field="name" id="tenant-name-error" />
                    </div>
                    <FormAlert error />
                    <button type="submit" disabled=move || busy.get()>"Create tenant"</button>
                </JsControls>
            </form>
        </section>
    }
}
