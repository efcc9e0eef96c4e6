//! The step-up ceremony: a signed-in operator confirms with one of their own passkeys, user
//! verification required, before an action that needs it (see [`crate::access::step_up`]).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;
use webauthn_rs::prelude::{PasskeyAuthentication, PublicKeyCredential};

use super::{
    CeremonyOptions, Operators, ceremony_ttl,
    passkeys::{credential_key, decode_passkey, record_assertion},
};
use crate::{
    Error, ErrorCode, Result,
    abuse::AbuseLimits,
    access::OperatorIdentity,
    audit::{self, AuditEntry, RequestMeta},
    cpu::off_runtime,
    entities::operator_passkey,
    webauthn::ceremonies::{self, CeremonyKind, NewCeremony},
    webauthn::{client_json, parse_credential, verification_error},
};

impl Operators<'_> {
    /// Options for an assertion with one of `operator`'s passkeys (the browser offers only
    /// those).
    pub async fn begin_step_up(&self, operator: &OperatorIdentity) -> Result<CeremonyOptions> {
        let passkeys = operator_passkey::Entity::find()
            .filter(operator_passkey::Column::OperatorId.eq(operator.id))
            .all(self.db)
            .await?
            .iter()
            .map(decode_passkey)
            .collect::<Result<Vec<_>>>()?;
        if passkeys.is_empty() {
            return Err(Error::Internal(format!(
                "operator {} has no passkey to step up with",
                operator.id
            )));
        }
        let (options, state) = self
            .rp
            .webauthn()
            .start_passkey_authentication(&passkeys)
            .map_err(|e| Error::Internal(format!("building step-up options: {e}")))?;
        let public_key = client_json(&options.public_key)?;
        // Signed in: not counted against a source (like adding a passkey).
        let ceremony_id = ceremonies::start(
            self.db,
            self.clock,
            &AbuseLimits::default(),
            NewCeremony::<PasskeyAuthentication> {
                tenant_id: None,
                kind: CeremonyKind::PortalStepUp,
                subject: Some(operator.id.to_string()),
                token_id: None,
                state,
                context: None,
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

    /// Verifies the assertion; answers when it was verified, for the session to record. Success
    /// and refusal are audited (`operator.stepped_up`).
    pub async fn finish_step_up(
        &self,
        operator: &OperatorIdentity,
        ceremony_id: Uuid,
        credential_json: &str,
        meta: RequestMeta,
    ) -> Result<DateTime<Utc>> {
        let result = self
            .step_up(operator, ceremony_id, credential_json, &meta)
            .await;
        let entry = AuditEntry::new(operator.actor(), "operator.stepped_up")
            .target("operator", operator.id.to_string())
            .meta(meta);
        audit::record_refusal(self.db, self.clock, &result, entry).await?;
        result
    }

    async fn step_up(
        &self,
        operator: &OperatorIdentity,
        ceremony_id: Uuid,
        credential_json: &str,
        meta: &RequestMeta,
    ) -> Result<DateTime<Utc>> {
        let credential: PublicKeyCredential = parse_credential(credential_json)?;
        let consumed = ceremonies::consume::<PasskeyAuthentication>(
            self.db,
            self.clock,
            ceremony_id,
            None,
            CeremonyKind::PortalStepUp,
        )
        .await?;
        if consumed.subject != Some(operator.id.to_string()) {
            return Err(Error::refused(
                ErrorCode::CeremonyInvalid,
                "This attempt belongs to someone else. Start again.",
            ));
        }
        // The options allowed only this operator's passkeys, but the response names its own
        // credential: it must be one of theirs.
        let stored = operator_passkey::Entity::find()
            .filter(operator_passkey::Column::CredentialId.eq(credential_key(&credential.raw_id)))
            .filter(operator_passkey::Column::OperatorId.eq(operator.id))
            .one(self.db)
            .await?
            .ok_or_else(|| {
                Error::refused(
                    ErrorCode::CredentialUnknown,
                    "This passkey is not one of yours.",
                )
            })?;
        let mut passkey = decode_passkey(&stored)?;
        let webauthn = self.rp.webauthn().clone();
        let state = consumed.state;
        let (result, passkey) = off_runtime(move || {
            let result = webauthn
                .finish_passkey_authentication(&credential, &state)
                .map_err(verification_error)?;
            passkey.update_credential(&result);
            Ok((result, passkey))
        })
        .await?;

        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        record_assertion(&txn, stored, &passkey, &result, now).await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(operator.actor(), "operator.stepped_up")
                .target("operator", operator.id.to_string())
                .meta(meta.clone()),
        )
        .await?;
        txn.commit().await?;
        Ok(now)
    }
}
