//! Device binding: a key of the user's device (a browser's non-extractable WebCrypto key, or an
//! app's own), presented with a ceremony and signed over it, so that a sign-in can say whether
//! it came from a device this user used before — which a synced passkey cannot say.
//!
//! The proof: the device's P-256 public key (SubjectPublicKeyInfo DER, base64url) and its ECDSA
//! SHA-256 signature over the exact `clientDataJSON` bytes of the WebAuthn response (base64url;
//! the 64-byte `r‖s` form WebCrypto produces, or ASN.1 DER as Android and iOS produce). The
//! client data holds the ceremony's challenge and the page's origin, and the WebAuthn check
//! proves both, so a signature cannot be replayed into another ceremony.
//!
//! A device is known by the SHA-256 of its public key, per user. A signature that does not verify
//! never binds or recognises the device: the report says `none` with the risk signal
//! `device_key_failed`. Revoking a device deletes its row (the audit log keeps the record), so
//! its next sign-in reports it as new.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use p256::ecdsa::{Signature, VerifyingKey, signature::Verifier};
use p256::pkcs8::DecodePublicKey;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::EndUsers;
use crate::{
    Error, Result,
    access::{Permission, TenantAccess},
    audit::{self, Actor, AuditEntry, RequestMeta},
    db::steps::Row,
    entities::{device, end_user},
};

/// A P-256 SubjectPublicKeyInfo is 91 bytes; anything much longer is not one.
const MAX_PUBLIC_KEY_BYTES: usize = 200;
/// The most devices a listing shows (most recently seen first): a user binds a handful; a list
/// grown by a script should not make support's page slow.
const MAX_LISTED: u64 = 200;
/// A DER ECDSA P-256 signature is at most 72 bytes.
const MAX_SIGNATURE_BYTES: usize = 80;

/// A device key as a Client API call presents it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProof {
    /// SubjectPublicKeyInfo DER of a P-256 key, base64url.
    pub public_key: String,
    /// ECDSA SHA-256 over the response's `clientDataJSON` bytes, base64url.
    pub signature: String,
}

/// A proof whose key parsed (bad input is refused before any of this).
pub(crate) struct PresentedDevice {
    key: VerifyingKey,
    signature: Option<Signature>,
    /// The public key as presented (base64url SPKI), stored with the device.
    public_key: String,
    /// SHA-256 of the SPKI DER, base64url: the device's key.
    pub(crate) key_hash: String,
}

impl PresentedDevice {
    /// Parses a proof. A key that is not a P-256 public key, or a signature that is no
    /// signature at all, is bad input (`invalid_request`, naming the member); a well-formed
    /// signature that does not verify is judged later ([`PresentedDevice::verifies`]).
    pub(crate) fn parse(proof: &DeviceProof) -> Result<Self> {
        let bad_key = || {
            Error::invalid(
                "device.public_key",
                "The device key must be a P-256 public key (SubjectPublicKeyInfo DER, base64url).",
            )
        };
        if proof.public_key.len() > MAX_PUBLIC_KEY_BYTES * 4 / 3 + 4 {
            return Err(bad_key());
        }
        let der = URL_SAFE_NO_PAD
            .decode(proof.public_key.trim_end_matches('='))
            .map_err(|_| bad_key())?;
        let key = VerifyingKey::from_public_key_der(&der).map_err(|_| bad_key())?;
        let bad_signature = || {
            Error::invalid(
                "device.signature",
                "The device signature must be an ECDSA signature (base64url).",
            )
        };
        if proof.signature.len() > MAX_SIGNATURE_BYTES * 4 / 3 + 4 {
            return Err(bad_signature());
        }
        let raw = URL_SAFE_NO_PAD
            .decode(proof.signature.trim_end_matches('='))
            .map_err(|_| bad_signature())?;
        if raw.is_empty() {
            return Err(bad_signature());
        }
        // Out-of-range scalars parse to nothing: a signature that cannot verify.
        let signature = match raw.len() {
            64 => Signature::from_slice(&raw).ok(),
            _ => Signature::from_der(&raw).ok(),
        };
        Ok(Self {
            key,
            signature,
            public_key: URL_SAFE_NO_PAD.encode(&der),
            key_hash: URL_SAFE_NO_PAD.encode(Sha256::digest(&der)),
        })
    }

    /// Whether the signature is the device key's over `client_data` (CPU work: run it off the
    /// async runtime with the rest of the ceremony's checks).
    pub(crate) fn verifies(&self, client_data: &[u8]) -> bool {
        self.signature
            .as_ref()
            .is_some_and(|s| self.key.verify(client_data, s).is_ok())
    }

