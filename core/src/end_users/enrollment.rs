//! Enrollment tokens (`lk_enr_…`): a tenant's backend (or an admin in the portal, for
//! support-assisted recovery) lets one browser register one passkey for one user.
//!
//! The scope rule: a user who already has an active authenticator can only enroll another with a
//! token carrying `add:authenticators`. It is checked when the token is redeemed (registration
//! options, and again inside the verify transaction), because the user may gain a passkey
//! between issue and use. Tokens are single-use (consumed in the transaction that stores the
//! credential), hashed at rest and expire.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{EndUsers, active_authenticators, find_user, user_id};
use crate::{
    Clock, Error, ErrorCode, Result,
    access::{Permission, TenantAccess},
    audit::{self, AuditEntry, RequestMeta},
    entities::{end_user, enrollment_token},
    secrets::{self, SecretKind},
    single_use::{self, Attempt, Claim},
    validate,
};

/// `ttl_seconds` bounds and default (spec).
pub const ENROLLMENT_TTL_RANGE: std::ops::RangeInclusive<i64> = 60..=3600;
pub const DEFAULT_ENROLLMENT_TTL_SECONDS: i64 = 600;

/// How long expired, unused tokens are kept before housekeeping forgets them (and records that
/// they expired).
const EXPIRED_TOKEN_GRACE: Duration = Duration::hours(24);

/// What an enrollment token allows beyond a user's first passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Register another passkey for a user who already has one.
    #[serde(rename = "add:authenticators")]
    AddAuthenticators,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AddAuthenticators => "add:authenticators",
        }
    }
}

/// A request for a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnrollmentRequest {
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub scopes: Vec<Scope>,
    /// Seconds; [`DEFAULT_ENROLLMENT_TTL_SECONDS`] when absent.
    pub ttl_seconds: Option<i64>,
}

/// A token just issued. `token` is shown once and exists nowhere else.
#[derive(Clone)]
pub struct IssuedEnrollmentToken {
    pub token: String,
    pub user_id: String,
    pub scopes: Vec<Scope>,
    pub expires_at: DateTime<Utc>,
    /// The user already has an active authenticator: only a token with `add:authenticators`
    /// will register another.
    pub has_authenticators: bool,
}

impl std::fmt::Debug for IssuedEnrollmentToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedEnrollmentToken")
            .field("user_id", &self.user_id)
            .field("scopes", &self.scopes)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// An active token as the portal lists it (never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentTokenInfo {
    pub id: Uuid,
    pub user_id: String,
    pub prefix: String,
    pub scopes: Vec<Scope>,
    pub issued_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A presented token that may be redeemed now, with its user.
pub(crate) struct Redeemable {
    pub token: enrollment_token::Model,
    pub user: end_user::Model,
}

fn scopes_of(row: &enrollment_token::Model) -> Result<Vec<Scope>> {
    serde_json::from_str(&row.scopes)
        .map_err(|_| Error::Internal(format!("enrollment token {}: scopes unreadable", row.id)))
}

fn optional_label(field: &str, what: &str, value: Option<&str>) -> Result<Option<String>> {
    value
        .map(|v| validate::label(field, what, v, 256))
        .transpose()
}

