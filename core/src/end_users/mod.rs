//! A tenant's end users and their passkeys: what the Server API (tenant backends), the Client
//! API (browsers) and the portal's support pages act on.
//!
//! - [`enrollment`]: enrollment tokens (`lk_enr_…`) and the scope rule;
//! - [`directory`]: users and their authenticators, revocation;
//! - [`validation`]: validation tokens (`lk_val_…`) proving a finished ceremony to the backend;
//! - [`registration`] and [`authentication`]: the WebAuthn ceremonies of the Client API;
//! - [`relying_party`]: each tenant's relying party, built from its configuration and cached.
//!
//! Every query filters by tenant; something of another tenant is `not_found`.

pub mod aaguid;
pub(crate) mod authentication;
#[cfg(test)]
mod credential_properties;
mod decoys;
mod devices;
mod directory;
mod enrollment;
pub mod health;
mod registration;
mod report;
mod search;
mod signals;
mod validation;

use std::sync::Arc;

use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::webauthn::relying_parties::RelyingParties;
pub use authentication::SignedIn;
pub use devices::{DeviceProof, DeviceStatus, DeviceView};
pub use directory::{AuthenticatorView, UserDetail, UserView};
pub use enrollment::{
    DEFAULT_ENROLLMENT_TTL_SECONDS, ENROLLMENT_TTL_RANGE, EnrollmentRequest, EnrollmentTokenInfo,
    IssuedEnrollmentToken, Scope,
};
pub use registration::Registered;
pub use report::{CeremonyReport, ReportedAuthenticator, ReportedDevice, RiskSignal};
pub use search::{
    DEFAULT_PAGE_SIZE, MATCH_COUNT_CAP, MatchCount, MatchedOn, UserPage, UserSearch, UserSummary,
};
pub use signals::{Signals, UserDetails};

pub use validation::{
    InvalidReason, VALIDATION_TOKEN_TTL_SECONDS, Validated, ValidationKind, ValidationOutcome,
};

use crate::{
    Clock, Error, ErrorCode, Result,
    abuse::{AbuseControls, SourceKey},
    entities::end_user,
    tenants::config::PasskeyConfig,
    tenants::config_cache::ConfigCache,
};

/// What a browser needs to run a ceremony: its id (sent back with the response) and the
/// `publicKey` member in WebAuthn L3 JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientCeremony {
    /// A stored ceremony's UUID (registration), or a sealed ceremony (sign-in): opaque to the
    /// browser either way.
    pub ceremony_id: String,
    #[serde(rename = "publicKey")]
    pub public_key: serde_json::Value,
}

/// The service over a tenant's end users.
pub struct EndUsers<'a> {
    db: &'a DatabaseConnection,
    /// Every write goes here (see [`crate::db::writer_for`]).
    writer: &'a DatabaseConnection,
    /// The hot write steps: a sign-in's verification, a token's validation.
    steps: &'a crate::db::steps::StepWriter,
    clock: &'a dyn Clock,
    configs: &'a ConfigCache,
    relying_parties: &'a Arc<RelyingParties>,
    keys: &'a crate::instance_keys::InstanceKeys,
    abuse: &'a AbuseControls,
}

