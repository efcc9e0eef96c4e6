//! An operator's passkeys: registration plumbing shared with enrollment, listing, adding and
//! removing (never the last one).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, CredentialID, Passkey, PasskeyRegistration, RegisterPublicKeyCredential,
};

use super::{CeremonyOptions, Operators, ceremony_ttl};
use crate::{
    Clock, Error, ErrorCode, Result,
    abuse::AbuseLimits,
    access::OperatorIdentity,
    access::step_up::StepUp,
    audit::{self, AuditEntry, RequestMeta},
    cpu::off_runtime,
    entities::{operator, operator_passkey},
    error::on_unique,
    validate,
    webauthn::ceremonies::{self, CeremonyKind, NewCeremony},
    webauthn::{PortalRelyingParty, client_json, parse_credential, verification_error},
};

/// A passkey as the Security page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasskeyInfo {
    pub id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// How a credential id is stored and looked up: base64url without padding.
pub(super) fn credential_key(id: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// Creates options and stores the ceremony for registering a passkey of `operator_id`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn start_registration(
    db: &DatabaseConnection,
    clock: &dyn Clock,
    rp: &PortalRelyingParty,
    operator_id: Uuid,
    email: &str,
    display_name: &str,
    exclude: Vec<CredentialID>,
    token_id: Option<Uuid>,
    context: Option<serde_json::Value>,
) -> Result<CeremonyOptions> {
    let exclude = (!exclude.is_empty()).then_some(exclude);
    let (options, state) = rp
        .webauthn()
        .start_passkey_registration(operator_id, email, display_name, exclude)
        .map_err(|e| Error::Internal(format!("building registration options: {e}")))?;
    let mut public_key = client_json(&options.public_key)?;
    // Sign-in is username-less, so the passkey must be discoverable (a resident key).
    // webauthn-rs does not verify this property; it only affects what the browser creates.
    if let Some(selection) = public_key
        .get_mut("authenticatorSelection")
        .and_then(|s| s.as_object_mut())
    {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
    // Token-gated (setup, invitation) or signed in: not counted against a source.
    let ceremony_id = ceremonies::start(
        db,
        clock,
        &AbuseLimits::default(),
        NewCeremony {
            tenant_id: None,
            kind: CeremonyKind::PortalRegistration,
            subject: Some(operator_id.to_string()),
            token_id,
            state,
            context,
            ttl: ceremony_ttl(),
            source: None,
        },
    )
    .await?;
    Ok(CeremonyOptions {
        ceremony_id,
        public_key,
    })
}

pub(super) async fn verify_registration(
    rp: &PortalRelyingParty,
    credential: RegisterPublicKeyCredential,
    state: PasskeyRegistration,
) -> Result<Passkey> {
    let webauthn = rp.webauthn().clone();
    off_runtime(move || {
        webauthn
            .finish_passkey_registration(&credential, &state)
            .map_err(verification_error)
    })
    .await
}

pub(super) async fn insert_passkey(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    operator_id: Uuid,
    name: &str,
    passkey: &Passkey,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let stored = serde_json::to_string(passkey)
        .map_err(|e| Error::Internal(format!("serialising passkey: {e}")))?;
    operator_passkey::Entity::insert(operator_passkey::ActiveModel {
        id: Set(id),
        operator_id: Set(operator_id),
        credential_id: Set(credential_key(passkey.cred_id())),
        name: Set(name.to_owned()),
        passkey: Set(stored),
        created_at: Set(now),
        last_used_at: Set(None),
    })
    .exec_without_returning(conn)
    .await
    .map_err(on_unique(|| {
        Error::refused(
            ErrorCode::CredentialExists,
            "This passkey is already registered.",
        )
    }))?;
    Ok(id)
}

/// Records a verified assertion on the stored passkey: used now, and the passkey's new state
/// (signature counter, backup flags) when the authenticator changed it.
pub(super) async fn record_assertion(
    conn: &impl ConnectionTrait,
    stored: operator_passkey::Model,
    passkey: &Passkey,
    result: &AuthenticationResult,
    now: DateTime<Utc>,
) -> Result<()> {
    let mut row = stored.into_active_model();
    row.last_used_at = Set(Some(now));
    if result.needs_update() {
        row.passkey = Set(serde_json::to_string(passkey)
            .map_err(|e| Error::Internal(format!("serialising passkey: {e}")))?);
    }
    operator_passkey::Entity::update(row).exec(conn).await?;
    Ok(())
}

pub(super) fn decode_passkey(row: &operator_passkey::Model) -> Result<Passkey> {
    serde_json::from_str(&row.passkey)
        .map_err(|e| Error::Internal(format!("stored passkey {} unreadable: {e}", row.id)))
}

impl Operators<'_> {
    pub async fn passkeys(&self, operator: &OperatorIdentity) -> Result<Vec<PasskeyInfo>> {
        let rows = operator_passkey::Entity::find()
            .filter(operator_passkey::Column::OperatorId.eq(operator.id))
            .order_by_asc(operator_passkey::Column::CreatedAt)
            .all(self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| PasskeyInfo {
                id: r.id,
                name: r.name,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
            })
            .collect())
    }

    /// Starts registering one more passkey for the signed-in operator. Needs step-up, checked
    /// here rather than at the finish (see [`crate::access::step_up`]).
    pub async fn begin_add_passkey(&self, step_up: StepUp<'_>) -> Result<CeremonyOptions> {
        step_up.require()?;
        let operator = step_up.operator();
        let existing = operator_passkey::Entity::find()
            .filter(operator_passkey::Column::OperatorId.eq(operator.id))
            .all(self.db)
            .await?;
        let exclude = existing
            .iter()
            .map(decode_passkey)
            .map(|p| p.map(|p| p.cred_id().clone()))
            .collect::<Result<Vec<_>>>()?;
        start_registration(
            self.db,
            self.clock,
            self.rp,
            operator.id,
            &operator.email,
            &operator.display_name,
            exclude,
            None,
            None,
        )
        .await
    }

    pub async fn finish_add_passkey(
        &self,
        operator: &OperatorIdentity,
        ceremony_id: Uuid,
        credential_json: &str,
        name: &str,
        meta: RequestMeta,
    ) -> Result<PasskeyInfo> {
        let result = self
            .add_passkey(operator, ceremony_id, credential_json, name, &meta)
            .await;
        // A field error (the name) is checked before the ceremony is consumed: not an attempt.
        if result.as_ref().err().and_then(Error::field).is_none() {
            let entry = AuditEntry::new(operator.actor(), "passkey.added")
                .target("ceremony", ceremony_id.to_string())
                .meta(meta);
            audit::record_refusal(self.db, self.clock, &result, entry).await?;
        }
        result
    }

    async fn add_passkey(
        &self,
        operator: &OperatorIdentity,
        ceremony_id: Uuid,
        credential_json: &str,
        name: &str,
        meta: &RequestMeta,
    ) -> Result<PasskeyInfo> {
        // Checked before the ceremony is consumed, so a typo costs no new attempt.
        let name = validate::label("name", "passkey name", name, 100)?;
        let credential: RegisterPublicKeyCredential = parse_credential(credential_json)?;
        let consumed = ceremonies::consume::<PasskeyRegistration>(
            self.db,
            self.clock,
            ceremony_id,
            None,
            CeremonyKind::PortalRegistration,
        )
        .await?;
        if consumed.token_id.is_some() || consumed.subject != Some(operator.id.to_string()) {
            return Err(Error::refused(
                ErrorCode::CeremonyInvalid,
                "This attempt belongs to someone else. Start again.",
            ));
        }
        let passkey = verify_registration(self.rp, credential, consumed.state).await?;
        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        let id = insert_passkey(&txn, now, operator.id, &name, &passkey).await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(operator.actor(), "passkey.added")
                .target("operator_passkey", id.to_string())
                .details(serde_json::json!({ "name": name }))
                .meta(meta.clone()),
        )
        .await?;
        txn.commit().await?;
        Ok(PasskeyInfo {
            id,
            name,
            created_at: now,
            last_used_at: None,
        })
    }

    /// Removes one of the operator's own passkeys; never the last one.
    pub async fn remove_passkey(
        &self,
        operator: &OperatorIdentity,
        passkey_id: Uuid,
        meta: RequestMeta,
    ) -> Result<()> {
        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        // Writing the operator's row first takes its lock (a row lock on PostgreSQL, the write
        // lock on SQLite), so two concurrent removals cannot both see "two left".
        operator::Entity::update_many()
            .col_expr(operator::Column::UpdatedAt, Expr::value(now))
            .filter(operator::Column::Id.eq(operator.id))
            .exec(&txn)
            .await?;
        let owned = operator_passkey::Entity::find_by_id(passkey_id)
            .filter(operator_passkey::Column::OperatorId.eq(operator.id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let count = operator_passkey::Entity::find()
            .filter(operator_passkey::Column::OperatorId.eq(operator.id))
            .count(&txn)
            .await?;
        if count <= 1 {
            return Err(Error::refused(
                ErrorCode::InvalidRequest,
                "This is your only passkey. Add another one before removing it.",
            ));
        }
        operator_passkey::Entity::delete_by_id(owned.id)
            .exec(&txn)
            .await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(operator.actor(), "passkey.removed")
                .target("operator_passkey", owned.id.to_string())
                .details(serde_json::json!({ "name": owned.name }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }
}
