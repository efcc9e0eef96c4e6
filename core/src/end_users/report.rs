//! What a ceremony saw, kept with its validation token and answered to the tenant's backend when
//! it validates the token: the passkey, the device, the passkey's history, and risk signals.
//! Recorded at the ceremony (not at validation), because that is what the token proves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::devices::DeviceStatus;
use crate::{
    Error, Result,
    entities::{authenticator, device},
};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CeremonyReport {
    pub authenticator: ReportedAuthenticator,
    pub device: ReportedDevice,
    /// Sign-ins only: whether this was the passkey's first sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sign_in: Option<bool>,
    /// Sign-ins only: the passkey's successful sign-ins, this one included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_in_count: Option<i64>,
    /// Sign-ins only: when the passkey was last used before this sign-in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    pub risk_signals: Vec<RiskSignal>,
}

/// The passkey as it was at the ceremony.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedAuthenticator {
    pub id: Uuid,
    pub name: String,
    pub provider_name: Option<String>,
    /// Backed up (a synced passkey) rather than bound to one authenticator.
    pub synced: bool,
    pub created_at: DateTime<Utc>,
}

impl ReportedAuthenticator {
    /// `synced` is the backup state the ceremony reported.
    pub(crate) fn of(row: &authenticator::Model, synced: bool) -> Self {
        Self {
            id: row.id,
            name: row.name.clone(),
            provider_name: row.provider_name.clone(),
            synced,
            created_at: row.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportedDevice {
    pub status: DeviceStatus,
    /// `known` and `new`: the device's id (Server API `…/devices`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    /// `known` and `new`: when this user first used it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen_at: Option<DateTime<Utc>>,
}

impl ReportedDevice {
    /// A device whose signature verified: `known` when the user has it bound (`bound`), else
    /// `new` under the id it is bound with now.
    pub(crate) fn sighted(bound: Option<&device::Model>, id: Uuid, now: DateTime<Utc>) -> Self {
        match bound {
            Some(row) => Self {
                status: DeviceStatus::Known,
                id: Some(row.id),
                first_seen_at: Some(row.first_seen_at),
            },
            None => Self {
                status: DeviceStatus::New,
                id: Some(id),
                first_seen_at: Some(now),
            },
        }
    }

    pub(crate) fn none() -> Self {
        Self {
            status: DeviceStatus::None,
            id: None,
            first_seen_at: None,
        }
    }
}

/// Something in this ceremony a backend may want to act on (step-up, a notification, a review).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskSignal {
    /// A device key this user never used before (sign-in).
    NewDevice,
    /// A device key was sent, but its signature did not verify.
    DeviceKeyFailed,
    /// The passkey's backup state differs from its last use (became synced, or stopped being).
    BackupStateChanged,
    /// The passkey was flagged for a signature counter that went backwards (a possible clone).
    CounterAnomaly,
    /// The authenticator did not verify the user (no PIN or biometrics).
    UserNotVerified,
    /// The tenant's authenticator policy would refuse this passkey (it flags rather than
    /// blocks existing passkeys).
    OutsidePolicy,
}

impl CeremonyReport {
    pub(crate) fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("ceremony report: {e}")))
    }

    /// A stored report; one that no longer reads (it never should) is left out, not an error:
    /// the token still proves the ceremony.
    pub(crate) fn from_json(text: Option<&str>) -> Option<Self> {
        let text = text?;
        match serde_json::from_str(text) {
            Ok(report) => Some(report),
            Err(e) => {
                tracing::warn!(error = %e, "a validation token's report does not read");
                None
            }
        }
    }
}
