//! A tenant's members (owners manage them) and, for owners, renaming and deleting the tenant.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};

use super::{TenantNav, TenantScope};
use crate::{
    api::{
        InvitationView, MemberRow, TenantView, add_member, change_member_role, delete_tenant,
        remove_member, rename_tenant, tenant_members,
    },
    browser,
    forms::{FieldError, FormAlert, FormError, JsControls, begin_submit},
};

const ROLES: &[(&str, &str)] = &[
    ("owner", "Owner"),
    ("admin", "Admin"),
    ("support", "Support"),
    ("viewer", "Viewer"),
];

#[component]
pub fn MembersPage() -> impl IntoView {
    view! { <TenantScope title="Members" page=|view| view! { <Members view /> } /> }
}

#[component]
fn Members(view: TenantView) -> impl IntoView {
    let TenantView {
        id,
        name,
        can_manage_members: owner,
        ..
    } = view;
    let tenant = StoredValue::new(id.clone());
    let version = RwSignal::new(0u32);
    let members = Resource::new(
        move || version.get(),
        move |_| tenant_members(tenant.get_value()),
    );
    let reload = move || version.update(|v| *v += 1);
    let error: FormError = RwSignal::new(None);

    view! {
        <TenantNav id=id.clone() name=name.clone() current="Members" />
        <h1>"Members"</h1>
        {owner.then(|| view! { <AddMember tenant on_added=reload /> })}
        <section class="card table-card" aria-label="Members">
            <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match members.await {
                        Ok(rows) => view! {
                            <table class="data" data-testid="members">
                                <thead>
                                    <tr>
                                        <th scope="col">"Email"</th>
                                        <th scope="col">"Name"</th>
                                        <th scope="col">"Role"</th>
                                        <th scope="col">"Since"</th>
                                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|m| view! { <MemberLine m owner tenant error on_change=reload /> }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(err) => view! { <p class="error" role="alert">{err.message}</p> }.into_any(),
                    }
                })}
            </Transition>
            <FormAlert error />
        </section>
        {owner.then(|| view! { <TenantSettings tenant name=name.clone() /> })}
    }
}

#[component]
fn MemberLine(
    m: MemberRow,
    owner: bool,
    tenant: StoredValue<String>,
    error: FormError,
    on_change: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let member = StoredValue::new(m.operator_id.clone());
    let role = RwSignal::new(m.role.clone());
    let change = move |_| {
        error.set(None);
        let new_role = role.get_untracked();
        spawn_local(async move {
            match change_member_role(tenant.get_value(), member.get_value(), new_role).await {
                Ok(()) => on_change(),
                Err(err) => error.set(Some(err)),
            }
        });
    };
    let remove = move |_| {
        error.set(None);
        spawn_local(async move {
            match remove_member(tenant.get_value(), member.get_value()).await {
                Ok(()) => on_change(),
                Err(err) => error.set(Some(err)),
            }
        });
    };
    let role_label = format!("Role of {}", m.email);
    let remove_label = format!("Remove {}", m.email);
    view! {
        <tr>
            <td>{m.email}</td>
            <td>{m.display_name}</td>
            <td>
                {if owner {
                    view! {
                        <select aria-label=role_label bind:value=role on:change=change>
                            {ROLES.iter().map(|(v, l)| view! { <option value=*v selected=move || role.get() == *v>{*l}</option> }).collect_view()}
                        </select>
                    }.into_any()
                } else {
                    view! { <span>{m.role}</span> }.into_any()
                }}
            </td>
            <td>{m.since}</td>
            <td>
                {owner.then(|| view! {
                    <button type="button" class="secondary" aria-label=remove_label on:click=remove>"Remove"</button>
                })}
            </td>
        </tr>
    }
}