    /// The device's id for this user: derived from tenant, user and key, so that concurrent
    /// first sightings of one device answer the same id.
    pub(crate) fn id_for(&self, tenant_id: Uuid, user_pk: Uuid) -> Uuid {
        let mut hash = Sha256::new();
        hash.update(b"latchkey device\0");
        hash.update(tenant_id.as_bytes());
        hash.update(user_pk.as_bytes());
        hash.update(self.key_hash.as_bytes());
        let digest = hash.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        // Shaped as a random (v4) UUID; derived, not random, on purpose (above).
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// The device row a verified ceremony writes: inserted when first seen, else its last use,
    /// user agent and count updated (the unique (tenant, user, key) index decides).
    pub(crate) fn upsert(
        &self,
        tenant_id: Uuid,
        user_pk: Uuid,
        user_agent: Option<&str>,
        now: DateTime<Utc>,
        counts_as_sign_in: bool,
    ) -> Row {
        let row = device::ActiveModel {
            id: Set(self.id_for(tenant_id, user_pk)),
            tenant_id: Set(tenant_id),
            user_id: Set(user_pk),
            key_hash: Set(self.key_hash.clone()),
            public_key: Set(self.public_key.clone()),
            user_agent: Set(user_agent.map(|ua| truncate(ua, 512))),
            first_seen_at: Set(now),
            last_seen_at: Set(now),
            sign_in_count: Set(i64::from(counts_as_sign_in)),
        };
        Row::of(&row).or_update(
            OnConflict::columns([
                device::Column::TenantId,
                device::Column::UserId,
                device::Column::KeyHash,
            ])
            .update_columns([device::Column::LastSeenAt, device::Column::UserAgent])
            .value(
                device::Column::SignInCount,
                Expr::col((device::Entity, device::Column::SignInCount))
                    .add(i64::from(counts_as_sign_in)),
            )
            .to_owned(),
        )
    }
}

fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// What the ceremony could say about the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// A bound device of this user.
    Known,
    /// A device key seen for the first time for this user (bound from now on).
    New,
    /// No device key sent, or one whose signature did not verify.
    None,
}

/// A user's bound device, as support and the Server API list it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceView {
    pub id: Uuid,
    pub user_agent: Option<String>,
    /// The user agent for people: "Chrome 156 on Linux".
    pub user_agent_summary: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub sign_in_count: i64,
}

impl From<device::Model> for DeviceView {
    fn from(d: device::Model) -> Self {
        Self {
            id: d.id,
            user_agent: d.user_agent,
            user_agent_summary: None,
            first_seen_at: d.first_seen_at,
            last_seen_at: d.last_seen_at,
            sign_in_count: d.sign_in_count,
        }
    }
}

/// The audit event of a device bound for the first time (by a registration or a sign-in).
pub(crate) fn bound_entry(
    user: &end_user::Model,
    device_id: Option<Uuid>,
    meta: &RequestMeta,
) -> AuditEntry {
    AuditEntry::new(
        Actor::EndUser {
            user_id: user.external_id.clone(),
        },
        "device.bound",
    )
    .tenant(user.tenant_id)
    .target("user", user.external_id.clone())
    .details(serde_json::json!({ "device_id": device_id }))
    .meta(meta.clone())
}

/// The user's bound device with this key, if any.
pub(crate) async fn find(
    conn: &impl ConnectionTrait,
    tenant_id: Uuid,
    user_pk: Uuid,
    key_hash: &str,
) -> Result<Option<device::Model>> {
    Ok(device::Entity::find()
        .filter(device::Column::TenantId.eq(tenant_id))
        .filter(device::Column::UserId.eq(user_pk))
        .filter(device::Column::KeyHash.eq(key_hash))
        .one(conn)
        .await?)
}

impl EndUsers<'_> {
    /// The user's bound devices, most recently seen first.
    pub async fn devices(
        &self,
        access: &TenantAccess,
        external_id: &str,
    ) -> Result<Vec<DeviceView>> {
        let (_, user) = self
            .user_of(access, external_id, Permission::ReadUsers)
            .await?;
        self.devices_of(&user).await
    }

    pub(crate) async fn devices_of(&self, user: &end_user::Model) -> Result<Vec<DeviceView>> {
        let mut devices: Vec<DeviceView> = device::Entity::find()
            .filter(device::Column::TenantId.eq(user.tenant_id))
            .filter(device::Column::UserId.eq(user.id))
            .order_by_desc(device::Column::LastSeenAt)
            .order_by_asc(device::Column::Id)
            .limit(MAX_LISTED)
            .all(self.db)
            .await?
            .into_iter()
            .map(DeviceView::from)
            .collect();
        let summaries =
            crate::user_agent::summaries(devices.iter().map(|d| d.user_agent.clone()).collect())
                .await?;
        for (device, summary) in devices.iter_mut().zip(summaries) {
            device.user_agent_summary = summary;
        }
        Ok(devices)
    }

    /// Forgets one of the user's bound devices: its next sign-in reports it as `new`. Audited
    /// (`device.revoked`, with the device as it was); a device already forgotten is `not_found`.
    pub async fn revoke_device(
        &self,
        access: &TenantAccess,
        external_id: &str,
        device_id: Uuid,
        meta: RequestMeta,
    ) -> Result<()> {
        let (actor, user) = self
            .user_of(access, external_id, Permission::RevokeCredentials)
            .await?;
        let txn = crate::db::begin_write(self.writer).await?;
        let row = device::Entity::find_by_id(device_id)
            .filter(device::Column::TenantId.eq(access.tenant_id()))
            .filter(device::Column::UserId.eq(user.id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        // Conditional on the row read: of concurrent revocations one deletes and audits.
        let deleted = device::Entity::delete_many()
            .filter(device::Column::Id.eq(row.id))
            .filter(device::Column::TenantId.eq(access.tenant_id()))
            .exec(&txn)
            .await?;
        if deleted.rows_affected != 1 {
            return Err(Error::NotFound);
        }
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(actor, "device.revoked")
                .tenant(access.tenant_id())
                .target("user", user.external_id.clone())
                .details(serde_json::json!({
                    "device_id": row.id,
                    "user_agent": row.user_agent,
                    "first_seen_at": row.first_seen_at,
                    "last_seen_at": row.last_seen_at,
                    "sign_in_count": row.sign_in_count,
                }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }
}