impl<'a> EndUsers<'a> {
    // The services' borrowed handles, one each; only `Services::end_users` calls it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        db: &'a DatabaseConnection,
        writer: &'a DatabaseConnection,
        steps: &'a crate::db::steps::StepWriter,
        clock: &'a dyn Clock,
        configs: &'a ConfigCache,
        relying_parties: &'a Arc<RelyingParties>,
        keys: &'a crate::instance_keys::InstanceKeys,
        abuse: &'a AbuseControls,
    ) -> Self {
        Self {
            db,
            writer,
            steps,
            clock,
            configs,
            relying_parties,
            keys,
            abuse,
        }
    }

    /// Stores a tenant ceremony (it lives as long as the tenant's timeout) and answers what the
    /// browser needs.
    #[allow(clippy::too_many_arguments)]
    async fn start_ceremony<S: serde::Serialize>(
        &self,
        config: &PasskeyConfig,
        tenant_id: Uuid,
        kind: crate::webauthn::ceremonies::CeremonyKind,
        subject: Option<String>,
        token_id: Option<Uuid>,
        state: S,
        public_key: serde_json::Value,
        source: Option<SourceKey>,
        conditional: bool,
    ) -> Result<ClientCeremony> {
        let ceremony_id = crate::webauthn::ceremonies::start(
            self.writer,
            self.clock,
            &self.abuse.limits,
            crate::webauthn::ceremonies::NewCeremony {
                tenant_id: Some(tenant_id),
                kind,
                subject,
                token_id,
                state,
                context: Some(if conditional {
                    serde_json::json!({ "config_version": config.version, "conditional": true })
                } else {
                    serde_json::json!({ "config_version": config.version })
                }),
                ttl: chrono::Duration::seconds(i64::from(config.timeout_seconds)),
                source,
            },
        )
        .await?;
        Ok(ClientCeremony {
            ceremony_id: ceremony_id.to_string(),
            public_key,
        })
    }

    fn key_store(&self) -> crate::instance_keys::KeyStore<'_> {
        crate::instance_keys::KeyStore {
            db: self.db,
            writer: self.writer,
            clock: self.clock,
        }
    }

    /// Records a refused ceremony step in one transaction with the only writes a refusal makes
    /// (spec, Errors): the ceremony it presented is used up (one attempt per challenge) and the
    /// refusal audited — plus, for a passkey whose counter went backwards, the flag support sees.
    /// A refusal that presented no live ceremony is only counted (`crate::abuse`). Internal
    /// failures are not the caller's doing: the edge logs them, nothing is written.
    async fn record_refused_step<T>(
        &self,
        result: &Result<T>,
        ceremony: Option<crate::webauthn::ceremonies::CeremonyKey>,
        entry: crate::audit::AuditEntry,
        counter_regressed: Option<Uuid>,
    ) -> Result<()> {
        use crate::entities::authenticator;
        use sea_orm::sea_query::Expr;
        let Err(err) = result else {
            return Ok(());
        };
        if err.is_internal() {
            return Ok(());
        }
        let count = || {
            // Nothing real was presented: counted, not a row each (see `crate::abuse`).
            self.abuse
                .refusals
                .count(&entry, err.code(), self.clock.now());
        };
        if ceremony.is_none() && counter_regressed.is_none() {
            count();
            return Ok(());
        }
        let txn = crate::db::begin_write(self.writer).await?;
        if let Some(ceremony) = ceremony
            && !ceremony.use_up_in(&txn, self.clock).await?
            && counter_regressed.is_none()
        {
            // Used up already (a replay, or a concurrent attempt won): this refusal is no
            // ceremony's own, so it cannot be repeated into rows.
            txn.rollback().await?;
            count();
            return Ok(());
        }
        if let (Some(id), Some(tenant_id)) = (counter_regressed, entry.tenant_id) {
            authenticator::Entity::update_many()
                .col_expr(
                    authenticator::Column::CounterRegressedAt,
                    Expr::value(self.clock.now()),
                )
                .filter(authenticator::Column::Id.eq(id))
                .filter(authenticator::Column::TenantId.eq(tenant_id))
                .exec(&txn)
                .await?;
        }
        crate::audit::record_refusal(&txn, self.clock, result, entry).await?;
        txn.commit().await?;
        Ok(())
    }

    /// The tenant's configuration, refusing when passkeys are off (or the tenant is unknown:
    /// `not_found`).
    async fn enabled_config(&self, tenant_id: Uuid) -> Result<Arc<PasskeyConfig>> {
        let config = crate::tenants::Tenants::new(self.db, self.clock, self.configs)
            .passkey_config(tenant_id)
            .await?
            .ok_or(Error::NotFound)?;
        if !config.enabled || config.rp_id.is_none() {
            return Err(Error::refused(
                ErrorCode::PasskeysDisabled,
                "Passkeys are not enabled for this tenant.",
            ));
        }
        Ok(config)
    }
}