impl EndUsers<'_> {
    /// Issues an enrollment token for `external_id`, creating the user on first use (and
    /// updating its username / display name when given). Audited.
    pub async fn issue_enrollment_token(
        &self,
        access: &TenantAccess,
        external_id: &str,
        request: EnrollmentRequest,
        meta: RequestMeta,
    ) -> Result<IssuedEnrollmentToken> {
        let tenant_id = access.tenant_id();
        // Support may issue recovery tokens, which register only for a user with no passkey.
        let permission = if request.scopes.contains(&Scope::AddAuthenticators) {
            Permission::IssueEnrollmentTokens
        } else {
            Permission::IssueRecoveryTokens
        };
        access.require(permission)?;
        let actor = access.actor();
        let external_id = user_id(external_id)?;
        let username = optional_label("username", "username", request.username.as_deref())?;
        let display_name = optional_label(
            "display_name",
            "display name",
            request.display_name.as_deref(),
        )?;
        let ttl = request
            .ttl_seconds
            .unwrap_or(DEFAULT_ENROLLMENT_TTL_SECONDS);
        if !ENROLLMENT_TTL_RANGE.contains(&ttl) {
            return Err(Error::invalid(
                "ttl_seconds",
                format!(
                    "ttl_seconds must be between {} and {}.",
                    ENROLLMENT_TTL_RANGE.start(),
                    ENROLLMENT_TTL_RANGE.end()
                ),
            ));
        }
        let mut scopes = request.scopes;
        scopes.sort_by_key(|s| s.as_str());
        scopes.dedup();
        self.enabled_config(tenant_id).await?;

        let secret = secrets::issue(SecretKind::Enrollment)?;
        let now = self.clock.now();
        let expires_at = now + Duration::seconds(ttl);
        let txn = crate::db::begin_write(self.writer).await?;
        let (user, user_created) = upsert_user(
            &txn,
            self.clock,
            tenant_id,
            external_id,
            username,
            display_name,
        )
        .await?;
        let has_authenticators = active_authenticators(&txn, user.id).await? > 0;
        let token_id = Uuid::new_v4();
        enrollment_token::Entity::insert(enrollment_token::ActiveModel {
            id: Set(token_id),
            tenant_id: Set(tenant_id),
            user_id: Set(user.id),
            token_hash: Set(secret.hash.clone()),
            token_prefix: Set(secret.display_prefix.clone()),
            scopes: Set(serde_json::to_string(&scopes)
                .map_err(|e| Error::Internal(format!("serialising scopes: {e}")))?),
            issued_by: Set(actor.label()),
            created_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
            authenticator_id: Set(None),
            revoked_at: Set(None),
            revoked_by: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(actor, "enrollment_token.issued")
                .tenant(tenant_id)
                .target("user", external_id)
                .details(serde_json::json!({
                    "token_id": token_id,
                    "prefix": secret.display_prefix,
                    "scopes": scopes,
                    "expires_at": expires_at,
                    "has_authenticators": has_authenticators,
                    "user_created": user_created,
                }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(IssuedEnrollmentToken {
            token: secret.value,
            user_id: external_id.to_owned(),
            scopes,
            expires_at,
            has_authenticators,
        })
    }

    /// The tenant's tokens that can still be redeemed, newest first (support and up).
    pub async fn active_enrollment_tokens(
        &self,
        access: &TenantAccess,
    ) -> Result<Vec<EnrollmentTokenInfo>> {
        let tenant_id = access.tenant_id();
        access.require(Permission::IssueRecoveryTokens)?;
        let rows = enrollment_token::Entity::find()
            .filter(enrollment_token::Column::TenantId.eq(tenant_id))
            .filter(enrollment_token::Column::UsedAt.is_null())
            .filter(enrollment_token::Column::RevokedAt.is_null())
            .filter(enrollment_token::Column::ExpiresAt.gt(self.clock.now()))
            .order_by_desc(enrollment_token::Column::CreatedAt)
            .all(self.db)
            .await?;
        let users = end_user::Entity::find()
            .filter(end_user::Column::TenantId.eq(tenant_id))
            .filter(end_user::Column::Id.is_in(rows.iter().map(|t| t.user_id)))
            .all(self.db)
            .await?;
        rows.into_iter()
            .filter_map(|token| {
                let user = users.iter().find(|u| u.id == token.user_id)?;
                Some((token, user))
            })
            .map(|(token, user)| {
                Ok(EnrollmentTokenInfo {
                    id: token.id,
                    user_id: user.external_id.clone(),
                    prefix: token.token_prefix.clone(),
                    scopes: scopes_of(&token)?,
                    issued_by: token.issued_by,
                    created_at: token.created_at,
                    expires_at: token.expires_at,
                })
            })
            .collect()
    }

    /// Revokes an unused token (admins and owners): it can no longer be redeemed. Revoking a
    /// used, expired or revoked token changes nothing.
    pub async fn revoke_enrollment_token(
        &self,
        access: &TenantAccess,
        token_id: Uuid,
        meta: RequestMeta,
    ) -> Result<()> {
        let tenant_id = access.tenant_id();
        access.require(Permission::IssueRecoveryTokens)?;
        let audit_actor = access.actor();
        let txn = crate::db::begin_write(self.writer).await?;
        let row = enrollment_token::Entity::find_by_id(token_id)
            .filter(enrollment_token::Column::TenantId.eq(tenant_id))
            .one(&txn)
            .await?
            .ok_or(Error::NotFound)?;
        let revoked = enrollment_token::Entity::update_many()
            .col_expr(
                enrollment_token::Column::RevokedAt,
                Expr::value(self.clock.now()),
            )
            .col_expr(
                enrollment_token::Column::RevokedBy,
                Expr::value(audit_actor.label()),
            )
            .filter(enrollment_token::Column::Id.eq(token_id))
            .filter(enrollment_token::Column::TenantId.eq(tenant_id))
            .filter(enrollment_token::Column::UsedAt.is_null())
            .filter(enrollment_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if revoked.rows_affected == 1 {
            audit::record_in(
                &txn,
                self.clock,
                AuditEntry::new(audit_actor, "enrollment_token.revoked")
                    .tenant(tenant_id)
                    .target("enrollment_token", token_id.to_string())
                    .details(serde_json::json!({ "prefix": row.token_prefix }))
                    .meta(meta),
            )
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Housekeeping: forgets tokens that expired unused over a day ago, recording for each
    /// that it expired, and used or revoked ones past that age. Returns how many.
    pub async fn purge_expired_enrollment_tokens(&self) -> Result<u64> {
        let cutoff = self.clock.now() - EXPIRED_TOKEN_GRACE;
        let txn = crate::db::begin_write(self.writer).await?;
        let expired = enrollment_token::Entity::find()
            .filter(enrollment_token::Column::ExpiresAt.lt(cutoff))
            .all(&txn)
            .await?;
        for token in expired
            .iter()
            .filter(|t| t.used_at.is_none() && t.revoked_at.is_none())
        {
            audit::record_in(
                &txn,
                self.clock,
                AuditEntry::new(crate::audit::Actor::System, "enrollment_token.expired")
                    .tenant(token.tenant_id)
                    .target("enrollment_token", token.id.to_string())
                    .details(serde_json::json!({
                        "prefix": token.token_prefix,
                        "expires_at": token.expires_at,
                    })),
            )
            .await?;
        }
        let deleted = enrollment_token::Entity::delete_many()
            .filter(enrollment_token::Column::Id.is_in(expired.iter().map(|t| t.id)))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(deleted.rows_affected)
    }
}

/// Finds the user or creates it (and says whether it did: `user.created`); a concurrent
/// creation of the same user is absorbed by the unique (tenant, user ID) index, and only the
/// creation that inserted says so.
async fn upsert_user(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    tenant_id: Uuid,
    external_id: &str,
    username: Option<String>,
    display_name: Option<String>,
) -> Result<(end_user::Model, bool)> {
    let now = clock.now();
    let mut created = false;
    if let Some(existing) = find_user(conn, tenant_id, external_id).await? {
        let changed = (username.is_some() && username != existing.username)
            || (display_name.is_some() && display_name != existing.display_name);
        if !changed {
            return Ok((existing, false));
        }
        let username = username.or(existing.username);
        let display_name = display_name.or(existing.display_name);
        end_user::Entity::update_many()
            .col_expr(
                end_user::Column::UsernameKey,
                Expr::value(username.as_deref().map(str::to_lowercase)),
            )
            .col_expr(end_user::Column::Username, Expr::value(username))
            .col_expr(end_user::Column::DisplayName, Expr::value(display_name))
            .col_expr(end_user::Column::UpdatedAt, Expr::value(now))
            .filter(end_user::Column::Id.eq(existing.id))
            .exec(conn)
            .await?;
    } else {
        let inserted = end_user::Entity::insert(end_user::ActiveModel {
            id: Set(Uuid::new_v4()),
            tenant_id: Set(tenant_id),
            external_id: Set(external_id.to_owned()),
            external_id_key: Set(external_id.to_lowercase()),
            username_key: Set(username.as_deref().map(str::to_lowercase)),
            username: Set(username),
            display_name: Set(display_name),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict_do_nothing_on([end_user::Column::TenantId, end_user::Column::ExternalId])
        .exec_without_returning(conn)
        .await?;
        created = matches!(inserted, sea_orm::TryInsertResult::Inserted(1));
    }
    let user = find_user(conn, tenant_id, external_id)
        .await?
        .ok_or_else(|| Error::Internal("user vanished while being enrolled".into()))?;
    Ok((user, created))
}

/// When the scope rule is checked while looking at a presented token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScopeCheck {
    /// Now (registration options).
    Now,
    /// Later, inside the transaction that consumes the token (registration verify): checked
    /// earlier, a concurrent registration with the same token would make the losers see
    /// `scope_required` instead of the truth, `token_used`.
    InTransaction,
}

/// The presented enrollment token's row, if it is one (looked up by hash).
pub(crate) async fn find(
    conn: &impl ConnectionTrait,
    presented: &str,
) -> Result<Option<enrollment_token::Model>> {
    if !secrets::is_well_formed(SecretKind::Enrollment, presented) {
        return Ok(None);
    }
    Ok(enrollment_token::Entity::find()
        .filter(enrollment_token::Column::TokenHash.eq(secrets::hash(presented)))
        .one(conn)
        .await?)
}

/// Checks a presented enrollment token (found with [`find`]; read only): the token and its
/// user, or why it cannot be redeemed. With [`ScopeCheck::Now`], `scope_required` when the
/// user already has an active authenticator and the token lacks `add:authenticators`.
pub(crate) async fn redeemable(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    token: Option<enrollment_token::Model>,
    scope: ScopeCheck,
) -> Result<Redeemable> {
    let token = match single_use::standing::<enrollment_token::Entity>(token.as_ref(), clock.now())
    {
        Claim::Won(()) => token.ok_or_else(|| refusal(Claim::Unknown))?,
        lost => return Err(refusal(lost)),
    };
    let user = end_user::Entity::find_by_id(token.user_id)
        .filter(end_user::Column::TenantId.eq(token.tenant_id))
        .one(conn)
        .await?
        .ok_or_else(|| refusal(Claim::Unknown))?;
    if scope == ScopeCheck::Now {
        check_scope(conn, &token, user.id).await?;
    }
    Ok(Redeemable { token, user })
}

/// The scope rule, against the user's current authenticators.
pub(crate) async fn check_scope(
    conn: &impl ConnectionTrait,
    token: &enrollment_token::Model,
    user_pk: Uuid,
) -> Result<()> {
    // Registrations for one user take turns from here to their commit: under PostgreSQL's
    // READ COMMITTED, two transactions would otherwise both count zero passkeys and both insert.
    // Every registration locks (scoped ones too, so that an unscoped one cannot count before a
    // scoped one's insert commits). SQLite's writer is already one at a time (`BEGIN IMMEDIATE`).
    if conn.get_database_backend() == DbBackend::Postgres {
        end_user::Entity::find_by_id(user_pk)
            .lock_exclusive()
            .one(conn)
            .await?;
    }
    let scoped = scopes_of(token)?.contains(&Scope::AddAuthenticators);
    if !scoped && active_authenticators(conn, user_pk).await? > 0 {
        return Err(Error::refused(
            ErrorCode::ScopeRequired,
            "This user already has a passkey: adding another needs a token with the \
             add:authenticators scope.",
        ));
    }
    Ok(())
}

/// Consumes the token inside the registration's transaction: one conditional update decides
/// and marks, so of concurrent registrations with one token exactly one succeeds.
pub(crate) async fn consume_in(
    conn: &impl ConnectionTrait,
    clock: &dyn Clock,
    token_id: Uuid,
    tenant_id: Uuid,
    authenticator_id: Uuid,
) -> Result<()> {
    let claim = Attempt::<enrollment_token::Entity>::new(token_id)
        .scoped(enrollment_token::Column::TenantId.eq(tenant_id))
        .marking(
            enrollment_token::Column::AuthenticatorId,
            Expr::value(authenticator_id),
        )
        .claim(conn, clock.now())
        .await?;
    match claim {
        Claim::Won(()) => Ok(()),
        lost => Err(refusal(lost)),
    }
}

/// Why an enrollment token cannot be redeemed. A revoked token is as invalid as an unknown one.
fn refusal(claim: Claim) -> Error {
    match claim {
        Claim::Used => Error::refused(
            ErrorCode::TokenUsed,
            "The enrollment token has already been used.",
        ),
        Claim::Expired => {
            Error::refused(ErrorCode::TokenExpired, "The enrollment token has expired.")
        }
        Claim::Won(()) | Claim::Revoked | Claim::Unknown | Claim::Withheld => Error::refused(
            ErrorCode::TokenInvalid,
            "The enrollment token is not valid.",
        ),
    }
}
