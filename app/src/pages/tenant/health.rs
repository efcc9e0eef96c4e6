//! **Health**: the tenant's passkeys that need attention (counter went backwards, backup state
//! flipped, unknown model, no user verification, downgraded by metadata, refused by the current
//! policy, unused), newest first, filtered by reason. Each item can be dismissed with a note or
//! revoked with a reason; a recovery token is issued from the user's page it links to.
//!
//! The filter and the page cursor live in the URL (`?reason=…&after=…`), like the users page.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use leptos_router::{hooks::use_query_map, params::ParamsMap};

use super::{TenantNav, TenantScope, users::user_path};
use crate::{
    api::{
        HealthPageView, HealthRow, TenantView, credential_health, dismiss_health_flag,
        revoke_authenticator,
    },
    forms::{FormError, JsControls, begin_submit},
};

fn health_href(tenant: &str, reason: &str, after: Option<&str>) -> String {
    let mut href = format!("/tenants/{tenant}/health");
    let mut sep = '?';
    if !reason.is_empty() {
        href.push_str(&format!("?reason={reason}"));
        sep = '&';
    }
    if let Some(after) = after {
        href.push_str(&format!("{sep}after={after}"));
    }
    href
}

#[component]
pub fn HealthPage() -> impl IntoView {
    let query = use_query_map();
    view! { <TenantScope title="Health" page=move |view| view! { <Health view query /> } /> }
}

