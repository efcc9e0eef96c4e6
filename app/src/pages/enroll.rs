//! `/setup?token=…` (the first operator) and `/invite?token=…` (an invited one): check the link,
//! then register the new operator's passkey and sign them in.

use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    PortalError,
    api::{LinkView, begin_enrollment, finish_enrollment, link_status},
    browser,
    forms::{FieldError, FormAlert, FormError, JsControls, begin_submit, create_credential},
};

#[component]
pub fn EnrollPage(setup: bool) -> impl IntoView {
    let query = use_query_map();
    let token = move || query.read().get("token").unwrap_or_default();
    let link = Resource::new(token, link_status);
    let title = if setup {
        "Set up Latchkey"
    } else {
        "Accept your invitation"
    };

    view! {
        <Title text=title />
        <section class="card narrow" aria-labelledby="enroll-heading">
            <h1 id="enroll-heading">{title}</h1>
            <Suspense fallback=|| view! { <p aria-busy="true">"Checking your link…"</p> }>
                {move || Suspend::new(async move {
                    match link.await {
                        Ok(link) => view! { <EnrollForm token=token() link /> }.into_any(),
                        Err(err) => view! {
                            <p class="error" role="alert" data-testid="link-error">{err.message}</p>
                            <p><a href="/login">"Go to the sign-in page"</a></p>
                        }
                        .into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn EnrollForm(token: String, link: LinkView) -> impl IntoView {
    let invited = link.email.clone();
    let email = RwSignal::new(invited.clone().unwrap_or_default());
    let display_name = RwSignal::new(String::new());
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let token = StoredValue::new(token);

    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        let (email, name) = (email.get_untracked(), display_name.get_untracked());
        spawn_local(async move {
            let result: Result<(), PortalError> = async {
                let options = begin_enrollment(token.get_value(), email, name).await?;
                let credential = create_credential(&options).await?;
                finish_enrollment(options.ceremony_id, credential).await
            }
            .await;
            match result {
                Ok(()) => browser::navigate_to("/"),
                Err(err) => {
                    error.set(Some(err));
                    busy.set(false);
                }
            }
        });
    };

    let intro = if link.purpose == "setup" {
        "Create the first operator of this instance. You become its instance admin and sign in \
         with the passkey you create now."
            .to_owned()
    } else {
        format!(
            "You were invited to operate this Latchkey instance{}. Create your passkey to accept.",
            if link.instance_admin {
                " as an instance admin"
            } else {
                ""
            }
        )
    };

    view! {
        <p>{intro}</p>
        <p class="hint">"This link is valid until " {link.expires_at} " and works once."</p>
        <form class="stack" on:submit=on_submit novalidate>
            <JsControls>
                <div class="field">
                    <label for="email">"Email"</label>
                    <input
                        id="email"
                        name="email"
                        type="email"
                        autocomplete="email"
                        required
                        readonly=invited.is_some()
                        aria-describedby="email-error"
                        bind:value=email
                    />
                    <FieldError error field="email" id="email-error" />
                </div>
                <div class="field">
                    <label for="display-name">"Display name"</label>
                    <input
                        id="display-name"
                        name="display_name"
                        type="text"
                        autocomplete="name"
                        required
                        maxlength="100"
                        aria-describedby="display-name-error"
                        bind:value=display_name
                    />
                    <FieldError error field="display_name" id="display-name-error" />
                </div>
                <FormAlert error />
                <button type="submit" disabled=move || busy.get()>
                    "Create passkey"
                </button>
            </JsControls>
        </form>
    }
}
