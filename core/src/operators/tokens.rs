//! Setup and invitation tokens: single-use links that let someone register an operator passkey.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr,
};
use uuid::Uuid;

use super::{Operators, expires, operator_count};
use crate::{
    Error, ErrorCode, Result,
    audit::{self, Actor, AuditEntry, RequestMeta},
    entities::{operator, operator_token},
    secrets::{self, SecretKind},
    step_up::StepUp,
    validate,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Creates the first operator, an instance admin; only while there is no operator.
    Setup,
    /// Creates the invited operator.
    Invitation,
}

impl TokenPurpose {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Invitation => "invitation",
        }
    }

    fn secret_kind(self) -> SecretKind {
        match self {
            Self::Setup => SecretKind::Setup,
            Self::Invitation => SecretKind::Invitation,
        }
    }

    /// The portal path that accepts this kind of token.
    pub fn path(self) -> &'static str {
        match self {
            Self::Setup => "/setup",
            Self::Invitation => "/invite",
        }
    }
}

/// Who is inviting.
#[derive(Debug, Clone, Copy)]
pub enum Inviter<'a> {
    Cli,
    /// A portal operator, who needs step-up (see [`crate::step_up`]).
    Operator(StepUp<'a>),
}

/// A token just issued. `token` is shown once.
#[derive(Clone)]
pub struct IssuedToken {
    pub token: String,
    pub purpose: TokenPurpose,
    /// The (normalised) address an invitation is bound to; `None` for setup.
    pub email: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("purpose", &self.purpose)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl IssuedToken {
    /// The link to hand out, under the portal's public URL.
    pub fn url(&self, public_url: &url::Url) -> String {
        let mut url = public_url.clone();
        url.set_path(self.purpose.path());
        url.query_pairs_mut()
            .clear()
            .append_pair("token", &self.token);
        url.to_string()
    }
}

/// What a valid, unused token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub id: Uuid,
    pub purpose: TokenPurpose,
    /// The invited address; `None` for setup (the first operator chooses).
    pub email: Option<String>,
    pub grants_instance_admin: bool,
    pub expires_at: DateTime<Utc>,
}

fn purpose_of(token: &str) -> Option<TokenPurpose> {
    [TokenPurpose::Setup, TokenPurpose::Invitation]
        .into_iter()
        .find(|p| secrets::is_well_formed(p.secret_kind(), token))
}

pub(super) fn invalid_token() -> Error {
    Error::refused(
        ErrorCode::TokenInvalid,
        "This link is not valid. Check that you copied all of it.",
    )
}

pub(super) fn used_token(purpose: TokenPurpose) -> Error {
    Error::refused(
        ErrorCode::TokenUsed,
        match purpose {
            TokenPurpose::Setup => {
                "This setup link has already been used. Sign in, or ask an instance admin for an invitation."
            }
            TokenPurpose::Invitation => {
                "This invitation has already been used. Sign in with your passkey."
            }
        },
    )
}

pub(super) fn expired_token(purpose: TokenPurpose) -> Error {
    Error::refused(
        ErrorCode::TokenExpired,
        match purpose {
            TokenPurpose::Setup => {
                "This setup link has expired. Restart Latchkey to log a new one."
            }
            TokenPurpose::Invitation => {
                "This invitation has expired. Ask an instance admin for a new one."
            }
        },
    )
}

