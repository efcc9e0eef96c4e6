//! The instance-wide audit log (instance admins): the newest events first.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::api::instance_audit_log;

#[component]
pub fn AuditPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let events = Resource::new(move || version.get(), |_| instance_audit_log());

    view! {
        <Title text="Audit log" />
        <div class="page-header">
            <h1>"Audit log"</h1>
            <button type="button" class="secondary" on:click=move |_| version.update(|v| *v += 1)>
                "Refresh"
            </button>
        </div>
        <section class="card table-card" aria-label="Newest events">
            <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match events.await {
                        Ok(rows) if rows.is_empty() => view! { <p>"Nothing recorded yet."</p> }.into_any(),
                        Ok(rows) => view! {
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
                                    {rows.into_iter().map(|r| {
                                        let action = r.action.clone();
                                        view! {
                                        <tr data-action=action>
                                            <td class="nowrap">{r.occurred_at}</td>
                                            <td>{r.actor}</td>
                                            <td><code>{r.action}</code></td>
                                            <td class="wrap">{r.target.unwrap_or_default()}</td>
                                            <td>{r.outcome}</td>
                                            <td class="wrap">
                                                {r.ip.unwrap_or_default()}
                                                <br />
                                                <small>{r.user_agent.unwrap_or_default()}</small>
                                            </td>
                                        </tr>
                                    }}).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}
