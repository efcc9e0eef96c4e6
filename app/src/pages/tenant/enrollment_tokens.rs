//! A tenant's enrollment tokens (admins and owners): issue one for a user — support-assisted
//! recovery, or a first passkey — shown once; list the active ones; revoke one.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};

use super::{TenantNav, TenantScope};
use crate::{
    api::{
        EnrollmentTokenRow, IssuedToken, TenantView, issue_enrollment_token,
        list_enrollment_tokens, revoke_enrollment_token,
    },
    forms::{FieldError, FormAlert, FormError, JsControls, SecretField, begin_submit},
};

#[component]
pub fn EnrollmentTokensPage() -> impl IntoView {
    view! {
        <TenantScope title="Enrollment tokens" page=|view| view! { <EnrollmentTokens view /> } />
    }
}

#[component]
fn EnrollmentTokens(view: TenantView) -> impl IntoView {
    let TenantView { id, name, .. } = view;
    let tenant = StoredValue::new(id.clone());
    let version = RwSignal::new(0u32);
    let tokens = Resource::new(
        move || version.get(),
        move |_| list_enrollment_tokens(tenant.get_value()),
    );
    let reload = move || version.update(|v| *v += 1);
    let user_id = RwSignal::new(String::new());
    let add_authenticators = RwSignal::new(false);
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let issued = RwSignal::new(None::<IssuedToken>);

    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        issued.set(None);
        let (user, scoped) = (user_id.get_untracked(), add_authenticators.get_untracked());
        spawn_local(async move {
            match issue_enrollment_token(tenant.get_value(), user, scoped).await {
                Ok(token) => {
                    user_id.set(String::new());
                    add_authenticators.set(false);
                    issued.set(Some(token));
                    reload();
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };

    view! {
        <TenantNav id=id.clone() name=name.clone() current="Enrollment tokens" />
        <h1>"Enrollment tokens"</h1>
        <section class="card" aria-labelledby="issue-heading">
            <h2 id="issue-heading">"Issue a token"</h2>
            <p class="hint">
                "Lets one browser register one passkey for the user (Latchkey.signUp). "
                "A user who already has a passkey needs add:authenticators, e.g. to recover after losing a phone."
            </p>
            <form class="stack" on:submit=on_submit novalidate>
                <JsControls>
                    <div class="field">
                        <label for="enroll-user">"User ID"</label>
                        <input id="enroll-user" type="text" maxlength="128" autocomplete="off" placeholder="your identifier for the user" aria-describedby="enroll-user-error" bind:value=user_id />
                        <FieldError error field="user_id" id="enroll-user-error" />
                    </div>
                    <div class="field checkbox">
                        <input id="enroll-scope" type="checkbox" bind:checked=add_authenticators />
                        <label for="enroll-scope">"add:authenticators"</label>
                    </div>
                    <FormAlert error />
                    <button type="submit" disabled=move || busy.get()>"Issue token"</button>
                </JsControls>
            </form>
            {move || issued.get().map(|token| view! {
                <div class="issued" role="status">
                    <p>
                        "Token for " <strong>{token.user_id.clone()}</strong> ", valid until " {token.expires_at.clone()}
                        ". Copy it now: it will not be shown again."
                    </p>
                    {(token.has_authenticators && !token.add_authenticators).then(|| view! {
                        <p class="warning">"This user already has a passkey: without add:authenticators this token will be refused."</p>
                    })}
                    <SecretField id="new-enrollment-token" label="New enrollment token" secret=token.token.clone() />
                </div>
            })}
        </section>
        <section class="card table-card" aria-label="Active enrollment tokens">
            <h2>"Active tokens"</h2>
            <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match tokens.await {
                        Ok(rows) if rows.is_empty() => view! { <p class="empty">"No active enrollment tokens. A token your backend issues (POST /api/v1/users/{user_id}/enrollment-tokens) or you issue above is listed here until it is used, revoked or expires."</p> }.into_any(),
                        Ok(rows) => view! { <TokenTable rows tenant error on_change=reload /> }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn TokenTable(
    rows: Vec<EnrollmentTokenRow>,
    tenant: StoredValue<String>,
    error: FormError,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <table class="data" data-testid="enrollment-tokens">
            <thead>
                <tr>
                    <th scope="col">"User ID"</th>
                    <th scope="col">"Token"</th>
                    <th scope="col">"Scope"</th>
                    <th scope="col">"Issued"</th>
                    <th scope="col">"Expires"</th>
                    <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                </tr>
            </thead>
            <tbody>
                {rows.into_iter().map(|t| {
                    let token = StoredValue::new(t.id.clone());
                    let revoke = move |_| {
                        error.set(None);
                        spawn_local(async move {
                            match revoke_enrollment_token(tenant.get_value(), token.get_value()).await {
                                Ok(()) => on_change(),
                                Err(err) => error.set(Some(err)),
                            }
                        });
                    };
                    let label = format!("Revoke the token for {}", t.user_id);
                    view! {
                        <tr>
                            <td>{t.user_id}</td>
                            <td><code>{t.prefix} "…"</code></td>
                            <td>{if t.add_authenticators { "add:authenticators" } else { "first passkey" }}</td>
                            <td>{t.created_at} <br /><small>"by " {t.issued_by}</small></td>
                            <td>{t.expires_at}</td>
                            <td>
                                <button type="button" class="secondary" aria-label=label on:click=revoke>"Revoke"</button>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <FormAlert error />
    }
}