impl Operators<'_> {
    /// On a database without operators: supersedes any earlier setup token and issues a new one
    /// (valid 24 h). `None` once an operator exists.
    pub async fn issue_setup_token(&self) -> Result<Option<IssuedToken>> {
        let txn = crate::db::begin_write(self.db).await?;
        if operator_count(&txn).await? > 0 {
            return Ok(None);
        }
        let now = self.clock.now();
        // Earlier links stop working: only the most recently logged one is valid.
        operator_token::Entity::update_many()
            .col_expr(operator_token::Column::ExpiresAt, Expr::value(now))
            .filter(operator_token::Column::Kind.eq(TokenPurpose::Setup.as_str()))
            .filter(operator_token::Column::UsedAt.is_null())
            .filter(operator_token::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?;
        let grant = Grant {
            instance_admin: true,
            ..Grant::default()
        };
        let issued = insert_token(&txn, now, TokenPurpose::Setup, grant).await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(Actor::System, "setup.token_issued")
                .target("operator_token", issued.1.to_string()),
        )
        .await?;
        txn.commit().await?;
        Ok(Some(issued.0))
    }

    /// Invites `email` to become an operator. From the portal only instance admins may invite.
    pub async fn invite(
        &self,
        inviter: Inviter<'_>,
        email: &str,
        instance_admin: bool,
        meta: RequestMeta,
    ) -> Result<IssuedToken> {
        let actor = match inviter {
            Inviter::Cli => Actor::Cli,
            Inviter::Operator(step_up) => {
                step_up.operator().require_instance_admin()?;
                step_up.operator().actor()
            }
        };
        let created_by = match inviter {
            Inviter::Operator(step_up) => Some(step_up.operator().id),
            Inviter::Cli => None,
        };
        let email = validate::email("email", email)?;
        if let Inviter::Operator(step_up) = inviter {
            step_up.require()?;
        }
        let txn = crate::db::begin_write(self.db).await?;
        let exists = operator::Entity::find()
            .filter(operator::Column::Email.eq(&email))
            .one(&txn)
            .await?
            .is_some();
        if exists {
            return Err(Error::invalid(
                "email",
                "An operator with this email address already exists.",
            ));
        }
        let now = self.clock.now();
        let grant = Grant {
            email: Some(email.clone()),
            instance_admin,
            created_by,
            tenant: None,
        };
        let (issued, token_id) = insert_token(&txn, now, TokenPurpose::Invitation, grant).await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(actor, "operator.invited")
                .target("operator_token", token_id.to_string())
                .details(serde_json::json!({ "email": email, "instance_admin": instance_admin }))
                .meta(meta),
        )
        .await?;
        txn.commit().await?;
        Ok(issued)
    }

    /// What `token` allows, or why it cannot be used (unknown, used, expired).
    pub async fn token_info(&self, token: &str) -> Result<TokenInfo> {
        let purpose = purpose_of(token).ok_or_else(invalid_token)?;
        let row = operator_token::Entity::find()
            .filter(operator_token::Column::TokenHash.eq(secrets::hash(token)))
            .filter(operator_token::Column::Kind.eq(purpose.as_str()))
            .one(self.db)
            .await?
            .ok_or_else(invalid_token)?;
        if row.used_at.is_some() {
            return Err(used_token(purpose));
        }
        if row.expires_at <= self.clock.now() {
            return Err(expired_token(purpose));
        }
        if purpose == TokenPurpose::Setup && operator_count(self.db).await? > 0 {
            return Err(used_token(purpose));
        }
        Ok(TokenInfo {
            id: row.id,
            purpose,
            email: row.email,
            grants_instance_admin: row.grants_instance_admin,
            expires_at: row.expires_at,
        })
    }
}

/// What a token grants beyond signing in: who may use it and what they become.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grant {
    pub email: Option<String>,
    pub instance_admin: bool,
    pub created_by: Option<Uuid>,
    /// Membership of a tenant, with a role, given on acceptance.
    pub tenant: Option<(Uuid, crate::authz::Role)>,
}

pub(crate) async fn insert_token(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    purpose: TokenPurpose,
    grant: Grant,
) -> Result<(IssuedToken, Uuid)> {
    let secret = secrets::issue(purpose.secret_kind())?;
    let id = Uuid::new_v4();
    let expires_at = expires(now);
    let bound_to = grant.email.clone();
    operator_token::Entity::insert(operator_token::ActiveModel {
        id: Set(id),
        kind: Set(purpose.as_str().to_owned()),
        token_hash: Set(secret.hash),
        token_prefix: Set(secret.display_prefix),
        email: Set(grant.email),
        grants_instance_admin: Set(grant.instance_admin),
        created_by: Set(grant.created_by),
        created_at: Set(now),
        expires_at: Set(expires_at),
        used_at: Set(None),
        used_by: Set(None),
        tenant_id: Set(grant.tenant.map(|(t, _)| t)),
        tenant_role: Set(grant.tenant.map(|(_, r)| r.as_str().to_owned())),
    })
    .exec_without_returning(conn)
    .await?;
    Ok((
        IssuedToken {
            token: secret.value,
            purpose,
            email: bound_to,
            expires_at,
        },
        id,
    ))
}

/// Marks the token used by `operator_id`, if it still is usable: one conditional update that
/// decides and marks. Answers whether this call won.
pub(super) async fn consume_token(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    token_id: Uuid,
    operator_id: Uuid,
) -> Result<bool> {
    let done = operator_token::Entity::update_many()
        .col_expr(operator_token::Column::UsedAt, Expr::value(now))
        .col_expr(operator_token::Column::UsedBy, Expr::value(operator_id))
        .filter(operator_token::Column::Id.eq(token_id))
        .filter(operator_token::Column::UsedAt.is_null())
        .filter(operator_token::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    Ok(done.rows_affected == 1)
}

/// Why a token could not be consumed (after [`consume_token`] lost). Only reads.
pub(super) async fn why_not_consumed(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    token_id: Uuid,
    purpose: TokenPurpose,
) -> Result<Error> {
    let row = operator_token::Entity::find_by_id(token_id)
        .one(conn)
        .await?;
    Ok(match row {
        Some(r) if r.used_at.is_none() && r.expires_at <= now => expired_token(purpose),
        Some(_) => used_token(purpose),
        None => invalid_token(),
    })
}
