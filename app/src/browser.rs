//! The browser-only capabilities the portal needs (WebAuthn, full navigations), implemented by
//! `webauthn.js`. On the server these are never reached (they run from event handlers and
//! effects only); there they answer an error instead of linking JavaScript.

#[cfg(feature = "hydrate")]
mod js {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen(module = "/src/webauthn.js")]
    extern "C" {
        #[wasm_bindgen(js_name = passkeysSupported)]
        pub fn passkeys_supported() -> bool;
        #[wasm_bindgen(js_name = conditionalMediationAvailable)]
        pub async fn conditional_mediation_available() -> JsValue;
        #[wasm_bindgen(catch, js_name = createPasskey)]
        pub async fn create_passkey(options: String) -> Result<JsValue, JsValue>;
        #[wasm_bindgen(catch, js_name = getPasskey)]
        pub async fn get_passkey(options: String, conditional: bool) -> Result<JsValue, JsValue>;
        #[wasm_bindgen(js_name = navigateTo)]
        pub fn navigate_to(path: &str);
        #[wasm_bindgen(js_name = navigateWithinOrigin)]
        pub fn navigate_within_origin(next: &str);
        #[wasm_bindgen(js_name = copyText)]
        pub async fn copy_text(text: String) -> JsValue;
        #[wasm_bindgen(js_name = focusLater)]
        pub fn focus_later(id: &str);
        #[wasm_bindgen(js_name = trapTab)]
        pub fn trap_tab(event: &JsValue) -> bool;
        #[wasm_bindgen(js_name = resubmitFormOf)]
        pub fn resubmit_form_of(event: &JsValue) -> bool;
    }
}

/// The message the bridge rejects with when a newer request replaced a conditional one.
pub const ABORTED: &str = "aborted";

#[cfg(feature = "hydrate")]
fn text(value: wasm_bindgen::JsValue) -> String {
    value
        .as_string()
        .unwrap_or_else(|| "The passkey request failed.".to_owned())
}

/// Whether this browser has WebAuthn at all.
pub fn passkeys_supported() -> bool {
    #[cfg(feature = "hydrate")]
    return js::passkeys_supported();
    #[cfg(not(feature = "hydrate"))]
    false
}

/// Whether passkeys can be offered in autofill (conditional mediation).
pub async fn conditional_mediation_available() -> bool {
    #[cfg(feature = "hydrate")]
    return js::conditional_mediation_available().await.is_truthy();
    #[cfg(not(feature = "hydrate"))]
    false
}

/// Runs `navigator.credentials.create` with the server's options (JSON text); answers the
/// credential as JSON text, or a message to show.
pub async fn create_passkey(options: String) -> Result<String, String> {
    #[cfg(feature = "hydrate")]
    return js::create_passkey(options).await.map(text).map_err(text);
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = options;
        Err("Passkeys need JavaScript.".to_owned())
    }
}

/// Runs `navigator.credentials.get`; `conditional` waits for an autofill choice.
pub async fn get_passkey(options: String, conditional: bool) -> Result<String, String> {
    #[cfg(feature = "hydrate")]
    return js::get_passkey(options, conditional)
        .await
        .map(text)
        .map_err(text);
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = (options, conditional);
        Err("Passkeys need JavaScript.".to_owned())
    }
}

/// Loads `path` as a new document (after sign-in or sign-out, so the page renders for the new
/// session).
pub fn navigate_to(path: &str) {
    #[cfg(feature = "hydrate")]
    js::navigate_to(path);
    #[cfg(not(feature = "hydrate"))]
    let _ = path;
}

/// Loads `next` (an untrusted `?next=` value) if it resolves to a page of this origin, else the
/// home page (see `navigateWithinOrigin` in `webauthn.js`).
pub fn navigate_within_origin(next: &str) {
    #[cfg(feature = "hydrate")]
    js::navigate_within_origin(next);
    #[cfg(not(feature = "hydrate"))]
    let _ = next;
}

/// Copies `text` to the clipboard; answers whether the browser allowed it.
pub async fn copy_text(text: String) -> bool {
    #[cfg(feature = "hydrate")]
    return js::copy_text(text).await.is_truthy();
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = text;
        false
    }
}

/// Moves the keyboard focus to the element `id` once it is rendered (a dialog's first field, or
/// back to the button that opened it).
pub fn focus_later(id: &str) {
    #[cfg(feature = "hydrate")]
    js::focus_later(id);
    #[cfg(not(feature = "hydrate"))]
    let _ = id;
}

/// Keeps Tab inside the dialog the keydown `event` happened in (see `trapTab` in webauthn.js).
pub fn trap_tab(event: &leptos::ev::KeyboardEvent) {
    #[cfg(feature = "hydrate")]
    js::trap_tab(event.as_ref());
    #[cfg(not(feature = "hydrate"))]
    let _ = event;
}

/// Submits again the form that holds the element `event` came from; answers whether there was
/// one.
pub fn resubmit_form_of(event: &leptos::ev::MouseEvent) -> bool {
    #[cfg(feature = "hydrate")]
    return js::resubmit_form_of(event.as_ref());
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = event;
        false
    }
}
