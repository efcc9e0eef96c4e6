//! Instance admins: the operators of this instance, and invitations for new ones.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use leptos_meta::Title;

use crate::{
    api::{InvitationView, invite_operator, list_operators},
    forms::{FieldError, FormAlert, FormError, JsControls, begin_submit},
};

#[component]
pub fn OperatorsPage() -> impl IntoView {
    let version = RwSignal::new(0u32);
    let operators = Resource::new(move || version.get(), |_| list_operators());

    view! {
        <Title text="Operators" />
        <h1>"Operators"</h1>
        <Invite on_invited=move || version.update(|v| *v += 1) />
        <section class="card" aria-labelledby="operators-heading">
            <h2 id="operators-heading">"Everyone who can sign in"</h2>
            <Transition fallback=|| view! { <p aria-busy="true">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match operators.await {
                        Ok(rows) => view! {
                            <table class="data">
                                <thead>
                                    <tr>
                                        <th scope="col">"Email"</th>
                                        <th scope="col">"Display name"</th>
                                        <th scope="col">"Instance admin"</th>
                                        <th scope="col" class="hide-narrow">"Since"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|r| view! {
                                        <tr>
                                            <td class="wrap">{r.email}</td>
                                            <td>{r.display_name}</td>
                                            <td>{if r.instance_admin { "yes" } else { "no" }}</td>
                                            <td class="hide-narrow">{r.created_at}</td>
                                        </tr>
                                    }).collect_view()}
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

#[component]
fn Invite(on_invited: impl Fn() + Copy + Send + Sync + 'static) -> impl IntoView {
    let email = RwSignal::new(String::new());
    let instance_admin = RwSignal::new(false);
    let error: FormError = RwSignal::new(None);
    let issued = RwSignal::new(None::<InvitationView>);
    let busy = RwSignal::new(false);

    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        issued.set(None);
        let (address, admin) = (email.get_untracked(), instance_admin.get_untracked());
        spawn_local(async move {
            match invite_operator(address, admin).await {
                Ok(invitation) => {
                    issued.set(Some(invitation));
                    email.set(String::new());
                    instance_admin.set(false);
                    on_invited();
                }
                Err(err) => error.set(Some(err)),
            }
            busy.set(false);
        });
    };

    view! {
        <section class="card" aria-labelledby="invite-heading">
            <h2 id="invite-heading">"Invite an operator"</h2>
            <p>"The invitation link works once, for 24 hours, and only for this address."</p>
            <form class="stack" on:submit=on_submit novalidate>
                <JsControls>
                    <div class="field">
                        <label for="invite-email">"Email"</label>
                        <input
                            id="invite-email"
                            type="email"
                            autocomplete="off"
                            aria-describedby="invite-email-error"
                            bind:value=email
                        />
                        <FieldError error field="email" id="invite-email-error" />
                    </div>
                    <div class="field checkbox">
                        <input id="invite-admin" type="checkbox" bind:checked=instance_admin />
                        <label for="invite-admin">"Instance admin (may create tenants and invite operators)"</label>
                    </div>
                    <FormAlert error />
                    <button type="submit" disabled=move || busy.get()>"Invite operator"</button>
                </JsControls>
            </form>
            {move || issued.get().map(|inv| view! {
                <div class="issued" role="status">
                    <p>"Send this link to " <strong>{inv.email}</strong> ". It is shown only now and expires " {inv.expires_at} "."</p>
                    <label for="invitation-url">"Invitation link"</label>
                    <input id="invitation-url" type="text" readonly value=inv.url />
                </div>
            })}
        </section>
    }
}