#[component]
fn AddMember(
    tenant: StoredValue<String>,
    on_added: impl Fn() + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let email = RwSignal::new(String::new());
    let role = RwSignal::new("viewer".to_owned());
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let invitation = RwSignal::new(None::<InvitationView>);
    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        invitation.set(None);
        let (address, chosen) = (email.get_untracked(), role.get_untracked());
        spawn_local(async move {
            match add_member(tenant.get_value(), address, chosen).await {
                Ok(invited) => {
                    email.set(String::new());
                    invitation.set(invited);
                    on_added();
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };
    view! {
        <section class="card" aria-labelledby="add-member-heading">
            <h2 id="add-member-heading">"Add a member"</h2>
            <p class="hint">
                "An operator of this instance is added at once; anyone else gets an invitation link that makes them an operator and a member."
            </p>
            <form class="stack" on:submit=on_submit novalidate>
                <JsControls>
                    <div class="grid">
                        <div class="field">
                            <label for="member-email">"Email"</label>
                            <input id="member-email" type="email" aria-describedby="member-email-error" bind:value=email />
                            <FieldError error field="email" id="member-email-error" />
                        </div>
                        <div class="field">
                            <label for="member-role">"Role"</label>
                            <select id="member-role" bind:value=role>
                                {ROLES.iter().map(|(v, l)| view! { <option value=*v selected=move || role.get() == *v>{*l}</option> }).collect_view()}
                            </select>
                        </div>
                    </div>
                    <FormAlert error />
                    <button type="submit" disabled=move || busy.get()>"Invite"</button>
                </JsControls>
            </form>
            {move || invitation.get().map(|inv| view! {
                <div class="issued" role="status">
                    <p>"Send this link to " <strong>{inv.email}</strong> ". It is shown only now and expires " {inv.expires_at} "."</p>
                    <label for="member-invitation-url">"Invitation link"</label>
                    <input id="member-invitation-url" type="text" readonly value=inv.url />
                </div>
            })}
        </section>
    }
}

#[component]
fn TenantSettings(tenant: StoredValue<String>, name: String) -> impl IntoView {
    let new_name = RwSignal::new(name.clone());
    let confirmation = RwSignal::new(String::new());
    let rename_error: FormError = RwSignal::new(None);
    let delete_error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let rename = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, rename_error) {
            return;
        }
        let chosen = new_name.get_untracked();
        spawn_local(async move {
            match rename_tenant(tenant.get_value(), chosen).await {
                Ok(()) => browser::navigate_to(&format!("/tenants/{}/members", tenant.get_value())),
                Err(err) => {
                    rename_error.set(Some(err));
                    busy.set(false);
                }
            }
        });
    };
    let delete = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, delete_error) {
            return;
        }
        let typed = confirmation.get_untracked();
        spawn_local(async move {
            match delete_tenant(tenant.get_value(), typed).await {
                Ok(()) => browser::navigate_to("/tenants"),
                Err(err) => {
                    delete_error.set(Some(err));
                    busy.set(false);
                }
            }
        });
    };
    view! {
        <section class="card stack" aria-labelledby="tenant-settings-heading">
            <h2 id="tenant-settings-heading">"Tenant"</h2>
            <form class="stack" on:submit=rename novalidate>
                <JsControls>
                    <div class="field">
                        <label for="rename">"Tenant name"</label>
                        <input id="rename" type="text" maxlength="100" aria-describedby="rename-error" bind:value=new_name />
                        <FieldError error=rename_error field="name" id="rename-error" />
                    </div>
                    <FormAlert error=rename_error />
                    <button type="submit" class="secondary">"Rename tenant"</button>
                </JsControls>
            </form>
            <form class="stack danger-zone" on:submit=delete novalidate>
                <JsControls>
                    <p>"Deleting " <strong>{name.clone()}</strong> " removes its configuration and memberships. Its audit events stay."</p>
                    <div class="field">
                        <label for="confirm-delete">"Type the tenant's name to confirm"</label>
                        <input id="confirm-delete" type="text" aria-describedby="confirm-delete-error" bind:value=confirmation />
                        <FieldError error=delete_error field="confirmation" id="confirm-delete-error" />
                    </div>
                    <FormAlert error=delete_error />
                    <button type="submit" class="danger">"Delete tenant"</button>
                </JsControls>
            </form>
        </section>
    }
}
