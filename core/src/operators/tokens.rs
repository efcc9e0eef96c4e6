//! Setup and invitation tokens: single-use links that let someone register an operator passkey.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use super::{Operators, operator_count};
use crate::{
    Error, Result,
    access::step_up::StepUp,
    audit::{self, Actor, AuditEntry, RequestMeta},
    entities::{operator, operator_token},
    invitations::{
        Grant, IssuedToken, TokenPurpose, expired_token, insert_token, invalid_token, purpose_of,
        used_token,
    },
    secrets, validate,
};

/// Who is inviting.
#[derive(Debug, Clone, Copy)]
pub enum Inviter<'a> {
    Cli,
    /// A portal operator, who needs step-up (see [`crate::access::step_up`]).
    Operator(StepUp<'a>),
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
