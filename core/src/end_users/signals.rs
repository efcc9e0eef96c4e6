//! What a finished Client API ceremony tells the browser's password manager about the user's
//! passkeys (the WebAuthn L3 Signal API). The server decides what is true; the SDK only passes it
//! on (`PublicKeyCredential.signal…`).
//!
//! The rules, each decided here:
//! - after a successful sign-in or registration: **all accepted credentials**, the user's active
//!   passkeys, so that a passkey revoked by support disappears from the password manager at the
//!   user's next sign-in;
//! - the user's **current details** only when their username or display name changed after the
//!   passkey was last used (or registered): the password manager still shows the old ones;
//! - **unknown credential** only for a sign-in with a credential ID the tenant has never stored
//!   (see [`crate::Error::UnknownCredential`]). Never for a revoked passkey or one of another
//!   user: telling the browser to forget those would confirm to whoever holds the device that the
//!   account exists, and the revoked one disappears anyway from the next accepted-credentials
//!   signal of a sign-in that proves the user.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};

use crate::entities::{authenticator, end_user};

/// The most active passkeys of one user a ceremony reads for its signals.
pub(crate) const PASSKEYS_LIMIT: u64 = 100;

/// The signals of a successful ceremony.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Signals {
    /// The tenant's RP ID the passkeys are bound to.
    pub rp_id: String,
    /// The WebAuthn user handle (`user.id`), base64url.
    pub user_id: String,
    /// The user's active passkeys' credential IDs, base64url; `None` when the user has more
    /// than a ceremony reads (a partial list would hide the passkeys left out).
    pub all_accepted_credential_ids: Option<Vec<String>>,
    /// Set when the user's names changed since this passkey was last used.
    pub current_user_details: Option<UserDetails>,
}

/// The names a password manager shows for the user's passkeys (as registration set them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserDetails {
    pub name: String,
    pub display_name: String,
}

impl UserDetails {
    /// The names registration gives a new passkey: the username (else the user ID) and the
    /// display name (else the name).
    pub(crate) fn of(user: &end_user::Model) -> Self {
        let name = user.username.as_deref().unwrap_or(&user.external_id);
        Self {
            name: name.to_owned(),
            display_name: user.display_name.as_deref().unwrap_or(name).to_owned(),
        }
    }
}

impl Signals {
    /// `active` are the user's passkeys (revoked ones are left out), `None` when not all were
    /// read; `seen_at` is when the password manager last saw the user's names: the passkey's previous
    /// use, else its registration.
    pub(crate) fn after_ceremony<'a>(
        rp_id: &str,
        user: &end_user::Model,
        active: Option<impl IntoIterator<Item = &'a authenticator::Model>>,
        seen_at: Option<DateTime<Utc>>,
    ) -> Self {
        Self {
            rp_id: rp_id.to_owned(),
            user_id: URL_SAFE_NO_PAD.encode(user.id.as_bytes()),
            all_accepted_credential_ids: active.map(|active| {
                active
                    .into_iter()
                    .filter(|a| a.revoked_at.is_none())
                    .map(|a| a.credential_id.clone())
                    .collect()
            }),
            current_user_details: seen_at
                .is_some_and(|seen| user.updated_at > seen)
                .then(|| UserDetails::of(user)),
        }
    }
}
