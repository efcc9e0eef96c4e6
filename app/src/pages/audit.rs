//! The audit log: of one tenant (`/tenants/{id}/audit`, `support` and up) or of the whole
//! instance (`/audit`, instance admins). Filters and the page cursor live in the URL, so a
//! filtered view is a link and renders on the server; export as CSV or JSON Lines downloads
//! every matching event (see the server's export route).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{hooks::use_query_map, params::ParamsMap};

use super::tenant::{TenantNav, TenantScope};
use crate::api::{AuditPageView, AuditQuery, SentencePart, TenantView, audit_log};

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

/// A query value percent-encoded, keeping what a query may hold as it is (`-`, `.`, `@`, `:`
/// …), so that filtered views stay readable links (`user=customer-7781`).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~@:".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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
        ("passkey", &q.passkey),
        ("code", &q.code),
        ("event", &q.event),
    ] {
        let value = value.trim();
        if !value.is_empty() {
            parts.push(format!("{key}={}", escape(value)));
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
            passkey: get("passkey"),
            code: get("code"),
            event: get("event"),
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
            q.passkey,
            q.code,
            q.event,
            q.before,
        )
    });
    // The form follows the URL: a link in a sentence filters the log without reloading the
    // page, and the form must then submit that filter too.
    let field = move |name: &str| params.read().get(name).unwrap_or_default();
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
                <input id="audit-actor" name="actor" type="text" placeholder="email, or operator / api_key / end_user / cli / system" value=initial.actor.clone() prop:value=move || field("actor") />
            </div>
            <div class="field">
                <label for="audit-action">"Action"</label>
                <input id="audit-action" name="action" type="text" list="audit-actions" value=initial.action.clone() prop:value=move || field("action") />
                <datalist id="audit-actions">
                    {KNOWN_ACTIONS.iter().map(|a| view! { <option value=*a /> }).collect_view()}
                </datalist>
            </div>
            <div class="field">
                <label for="audit-user">"Target user ID"</label>
                <input id="audit-user" name="user" type="text" value=initial.user.clone() prop:value=move || field("user") />
            </div>
            <div class="field">
                <label for="audit-from">"From (UTC)"</label>
                <input id="audit-from" name="from" type="date" value=initial.from.clone() prop:value=move || field("from") />
            </div>
            <div class="field">
                <label for="audit-to">"To (UTC)"</label>
                <input id="audit-to" name="to" type="date" value=initial.to.clone() prop:value=move || field("to") />
            </div>
            // Filters set by following a link (a passkey, an error code, one event) stay until
            // cleared.
            {move || ["passkey", "code", "event"]
                .into_iter()
                .map(|name| (name, field(name)))
                .filter(|(_, v)| !v.is_empty())
                .map(|(name, value)| view! { <input type="hidden" name=name value=value /> })
                .collect_view()}
            <div class="field">
                <button type="submit">"Filter"</button>
            </div>
            {move || (!query_string(&current(), None).is_empty()).then(|| view! {
                <div class="field">
                    <a class="button secondary" href=base.get_value()>"Clear filters"</a>
                </div>
            })}
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
                {if filtered {
                    "No event matches these filters. Widen the dates or clear a filter."
                } else {
                    "Nothing recorded yet. Every change made here or through the Server API, \
                     every registration and every sign-in (refused ones too) appears in this log."
                }}
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
    // A link to the log filtered by one more thing (and from the newest event again).
    let filter_by = move |set: &dyn Fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            before: String::new(),
            event: String::new(),
            ..query.clone()
        };
        set(&mut q);
        format!("{}?{}", base.get_value(), query_string(&q, None))
    };
    view! {
        <ol class="events" data-testid="audit-log">
            {events.into_iter().map(|r| {
                let sentence = r.sentence.iter().map(|part| match part.clone() {
                    SentencePart::Text(text) => text.into_any(),
                    SentencePart::Actor { label, filter } => {
                        let href = filter_by(&|q| q.actor = filter.clone());
                        view! { <a class="actor" href=href>{label}</a> }.into_any()
                    }
                    SentencePart::User(id) => {
                        let href = filter_by(&|q| q.user = id.clone());
                        view! { <a class="user" href=href>{id}</a> }.into_any()
                    }
                    SentencePart::Passkey { name, id, user } => {
                        let href = filter_by(&|q| {
                            q.passkey = id.clone();
                            if let Some(user) = &user {
                                q.user = user.clone();
                            }
                        });
                        view! { <a class="passkey" href=href>"“"{name}"”"</a> }.into_any()
                    }
                }).collect_view();
                let own = format!("{}?event={}", base.get_value(), r.id);
                let outcome = if r.failed { "Refused" } else { "Done" };
                let badge = if r.failed { "badge failure" } else { "badge success" };
                let source = match (&r.ip, &r.user_agent_summary) {
                    (Some(ip), Some(ua)) => Some(format!("{ua} · {ip}")),
                    (Some(ip), None) => Some(ip.clone()),
                    (None, Some(ua)) => Some(ua.clone()),
                    (None, None) => None,
                };
                let details = r.details.clone();
                view! {
                    <li class="event" class:failed=r.failed data-action=r.action.clone() id=format!("event-{}", r.id)>
                        <div class="event-line">
                            <span class=badge>{outcome}</span>
                            <p class="sentence">{sentence}</p>
                            <a class="when" href=own title="This event's own link">
                                <time>{r.occurred_at.clone()}</time>
                            </a>
                        </div>
                        <details class="event-details">
                            <summary>
                                "Details"
                                {source.map(|s| view! { <span class="source">" · "{s}</span> })}
                            </summary>
                            <dl>
                                <dt>"Action"</dt><dd><code>{r.action.clone()}</code></dd>
                                {r.error_code.clone().map(|code| view! {
                                    <dt>"Error code"</dt><dd><code>{code}</code></dd>
                                })}
                                <dt>"Actor"</dt><dd>{r.actor.clone()}</dd>
                                {r.target.clone().map(|t| view! { <dt>"Target"</dt><dd>{t}</dd> })}
                                {details.into_iter().map(|(k, v)| view! {
                                    <dt>{k}</dt><dd class="wrap">{v}</dd>
                                }).collect_view()}
                                {r.ip.clone().map(|ip| view! { <dt>"Source address"</dt><dd>{ip}</dd> })}
                                {r.user_agent.clone().map(|ua| view! {
                                    <dt>"User agent"</dt><dd class="wrap"><small>{ua}</small></dd>
                                })}
                                <dt>"Event ID"</dt><dd>{r.id}</dd>
                            </dl>
                        </details>
                    </li>
                }
            }).collect_view()}
        </ol>
        <nav class="pager" aria-label="Pages">
            <a href=first>"Newest"</a>
            {older.map(|href| view! { <a href=href rel="next">"Older events"</a> })}
        </nav>
    }
    .into_any()
}
