//! The support console: **Users** (search, keyset pages) and one user's page (profile, every
//! authenticator, revoke with a reason, revoke all, rename, a recovery enrollment token).
//!
//! The search text and the page cursor live in the URL (`?q=…&after=…`), so a result is a link,
//! the page renders on the server, and Back works. A user's page is
//! `/tenants/{id}/users/{base64url(user ID)}`: user IDs are the tenant's own strings and may hold
//! `/` or `%`, which a path segment would not carry through the router intact.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use leptos_router::{
    hooks::{use_params_map, use_query_map},
    params::ParamsMap,
};

use super::{TenantNav, TenantScope};
use crate::{
    api::{
        AuthenticatorRow, DeviceRow, IssuedToken, TenantView, UserDetailView, UsersPageView,
        issue_enrollment_token, rename_authenticator, revoke_all_authenticators,
        revoke_authenticator, revoke_device, search_users, user_details,
    },
    browser,
    forms::{FieldError, FormAlert, FormError, JsControls, SecretField, begin_submit},
};

/// The path of a user's page.
pub fn user_path(tenant: &str, user_id: &str) -> String {
    format!(
        "/tenants/{tenant}/users/{}",
        URL_SAFE_NO_PAD.encode(user_id)
    )
}

fn user_id_of(segment: &str) -> Option<String> {
    String::from_utf8(URL_SAFE_NO_PAD.decode(segment).ok()?).ok()
}

/// `?q=…` for a search text.
fn search_href(tenant: &str, query: &str, after: Option<&str>) -> String {
    let mut href = format!("/tenants/{tenant}/users");
    let mut sep = '?';
    if !query.is_empty() {
        href.push_str(&format!(
            "?q={}",
            leptos_router::location::Url::escape(query)
        ));
        sep = '&';
    }
    if let Some(after) = after {
        href.push_str(&format!("{sep}after={after}"));
    }
    href
}

/// Router hooks are read here, in the route's own component: inside `TenantScope`'s `Suspend`
/// they may find no router during server rendering (see `TenantNav`).
#[component]
pub fn UsersPage() -> impl IntoView {
    let query = use_query_map();
    view! { <TenantScope title="Users" page=move |view| view! { <Users view query /> } /> }
}

