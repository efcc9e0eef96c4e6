//! Validation tokens (`lk_val_…`): a finished registration or sign-in hands the browser one; the
//! browser passes it to the tenant's backend, which validates it with its API key. Single-use
//! (one conditional update decides and marks), five minutes, bound to the tenant.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    sea_query::Query,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{EndUsers, report::CeremonyReport};
use crate::{
    Clock, Error, ErrorCode, Result,
    access::{Permission, TenantAccess},
    audit::{self, AuditEntry, RequestMeta},
    db::steps::{Chain, Link, Outcome, Row},
    entities::{authenticator, end_user, validation_token},
    secrets::{self, SecretKind},
    single_use::{Attempt, Claim},
};

/// How long a validation token lives (spec).
pub const VALIDATION_TOKEN_TTL_SECONDS: i64 = 300;

/// Which ceremony a validation token proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationKind {
    SignUp,
    SignIn,
}

impl ValidationKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::SignUp => "sign_up",
            Self::SignIn => "sign_in",
        }
    }
}

/// Why a token is not valid (spec `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidReason {
    /// Never issued, malformed, or issued for another tenant.
    Unknown,
    Expired,
    AlreadyUsed,
    /// The passkey that signed in (or registered) was revoked after the ceremony and before
    /// this validation: what the token would prove no longer holds.
    AuthenticatorRevoked,
}

/// What a valid token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    pub kind: ValidationKind,
    pub user_id: String,
    pub username: Option<String>,
    pub authenticator_id: Uuid,
    pub verified_at: DateTime<Utc>,
    /// What the ceremony saw; none for tokens issued before reports existed.
    pub report: Option<Box<CeremonyReport>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationOutcome {
    Valid(Validated),
    Invalid(InvalidReason),
}

/// Issues a token inside the ceremony's transaction; answers the secret (shown once).
pub(crate) async fn issue_in(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    tenant_id: Uuid,
    user_pk: Uuid,
    authenticator_id: Uuid,
    kind: ValidationKind,
    report: Option<&CeremonyReport>,
) -> Result<String> {
    let (row, secret) = new_token(clock, tenant_id, user_pk, authenticator_id, kind, report)?;
    validation_token::Entity::insert(row)
        .exec_without_returning(conn)
        .await?;
    Ok(secret)
}

/// A fresh token's row (the database keeps its hash) and its secret (shown once).
pub(crate) fn new_token(
    clock: &dyn Clock,
    tenant_id: Uuid,
    user_pk: Uuid,
    authenticator_id: Uuid,
    kind: ValidationKind,
    report: Option<&CeremonyReport>,
) -> Result<(validation_token::ActiveModel, String)> {
    let secret = secrets::issue(SecretKind::Validation)?;
    let now = clock.now();
    let row = validation_token::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(tenant_id),
        user_id: Set(user_pk),
        authenticator_id: Set(authenticator_id),
        kind: Set(kind.as_str().to_owned()),
        token_hash: Set(secret.hash),
        verified_at: Set(now),
        expires_at: Set(now + Duration::seconds(VALIDATION_TOKEN_TTL_SECONDS)),
        used_at: Set(None),
        report: Set(report.map(CeremonyReport::to_json).transpose()?),
    };
    Ok((row, secret.value))
}

