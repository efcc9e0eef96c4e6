//! The audit log's hash chains: what is hashed, and how, so that anyone holding an export can
//! recompute it (`docs/audit.md`, `scripts/verify-audit-export.py`).
//!
//! Each scope has one chain: a tenant's events form the tenant's chain, the instance's own
//! events (those of no tenant) the `instance` chain. Link `n` of a chain is
//! `SHA-256(hex(link n-1) ‖ JCS(document))`, with 64 zeros before the first link, where the
//! document is the event exactly as a JSON Lines export shows it (without its `chain` member)
//! and JCS is RFC 8785's canonical JSON. Seals chain the same way over what each sealing run
//! advanced, so one hash (the newest seal's) commits to every chain at once.
//!
//! The document's shape is frozen: changing a field's name or format would break every chain
//! recorded before it. A new field needs a new chain version.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::AuditRecord;
use crate::secrets::hex;

/// The link before the first of every chain, and the seal before the first seal.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain of the instance's own events.
pub const INSTANCE_CHAIN: &str = "instance";

/// The chain an event of `tenant_id` belongs to.
pub fn chain_of(tenant_id: Option<Uuid>) -> String {
    tenant_id.map_or_else(|| INSTANCE_CHAIN.to_owned(), |t| t.to_string())
}

/// The event as hashed, and as a JSON Lines export shows it.
pub fn document(e: &AuditRecord) -> Value {
    json!({
        "id": e.id,
        "occurred_at": e.occurred_at.to_rfc3339(),
        "tenant_id": e.tenant_id,
        "actor": { "kind": e.actor_kind, "id": e.actor_id, "label": e.actor_label },
        "action": e.action,
        "target": e.target_kind.as_ref().map(|kind| json!({ "kind": kind, "id": e.target_id })),
        "outcome": e.outcome,
        "error_code": e.error_code,
        "ip": e.ip,
        "user_agent": e.user_agent,
        "details": e.details,
    })
}

/// The link that follows `prev` for `document`.
pub fn link_hash(prev: &str, document: &Value) -> String {
    let mut digest = Sha256::new();
    digest.update(prev.as_bytes());
    digest.update(canonical(document));
    hex(&digest.finalize())
}

/// RFC 8785 bytes of `value`. Every value here comes from `serde_json` and so serializes; an
/// empty result would only make the link fail to verify, never pass.
fn canonical(value: &Value) -> Vec<u8> {
    serde_json_canonicalizer::to_vec(value).unwrap_or_default()
}

/// A chain's newest link as a seal records it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Head {
    pub seq: i64,
    pub hash: String,
}

/// What a seal's hash covers.
pub fn seal_document(
    id: i64,
    sealed_at: &chrono::DateTime<chrono::Utc>,
    floor: &chrono::DateTime<chrono::Utc>,
    events: i64,
    heads: &Value,
) -> Value {
    json!({
        "seal": id,
        "sealed_at": sealed_at.to_rfc3339(),
        "floor": floor.to_rfc3339(),
        "events": events,
        "heads": heads,
    })
}
