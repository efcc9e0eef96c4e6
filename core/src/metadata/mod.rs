//! FIDO Metadata Service (MDS3): the BLOB an instance admin imports, what it says of each
//! authenticator model, and the trust a registration draws from it.
//!
//! An import verifies the BLOB against the roots shipped in the binary ([`TrustRoots::fido`])
//! before anything is written, refuses a BLOB that is not newer than the current one (a replayed
//! BLOB must not undo a revocation), replaces the models in one transaction, and flags the active
//! passkeys of every model the BLOB refuses (the health queue's "metadata" reason), each with an
//! `authenticator.flagged` audit event in the tenant's log (which a `passkey.flagged` webhook
//! reports).

mod blob;

use std::collections::BTreeMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryOrder,
    Statement,
};
use uuid::Uuid;

pub use blob::{
    BlobError, ModelMetadata, REFUSING_STATUSES, TrustRoots, VerifiedBlob, status_label,
};

use crate::{
    Clock, Error, Result,
    access::{Actor, OperatorIdentity},
    audit::{self, AuditEntry, RequestMeta},
    cpu::off_runtime,
    entities::{metadata_blob, metadata_model},
};

/// The largest BLOB accepted (today's FIDO BLOB is a few MiB).
pub const MAX_BLOB_BYTES: usize = 32 * 1024 * 1024;

/// Who imports: an instance admin in the portal, or the host's command line.
#[derive(Debug, Clone, Copy)]
pub enum Importer<'a> {
    Operator(&'a OperatorIdentity),
    Cli,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub serial: u32,
    pub next_update: NaiveDate,
    pub models: usize,
    /// Active passkeys newly flagged because the BLOB refuses their model.
    pub flagged_passkeys: u64,
}

/// The current BLOB, as the instance page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobSummary {
    pub serial: i64,
    pub next_update: NaiveDate,
    pub models: i32,
    pub sha256: String,
    pub imported_at: DateTime<Utc>,
    pub imported_by: String,
    /// Past its `nextUpdate`: FIDO has published a newer BLOB, which may revoke models.
    pub stale: bool,
}

pub struct Metadata<'a> {
    db: &'a DatabaseConnection,
    clock: &'a dyn Clock,
    roots: &'a TrustRoots,
}

impl<'a> Metadata<'a> {
    pub(crate) fn new(
        db: &'a DatabaseConnection,
        clock: &'a dyn Clock,
        roots: &'a TrustRoots,
    ) -> Self {
        Self { db, clock, roots }
    }

