use leptos::{ev::SubmitEvent, prelude::*, task::spawn_local};
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    PortalError,
    api::{begin_sign_in, finish_sign_in},
    browser,
    forms::{FormAlert, FormError, JsControls, begin_submit, get_credential, is_aborted},
};

/// One sign-in: options, the browser's prompt (modal, or autofill when `conditional`), verify.
async fn sign_in(conditional: bool) -> Result<(), PortalError> {
    let options = begin_sign_in().await?;
    let credential = get_credential(&options, conditional).await?;
    finish_sign_in(options.ceremony_id, credential).await
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    // Where to go after signing in: the page that sent the visitor here, if it is one of ours
    // (checked where the browser resolves it: `browser::navigate_within_origin`).
    let next = move || query.read_untracked().get("next").unwrap_or_default();
    let error: FormError = RwSignal::new(None);
    let busy = RwSignal::new(false);
    let supported = RwSignal::new(true);

    let outcome = move |result: Result<(), PortalError>| match result {
        Ok(()) => browser::navigate_within_origin(&next()),
        Err(err) if is_aborted(&err) => {}
        Err(err) => {
            error.set(Some(err));
            busy.set(false);
        }
    };

    // Once hydrated: offer passkeys in the field's autofill where the browser can, and say so
    // plainly where the browser has no passkeys at all.
    Effect::new(move |_| {
        if !browser::passkeys_supported() {
            supported.set(false);
            return;
        }
        spawn_local(async move {
            if browser::conditional_mediation_available().await {
                outcome(sign_in(true).await);
            }
        });
    });

    let on_submit = move |ev: SubmitEvent| {
        if !begin_submit(&ev, busy, error) {
            return;
        }
        spawn_local(async move { outcome(sign_in(false).await) });
    };

    view! {
        <Title text="Sign in" />
        <section class="card narrow" aria-labelledby="login-heading">
            <h1 id="login-heading">"Sign in to Latchkey"</h1>
            <p>"Operators sign in with a passkey: no password, nothing to type."</p>
            <form class="stack" on:submit=on_submit>
                <JsControls>
                    <div class="field">
                        <label for="login-email">"Email"</label>
                        <input
                            id="login-email"
                            name="username"
                            type="email"
                            autocomplete="username webauthn"
                            aria-describedby="login-email-hint"
                        />
                        <p class="hint" id="login-email-hint">
                            "Optional: your browser may suggest your passkey here."
                        </p>
                    </div>
                    <button
                        type="submit"
                        aria-busy=move || busy.get().to_string()
                        disabled=move || busy.get() || !supported.get()
                    >
                        "Sign in with a passkey"
                    </button>
                    <p class="hint" role="status">
                        {move || busy.get().then_some("Waiting for your passkey…")}
                    </p>
                    <FormAlert error />
                    <Show when=move || !supported.get()>
                        <p class="error" role="alert">
                            "This browser does not support passkeys. Use a current browser."
                        </p>
                    </Show>
                </JsControls>
            </form>
            <p class="note">
                "No passkey yet? Ask an instance admin for an invitation link."
            </p>
        </section>
    }
}
