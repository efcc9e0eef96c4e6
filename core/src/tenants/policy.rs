//! A tenant's authenticator policy: which authenticator models may hold its passkeys (an allow
//! or a block list of AAGUIDs), whether synced passkeys are allowed, whether a certified
//! authenticator is required, and what happens to passkeys registered before a stricter policy.
//!
//! The rule is decided here, twice in one place: [`AuthenticatorPolicy::breach`] judges one
//! passkey in memory (registration, sign-in), and [`AuthenticatorPolicy::breach_condition`] is the
//! same rule as SQL (dry run, health queue). A test holds the two to the same answers.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, Condition, sea_query::Expr};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Error, Result, end_users::aaguid, entities::authenticator};

/// How many AAGUIDs a list may hold (the community list has a few hundred models).
pub const MAX_MODELS: usize = 500;

/// Days after which an unused passkey is shown in the health queue.
pub const UNUSED_DAYS_RANGE: std::ops::RangeInclusive<u32> = 7..=3650;

/// Which models the list names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelRule {
    /// Every model (the list is ignored).
    #[default]
    Any,
    /// Only the listed models.
    Allow,
    /// Every model but the listed ones.
    Block,
}

/// What happens at sign-in to a passkey registered before the policy that it breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExistingPasskeys {
    /// Still signs in; listed in the health queue.
    #[default]
    Flag,
    /// Refused with `authenticator_not_allowed` (and listed in the queue).
    Block,
}

/// What registration could verify of an authenticator's attestation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// No attestation, or one that was not verified: the AAGUID is the client's word.
    #[default]
    None,
    /// Self attestation: signed by the credential's own key.
    #[serde(rename = "self")]
    SelfAttested,
    /// Verified against the FIDO metadata's roots for its AAGUID.
    Certified,
}

impl Trust {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::SelfAttested => "self",
            Self::Certified => "certified",
        }
    }

    /// The stored form back; anything unknown is treated as no trust (it is never more).
    pub fn stored(value: &str) -> Self {
        match value {
            "self" => Self::SelfAttested,
            "certified" => Self::Certified,
            _ => Self::None,
        }
    }
}

/// The policy as stored (`tenants.authenticator_policy`, JSON). Every member has a default, so
/// `{}` is the permissive default policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthenticatorPolicy {
    pub models: ModelRule,
    /// The allow or block list (sorted, no duplicates).
    pub aaguids: Vec<Uuid>,
    /// Synced (backup-eligible) passkeys are allowed; `false` is "device-bound only".
    pub allow_synced: bool,
    /// Only authenticators whose attestation verified against FIDO metadata.
    pub require_certified: bool,
    pub existing: ExistingPasskeys,
    /// The health queue lists passkeys unused for longer (`None`: never).
    pub unused_after_days: Option<u32>,
    /// When this policy was saved: a dismissed "breaks the policy" flag shows again after a
    /// new policy is saved.
    pub saved_at: Option<DateTime<Utc>>,
}

impl Default for AuthenticatorPolicy {
    /// The permissive default: every model, synced passkeys allowed, nothing required.
    fn default() -> Self {
        Self {
            models: ModelRule::Any,
            aaguids: Vec::new(),
            allow_synced: true,
            require_certified: false,
            existing: ExistingPasskeys::Flag,
            unused_after_days: None,
            saved_at: None,
        }
    }
}

impl AuthenticatorPolicy {
    /// The stored JSON back. `{}` (a tenant that never saved one) is the permissive default.
    pub fn from_stored(tenant_id: Uuid, json: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| {
            Error::Internal(format!("tenant {tenant_id}: stored policy unreadable: {e}"))
        })
    }

    pub fn to_stored(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("serialising policy: {e}")))
    }

    /// Why this policy refuses a passkey with these facts, if it does.
    pub fn breach(&self, passkey: &PasskeyFacts) -> Option<Breach> {
        let listed = self.aaguids.binary_search(&passkey.aaguid).is_ok();
        match self.models {
            ModelRule::Allow if !listed => return Some(Breach::ModelNotAllowed),
            ModelRule::Block if listed => return Some(Breach::ModelBlocked),
            _ => {}
        }
        if !self.allow_synced && passkey.backup_eligible {
            return Some(Breach::Synced);
        }
        if self.require_certified && passkey.trust != Trust::Certified {
            return Some(Breach::NotCertified);
        }
        None
    }

    /// [`Self::breach`] as a condition on `authenticators` rows: true for the rows it refuses.
    /// `None` when it refuses none.
    pub fn breach_condition(&self) -> Option<Condition> {
        let mut any = Condition::any();
        let mut empty = true;
        match self.models {
            ModelRule::Any => {}
            ModelRule::Allow => {
                empty = false;
                any = any.add(if self.aaguids.is_empty() {
                    Expr::value(true)
                } else {
                    authenticator::Column::Aaguid.is_not_in(self.aaguids.clone())
                });
            }
            ModelRule::Block if !self.aaguids.is_empty() => {
                empty = false;
                any = any.add(authenticator::Column::Aaguid.is_in(self.aaguids.clone()));
            }
            ModelRule::Block => {}
        }
        if !self.allow_synced {
            empty = false;
            any = any.add(authenticator::Column::BackupEligible.eq(true));
        }
        if self.require_certified {
            empty = false;
            any = any.add(authenticator::Column::AttestationTrust.ne(Trust::Certified.as_str()));
        }
        (!empty).then_some(any)
    }
}

