//! Username-less sign-in with a discoverable passkey (button or conditional UI).

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;
use webauthn_rs::prelude::{DiscoverableAuthentication, PublicKeyCredential};

use super::{
    CeremonyOptions, Operators, ceremony_ttl, identity_of,
    passkeys::{credential_key, decode_passkey, record_assertion},
};
use crate::{
    Error, ErrorCode, Result,
    abuse::SourceKey,
    access::OperatorIdentity,
    audit::{self, Actor, AuditEntry, RequestMeta},
    cpu::off_runtime,
    entities::{operator, operator_passkey},
    webauthn::ceremonies::{self, CeremonyKind, NewCeremony},
    webauthn::{client_json, parse_credential, verification_error},
};

fn unknown_credential() -> Error {
    Error::refused(
        ErrorCode::CredentialUnknown,
        "This passkey is not registered for the portal.",
    )
}

/// What a sign-in attempt got to, for its refusal's audit.
#[derive(Default)]
struct Attempt {
    /// A live ceremony was used up: the refusal gets its own event.
    consumed: bool,
    /// The operator the authenticator named.
    claimed: Option<Uuid>,
}

impl Operators<'_> {
    /// Options for a discoverable-credential sign-in. The page decides whether to run them as a
    /// modal request (button) or a conditional one (autofill).
    pub async fn begin_sign_in(&self, meta: &RequestMeta) -> Result<CeremonyOptions> {
        let (options, state) = self
            .rp
            .webauthn()
            .start_discoverable_authentication()
            .map_err(|e| Error::Internal(format!("building sign-in options: {e}")))?;
        let public_key = client_json(&options.public_key)?;
        let ceremony_id = ceremonies::start(
            self.db,
            self.clock,
            &self.abuse.limits,
            NewCeremony::<DiscoverableAuthentication> {
                tenant_id: None,
                kind: CeremonyKind::PortalAuthentication,
                subject: None,
                token_id: None,
                state,
                context: None,
                ttl: ceremony_ttl(),
                source: SourceKey::of_request(meta),
            },
        )
        .await?;
        Ok(CeremonyOptions {
            ceremony_id,
            public_key,
        })
    }

    /// Verifies the assertion; answers the operator to sign in. Success and failure are audited.
    pub async fn finish_sign_in(
        &self,
        ceremony_id: Uuid,
        credential_json: &str,
        meta: RequestMeta,
    ) -> Result<OperatorIdentity> {
        let mut attempt = Attempt::default();
        let result = self
            .sign_in(ceremony_id, credential_json, &meta, &mut attempt)
            .await;
        let mut entry = AuditEntry::new(Actor::Anonymous, "operator.signed_in").meta(meta);
        if let Some(operator_id) = attempt.claimed {
            entry = entry.target("operator", operator_id.to_string());
        }
        self.record_anonymous_refusal(&result, attempt.consumed, entry)
            .await?;
        result
    }

    async fn sign_in(
        &self,
        ceremony_id: Uuid,
        credential_json: &str,
        meta: &RequestMeta,
        attempt: &mut Attempt,
    ) -> Result<OperatorIdentity> {
        let credential: PublicKeyCredential = parse_credential(credential_json)?;
        let consumed = ceremonies::consume::<DiscoverableAuthentication>(
            self.db,
            self.clock,
            ceremony_id,
            None,
            CeremonyKind::PortalAuthentication,
        )
        .await?;
        attempt.consumed = true;
        let (operator_id, credential_id) = self
            .rp
            .webauthn()
            .identify_discoverable_authentication(&credential)
            .map_err(|_| unknown_credential())?;
        attempt.claimed = Some(operator_id);
        let key = credential_key(credential_id);

        // The passkey must belong to the operator the authenticator names, who must be active.
        let stored = operator_passkey::Entity::find()
            .filter(operator_passkey::Column::CredentialId.eq(&key))
            .filter(operator_passkey::Column::OperatorId.eq(operator_id))
            .one(self.db)
            .await?
            .ok_or_else(unknown_credential)?;
        let account = operator::Entity::find_by_id(operator_id)
            .filter(operator::Column::DisabledAt.is_null())
            .one(self.db)
            .await?
            .ok_or_else(unknown_credential)?;
        let mut passkey = decode_passkey(&stored)?;

        let webauthn = self.rp.webauthn().clone();
        let state = consumed.state;
        let (result, passkey) = off_runtime(move || {
            let result = webauthn
                .finish_discoverable_authentication_v2(&credential, state, &passkey)
                .map_err(verification_error)?;
            passkey.update_credential(&result);
            Ok((result, passkey))
        })
        .await?;

        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        record_assertion(&txn, stored, &passkey, &result, now).await?;
        let identity = identity_of(account);
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(identity.actor(), "operator.signed_in")
                .target("operator", identity.id.to_string())
                .meta(meta.clone()),
        )
        .await?;
        txn.commit().await?;
        Ok(identity)
    }
}
