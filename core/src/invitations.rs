//! Operator tokens (setup links and invitations) and the tenant memberships they grant: what the
//! operator accounts and the tenants' member lists share. A token is issued by the instance (setup,
//! an instance admin's invitation) or by a tenant's owner (an invitation that also makes the new
//! operator a member); it is used up, single use, when its holder registers their first passkey.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait, sea_query::Expr};
use uuid::Uuid;

use crate::{
    Error, ErrorCode, Result,
    access::Role,
    entities::{operator_token, tenant_member},
    secrets::{self, SecretKind},
    single_use::{Attempt, Claim},
};

/// How long setup and invitation links stay valid.
pub const TOKEN_TTL_HOURS: i64 = 24;

fn expires(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::hours(TOKEN_TTL_HOURS)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    /// Creates the first operator, an instance admin; only while there is no operator.
    Setup,
    /// Creates the invited operator.
    Invitation,
}

impl TokenPurpose {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Setup => "setup",
            Self::Invitation => "invitation",
        }
    }

    /// The purpose stored in a token row; anything else there is corruption, not a default.
    pub(crate) fn stored(kind: &str) -> Result<Self> {
        [Self::Setup, Self::Invitation]
            .into_iter()
            .find(|p| p.as_str() == kind)
            .ok_or_else(|| Error::Internal(format!("operator token of unknown kind {kind:?}")))
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

pub(crate) fn purpose_of(token: &str) -> Option<TokenPurpose> {
    [TokenPurpose::Setup, TokenPurpose::Invitation]
        .into_iter()
        .find(|p| secrets::is_well_formed(p.secret_kind(), token))
}

pub(crate) fn invalid_token() -> Error {
    Error::refused(
        ErrorCode::TokenInvalid,
        "This link is not valid. Check that you copied all of it.",
    )
}

pub(crate) fn used_token(purpose: TokenPurpose) -> Error {
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

pub(crate) fn expired_token(purpose: TokenPurpose) -> Error {
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

/// What a token grants beyond signing in: who may use it and what they become.
#[derive(Debug, Clone, Default)]
pub(crate) struct Grant {
    pub email: Option<String>,
    pub instance_admin: bool,
    pub created_by: Option<Uuid>,
    /// Membership of a tenant, with a role, given on acceptance.
    pub tenant: Option<(Uuid, Role)>,
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

/// Marks the token used by `operator_id` in `conn`'s transaction, if it still is usable (the
/// conditional update of [`crate::single_use`] decides), or says why it is not.
pub(crate) async fn consume_token(
    conn: &impl ConnectionTrait,
    now: DateTime<Utc>,
    token_id: Uuid,
    operator_id: Uuid,
    purpose: TokenPurpose,
) -> Result<()> {
    let claim = Attempt::<operator_token::Entity>::new(token_id)
        .marking(operator_token::Column::UsedBy, Expr::value(operator_id))
        .claim(conn, now)
        .await?;
    match claim {
        Claim::Won(()) => Ok(()),
        Claim::Expired => Err(expired_token(purpose)),
        Claim::Used => Err(used_token(purpose)),
        Claim::Revoked | Claim::Unknown | Claim::Withheld => Err(invalid_token()),
    }
}

/// Makes `operator_id` a member of `tenant_id` with `role`.
pub(crate) async fn insert_member(
    conn: &impl ConnectionTrait,
    tenant_id: Uuid,
    operator_id: Uuid,
    role: Role,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    tenant_member::Entity::insert(tenant_member::ActiveModel {
        tenant_id: Set(tenant_id),
        operator_id: Set(operator_id),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(conn)
    .await?;
    Ok(())
}
