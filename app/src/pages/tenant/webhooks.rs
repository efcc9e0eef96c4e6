//! A tenant's webhook endpoints (owners and admins): create one (its signing secret shown
//! once), send a test event, disable, enable, rotate the secret, delete; each endpoint's
//! delivery log with its attempts, and **Redeliver**.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};

use super::{TenantNav, TenantScope};
use crate::{
    api::{
        DeliveryRow, EndpointRow, NewEndpointSecret, TenantView, WEBHOOK_EVENTS, create_webhook,
        delete_webhook, list_webhooks, redeliver_webhook, rotate_webhook_secret, send_webhook_test,
        set_webhook_enabled, webhook_deliveries,
    },
    forms::{FieldError, FormAlert, FormError, JsControls, SecretField, begin_submit},
};

#[component]
pub fn WebhooksPage() -> impl IntoView {
    view! { <TenantScope title="Webhooks" page=|view| view! { <Webhooks view /> } /> }
}

#[component]
fn Webhooks(view: TenantView) -> impl IntoView {
    let TenantView { id, name, .. } = view;
    let tenant = StoredValue::new(id.clone());
    let version = RwSignal::new(0u32);
    let endpoints = Resource::new(
        move || version.get(),
        move |_| list_webhooks(tenant.get_value()),
    );
    let reload = move || version.update(|v| *v += 1);
    let url = RwSignal::new(String::new());
    let description = RwSignal::new(String::new());
    // The passkey events are what most backends want first.
    let chosen: Vec<RwSignal<bool>> = WEBHOOK_EVENTS
        .iter()
        .map(|(name, _)| RwSignal::new(name.starts_with("passkey.")))
        .collect();
    let chosen = StoredValue::new(chosen);
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let created = RwSignal::new(None::<NewEndpointSecret>);

    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        created.set(None);
        let events: Vec<String> = chosen
            .get_value()
            .iter()
            .zip(WEBHOOK_EVENTS.iter())
            .filter(|(on, _)| on.get_untracked())
            .map(|(_, (name, _))| (*name).to_owned())
            .collect();
        let (to, about) = (url.get_untracked(), description.get_untracked());
        spawn_local(async move {
            match create_webhook(tenant.get_value(), to, about, events).await {
                Ok(new) => {
                    url.set(String::new());
                    description.set(String::new());
                    created.set(Some(new));
                    reload();
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };

    view! {
        <TenantNav id=id.clone() name=name.clone() current="Webhooks" />
        <h1>"Webhooks"</h1>
        <section class="card" aria-labelledby="new-webhook-heading">
            <h2 id="new-webhook-heading">"Add an endpoint"</h2>
            <p class="hint">"Latchkey POSTs each event to your URL, signed the Standard Webhooks way: verify it with the secret shown once below. Events that happen from now on are sent."</p>
            <form class="stack" on:submit=on_submit novalidate>
                <JsControls>
                    <div class="field">
                        <label for="webhook-url">"URL"</label>
                        <input id="webhook-url" type="url" maxlength="2048" placeholder="https://shop.example.com/hooks/latchkey" aria-describedby="webhook-url-error" bind:value=url />
                        <FieldError error field="url" id="webhook-url-error" />
                    </div>
                    <div class="field">
                        <label for="webhook-description">"Description (optional)"</label>
                        <input id="webhook-description" type="text" maxlength="200" placeholder="e.g. ends sessions of revoked passkeys" aria-describedby="webhook-description-error" bind:value=description />
                        <FieldError error field="description" id="webhook-description-error" />
                    </div>
                    <fieldset class="field" aria-describedby="webhook-events-error">
                        <legend>"Events"</legend>
                        {WEBHOOK_EVENTS.iter().enumerate().map(|(n, (event, meaning))| {
                            let on = chosen.get_value()[n];
                            let input_id = format!("webhook-event-{n}");
                            let label_for = input_id.clone();
                            view! {
                                <label class="check" for=label_for>
                                    <input id=input_id type="checkbox" bind:checked=on />
                                    <code>{*event}</code> " — " {*meaning}
                                </label>
                            }
                        }).collect_view()}
                        <FieldError error field="events" id="webhook-events-error" />
                    </fieldset>
                    <FormAlert error />
                    <button type="submit" disabled=move || busy.get()>"Add endpoint"</button>
                </JsControls>
            </form>
            {move || created.get().map(|new| view! {
                <div class="issued" role="status">
                    <p>"Copy the signing secret for " <strong>{new.url}</strong> " now: it will not be shown again."</p>
                    <SecretField id="new-webhook-secret" label="Signing secret" secret=new.secret />
                </div>
            })}
        </section>
        <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match endpoints.await {
                    Ok(rows) if rows.is_empty() => view! {
                        <section class="card"><p>"No endpoints yet. Add one above: your backend then hears of passkeys registered and revoked within seconds."</p></section>
                    }.into_any(),
                    Ok(rows) => rows.into_iter().map(|e| view! {
                        <Endpoint endpoint=e tenant on_change=reload />
                    }).collect_view().into_any(),
                    Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Endpoint(
    endpoint: EndpointRow,
    tenant: StoredValue<String>,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = StoredValue::new(endpoint.id.clone());
    let error: FormError = RwSignal::new(None);
    let notice = RwSignal::new(None::<String>);
    let rotated = RwSignal::new(None::<String>);
    let log_version = RwSignal::new(0u32);
    let deliveries = Resource::new(
        move || log_version.get(),
        move |_| webhook_deliveries(tenant.get_value(), id.get_value()),
    );
    let refresh_log = move || log_version.update(|v| *v += 1);
    let enabled = endpoint.enabled;
    let act = move |what: &'static str| {
        error.set(None);
        notice.set(None);
        spawn_local(async move {
            let (t, e) = (tenant.get_value(), id.get_value());
            let done = match what {
                "test" => send_webhook_test(t, e)
                    .await
                    .map(|()| Some("Test event queued: see the deliveries below.".to_owned())),
                "disable" => set_webhook_enabled(t, e, false).await.map(|()| None),
                "enable" => set_webhook_enabled(t, e, true).await.map(|()| None),
                "delete" => delete_webhook(t, e).await.map(|()| None),
                _ => rotate_webhook_secret(t, e).await.map(|secret| {
                    rotated.set(Some(secret));
                    None
                }),
            };
            match done {
                Ok(message) => {
                    notice.set(message);
                    if matches!(what, "disable" | "enable" | "delete") {
                        on_change();
                    } else {
                        refresh_log();
                    }
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    let heading = format!("webhook-{}", endpoint.id);
    let labelled_by = heading.clone();
    let status = if endpoint.enabled {
        endpoint.failing_since.clone().map_or_else(
            || "active".to_owned(),
            |since| format!("active, failing since {since}"),
        )
    } else {
        "disabled".to_owned()
    };
    view! {
        <section class="card" aria-labelledby=labelled_by data-testid="webhook-endpoint">
            <h2 id=heading><code>{endpoint.url.clone()}</code></h2>
            {(!endpoint.description.is_empty()).then(|| view! { <p>{endpoint.description.clone()}</p> })}
            <p><strong>"Status: "</strong><span data-testid="webhook-status">{status}</span></p>
            {endpoint.disabled_reason.clone().map(|reason| view! { <p class="error" role="note">{reason}</p> })}
            <p><strong>"Events: "</strong>{endpoint.events.join(", ")}</p>
            <p class="hint">"Created " {endpoint.created_at.clone()}</p>
            <div class="actions">
                <button type="button" class="secondary" on:click=move |_| act("test")>"Send test event"</button>
                {if enabled {
                    view! { <button type="button" class="secondary" on:click=move |_| act("disable")>"Disable"</button> }.into_any()
                } else {
                    view! { <button type="button" on:click=move |_| act("enable")>"Enable"</button> }.into_any()
                }}
                <button type="button" class="secondary" on:click=move |_| act("rotate")>"Rotate secret"</button>
                <button type="button" class="secondary" on:click=move |_| act("delete")>"Delete"</button>
            </div>
            {move || notice.get().map(|n| view! { <p role="status">{n}</p> })}
            {move || rotated.get().map(|secret| view! {
                <div class="issued" role="status">
                    <p>"The new signing secret, shown once. The old one keeps signing beside it for 24 hours."</p>
                    <SecretField id="rotated-webhook-secret" label="New signing secret" secret />
                </div>
            })}
            <FormAlert error />
            <h3>"Deliveries " <button type="button" class="secondary" on:click=move |_| refresh_log()>"Refresh"</button></h3>
            <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match deliveries.await {
                        Ok(rows) if rows.is_empty() => view! { <p>"No deliveries yet: events appear here a few seconds after they happen (try Send test event)."</p> }.into_any(),
                        Ok(rows) => view! { <DeliveryTable rows tenant endpoint=id error on_change=refresh_log /> }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn DeliveryTable(
    rows: Vec<DeliveryRow>,
    tenant: StoredValue<String>,
    endpoint: StoredValue<String>,
    error: FormError,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <div class="table-card">
            <table class="data" data-testid="webhook-deliveries">
                <thead>
                    <tr>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Status"</th>
                        <th scope="col">"Attempts"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|d| {
                        let delivery = StoredValue::new(d.id.clone());
                        let redeliver = move |_| {
                            error.set(None);
                            spawn_local(async move {
                                match redeliver_webhook(tenant.get_value(), endpoint.get_value(), delivery.get_value()).await {
                                    Ok(()) => on_change(),
                                    Err(err) => error.set(Some(err)),
                                }
                            });
                        };
                        let status = match &d.next_attempt_at {
                            Some(next) if d.attempts > 0 => format!("{}, next attempt {next}", d.status),
                            _ => d.status.clone(),
                        };
                        let label = format!("Redeliver {}", d.event_id);
                        view! {
                            <tr>
                                <td><code>{d.event_type}</code><br /><small>{d.event_id.clone()} " · " {d.created_at}</small></td>
                                <td>{status}</td>
                                <td>
                                    {if d.attempt_log.is_empty() {
                                        view! { <span>"none yet"</span> }.into_any()
                                    } else {
                                        view! {
                                            <details>
                                                <summary>{format!("{} attempt(s)", d.attempts)}</summary>
                                                <ul>
                                                    {d.attempt_log.into_iter().map(|a| view! {
                                                        <li>
                                                            {a.at} " — " <strong>{a.outcome}</strong> {format!(" in {} ms", a.latency_ms)}
                                                            {a.excerpt.filter(|e| !e.is_empty()).map(|e| view! { <br /><code class="excerpt">{e}</code> })}
                                                        </li>
                                                    }).collect_view()}
                                                </ul>
                                            </details>
                                        }.into_any()
                                    }}
                                </td>
                                <td><button type="button" class="secondary" aria-label=label on:click=redeliver>"Redeliver"</button></td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}
