//! The audit log: of one tenant (`/tenants/{id}/audit`, `support` and up) or of the whole
//! instance (`/audit`, instance admins). Filters and the page cursor live in the URL, so a
//! filtered view is a link and renders on the server; export as CSV or JSON Lines downloads
//! every matching event (see the server's export route).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{hooks::use_query_map, params::ParamsMap};

use super::tenant::{TenantNav, TenantScope};
use crate::api::{AuditPageView, AuditQuery, TenantView, audit_log};

/// Actions the filter suggests (the log may hold others).
const KNOWN_ACTIONS: &[&str] = &[
    "authenticator.registered",
    "authenticator.renamed",
    "authenticator.revoked",
    "device.bound",
    "device.revoked",
    "user.signed_in",
    "registration.started",
    "registration.finished",
    "validation_token.validated",
    "enrollment_token.issued",
    "enrollment_token.revoked",
    "enrollment_token.expired",
    "api_key.created",
    "api_key.revoked",
    "tenant.created",
    "tenant.renamed",
    "tenant.passkey_config_changed",
    "member.invited",
    "member.added",
    "member.role_changed",
    "member.removed",
    "operator.signed_in",
    "operator.signed_out",
];

#[component]
pub fn AuditPage() -> impl IntoView {
    let params = use_query_map();
    view! {
        <Title text="Audit log" />
        <AuditLog tenant=None params />
    }
}

/// Router hooks are read here, outside `TenantScope`'s `Suspend` (see `TenantNav`).
#[component]
pub fn TenantAuditPage() -> impl IntoView {
    let params = use_query_map();
    view! {
        <TenantScope title="Audit log" page=move |view: TenantView| view! {
            <TenantNav id=view.id.clone() name=view.name.clone() current="Audit log" />
            <AuditLog tenant=Some(view.id) params />
        } />
    }
}

/// `key=value` pairs of the non-empty filters, URL-encoded.
fn query_string(q: &AuditQuery, before: Option<i64>) -> String {
    let mut parts = Vec::new();
    for (key, value) in [
        ("actor", &q.actor),
        ("action", &q.action),
        ("user", &q.user),
        ("from", &q.from),
        ("to", &q.to),
    ] {
        let value = value.trim();
        if !value.is_empty() {
            parts.push(format!(
                "{key}={}",
                leptos_router::location::Url::escape(value)
            ));
        }
    }
    if let Some(before) = before {
        parts.push(format!("before={before}"));
    }
    parts.join("&")
}

#[component]
fn AuditLog(tenant: Option<String>, params: Memo<ParamsMap>) -> impl IntoView {
    let base = StoredValue::new(match &tenant {
        Some(id) => format!("/tenants/{id}/audit"),
        None => "/audit".to_owned(),
    });
    let tenant = StoredValue::new(tenant.unwrap_or_default());
    let current = move || {
        let p = params.read();
        let get = |k: &str| p.get(k).unwrap_or_default();
        AuditQuery {
            actor: get("actor"),
            action: get("action"),
            user: get("user"),
            from: get("from"),
            to: get("to"),
            before: get("before"),
        }
    };
    let page = Resource::new(current, move |q| {
        audit_log(
            tenant.get_value(),
            q.actor,
            q.action,
            q.user,
            q.from,
            q.to,
            q.before,
        )
    });
    let initial = current();
    let export = move |format: &str| {
        let mut qs = query_string(&current(), None);
        if !tenant.get_value().is_empty() {
            qs = format!("tenant={}&{qs}", tenant.get_value());
        }
        format!("/portal/export/audit.{format}?{qs}")
    };

    view! {
        <div class="page-header">
            <h1>"Audit log"</h1>
            <div class="actions">
                <a class="button secondary" href=move || export("csv") download="">"Export CSV"</a>
                <a class="button secondary" href=move || export("jsonl") download="">"Export JSON Lines"</a>
            </div>
        </div>
        // A plain GET form: a filtered view is a URL, rendered by the server.
        <form class="card filters" method="get" action=base.get_value() aria-label="Filter events">
            <div class="field">
                <label for="audit-actor">"Actor"</label>
                <input id="audit-actor" name="actor" type="text" placeholder="email, or operator / api_key / end_user / cli / system" value=initial.actor.clone() />
            </div>
            <div class="field">
                <label for="audit-action">"Action"</label>
                <input id="audit-action" name="action" type="text" list="audit-actions" value=initial.action.clone() />
                <datalist id="audit-actions">
                    {KNOWN_ACTIONS.iter().map(|a| view! { <option value=*a /> }).collect_view()}
                </datalist>
            </div>
            <div class="field">
                <label for="audit-user">"Target user ID"</label>
                <input id="audit-user" name="user" type="text" value=initial.user.clone() />
            </div>
            <div class="field">
                <label for="audit-from">"From (UTC)"</label>
                <input id="audit-from" name="from" type="date" value=initial.from.clone() />
            </div>
            <div class="field">
                <label for="audit-to">"To (UTC)"</label>
                <input id="audit-to" name="to" type="date" value=initial.to.clone() />
            </div>
            <div class="field">
                <button type="submit">"Filter"</button>
            </div>
        </form>
        <section class="card table-card" aria-label="Events" aria-live="polite">
            <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(result) => view! { <Events result base query=current() /> }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn Events(result: AuditPageView, base: StoredValue<String>, query: AuditQuery) -> impl IntoView {
    let AuditPageView { events, next } = result;
    if events.is_empty() {
        let filtered = !query_string(&query, None).is_empty() || !query.before.is_empty();
        return view! {
            <p class="empty">
                {if filtered { "No event matches these filters." } else { "Nothing recorded yet." }}
            </p>
        }
        .into_any();
    }
    let first = {
        let qs = query_string(&query, None);
        if qs.is_empty() {
            base.get_value()
        } else {
            format!("{}?{qs}", base.get_value())
        }
    };
    let older = next.map(|n| format!("{}?{}", base.get_value(), query_string(&query, Some(n))));
    view! {
        <table class="data" data-testid="audit-log">
            <thead>
                <tr>
                    <th scope="col">"Time"</th>
                    <th scope="col">"Actor"</th>
                    <th scope="col">"Action"</th>
                    <th scope="col">"Target"</th>
                    <th scope="col">"Outcome"</th>
                    <th scope="col">"Source"</th>
                </tr>
            </thead>
            <tbody>
                {events.into_iter().map(|r| {
                    let action = r.action.clone();
                    view! {
                        <tr data-action=action>
                            <td class="nowrap">{r.occurred_at}</td>
                            <td class="wrap">{r.actor}</td>
                            <td><code>{r.action}</code></td>
                            <td class="wrap">
                                {r.target.unwrap_or_default()}
                                {r.details.map(|d| view! { <br /><small class="details">{d}</small> })}
                            </td>
                            <td>{r.outcome}</td>
                            <td class="wrap">
                                {r.ip.unwrap_or_default()}
                                <br />
                                <small>{r.user_agent.unwrap_or_default()}</small>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <nav class="pager" aria-label="Pages">
            <a href=first>"Newest"</a>
            {older.map(|href| view! { <a href=href rel="next">"Older events"</a> })}
        </nav>
    }
    .into_any()
}
