//! A tenant's dashboard: registrations and sign-ins per day (30 days) as an SVG chart drawn
//! here — rendered on the server with the page, no chart library, no CDN — outcomes by error
//! code, and active credentials by provider and by kind.

use leptos::prelude::*;

use super::{TenantNav, TenantScope};
use crate::api::{DashboardView, DayView, TenantView, tenant_dashboard};

#[component]
pub fn DashboardPage() -> impl IntoView {
    view! { <TenantScope title="Dashboard" page=|view| view! { <Dashboard view /> } /> }
}

#[component]
fn Dashboard(view: TenantView) -> impl IntoView {
    let TenantView { id, name, .. } = view;
    let tenant = id.clone();
    let board = Resource::new(move || tenant.clone(), tenant_dashboard);
    let tenant = StoredValue::new(id.clone());
    view! {
        <TenantNav id name current="Dashboard" />
        <h1>"Dashboard"</h1>
        <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match board.await {
                    Ok(board) => view! { <Figures board tenant=tenant.get_value() /> }.into_any(),
                    Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Figures(board: DashboardView, tenant: String) -> impl IntoView {
    let DashboardView {
        days,
        outcomes,
        providers,
        synced,
        device_bound,
        users,
        users_with_passkey,
        adoption,
        passkeys_per_user,
        sign_in_success,
        health,
    } = board;
    let active = synced + device_bound;
    let share = |n: u64| (n * 100 + active / 2).checked_div(active).unwrap_or(0);
    let totals = days.iter().fold((0, 0, 0), |(r, s, f), d| {
        (r + d.registrations, s + d.sign_ins, f + d.failures)
    });
    view! {
        <section class="card" aria-labelledby="adoption-heading" data-testid="adoption">
            <h2 id="adoption-heading">"Adoption"</h2>
            {if users == 0 {
                view! {
                    <p class="empty">
                        "No users yet. A user appears when your backend issues their first enrollment token "
                        <a href=format!("/tenants/{tenant}/enrollment-tokens")>"(Enrollment tokens)"</a>
                        "; these figures then show how many of them have a passkey."
                    </p>
                }.into_any()
            } else {
                view! {
                    <div class="stats">
                        <p class="stat" data-figure="adoption">
                            <span class="stat-value">{adoption.clone().unwrap_or_else(|| "–".into())}</span>
                            {format!(" of users have a passkey ({users_with_passkey} of {users})")}
                        </p>
                        <p class="stat" data-figure="passkeys-per-user">
                            <span class="stat-value">{passkeys_per_user.clone().unwrap_or_else(|| "–".into())}</span>
                            " passkeys per user who has one"
                        </p>
                        <p class="stat" data-figure="sign-in-success">
                            <span class="stat-value">{sign_in_success.clone().unwrap_or_else(|| "–".into())}</span>
                            " of sign-ins succeeded (30 days)"
                        </p>
                    </div>
                }.into_any()
            }}
        </section>
        <div class="stats">
            <p class="stat"><span class="stat-value">{totals.0}</span> " registrations"</p>
            <p class="stat"><span class="stat-value">{totals.1}</span> " sign-ins"</p>
            <p class="stat"><span class="stat-value">{totals.2}</span> " failures"</p>
            <p class="stat"><span class="stat-value">{active}</span> " active passkeys"</p>
        </div>
        {health.map(|counts| view! { <HealthCounts counts tenant /> })}
        <section class="card" aria-labelledby="activity-heading">
            <h2 id="activity-heading">"Last 30 days"</h2>
            <ActivityChart days=days.clone() />
            <details>
                <summary>"The numbers behind the chart"</summary>
                <table class="data compact">
                    <thead><tr>
                        <th scope="col">"Day (UTC)"</th><th scope="col" class="num">"Registrations"</th>
                        <th scope="col" class="num">"Sign-ins"</th><th scope="col" class="num">"Failures"</th>
                    </tr></thead>
                    <tbody>
                        {days.into_iter().rev().map(|d| view! {
                            <tr><td>{d.date}</td><td class="num">{d.registrations}</td>
                            <td class="num">{d.sign_ins}</td><td class="num">{d.failures}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </details>
        </section>
        <div class="grid-2">
            <section class="card table-card" aria-labelledby="outcomes-heading">
                <h2 id="outcomes-heading">"Outcomes"</h2>
                {if outcomes.is_empty() {
                    view! { <p class="empty">"No registrations or sign-ins in the last 30 days. They are counted here as your users register and sign in, refusals with their reason."</p> }.into_any()
                } else {
                    view! {
                        <table class="data" data-testid="outcomes">
                            <thead><tr>
                                <th scope="col">"Ceremony"</th><th scope="col">"Outcome"</th>
                                <th scope="col" class="num">"Count"</th>
                            </tr></thead>
                            <tbody>
                                {outcomes.into_iter().map(|o| {
                                    let class = if o.outcome == "success" { "" } else { "failure" };
                                    // A refusal links to its events in the audit log.
                                    let outcome = match (o.audit_link, o.reason) {
                                        (Some(href), Some(reason)) => view! {
                                            <a href=href>{reason}</a>" "<code>{o.outcome}</code>
                                        }.into_any(),
                                        _ => view! { <code>{o.outcome}</code> }.into_any(),
                                    };
                                    view! {
                                        <tr class=class><td>{o.ceremony}</td><td>{outcome}</td>
                                        <td class="num">{o.count}</td></tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
            </section>
            <section class="card" aria-labelledby="credentials-heading">
                <h2 id="credentials-heading">"Active passkeys"</h2>
                {if active == 0 {
                    view! { <p class="empty">"No active passkeys yet. They appear here, by provider, as users register through their enrollment links."</p> }.into_any()
                } else {
                    view! {
                        <p>
                            <strong>{share(synced)} "% synced"</strong> " (" {synced} ") · "
                            <strong>{share(device_bound)} "% device-bound"</strong> " (" {device_bound} ")"
                        </p>
                        <svg class="share-bar" viewBox="0 0 100 6" preserveAspectRatio="none" role="img"
                            aria-label=format!("{}% synced, {}% device-bound", share(synced), share(device_bound))>
                            <rect class="synced" x="0" y="0" height="6" width=share(synced).to_string() />
                            <rect class="device-bound" x=share(synced).to_string() y="0" height="6"
                                width=(100 - share(synced).min(100)).to_string() />
                        </svg>
                        <table class="data" data-testid="providers">
                            <thead><tr><th scope="col">"Provider"</th><th scope="col" class="num">"Passkeys"</th></tr></thead>
                            <tbody>
                                {providers.into_iter().map(|p| view! {
                                    <tr><td>{p.provider}</td><td class="num">{p.count}</td></tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    }.into_any()
                }}
            </section>
        </div>
    }
}

/// Grouped bars per day: registrations, sign-ins, failures. Scaled to the busiest day; the axis
/// shows that maximum. Described for screen readers by the table beneath it.
#[component]
fn ActivityChart(days: Vec<DayView>) -> impl IntoView {
    const WIDTH: f64 = 600.0;
    const HEIGHT: f64 = 160.0;
    const LEFT: f64 = 36.0;
    const BOTTOM: f64 = 18.0;
    let max = days
        .iter()
        .map(|d| d.registrations.max(d.sign_ins).max(d.failures))
        .max()
        .unwrap_or(0)
        .max(1);
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar = (slot - 2.0) / 3.0;
    let plot = HEIGHT - BOTTOM;
    let height = move |n: u64| n as f64 / max as f64 * (plot - 4.0);
    let first = days.first().map(|d| d.date.clone()).unwrap_or_default();
    let last = days.last().map(|d| d.date.clone()).unwrap_or_default();
    let label = format!(
        "Registrations, sign-ins and failures per day from {first} to {last}; busiest day {max}."
    );
    view! {
        <svg class="chart" viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=label data-testid="activity-chart">
            <line class="axis" x1=LEFT y1=plot x2=WIDTH y2=plot />
            <text class="axis-label" x="0" y="10">{max}</text>
            <text class="axis-label" x="0" y=plot>"0"</text>
            {days.into_iter().enumerate().map(|(i, d)| {
                let x = LEFT + i as f64 * slot + 1.0;
                let bars = [("registrations", d.registrations), ("sign-ins", d.sign_ins), ("failures", d.failures)];
                view! {
                    <g>
                        <title>{format!("{}: {} registrations, {} sign-ins, {} failures", d.date, d.registrations, d.sign_ins, d.failures)}</title>
                        {bars.into_iter().enumerate().map(|(j, (class, n))| {
                            let h = height(n);
                            view! {
                                <rect class=class x=format!("{:.1}", x + j as f64 * bar) y=format!("{:.1}", plot - h)
                                    width=format!("{bar:.1}") height=format!("{h:.1}") />
                            }
                        }).collect_view()}
                    </g>
                }
            }).collect_view()}
            <text class="axis-label" x=LEFT y=HEIGHT>{first}</text>
            <text class="axis-label end" x=WIDTH y=HEIGHT text-anchor="end">{last}</text>
        </svg>
        <p class="legend">
            <span class="key registrations"></span>" Registrations "
            <span class="key sign-ins"></span>" Sign-ins "
            <span class="key failures"></span>" Failures"
        </p>
    }
}

/// The health queue's size by reason, each a link to the queue filtered by it.
#[component]
fn HealthCounts(counts: Vec<crate::api::HealthCountRow>, tenant: String) -> impl IntoView {
    let waiting: Vec<_> = counts.into_iter().filter(|c| c.count != "0").collect();
    view! {
        <section class="card" aria-labelledby="health-heading" data-testid="health-counts">
            <h2 id="health-heading">"Passkeys needing attention"</h2>
            {if waiting.is_empty() {
                view! { <p class="empty">"None. Passkeys the authenticator policy or the FIDO metadata flag (a revoked model, a counter that went backwards) are listed here."</p> }.into_any()
            } else {
                view! {
                    <ul>
                        {waiting.into_iter().map(|c| view! {
                            <li><a href=format!("/tenants/{tenant}/health?reason={}", c.reason)>{format!("{}: {}", c.label, c.count)}</a></li>
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
    }
}
