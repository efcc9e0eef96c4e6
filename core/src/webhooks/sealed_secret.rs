//! Signing secrets at rest: sealed (AES-256-GCM, [`crate::webauthn::sealed`]) with the instances'
//! shared sealing key and bound to their tenant and endpoint, so a copied row or a database
//! dump without that key's row does not sign anything, and a secret moved to another endpoint
//! does not open. The key lives in the same database: this guards against partial leaks
//! (exports, a table's dump, logs), not against someone holding the whole database.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    Error, Result,
    webauthn::sealed::{self, Sealed},
};

const KIND: &str = "webhook-secret";

/// Sealed states carry an expiry; a secret's is the end of 9999 (it ends by rotation).
fn never() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or_default()
}

pub(crate) fn seal(
    key: &[u8; 32],
    tenant_id: Uuid,
    endpoint_id: Uuid,
    secret: &str,
) -> Result<String> {
    sealed::seal(
        key,
        tenant_id,
        KIND,
        &Sealed {
            id: endpoint_id,
            subject: None,
            expires_at: never(),
            state: secret.to_owned(),
        },
    )
}

/// The secret, if `stored` was sealed for this tenant's `endpoint_id`.
pub(crate) fn open(
    key: &[u8; 32],
    tenant_id: Uuid,
    endpoint_id: Uuid,
    stored: &str,
) -> Result<String> {
    sealed::open::<String>(key, tenant_id, KIND, stored)
        .filter(|s| s.id == endpoint_id)
        .map(|s| s.state)
        .ok_or_else(|| {
            Error::Internal(format!(
                "webhook endpoint {endpoint_id}: its secret does not open"
            ))
        })
}
