//! Opaque secrets (API keys, enrollment, validation, setup and invitation tokens): 256 random
//! bits, base64url, behind a readable prefix such as `lk_setup_`. Only their SHA-256 is stored;
//! lookups go by hash, so no secret is ever compared byte by byte in application code.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// How many random bytes each secret carries (256 bits).
const SECRET_BYTES: usize = 32;
/// How many characters of the random part are kept, with the prefix, for display.
const DISPLAY_CHARS: usize = 6;

/// The kinds of secret Latchkey hands out, each with its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    ApiKey,
    Enrollment,
    Validation,
    Setup,
    Invitation,
}

impl SecretKind {
    pub fn prefix(self) -> &'static str {
        match self {
            Self::ApiKey => "lk_sk_",
            Self::Enrollment => "lk_enr_",
            Self::Validation => "lk_val_",
            Self::Setup => "lk_setup_",
            Self::Invitation => "lk_inv_",
        }
    }
}

/// A freshly generated secret: the value to show once, and what may be stored.
pub struct IssuedSecret {
    /// The secret itself. Show it once; never store or log it.
    pub value: String,
    /// Hex SHA-256 of `value`, the only form that is stored.
    pub hash: String,
    /// The kind's prefix plus a few characters: enough to recognise, useless to guess.
    pub display_prefix: String,
}

impl std::fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSecret")
            .field("display_prefix", &self.display_prefix)
            .finish_non_exhaustive()
    }
}

pub fn issue(kind: SecretKind) -> Result<IssuedSecret> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("the system random source failed: {e}")))?;
    let value = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes));
    let display_prefix = value
        .chars()
        .take(kind.prefix().len() + DISPLAY_CHARS)
        .collect();
    Ok(IssuedSecret {
        hash: hash(&value),
        value,
        display_prefix,
    })
}

/// Hex SHA-256 of a presented secret, for lookup.
pub fn hash(value: &str) -> String {
    hex_sha256(value.as_bytes())
}

pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `value` looks like a secret of `kind` (right prefix, right length, base64url). Used
/// to refuse garbage before touching the database; it says nothing about validity.
pub fn is_well_formed(kind: SecretKind, value: &str) -> bool {
    value.strip_prefix(kind.prefix()).is_some_and(|rest| {
        URL_SAFE_NO_PAD
            .decode(rest)
            .is_ok_and(|bytes| bytes.len() == SECRET_BYTES)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_secrets_are_prefixed_random_and_hashed() {
        let a = issue(SecretKind::Setup).unwrap_or_else(|e| panic!("{e}"));
        let b = issue(SecretKind::Setup).unwrap_or_else(|e| panic!("{e}"));
        assert!(a.value.starts_with("lk_setup_"));
        assert_eq!(a.value.len(), "lk_setup_".len() + 43);
        assert_ne!(a.value, b.value);
        assert_eq!(a.hash, hash(&a.value));
        assert_eq!(a.hash.len(), 64);
        assert!(a.value.starts_with(&a.display_prefix));
        assert!(is_well_formed(SecretKind::Setup, &a.value));
        assert!(!is_well_formed(SecretKind::Invitation, &a.value));
        assert!(!is_well_formed(SecretKind::Setup, "lk_setup_short"));
        assert!(!format!("{a:?}").contains(&a.value));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        const KINDS: [SecretKind; 5] = [
            SecretKind::ApiKey,
            SecretKind::Enrollment,
            SecretKind::Validation,
            SecretKind::Setup,
            SecretKind::Invitation,
        ];

        fn kind() -> impl Strategy<Value = SecretKind> {
            proptest::sample::select(KINDS.to_vec())
        }

        /// Strings that look more or less like a secret: a kind's prefix (or a near miss) and
        /// a body of base64url-ish characters around the right length, or anything at all.
        fn presented() -> impl Strategy<Value = String> {
            let prefix = prop_oneof![
                kind().prop_map(|k| k.prefix().to_owned()),
                Just(String::new()),
                "lk_[a-z]{0,6}_?",
                kind().prop_map(|k| k.prefix().to_uppercase()),
            ];
            let body = prop_oneof![
                "[A-Za-z0-9_-]{40,46}",
                "[A-Za-z0-9+/=_-]{0,50}",
                ".{0,60}",
                any::<[u8; 32]>().prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
                any::<[u8; 32]>().prop_map(|b| base64::engine::general_purpose::URL_SAFE.encode(b)),
                any::<[u8; 32]>().prop_map(|b| base64::engine::general_purpose::STANDARD.encode(b)),
            ];
            prop_oneof![
                (prefix, body).prop_map(|(p, b)| format!("{p}{b}")),
                any::<String>(),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// Whatever is presented, the shape check answers without panicking, and accepts
            /// exactly one prefix followed by the base64url (unpadded) form of 32 bytes: the only
            /// strings whose hash may be looked up.
            #[test]
            fn only_one_kinds_prefix_and_32_base64url_bytes_are_well_formed(value in presented()) {
                for kind in KINDS {
                    let well_formed = is_well_formed(kind, &value);
                    let expected = value.strip_prefix(kind.prefix()).is_some_and(|rest| {
                        rest.len() == 43
                            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                            && URL_SAFE_NO_PAD.decode(rest).is_ok_and(|b| URL_SAFE_NO_PAD.encode(b) == rest)
                    });
                    prop_assert_eq!(well_formed, expected, "{:?} as {:?}", value, kind);
                    if well_formed {
                        for other in KINDS.into_iter().filter(|k| *k != kind) {
                            prop_assert!(!is_well_formed(other, &value), "{:?} is {:?} and {:?}", value, kind, other);
                        }
                    }
                }
                // Hashing takes anything and always gives the stored form's shape.
                let hashed = hash(&value);
                prop_assert_eq!(hashed.len(), 64);
                prop_assert!(hashed.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            }

            /// A secret with any one character changed, dropped or added is either malformed or
            /// hashes differently: nothing near a real secret finds its row.
            #[test]
            fn an_altered_secret_never_hashes_like_the_original(
                kind in kind(),
                edit in 0usize..3,
                at in any::<proptest::sample::Index>(),
                c in any::<char>(),
            ) {
                let issued = issue(kind).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert!(is_well_formed(kind, &issued.value));
                let mut chars: Vec<char> = issued.value.chars().collect();
                let i = at.index(chars.len());
                match edit {
                    0 => chars[i] = c,
                    1 => { chars.remove(i); }
                    _ => chars.insert(i, c),
                }
                let altered: String = chars.into_iter().collect();
                prop_assume!(altered != issued.value);
                prop_assert!(!is_well_formed(kind, &altered) || hash(&altered) != issued.hash);
            }
        }
    }
}