#[component]
fn Users(view: TenantView, query: Memo<ParamsMap>) -> impl IntoView {
    let TenantView { id, name, .. } = view;
    let tenant = StoredValue::new(id.clone());
    let q = move || query.read().get("q").unwrap_or_default();
    let after = move || query.read().get("after");
    let page = Resource::new(
        move || (q(), after()),
        move |(q, after)| search_users(tenant.get_value(), q, after),
    );

    // A plain GET form: the search is a URL, rendered by the server.
    view! {
        <TenantNav id=id.clone() name=name.clone() current="Users" />
        <h1>"Users"</h1>
        <form class="search" role="search" method="get" action=format!("/tenants/{id}/users")>
            <label for="search-users">"Search users"</label>
            <div class="inline">
                <input id="search-users" type="search" name="q" maxlength="256" autocomplete="off"
                    placeholder="user ID or username, beginning with…" aria-describedby="search-hint"
                    value=q />
                <button type="submit">"Search"</button>
            </div>
            <p class="hint" id="search-hint">"Matches the beginning of the user ID or username, in any case."</p>
        </form>
        <section class="card table-card" aria-label="Users" aria-live="polite">
            <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match page.await {
                        Ok(result) => view! { <UserList result tenant query=q() /> }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn UserList(result: UsersPageView, tenant: StoredValue<String>, query: String) -> impl IntoView {
    let UsersPageView {
        users,
        next,
        total_users,
        matches,
    } = result;
    if total_users == 0 {
        return view! {
            <p class="empty">
                "No users yet. Users appear when your backend issues their first enrollment token "
                "(POST /api/v1/users/{user_id}/enrollment-tokens) or an admin issues one here."
            </p>
        }
        .into_any();
    }
    let summary = if query.is_empty() {
        format!("{matches} users")
    } else {
        format!("{matches} of {total_users} users match “{query}”")
    };
    if users.is_empty() {
        return view! {
            <p class="count" data-testid="user-count">{summary}</p>
            <p class="empty">"No user ID or username begins with that. Check the spelling, or search for less."</p>
        }
        .into_any();
    }
    let next_href = next.map(|n| search_href(&tenant.get_value(), &query, Some(&n)));
    let first_href = search_href(&tenant.get_value(), &query, None);
    view! {
        <p class="count" data-testid="user-count">{summary}</p>
        <table class="data" data-testid="users">
            <thead>
                <tr>
                    <th scope="col">"User ID"</th>
                    <th scope="col">"Username"</th>
                    <th scope="col" class="hide-narrow">"Display name"</th>
                    <th scope="col" class="num">"Passkeys"</th>
                    <th scope="col" class="hide-narrow">"Created"</th>
                </tr>
            </thead>
            <tbody>
                {users.into_iter().map(|u| {
                    let href = user_path(&tenant.get_value(), &u.user_id);
                    view! {
                        <tr>
                            <td class="user-id"><a href=href>{u.user_id}</a></td>
                            <td class="wrap">
                                {u.username.unwrap_or_default()}
                                {u.by_username.then(|| view! { <span class="visually-hidden">" (matched)"</span> })}
                            </td>
                            <td class="wrap hide-narrow">{u.display_name.unwrap_or_default()}</td>
                            <td class="num">{u.active_authenticators}</td>
                            <td class="nowrap hide-narrow">{u.created_at}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <nav class="pager" aria-label="Pages">
            <a href=first_href>"First page"</a>
            {next_href.map(|href| view! { <a href=href rel="next">"Next page"</a> })}
        </nav>
    }
    .into_any()
}

/// What the revoke dialog is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RevokeTarget {
    One { id: String, name: String },
    All { count: usize },
}

#[component]
pub fn UserPage() -> impl IntoView {
    let params = use_params_map();
    view! { <TenantScope title="User" page=move |view| view! { <UserDetail view params /> } /> }
}

#[component]
fn UserDetail(view: TenantView, params: Memo<ParamsMap>) -> impl IntoView {
    let TenantView { id, name, .. } = view;
    let tenant = StoredValue::new(id.clone());
    let user_id = move || {
        params
            .read()
            .get("user")
            .and_then(|s| user_id_of(&s))
            .unwrap_or_default()
    };
    let version = RwSignal::new(0u32);
    let details = Resource::new(
        move || (user_id(), version.get()),
        move |(user, _)| user_details(tenant.get_value(), user),
    );
    let reload = move || version.update(|v| *v += 1);
    let status = RwSignal::new(None::<String>);

    view! {
        <TenantNav id=id.clone() name=name.clone() current="Users" />
        <p class="crumbs"><a href=format!("/tenants/{id}/users")>"Users"</a> " / " {user_id}</p>
        <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match details.await {
                    Ok(user) => view! { <UserView user tenant status on_change=reload /> }.into_any(),
                    Err(err) => view! {
                        <h1>"User"</h1>
                        <p class="error" role="alert">{err.message}</p>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn UserView(
    user: UserDetailView,
    tenant: StoredValue<String>,
    status: RwSignal<Option<String>>,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let UserDetailView {
        user_id,
        username,
        display_name,
        created_at,
        authenticators,
        devices,
        can_revoke,
        can_issue_tokens,
        can_add_authenticators,
    } = user;
    let user = StoredValue::new(user_id.clone());
    let (revoked, active): (Vec<_>, Vec<_>) = authenticators
        .into_iter()
        .partition(|a| a.revoked_at.is_some());
    let dialog = RwSignal::new(None::<RevokeTarget>);
    let active_count = active.len();
    let heading = display_name.clone().unwrap_or_else(|| user_id.clone());

    view! {
        <h1>{heading}</h1>
        <p class="status" role="status" aria-live="polite">{move || status.get()}</p>
        <section class="card" aria-labelledby="profile-heading">
            <h2 id="profile-heading">"Profile"</h2>
            <dl class="pairs">
                <dt>"User ID"</dt><dd><code>{user_id.clone()}</code></dd>
                <dt>"Username"</dt><dd>{username.unwrap_or_else(|| "—".into())}</dd>
                <dt>"Display name"</dt><dd>{display_name.unwrap_or_else(|| "—".into())}</dd>
                <dt>"Created"</dt><dd>{created_at}</dd>
            </dl>
        </section>
        <section class="card" aria-labelledby="active-heading">
            <div class="card-header">
                <h2 id="active-heading" tabindex="-1">"Passkeys (" {active_count} ")"</h2>
                {(can_revoke && active_count > 1).then(|| view! {
                    <button type="button" class="danger" id="revoke-all"
                        on:click=move |_| dialog.set(Some(RevokeTarget::All { count: active_count }))>
                        "Revoke all"
                    </button>
                })}
            </div>
            {if active.is_empty() {
                view! { <p class="empty">"No active passkeys: this user cannot sign in with a passkey."</p> }.into_any()
            } else {
                view! {
                    <ul class="authenticators" data-testid="active-authenticators">
                        {active.into_iter().map(|a| view! {
                            <AuthenticatorCard a tenant user can_revoke dialog status on_change />
                        }).collect_view()}
                    </ul>
                }.into_any()
            }}
        </section>
        <Devices devices tenant user can_revoke status on_change />
        {can_issue_tokens.then(|| view! {
            <RecoveryToken tenant user add_authenticators=can_add_authenticators />
        })}
        {(!revoked.is_empty()).then(|| view! {
            <section class="card table-card" aria-labelledby="revoked-heading">
                <h2 id="revoked-heading">"Revoked passkeys"</h2>
                <table class="data" data-testid="revoked-authenticators">
                    <thead>
                        <tr>
                            <th scope="col">"Passkey"</th>
                            <th scope="col">"Revoked"</th>
                            <th scope="col">"By"</th>
                            <th scope="col">"Reason"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {revoked.into_iter().map(|a| view! {
                            <tr>
                                <td class="wrap">
                                    <ProviderIcon a=a.clone() />
                                    {a.name} <br /><small>{a.provider.unwrap_or_else(|| "Unknown provider".into())}</small>
                                </td>
                                <td class="nowrap">{a.revoked_at}</td>
                                <td class="wrap">{a.revoked_by}</td>
                                <td class="wrap">{a.revoked_reason}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        })}
        {move || dialog.get().map(|target| view! { <RevokeDialog target tenant user dialog status on_change /> })}
    }
}

/// The user's bound devices (device keys their browsers or apps sign in with), with revoke.
#[component]
fn Devices(
    devices: Vec<DeviceRow>,
    tenant: StoredValue<String>,
    user: StoredValue<String>,
    can_revoke: bool,
    status: RwSignal<Option<String>>,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let count = devices.len();
    view! {
        <section class="card table-card" aria-labelledby="devices-heading">
            <h2 id="devices-heading">"Bound devices (" {count} ")"</h2>
            {if devices.is_empty() {
                view! {
                    <p class="empty">
                        "No bound devices. A browser or app that signs up or in with a device key \
                         (the SDK's bindDevice) appears here, and its sign-ins are reported as a \
                         known device."
                    </p>
                }.into_any()
            } else {
                view! {
                    <table class="data" data-testid="devices">
                        <thead>
                            <tr>
                                <th scope="col">"Device"</th>
                                <th scope="col">"First seen"</th>
                                <th scope="col">"Last seen"</th>
                                <th scope="col">"Sign-ins"</th>
                                {can_revoke.then(|| view! { <th scope="col"><span class="visually-hidden">"Actions"</span></th> })}
                            </tr>
                        </thead>
                        <tbody>
                            {devices.into_iter().map(|d| view! {
                                <DeviceRowView d tenant user can_revoke status on_change />
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
fn DeviceRowView(
    d: DeviceRow,
    tenant: StoredValue<String>,
    user: StoredValue<String>,
    can_revoke: bool,
    status: RwSignal<Option<String>>,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = StoredValue::new(d.id.clone());
    let summary = StoredValue::new(d.summary.clone());
    // Two steps: the first click asks, the second revokes.
    let confirming = RwSignal::new(false);
    let busy = RwSignal::new(false);
    let revoke = move |_| {
        if !confirming.get_untracked() {
            confirming.set(true);
            return;
        }
        busy.set(true);
        spawn_local(async move {
            match revoke_device(tenant.get_value(), user.get_value(), id.get_value()).await {
                Ok(()) => {
                    status.set(Some(format!(
                        "Revoked the device “{}”: its next sign-in will be reported as a new device.",
                        summary.get_value()
                    )));
                    on_change();
                }
                Err(err) => status.set(Some(err.message)),
            }
            busy.set(false);
            confirming.set(false);
        });
    };
    view! {
        <tr data-device=d.id.clone()>
            <td class="wrap">
                {d.summary.clone()}
                {d.user_agent.clone().map(|ua| view! { <br /><small>{ua}</small> })}
            </td>
            <td class="nowrap">{d.first_seen_at}</td>
            <td class="nowrap">{d.last_seen_at}</td>
            <td>{d.sign_in_count}</td>
            {can_revoke.then(|| view! {
                <td>
                    <button type="button" class="danger" disabled=move || busy.get()
                        aria-label=move || if confirming.get() {
                            format!("Confirm revoking {}", summary.get_value())
                        } else {
                            format!("Revoke {}", summary.get_value())
                        }
                        on:click=revoke>
                        {move || if confirming.get() { "Confirm revoke" } else { "Revoke" }}
                    </button>
                </td>
            })}
        </tr>
    }
}

/// The provider's icon for light and dark backgrounds (decorative: the name is beside it).
#[component]
fn ProviderIcon(a: AuthenticatorRow) -> impl IntoView {
    a.icon_light.clone().map(|light| {
        let dark = a.icon_dark.clone().unwrap_or_else(|| light.clone());
        view! {
            <picture class="provider-icon">
                <source srcset=dark media="(prefers-color-scheme: dark)" />
                <img src=light alt="" width="32" height="32" />
            </picture>
        }
    })
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

#[component]
fn AuthenticatorCard(
    a: AuthenticatorRow,
    tenant: StoredValue<String>,
    user: StoredValue<String>,
    can_revoke: bool,
    dialog: RwSignal<Option<RevokeTarget>>,
    status: RwSignal<Option<String>>,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = StoredValue::new(a.id.clone());
    let current = StoredValue::new(a.name.clone());
    let renaming = RwSignal::new(false);
    let new_name = RwSignal::new(a.name.clone());
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let kind = if a.backup_eligible {
        if a.backup_state {
            "Synced"
        } else {
            "Synced (not backed up yet)"
        }
    } else {
        "Device-bound"
    };
    let revoke_button = format!("revoke-{}", a.id);
    let rename_field = format!("rename-{}", a.id);
    let rename_error = format!("rename-error-{}", a.id);
    let on_rename = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        let name = new_name.get_untracked();
        spawn_local(async move {
            match rename_authenticator(tenant.get_value(), user.get_value(), id.get_value(), name)
                .await
            {
                Ok(row) => {
                    status.set(Some(format!(
                        "Renamed “{}” to “{}”.",
                        current.get_value(),
                        row.name
                    )));
                    renaming.set(false);
                    on_change();
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    let open_revoke = {
        let name = a.name.clone();
        move |_| {
            dialog.set(Some(RevokeTarget::One {
                id: id.get_value(),
                name: name.clone(),
            }))
        }
    };
    let rename_field_focus = rename_field.clone();
    view! {
        <li class="authenticator" data-authenticator=a.id.clone()>
            <div class="authenticator-head">
                <ProviderIcon a=a.clone() />
                <div>
                    <h3>{a.name.clone()}</h3>
                    <p class="provider">{a.provider.clone().unwrap_or_else(|| "Unknown provider".into())}</p>
                </div>
                {a.counter_regressed_at.clone().map(|at| {
                    let title = format!("Signature counter went backwards at {at}");
                    view! {
                        <p class="flag warning" title=title>"Possible clone: counter regressed " {at}</p>
                    }
                })}
                {a.metadata_status.clone().map(|status| view! {
                    <p class="flag warning">"FIDO metadata: " {status}</p>
                })}
            </div>
            <dl class="pairs">
                <dt>"Kind"</dt><dd>{kind}</dd>
                <dt>"Attachment"</dt><dd>{a.attachment.clone().unwrap_or_else(|| "unknown".into())}</dd>
                <dt>"Transports"</dt><dd>{if a.transports.is_empty() { "—".to_owned() } else { a.transports.join(", ") }}</dd>
                <dt>"User verified"</dt><dd>{yes_no(a.user_verified)}</dd>
                <dt>"Attestation"</dt><dd>{a.attestation.clone()}</dd>
                <dt>"Created"</dt><dd>{a.created_at.clone()}</dd>
                <dt>"Last used"</dt><dd>{a.last_used_at.clone().unwrap_or_else(|| "never".into())}</dd>
                <dt>"Sign count"</dt><dd>{a.sign_count}</dd>
                <dt>"AAGUID"</dt><dd><code>{a.aaguid.clone()}</code></dd>
                <dt>"Status"</dt><dd>"Active"</dd>
            </dl>
            {can_revoke.then(|| view! {
                <div class="actions">
                    <button type="button" class="danger" id=revoke_button
                        aria-label=format!("Revoke {}", a.name) on:click=open_revoke>
                        "Revoke"
                    </button>
                    <button type="button" class="secondary" aria-expanded=move || renaming.get().to_string()
                        aria-label=format!("Rename {}", a.name)
                        on:click=move |_| {
                            renaming.update(|r| *r = !*r);
                            browser::focus_later(&rename_field_focus);
                        }>
                        "Rename"
                    </button>
                </div>
            })}
            {move || renaming.get().then(|| {
                let (field, field_error) = (rename_field.clone(), rename_error.clone());
                view! {
                    <form class="inline-form" on:submit=on_rename novalidate>
                        <JsControls>
                            <label for=field.clone()>"New name"</label>
                            <div class="inline">
                                <input id=field type="text" maxlength="100" aria-describedby=field_error.clone() bind:value=new_name />
                                <button type="submit" disabled=move || busy.get()>"Save name"</button>
                                <button type="button" class="secondary" on:click=move |_| renaming.set(false)>"Cancel"</button>
                            </div>
                            <p class="field-error" id=field_error role="alert">
                                {move || error.get().map(|e| e.message)}
                            </p>
                        </JsControls>
                    </form>
                }
            })}
        </li>
    }
}

/// The confirmation: a reason is required, Escape or Cancel closes it, focus returns to the
/// button that opened it.
#[component]
fn RevokeDialog(
    target: RevokeTarget,
    tenant: StoredValue<String>,
    user: StoredValue<String>,
    dialog: RwSignal<Option<RevokeTarget>>,
    status: RwSignal<Option<String>>,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let reason = RwSignal::new(String::new());
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let opener = StoredValue::new(match &target {
        RevokeTarget::One { id, .. } => format!("revoke-{id}"),
        RevokeTarget::All { .. } => "revoke-all".to_owned(),
    });
    let close = move || {
        dialog.set(None);
        browser::focus_later(&opener.get_value());
    };
    browser::focus_later("revoke-reason");
    let (title, explain) = match &target {
        RevokeTarget::One { name, .. } => (
            format!("Revoke “{name}”?"),
            "It stops working at once, on every instance. The user can register a new passkey with an enrollment token.".to_owned(),
        ),
        RevokeTarget::All { count } => (
            format!("Revoke all {count} passkeys?"),
            "None of this user's passkeys will sign in any more. Issue a recovery token so they can register a new one.".to_owned(),
        ),
    };
    let target = StoredValue::new(target);
    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        let why = reason.get_untracked();
        spawn_local(async move {
            let done = match target.get_value() {
                RevokeTarget::One { id, name } => {
                    revoke_authenticator(tenant.get_value(), user.get_value(), id, why)
                        .await
                        .map(|_| format!("Revoked “{name}”."))
                }
                RevokeTarget::All { .. } => {
                    revoke_all_authenticators(tenant.get_value(), user.get_value(), why)
                        .await
                        .map(|n| format!("Revoked {n} passkeys."))
                }
            };
            busy.set(false);
            match done {
                Ok(message) => {
                    status.set(Some(message));
                    dialog.set(None);
                    on_change();
                    // The button that opened it may be gone with the passkey: focus goes to
                    // the list it was in.
                    browser::focus_later("active-heading");
                }
                Err(err) => error.set(Some(err)),
            }
        });
    };
    view! {
        <div class="modal-backdrop">
            <div class="modal card" role="dialog" aria-modal="true" aria-labelledby="revoke-title"
                aria-describedby="revoke-explain"
                on:keydown=move |ev| {
                    if ev.key() == "Escape" {
                        close();
                    } else {
                        browser::trap_tab(&ev);
                    }
                }>
                <h2 id="revoke-title">{title}</h2>
                <p id="revoke-explain">{explain}</p>
                <form class="stack" on:submit=on_submit novalidate>
                    <JsControls>
                        <div class="field">
                            <label for="revoke-reason">"Reason"</label>
                            <input id="revoke-reason" type="text" maxlength="500" required
                                placeholder="e.g. lost phone, ticket 4711" aria-describedby="revoke-reason-error"
                                bind:value=reason />
                            <FieldError error field="reason" id="revoke-reason-error" />
                        </div>
                        <FormAlert error />
                        <div class="actions">
                            <button type="submit" class="danger" disabled=move || busy.get()>"Confirm revoke"</button>
                            <button type="button" class="secondary" on:click=move |_| close()>"Cancel"</button>
                        </div>
                    </JsControls>
                </form>
            </div>
        </div>
    }
}

/// A recovery enrollment token: lets the user register a new passkey; shown once. Admins and
/// owners issue it with `add:authenticators` (for a user who may still hold a passkey); support
/// without, so it registers only once the user has no active passkey (revoke the lost one
/// first).
#[component]
fn RecoveryToken(
    tenant: StoredValue<String>,
    user: StoredValue<String>,
    add_authenticators: bool,
) -> impl IntoView {
    let issued = RwSignal::new(None::<IssuedToken>);
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        spawn_local(async move {
            match issue_enrollment_token(tenant.get_value(), user.get_value(), add_authenticators)
                .await
            {
                Ok(token) => issued.set(Some(token)),
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    view! {
        <section class="card" aria-labelledby="recovery-heading">
            <h2 id="recovery-heading">"Recovery"</h2>
            <p class="hint">
                {if add_authenticators {
                    "An enrollment token (with add:authenticators) lets this user register a new \
                     passkey, e.g. after losing a phone. Send it through a channel you trust; it \
                     works once."
                } else {
                    "An enrollment token lets this user register a new passkey once they have no \
                     active passkey: revoke the lost one first. Send it through a channel you \
                     trust; it works once."
                }}
            </p>
            <form on:submit=on_submit>
                <JsControls>
                    <button type="submit" disabled=move || busy.get()>"Issue recovery token"</button>
                </JsControls>
            </form>
            <FormAlert error />
            {move || issued.get().map(|token| view! {
                <div class="issued" role="status">
                    <p>"Valid until " {token.expires_at.clone()} ". Copy it now: it will not be shown again."</p>
                    <SecretField id="recovery-token" label="Recovery token" secret=token.token />
                </div>
            })}
        </section>
    }
}