#[component]
fn Health(view: TenantView, query: Memo<ParamsMap>) -> impl IntoView {
    let TenantView { id, name, .. } = view;
    let tenant = StoredValue::new(id.clone());
    let reason = move || query.read().get("reason").unwrap_or_default();
    let after = move || query.read().get("after");
    // Bumped after an action, so the page reloads what is left.
    let changed = RwSignal::new(0u32);
    let page = Resource::new(
        move || (reason(), after(), changed.get()),
        move |(reason, after, _)| credential_health(tenant.get_value(), reason, after),
    );
    view! {
        <TenantNav id=id.clone() name=name.clone() current="Health" />
        <h1>"Credential health"</h1>
        <p class="hint">
            "Passkeys that need a look, newest first. Dismiss one with a note when it is fine; "
            "it shows again if the same thing happens again."
        </p>
        <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match page.await {
                    Ok(result) => view! { <Queue result tenant reason=reason() changed /> }.into_any(),
                    Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Queue(
    result: HealthPageView,
    tenant: StoredValue<String>,
    reason: String,
    changed: RwSignal<u32>,
) -> impl IntoView {
    let HealthPageView {
        items,
        next,
        counts,
        can_act,
    } = result;
    let id = tenant.get_value();
    let filter = view! {
        <form class="search" method="get" action=format!("/tenants/{id}/health")>
            <label for="health-reason">"Reason"</label>
            <div class="inline">
                <select id="health-reason" name="reason">
                    <option value="" selected=reason.is_empty()>"All reasons"</option>
                    {counts.iter().map(|c| view! {
                        <option value=c.reason.clone() selected=c.reason == reason>
                            {format!("{} ({})", c.label, c.count)}
                        </option>
                    }).collect_view()}
                </select>
                <button type="submit">"Show"</button>
            </div>
        </form>
    };
    let next_href = next.map(|n| health_href(&id, &reason, Some(&n)));
    let body = if items.is_empty() {
        view! { <p class="empty" data-testid="health-empty">"Nothing needs attention here."</p> }
            .into_any()
    } else {
        view! {
            <table class="data" data-testid="health">
                <thead>
                    <tr>
                        <th scope="col">"Date"</th>
                        <th scope="col">"Reason"</th>
                        <th scope="col">"Passkey"</th>
                        <th scope="col">"User"</th>
                        {can_act.then(|| view! { <th scope="col">"Action"</th> })}
                    </tr>
                </thead>
                <tbody>
                    {items.into_iter().map(|item| view! { <Item item tenant can_act changed /> }).collect_view()}
                </tbody>
            </table>
        }
        .into_any()
    };
    view! {
        {filter}
        <section class="card table-card" aria-label="Passkeys needing attention" aria-live="polite">
            {body}
            {next_href.map(|href| view! { <p><a href=href rel="next">"Next page"</a></p> })}
        </section>
    }
}

#[component]
fn Item(
    item: HealthRow,
    tenant: StoredValue<String>,
    can_act: bool,
    changed: RwSignal<u32>,
) -> impl IntoView {
    let user_href = user_path(&tenant.get_value(), &item.user_id);
    let passkey = match &item.provider {
        Some(provider) if *provider != item.name => format!("{} ({provider})", item.name),
        _ => item.name.clone(),
    };
    let reason_text = match &item.detail {
        Some(detail) => format!("{}: {detail}", item.reason_label),
        None => item.reason_label.clone(),
    };
    let user = item.username.clone().map_or_else(
        || item.user_id.clone(),
        |u| format!("{} ({u})", item.user_id),
    );
    let reason = item.reason.clone();
    let flagged_at = item.flagged_at.clone();
    view! {
        <tr data-testid="health-item" data-reason=reason>
            <td class="nowrap">{flagged_at}</td>
            <td>{reason_text}</td>
            <td class="wrap">{passkey}</td>
            <td class="wrap"><a href=user_href.clone()>{user}</a></td>
            {can_act.then(|| view! { <td><Actions item tenant user_href changed /></td> })}
        </tr>
    }
}

/// Dismiss with a note, or revoke with a reason; the recovery token is on the user's page.
#[component]
fn Actions(
    item: HealthRow,
    tenant: StoredValue<String>,
    user_href: String,
    changed: RwSignal<u32>,
) -> impl IntoView {
    let note = RwSignal::new(String::new());
    let revoke_reason = RwSignal::new(String::new());
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let item = StoredValue::new(item);
    let key = item.with_value(|i| format!("{}-{}", i.reason, i.authenticator_id));
    let note_id = format!("note-{key}");
    let revoke_id = format!("revoke-reason-{key}");
    let on_dismiss = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        let item = item.get_value();
        let text = note.get_untracked();
        spawn_local(async move {
            match dismiss_health_flag(tenant.get_value(), item.authenticator_id, item.reason, text)
                .await
            {
                Ok(()) => changed.update(|n| *n += 1),
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    let on_revoke = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        let item = item.get_value();
        let reason = revoke_reason.get_untracked();
        spawn_local(async move {
            match revoke_authenticator(
                tenant.get_value(),
                item.user_id,
                item.authenticator_id,
                reason,
            )
            .await
            {
                Ok(_) => changed.update(|n| *n += 1),
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    let name = item.with_value(|i| i.name.clone());
    view! {
        <details class="actions">
            <summary aria-label=format!("Act on {name}")>"Act"</summary>
            <form class="stack" on:submit=on_dismiss novalidate>
                <JsControls>
                    <div class="field">
                        <label for=note_id.clone()>"Note"</label>
                        <input id=note_id type="text" maxlength="500" bind:value=note />
                    </div>
                    <button type="submit" class="secondary" disabled=move || busy.get()>"Dismiss"</button>
                </JsControls>
            </form>
            <form class="stack" on:submit=on_revoke novalidate>
                <JsControls>
                    <div class="field">
                        <label for=revoke_id.clone()>"Revocation reason"</label>
                        <input id=revoke_id type="text" maxlength="500" bind:value=revoke_reason />
                    </div>
                    <button type="submit" class="danger" disabled=move || busy.get()>"Revoke"</button>
                </JsControls>
            </form>
            // Field errors too: this row's two small forms share one message (ids stay unique).
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e.message}</p> })}
            <p><a href=user_href>"Issue a recovery token (user's page)"</a></p>
        </details>
    }
}
