//! Pieces every form uses: errors shown next to their field or above the button, and the two
//! WebAuthn round trips (options from the server → the browser's passkey prompt → verification).

use leptos::prelude::*;

use crate::{PortalError, api::CeremonyView, browser};

/// The error a form shows, if any.
pub type FormError = RwSignal<Option<PortalError>>;

/// The controls of a form that submits through JavaScript (every form that calls the server or
/// the browser's passkey prompt), disabled until the page has hydrated. Before that, pressing the
/// button or Enter would make the browser submit the form itself as a GET to the page's own
/// address, which drops the page's query (a setup or invitation link's token) and whatever was
/// typed, and creates no passkey. A disabled fieldset disables every control inside it, so nothing
/// can be typed that hydration could overwrite either. Styled `display: contents`, it leaves the
/// form's layout as it was.
#[component]
pub fn JsControls(children: Children) -> impl IntoView {
    // Effects only run in the browser, once this part of the page is hydrated.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <fieldset class="js-controls" disabled=move || !hydrated.get()>
            {children()}
        </fieldset>
    }
}

/// Starts handling a submit: keeps the browser from posting the form itself, refuses a second
/// submission while one is running, and clears the previous error. Answers whether to proceed.
pub fn begin_submit(ev: &leptos::ev::SubmitEvent, busy: RwSignal<bool>, error: FormError) -> bool {
    ev.prevent_default();
    if busy.get_untracked() {
        return false;
    }
    busy.set(true);
    error.set(None);
    true
}

/// The message for `field`, when the current error belongs to it.
pub fn field_message(error: FormError, field: &'static str) -> Option<String> {
    error
        .read()
        .as_ref()
        .filter(|e| e.field.as_deref() == Some(field))
        .map(|e| e.message.clone())
}

/// The message shown next to a field (`id` is what the input's `aria-describedby` names).
#[component]
pub fn FieldError(error: FormError, field: &'static str, id: &'static str) -> impl IntoView {
    view! {
        <p class="field-error" id=id role="alert" aria-live="polite">
            {move || field_message(error, field)}
        </p>
    }
}

/// An error that belongs to no field, shown above or below the form's button. When the server
/// asks for step-up, it offers to confirm with a passkey and then submits the form again.
#[component]
pub fn FormAlert(error: FormError) -> impl IntoView {
    move || {
        error
            .get()
            .filter(|e| e.field.is_none())
            .map(|e| match e.code.as_str() {
                STEP_UP_REQUIRED => view! { <StepUpPrompt message=e.message error /> }.into_any(),
                _ => view! { <p class="error" role="alert">{e.message}</p> }.into_any(),
            })
    }
}

/// The code the server answers when an action needs a recent passkey verification.
const STEP_UP_REQUIRED: &str = "step_up_required";

/// "Confirm with your passkey": runs the step-up ceremony, then submits the form it sits in again
/// (the action the server refused). Outside a form it says to try again instead.
#[component]
fn StepUpPrompt(message: String, error: FormError) -> impl IntoView {
    let busy = RwSignal::new(false);
    let failure = RwSignal::new(None::<String>);
    let confirm = move |ev: leptos::ev::MouseEvent| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        failure.set(None);
        leptos::task::spawn_local(async move {
            match step_up().await {
                // Submitting clears this error (and with it this prompt) as it starts.
                Ok(()) if browser::resubmit_form_of(&ev) => {}
                Ok(()) => error.set(Some(PortalError::new(
                    "stepped_up",
                    "Confirmed. Do it again now.",
                ))),
                Err(err) => failure.set(Some(err.message)),
            }
            busy.set(false);
        });
    };
    view! {
        <div class="error step-up" role="alert">
            <p>{message}</p>
            <button type="button" class="secondary" on:click=confirm disabled=move || busy.get()>
                "Confirm with your passkey"
            </button>
            {move || failure.get().map(|message| view! { <p>{message}</p> })}
        </div>
    }
}

async fn step_up() -> Result<(), PortalError> {
    let options = crate::api::begin_step_up().await?;
    let credential = get_credential(&options, false).await?;
    crate::api::finish_step_up(options.ceremony_id, credential).await
}

/// An error from the browser's passkey prompt (no server code).
fn prompt_error(message: String) -> PortalError {
    PortalError::new("passkey_prompt", message)
}

/// Runs the browser's registration prompt for `options` and answers the credential JSON.
pub async fn create_credential(options: &CeremonyView) -> Result<String, PortalError> {
    browser::create_passkey(options.public_key.clone())
        .await
        .map_err(prompt_error)
}

/// Runs the browser's sign-in prompt; `conditional` waits for an autofill choice.
pub async fn get_credential(
    options: &CeremonyView,
    conditional: bool,
) -> Result<String, PortalError> {
    browser::get_passkey(options.public_key.clone(), conditional)
        .await
        .map_err(prompt_error)
}

/// Whether the error is a conditional request that a newer request replaced (not worth showing).
pub fn is_aborted(error: &PortalError) -> bool {
    error.code == "passkey_prompt" && error.message == browser::ABORTED
}

/// A secret shown once (API key, enrollment token): labelled, read-only, with a Copy button that
/// says whether the browser allowed the copy.
#[component]
pub fn SecretField(id: &'static str, label: &'static str, secret: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let value = StoredValue::new(secret.clone());
    let copy = move |_| {
        leptos::task::spawn_local(async move {
            copied.set(browser::copy_text(value.get_value()).await);
        });
    };
    view! {
        <label for=id>{label}</label>
        <div class="inline">
            <input id=id type="text" readonly value=secret />
            <button type="button" class="secondary" on:click=copy>"Copy"</button>
        </div>
        <p class="hint">{move || copied.get().then_some("Copied to the clipboard.")}</p>
    }
}
