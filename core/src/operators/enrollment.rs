//! Registering a new operator's first passkey, from a setup or invitation token.

use sea_orm::{ActiveValue::Set, EntityTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use webauthn_rs::prelude::{PasskeyRegistration, RegisterPublicKeyCredential};

use super::{
    CeremonyOptions, Operators, identity_of, operator_count,
    passkeys::{insert_passkey, start_registration, verify_registration},
};
use crate::{
    Error, ErrorCode, Result,
    access::OperatorIdentity,
    audit::{self, Actor, AuditEntry, RequestMeta},
    entities::{operator, operator_token, tenant},
    error::on_unique,
    invitations::{self, TokenPurpose},
    validate,
    webauthn::ceremonies::{self, CeremonyKind},
};

/// What the enrollment ceremony remembers between options and verification, so that the
/// browser cannot change who is being created.
#[derive(Debug, Serialize, Deserialize)]
struct EnrollmentContext {
    email: String,
    display_name: String,
}

/// The name given to an operator's first passkey.
const FIRST_PASSKEY_NAME: &str = "First passkey";

impl Operators<'_> {
    /// Starts registering the passkey of the operator a setup or invitation token creates.
    /// `email` is the form's value; for an invitation it must be the invited address.
    pub async fn begin_enrollment(
        &self,
        token: &str,
        email: &str,
        display_name: &str,
    ) -> Result<CeremonyOptions> {
        let info = self.token_info(token).await?;
        let email = match (&info.email, info.purpose) {
            (Some(invited), TokenPurpose::Invitation) => {
                let given = validate::email("email", email)?;
                if &given != invited {
                    return Err(Error::invalid(
                        "email",
                        format!("This invitation is for {invited}."),
                    ));
                }
                given
            }
            _ => validate::email("email", email)?,
        };
        let display_name = validate::label("display_name", "display name", display_name, 100)?;
        let operator_id = Uuid::new_v4();
        let context = serde_json::to_value(EnrollmentContext {
            email: email.clone(),
            display_name: display_name.clone(),
        })
        .map_err(|e| Error::Internal(e.to_string()))?;
        start_registration(
            self.db,
            self.clock,
            self.rp,
            operator_id,
            &email,
            &display_name,
            Vec::new(),
            Some(info.id),
            Some(context),
        )
        .await
    }

    /// Verifies the new passkey and, in one transaction, creates the operator, stores the
    /// passkey and consumes the token. Answers the new operator (to sign them in).
    pub async fn finish_enrollment(
        &self,
        ceremony_id: Uuid,
        credential_json: &str,
        meta: RequestMeta,
    ) -> Result<OperatorIdentity> {
        let mut consumed = false;
        let result = self
            .enroll(ceremony_id, credential_json, &meta, &mut consumed)
            .await;
        let entry = AuditEntry::new(Actor::Anonymous, "operator.enrollment")
            .target("ceremony", ceremony_id.to_string())
            .meta(meta);
        self.record_anonymous_refusal(&result, consumed, entry)
            .await?;
        result
    }

    async fn enroll(
        &self,
        ceremony_id: Uuid,
        credential_json: &str,
        meta: &RequestMeta,
        was_consumed: &mut bool,
    ) -> Result<OperatorIdentity> {
        let credential: RegisterPublicKeyCredential =
            crate::webauthn::parse_credential(credential_json)?;
        let consumed = ceremonies::consume::<PasskeyRegistration>(
            self.db,
            self.clock,
            ceremony_id,
            None,
            CeremonyKind::PortalRegistration,
        )
        .await?;
        *was_consumed = true;
        let (Some(token_id), Some(context), Some(subject)) = (
            consumed.token_id,
            consumed.context.clone(),
            consumed.subject.clone(),
        ) else {
            // A ceremony for adding a passkey to an existing operator cannot create one.
            return Err(Error::refused(
                ErrorCode::CeremonyInvalid,
                "This attempt does not belong to a setup or invitation. Start again.",
            ));
        };
        let context: EnrollmentContext = serde_json::from_value(context)
            .map_err(|e| Error::Internal(format!("stored enrollment context unreadable: {e}")))?;
        let operator_id: Uuid = subject
            .parse()
            .map_err(|_| Error::Internal("stored ceremony subject is not an id".into()))?;

        let passkey = verify_registration(self.rp, credential, consumed.state).await?;

        let txn = crate::db::begin_write(self.db).await?;
        let now = self.clock.now();
        let token = operator_token::Entity::find_by_id(token_id)
            .one(&txn)
            .await?
            .ok_or_else(invitations::invalid_token)?;
        let purpose = TokenPurpose::stored(&token.kind)?;
        invitations::consume_token(&txn, now, token_id, operator_id, purpose).await?;
        // Setup makes the first operator only; once anyone exists, the link is spent.
        if purpose == TokenPurpose::Setup && operator_count(&txn).await? > 0 {
            return Err(invitations::used_token(purpose));
        }
        let row = operator::ActiveModel {
            id: Set(operator_id),
            email: Set(context.email),
            display_name: Set(context.display_name),
            is_instance_admin: Set(token.grants_instance_admin),
            created_at: Set(now),
            updated_at: Set(now),
            disabled_at: Set(None),
        };
        let inserted = operator::Entity::insert(row)
            .exec_with_returning(&txn)
            .await
            .map_err(on_unique(|| {
                Error::invalid(
                    "email",
                    "An operator with this email address already exists.",
                )
            }))?;
        let identity = identity_of(inserted);
        let passkey_id =
            insert_passkey(&txn, now, operator_id, FIRST_PASSKEY_NAME, &passkey).await?;
        // An invitation from a tenant's Members page also makes them a member, if the tenant
        // still exists.
        let membership = match (token.tenant_id, token.tenant_role.as_deref()) {
            (Some(tenant_id), Some(role)) => Some((tenant_id, crate::access::Role::stored(role)?)),
            _ => None,
        };
        if let Some((tenant_id, role)) = membership
            && tenant::Entity::find_by_id(tenant_id)
                .one(&txn)
                .await?
                .is_some()
        {
            invitations::insert_member(&txn, tenant_id, operator_id, role, now).await?;
            audit::record_in(
                &txn,
                self.clock,
                AuditEntry::new(identity.actor(), "member.added")
                    .tenant(tenant_id)
                    .target("operator", operator_id.to_string())
                    .details(serde_json::json!({ "role": role.as_str(), "via": "invitation" }))
                    .meta(meta.clone()),
            )
            .await?;
        }
        let action = match purpose {
            TokenPurpose::Setup => "setup.completed",
            TokenPurpose::Invitation => "invitation.accepted",
        };
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(identity.actor(), action)
                .target("operator", operator_id.to_string())
                .details(serde_json::json!({ "instance_admin": identity.is_instance_admin }))
                .meta(meta.clone()),
        )
        .await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(identity.actor(), "passkey.added")
                .target("operator_passkey", passkey_id.to_string())
                .meta(meta.clone()),
        )
        .await?;
        txn.commit().await?;
        Ok(identity)
    }
}