    /// Verifies `text` and, if it verifies and is newer than the current BLOB, makes it current.
    /// A BLOB that is refused changes nothing.
    pub async fn import(
        &self,
        importer: Importer<'_>,
        text: String,
        meta: RequestMeta,
    ) -> Result<Imported> {
        let actor = match importer {
            Importer::Operator(operator) => {
                operator.require_instance_admin()?;
                operator.actor()
            }
            Importer::Cli => Actor::Cli,
        };
        if text.len() > MAX_BLOB_BYTES {
            return Err(refused(format!(
                "The file is larger than {} MiB: it is not a FIDO metadata BLOB.",
                MAX_BLOB_BYTES / (1024 * 1024)
            )));
        }
        let sha256 = crate::secrets::hex_sha256(text.as_bytes());
        let roots = self.roots.clone();
        let now = self.clock.now();
        let verified = off_runtime(move || {
            blob::verify(&text, &roots, now.into()).map_err(|e| refused(e.to_string()))
        })
        .await?;

        let txn = crate::db::begin_write(self.db).await?;
        // Two imports at once: the second waits, then sees the first's serial.
        crate::db::lock_named(&txn, "latchkey.metadata_import").await?;
        let current = metadata_blob::Entity::find()
            .order_by_desc(metadata_blob::Column::Serial)
            .one(&txn)
            .await?;
        if let Some(current) = current
            && i64::from(verified.serial) <= current.serial
        {
            return Err(refused(format!(
                "This BLOB (no. {}) is not newer than the one imported (no. {}).",
                verified.serial, current.serial
            )));
        }
        metadata_blob::Entity::insert(metadata_blob::ActiveModel {
            serial: Set(i64::from(verified.serial)),
            next_update: Set(verified.next_update),
            models: Set(i32::try_from(verified.models.len()).unwrap_or(i32::MAX)),
            sha256: Set(sha256.clone()),
            imported_at: Set(now),
            imported_by: Set(actor.label()),
        })
        .exec_without_returning(&txn)
        .await?;
        metadata_model::Entity::delete_many().exec(&txn).await?;
        let rows = verified
            .models
            .iter()
            .map(row_of)
            .collect::<Result<Vec<_>>>()?;
        crate::db::insert_all(&txn, rows).await?;
        let flagged = flag_refused_models(&txn, now).await?;
        let events = flagged
            .iter()
            .map(|passkey| audit::row(self.clock, passkey.audit_entry(&actor, verified.serial)))
            .collect();
        crate::db::insert_all(&txn, events).await?;
        let flagged = u64::try_from(flagged.len()).unwrap_or(u64::MAX);
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(actor, "metadata.imported")
                .target("metadata_blob", verified.serial.to_string())
                .details(serde_json::json!({
                    "serial": verified.serial,
                    "next_update": verified.next_update.to_string(),
                    "models": verified.models.len(),
                    "sha256": sha256,
                    "flagged_passkeys": flagged,
                }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(
            serial = verified.serial,
            models = verified.models.len(),
            flagged_passkeys = flagged,
            "FIDO metadata imported"
        );
        Ok(Imported {
            serial: verified.serial,
            next_update: verified.next_update,
            models: verified.models.len(),
            flagged_passkeys: flagged,
        })
    }

    /// The current BLOB, if one was imported.
    pub async fn current(&self) -> Result<Option<BlobSummary>> {
        let today = self.clock.now().date_naive();
        Ok(metadata_blob::Entity::find()
            .order_by_desc(metadata_blob::Column::Serial)
            .one(self.db)
            .await?
            .map(|b| BlobSummary {
                serial: b.serial,
                next_update: b.next_update,
                models: b.models,
                sha256: b.sha256,
                imported_at: b.imported_at,
                imported_by: b.imported_by,
                stale: today > b.next_update,
            }))
    }
}

fn refused(message: String) -> Error {
    Error::invalid("blob", format!("{message} Nothing was imported."))
}

fn row_of(model: &ModelMetadata) -> Result<metadata_model::ActiveModel> {
    let roots: Vec<String> = model
        .attestation_roots
        .iter()
        .map(|der| STANDARD.encode(der))
        .collect();
    Ok(metadata_model::ActiveModel {
        aaguid: Set(model.aaguid),
        description: Set(model.description.clone()),
        status: Set(model.status.clone()),
        certification: Set(model.certification.clone()),
        refused_status: Set(model.refused_status.clone()),
        attestation_roots: Set(serde_json::to_string(&roots)
            .map_err(|e| Error::Internal(format!("serialising roots: {e}")))?),
    })
}

/// A passkey an import flagged.
struct FlaggedPasskey {
    id: Uuid,
    tenant_id: Uuid,
    /// The tenant's own id for the user.
    user: String,
    name: String,
    /// The BLOB's status that refuses the model (e.g. `REVOKED`).
    status: String,
}

impl FlaggedPasskey {
    /// Recorded by the importer, in the passkey's tenant, about its user.
    fn audit_entry(&self, actor: &Actor, serial: u32) -> AuditEntry {
        AuditEntry::new(actor.clone(), "authenticator.flagged")
            .tenant(self.tenant_id)
            .target("user", self.user.clone())
            .details(serde_json::json!({
                "authenticator_id": self.id,
                "name": self.name,
                "reason": "metadata_downgraded",
                "status": self.status,
                "metadata_serial": serial,
            }))
    }
}

/// Flags the active passkeys of every refused model, unless already flagged with that status,
/// and answers them. One statement: a scan of the passkeys, whatever the number of refused
/// models; `RETURNING` (both databases) names exactly the rows it changed, with their user's own
/// id, so a passkey registered meanwhile is either flagged and reported or neither.
async fn flag_refused_models(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
) -> Result<Vec<FlaggedPasskey>> {
    let backend = db.get_database_backend();
    let at = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    let refused = "(SELECT m.refused_status FROM metadata_models m \
                   WHERE m.aaguid = authenticators.aaguid)";
    let sql = format!(
        "UPDATE authenticators SET metadata_flagged_at = {at}, metadata_status = {refused} \
         WHERE revoked_at IS NULL \
         AND aaguid IN (SELECT aaguid FROM metadata_models WHERE refused_status IS NOT NULL) \
         AND (metadata_status IS NULL OR metadata_status <> {refused}) \
         RETURNING id, tenant_id, name, metadata_status, \
         (SELECT u.external_id FROM end_users u WHERE u.id = authenticators.user_id) AS user_ref"
    );
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(backend, sql, [now.into()]))
        .await?;
    rows.into_iter()
        .map(|row| {
            Ok(FlaggedPasskey {
                id: row.try_get("", "id")?,
                tenant_id: row.try_get("", "tenant_id")?,
                user: row
                    .try_get::<Option<String>>("", "user_ref")?
                    .unwrap_or_default(),
                name: row.try_get("", "name")?,
                status: row
                    .try_get::<Option<String>>("", "metadata_status")?
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Whether any BLOB has been imported.
pub(crate) async fn imported(db: &impl ConnectionTrait) -> Result<bool> {
    Ok(metadata_blob::Entity::find().one(db).await?.is_some())
}

/// What the current metadata says about `aaguid`, if it lists the model.
pub(crate) async fn model(
    db: &impl ConnectionTrait,
    aaguid: Uuid,
) -> Result<Option<ModelMetadata>> {
    let Some(row) = metadata_model::Entity::find_by_id(aaguid).one(db).await? else {
        return Ok(None);
    };
    let roots: Vec<String> = serde_json::from_str(&row.attestation_roots)
        .map_err(|e| Error::Internal(format!("stored attestation roots: {e}")))?;
    let attestation_roots = roots
        .iter()
        .map(|r| STANDARD.decode(r))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Internal(format!("stored attestation roots: {e}")))?;
    Ok(Some(ModelMetadata {
        aaguid: row.aaguid,
        description: row.description,
        status: row.status,
        certification: row.certification,
        refused_status: row.refused_status,
        attestation_roots,
    }))
}

impl ModelMetadata {
    /// Why a tenant that requires certification refuses this model, if the metadata says so.
    pub(crate) fn refusal(&self) -> Option<String> {
        self.refused_status.as_deref().map(|status| {
            format!(
                "This service accepts only certified authenticators, and FIDO metadata reports \
                 {}: {}.",
                self.description,
                status_label(status)
            )
        })
    }

    /// What a certified passkey records of its model: level and description, as JSON.
    pub(crate) fn certification_record(&self) -> String {
        serde_json::json!({
            "level": self.certification,
            "description": self.description,
            "status": self.status,
        })
        .to_string()
    }

    /// The model's attestation roots as the trust list webauthn-rs verifies a registration
    /// against (tied to this AAGUID). `None` when the metadata lists no usable root.
    pub(crate) fn trust_list(&self) -> Option<webauthn_attestation_ca::AttestationCaList> {
        let mut builder = webauthn_attestation_ca::AttestationCaListBuilder::new();
        let mut any = false;
        for der in &self.attestation_roots {
            // A root that does not parse is skipped; the others still count.
            any |= builder
                .insert_device_der(der, self.aaguid, self.description.clone(), BTreeMap::new())
                .is_ok();
        }
        any.then(|| builder.build())
    }
}