/// What the policy judges of a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasskeyFacts {
    pub aaguid: Uuid,
    pub backup_eligible: bool,
    pub trust: Trust,
}

impl PasskeyFacts {
    pub(crate) fn of(row: &authenticator::Model) -> Self {
        Self {
            aaguid: row.aaguid,
            backup_eligible: row.backup_eligible,
            trust: Trust::stored(&row.attestation_trust),
        }
    }
}

/// Which rule of the policy a passkey breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Breach {
    ModelNotAllowed,
    ModelBlocked,
    Synced,
    NotCertified,
}

impl Breach {
    /// The refusal shown to the user, naming the model when it is known.
    pub fn message(self, aaguid: Uuid) -> String {
        let model = aaguid::provider(aaguid).map(|p| p.name.as_str());
        match (self, model) {
            (Self::ModelNotAllowed | Self::ModelBlocked, Some(model)) => {
                format!("This service does not accept passkeys from {model}.")
            }
            (Self::ModelNotAllowed, None) => {
                "This service accepts passkeys only from the authenticators it lists; this one \
                 does not say which model it is, or is not listed."
                    .into()
            }
            (Self::ModelBlocked, None) => {
                "This service does not accept passkeys from this authenticator model.".into()
            }
            (Self::Synced, Some(model)) => format!(
                "This service accepts only device-bound passkeys; {model} syncs them to other devices."
            ),
            (Self::Synced, None) => "This service accepts only device-bound passkeys, not ones \
                                     synced to other devices."
                .into(),
            (Self::NotCertified, _) => "This service accepts only certified authenticators; this \
                                        one's attestation could not be verified."
                .into(),
        }
    }
}

/// What an operator (or a backend's dry run) submits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyInput {
    pub models: ModelRule,
    /// AAGUIDs, one per line or comma-separated (blank lines ignored).
    pub aaguids: Vec<String>,
    pub allow_synced: bool,
    pub require_certified: bool,
    pub existing: ExistingPasskeys,
    /// Blank for never.
    pub unused_after_days: Option<u32>,
}

impl From<&AuthenticatorPolicy> for PolicyInput {
    fn from(p: &AuthenticatorPolicy) -> Self {
        Self {
            models: p.models,
            aaguids: p.aaguids.iter().map(Uuid::to_string).collect(),
            allow_synced: p.allow_synced,
            require_certified: p.require_certified,
            existing: p.existing,
            unused_after_days: p.unused_after_days,
        }
    }
}