/// The tenant's own user identifier (`user_id`): 1–128 printable characters. Refused: control
/// characters, format characters (bidi overrides, zero-width joiners and spaces: they make two
/// IDs look alike on a support screen, or reorder what is shown), and line or paragraph
/// separators.
pub fn user_id(value: &str) -> Result<&str> {
    let count = value.chars().count();
    if count == 0 || count > 128 {
        return Err(Error::invalid(
            "user_id",
            "The user ID must be 1 to 128 characters long.",
        ));
    }
    if value.chars().any(|c| !printable(c)) {
        return Err(Error::invalid(
            "user_id",
            "The user ID must contain printable characters only.",
        ));
    }
    Ok(value)
}

fn printable(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    !matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// The user `external_id` of `tenant_id`, if known.
async fn find_user(
    conn: &impl ConnectionTrait,
    tenant_id: Uuid,
    external_id: &str,
) -> Result<Option<end_user::Model>> {
    Ok(end_user::Entity::find()
        .filter(end_user::Column::TenantId.eq(tenant_id))
        .filter(end_user::Column::ExternalId.eq(external_id))
        .one(conn)
        .await?)
}

/// How many of a user's authenticators are active (not revoked).
async fn active_authenticators(conn: &impl ConnectionTrait, user_pk: Uuid) -> Result<u64> {
    use crate::entities::authenticator;
    use sea_orm::PaginatorTrait;
    Ok(authenticator::Entity::find()
        .filter(authenticator::Column::UserId.eq(user_pk))
        .filter(authenticator::Column::RevokedAt.is_null())
        .count(conn)
        .await?)
}

/// Whether a web origin may call the Client API for a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginVerdict {
    Allowed,
    Refused,
    /// The path names a tenant that does not exist: `not_found`, before anything is counted or
    /// written.
    UnknownTenant,
}

/// What a Client API request is about, for deciding which web origins may call it.
#[derive(Debug, Clone, Copy)]
pub enum ClientScope<'a> {
    /// `/api/client/v1/tenants/{tenant_id}/…`
    Tenant(Uuid),
    /// Registration, authorised by an enrollment token (which names the tenant).
    Enrollment(Option<&'a str>),
    /// A preflight for registration: the token is not sent yet, so any tenant's origin will do
    /// (the actual request is checked against the token's tenant).
    AnyTenant,
}

impl EndUsers<'_> {
    /// Whether a browser page at `origin` may call the Client API for `scope` (CORS): exactly
    /// the web origins of the tenant. A token that names no tenant is judged like a preflight
    /// (any tenant with passkeys on), so that the browser can read the `token_invalid` answer.
    pub async fn client_origin(
        &self,
        scope: ClientScope<'_>,
        origin: Option<&str>,
    ) -> Result<OriginVerdict> {
        let tenants = crate::tenants::Tenants::new(self.db, self.clock, self.configs);
        let tenant_id = match scope {
            ClientScope::Tenant(id) => Some(id),
            ClientScope::Enrollment(token) => match token {
                Some(token) => enrollment::find(self.db, token).await?.map(|t| t.tenant_id),
                None => None,
            },
            ClientScope::AnyTenant => None,
        };
        // Whether passkeys are on is not CORS's business: a listed origin may read the
        // `passkeys_disabled` answer.
        // No origin (an app, a server): only whether the tenant exists is asked.
        let allows = |config: &PasskeyConfig| {
            origin.is_none_or(|origin| config.web_origins().any(|web| web == origin))
        };
        let verdict = |allowed: bool| {
            if allowed {
                OriginVerdict::Allowed
            } else {
                OriginVerdict::Refused
            }
        };
        match (scope, tenant_id) {
            (ClientScope::Tenant(id), _) => Ok(match tenants.passkey_config(id).await? {
                Some(config) => verdict(allows(&config)),
                None => OriginVerdict::UnknownTenant,
            }),
            (_, Some(id)) => Ok(verdict(
                tenants
                    .passkey_config(id)
                    .await?
                    .is_some_and(|c| allows(&c)),
            )),
            (_, None) => Ok(verdict(match origin {
                Some(origin) => tenants.web_origin_listed(origin).await?,
                None => true,
            })),
        }
    }
}