impl EndUsers<'_> {
    /// Validates (and uses up) a token for the key's tenant. Of concurrent validations of one
    /// token exactly one answers valid. Every validation is audited.
    pub async fn validate_token(
        &self,
        access: &TenantAccess,
        presented: &str,
        meta: RequestMeta,
    ) -> Result<ValidationOutcome> {
        access.require(Permission::ValidateTokens)?;
        let tenant_id = access.tenant_id();
        if !secrets::is_well_formed(SecretKind::Validation, presented) {
            return Ok(ValidationOutcome::Invalid(InvalidReason::Unknown));
        }
        let hash = secrets::hash(presented);
        // What the token would prove, read before the write transaction so that the
        // transaction holds the writer for the decisive update and the audit event alone. The
        // token's user and kind never change; whether it is still unused is decided below.
        let found = self
            .steps
            .all_pairs(
                validation_token::Entity::find()
                    .find_also_related(end_user::Entity)
                    .filter(validation_token::Column::TokenHash.eq(&hash))
                    .filter(validation_token::Column::TenantId.eq(tenant_id))
                    .limit(1),
            )
            .await?
            .pop();
        let now = self.clock.now();
        let entry = AuditEntry::new(access.actor(), "validation_token.validated")
            .tenant(tenant_id)
            .meta(meta);
        let Some((row, user)) = found else {
            return self.refuse_validation(entry, Claim::Unknown).await;
        };
        let attempt = Attempt::<validation_token::Entity>::new(row.id)
            .scoped(validation_token::Column::TenantId.eq(tenant_id))
            // Revoked since the ceremony (on any instance): the token proves nothing.
            .provided(
                validation_token::Column::AuthenticatorId.in_subquery(
                    Query::select()
                        .column(authenticator::Column::Id)
                        .from(authenticator::Entity)
                        .and_where(authenticator::Column::Id.eq(row.authenticator_id))
                        .and_where(authenticator::Column::RevokedAt.is_null())
                        .to_owned(),
                ),
            );
        let user = user
            .filter(|u| u.tenant_id == tenant_id)
            .ok_or_else(|| Error::Internal("validation token without a user".into()))?;
        let kind = match row.kind.as_str() {
            "sign_up" => ValidationKind::SignUp,
            "sign_in" => ValidationKind::SignIn,
            other => {
                return Err(Error::Internal(format!(
                    "validation token {}: unknown kind {other}",
                    row.id
                )));
            }
        };
        let success = entry
            .clone()
            .target("user", user.external_id.clone())
            .details(serde_json::json!({
                "kind": kind,
                "authenticator_id": row.authenticator_id,
            }));
        // One write step: the conditional update decides and marks; the audit event is written
        // with it.
        let step = Chain::default()
            .link(Link::Update(Box::new(attempt.statement(now))))
            .effect(Row::of(&audit::row(self.clock, success)));
        match self.steps.run(step).await? {
            Outcome::Held => Ok(ValidationOutcome::Valid(Validated {
                kind,
                user_id: user.external_id,
                username: user.username,
                authenticator_id: row.authenticator_id,
                verified_at: row.verified_at,
                report: CeremonyReport::from_json(row.report.as_deref()).map(Box::new),
            })),
            Outcome::BrokeAt(_) => {
                let lost = attempt.why_lost(self.db, now).await?;
                self.refuse_validation(entry, lost).await
            }
        }
    }

    /// Audits a refused validation (its own write step: the update that lost wrote nothing) and
    /// answers why.
    async fn refuse_validation(
        &self,
        entry: AuditEntry,
        claim: Claim,
    ) -> Result<ValidationOutcome> {
        let (reason, code) = match claim {
            Claim::Expired => (InvalidReason::Expired, ErrorCode::TokenExpired),
            Claim::Used => (InvalidReason::AlreadyUsed, ErrorCode::TokenUsed),
            // Unused and unexpired, yet the update did not take it: its passkey was revoked.
            Claim::Withheld => (
                InvalidReason::AuthenticatorRevoked,
                ErrorCode::CredentialRevoked,
            ),
            Claim::Won(()) | Claim::Revoked | Claim::Unknown => {
                (InvalidReason::Unknown, ErrorCode::TokenInvalid)
            }
        };
        let refused = entry
            .failed(code)
            .details(serde_json::json!({ "reason": reason }));
        self.steps
            .run(Chain::default().effect(Row::of(&audit::row(self.clock, refused))))
            .await?;
        Ok(ValidationOutcome::Invalid(reason))
    }

    /// Housekeeping: forgets validation tokens that expired over an hour ago. Returns how many.
    pub async fn purge_expired_validation_tokens(&self) -> Result<u64> {
        let cutoff = self.clock.now() - Duration::hours(1);
        let deleted = validation_token::Entity::delete_many()
            .filter(validation_token::Column::ExpiresAt.lt(cutoff))
            .exec(self.writer)
            .await?;
        Ok(deleted.rows_affected)
    }
}