impl PolicyInput {
    /// Checks every field; the first refusal names its field (`aaguids`, `require_certified`,
    /// `unused_after_days`). `attestation` is the tenant's: certification needs `direct`.
    pub fn validate(&self, attestation: super::config::Attestation) -> Result<AuthenticatorPolicy> {
        if self.aaguids.len() > MAX_MODELS {
            return Err(Error::invalid(
                "aaguids",
                format!("List at most {MAX_MODELS} authenticator models."),
            ));
        }
        let mut aaguids = Vec::with_capacity(self.aaguids.len());
        for value in self
            .aaguids
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
        {
            let parsed = (value.len() <= 40)
                .then(|| Uuid::parse_str(value).ok())
                .flatten()
                .ok_or_else(|| {
                    let shown: String = value.chars().take(40).collect();
                    Error::invalid(
                        "aaguids",
                        format!(
                            "{shown}: an AAGUID is a UUID, like ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4."
                        ),
                    )
                })?;
            aaguids.push(parsed);
        }
        aaguids.sort();
        aaguids.dedup();
        if self.models == ModelRule::Allow && aaguids.is_empty() {
            return Err(Error::invalid(
                "aaguids",
                "An allow list with no models refuses every passkey: add the models to allow.",
            ));
        }
        if self.models == ModelRule::Any {
            aaguids.clear();
        }
        if self.require_certified && attestation != super::config::Attestation::Direct {
            return Err(Error::invalid(
                "require_certified",
                "Requiring a certified authenticator needs attestation \"direct\" (Ceremony \
                 options): without it there is nothing to verify.",
            ));
        }
        if let Some(days) = self.unused_after_days
            && !UNUSED_DAYS_RANGE.contains(&days)
        {
            return Err(Error::invalid(
                "unused_after_days",
                format!(
                    "Enter between {} and {} days, or leave it blank.",
                    UNUSED_DAYS_RANGE.start(),
                    UNUSED_DAYS_RANGE.end()
                ),
            ));
        }
        Ok(AuthenticatorPolicy {
            models: self.models,
            aaguids,
            allow_synced: self.allow_synced,
            require_certified: self.require_certified,
            existing: self.existing,
            unused_after_days: self.unused_after_days,
            saved_at: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::config::Attestation;

    fn input() -> PolicyInput {
        PolicyInput::from(&AuthenticatorPolicy::default())
    }

    #[test]
    fn the_stored_default_allows_everything() {
        let policy = AuthenticatorPolicy::from_stored(Uuid::nil(), "{}").ok();
        assert_eq!(policy, Some(AuthenticatorPolicy::default()));
        assert!(policy.is_some_and(|p| p.breach_condition().is_none()));
        let saved = AuthenticatorPolicy {
            models: ModelRule::Block,
            aaguids: vec![Uuid::from_u128(7)],
            allow_synced: false,
            ..AuthenticatorPolicy::default()
        };
        let json = saved.to_stored().unwrap_or_default();
        assert_eq!(
            AuthenticatorPolicy::from_stored(Uuid::nil(), &json).ok(),
            Some(saved)
        );
        assert!(AuthenticatorPolicy::from_stored(Uuid::nil(), "[").is_err());
    }

    #[test]
    fn refusals_name_their_field() {
        let field = |i: PolicyInput, a: Attestation| {
            i.validate(a)
                .err()
                .and_then(|e| e.field().map(str::to_owned))
        };
        let mut allow_none = input();
        allow_none.models = ModelRule::Allow;
        assert_eq!(
            field(allow_none, Attestation::None).as_deref(),
            Some("aaguids")
        );
        let mut garbage = input();
        garbage.models = ModelRule::Block;
        garbage.aaguids = vec!["x".repeat(10_000)];
        let refused = garbage.validate(Attestation::None).err();
        assert!(
            refused.as_ref().is_some_and(|e| e.to_string().len() < 200),
            "{refused:?}"
        );
        let mut too_many = input();
        too_many.aaguids = (0..=MAX_MODELS as u128)
            .map(|n| Uuid::from_u128(n).to_string())
            .collect();
        assert_eq!(
            field(too_many, Attestation::None).as_deref(),
            Some("aaguids")
        );
        let mut certified = input();
        certified.require_certified = true;
        assert_eq!(
            field(certified.clone(), Attestation::None).as_deref(),
            Some("require_certified")
        );
        assert!(certified.validate(Attestation::Direct).is_ok());
        for days in [0, 6, 3651] {
            let mut unused = input();
            unused.unused_after_days = Some(days);
            assert_eq!(
                field(unused, Attestation::None).as_deref(),
                Some("unused_after_days")
            );
        }
        let mut listed = input();
        listed.models = ModelRule::Block;
        listed.aaguids = vec![
            " EA9B8D66-4D01-1D21-3CE4-B6B48CB575D4 ".into(),
            String::new(),
            "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4".into(),
        ];
        assert_eq!(
            listed
                .validate(Attestation::None)
                .ok()
                .map(|p| p.aaguids.len()),
            Some(1)
        );
    }

    #[test]
    fn breaches() {
        let google = Uuid::parse_str("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4").unwrap_or_default();
        let key = PasskeyFacts {
            aaguid: Uuid::from_u128(42),
            backup_eligible: false,
            trust: Trust::None,
        };
        let synced = PasskeyFacts {
            aaguid: google,
            backup_eligible: true,
            trust: Trust::None,
        };
        let block = AuthenticatorPolicy {
            models: ModelRule::Block,
            aaguids: vec![google],
            ..AuthenticatorPolicy::default()
        };
        assert_eq!(block.breach(&synced), Some(Breach::ModelBlocked));
        assert_eq!(block.breach(&key), None);
        assert!(
            Breach::ModelBlocked
                .message(google)
                .contains("Google Password Manager")
        );
        let allow = AuthenticatorPolicy {
            models: ModelRule::Allow,
            ..block.clone()
        };
        assert_eq!(allow.breach(&key), Some(Breach::ModelNotAllowed));
        let device_bound = AuthenticatorPolicy {
            allow_synced: false,
            ..AuthenticatorPolicy::default()
        };
        assert_eq!(device_bound.breach(&synced), Some(Breach::Synced));
        assert_eq!(device_bound.breach(&key), None);
        let certified = AuthenticatorPolicy {
            require_certified: true,
            ..AuthenticatorPolicy::default()
        };
        assert_eq!(certified.breach(&key), Some(Breach::NotCertified));
        assert_eq!(
            certified.breach(&PasskeyFacts {
                trust: Trust::Certified,
                ..key
            }),
            None
        );
        assert!(AuthenticatorPolicy::default().breach_condition().is_none());
        assert!(device_bound.breach_condition().is_some());
    }
}
