//! Signing in to a tenant with a passkey (Client API): with a user ID (allowCredentials) or
//! without (discoverable credentials, conditional UI).
//!
//! options → the ceremony sealed into its ID with tenant and the claimed user
//! ([`crate::webauthn::sealed`]; nothing written). verify: open the sealed ceremony → find the
//! credential in the tenant (revoked ones refused) → verify off the runtime → one write step
//! ([`crate::db::steps`]): the ceremony's use recorded (its unique key decides), counter, backup
//! state and last use (only while still unrevoked), validation token, audit. A refusal uses the
//! ceremony up and audits the refusal.

use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::proto::{
    AllowCredentials, AuthenticationResult, AuthenticationState, Credential, PublicKeyCredential,
    UserVerificationPolicy,
};

use super::{
    ClientCeremony, EndUsers,
    devices::{self, DeviceProof, DeviceStatus, PresentedDevice},
    registration::credential_key,
    report::{CeremonyReport, ReportedAuthenticator, ReportedDevice, RiskSignal},
    signals::{self, Signals},
    user_id,
    validation::{self, ValidationKind},
};
use crate::{
    Error, ErrorCode, Result,
    audit::{self, Actor, AuditEntry, RequestMeta},
    cpu::off_runtime,
    db::steps::{Chain, Link, Outcome, Row},
    entities::{authenticator, end_user},
    tenants::policy::{ExistingPasskeys, PasskeyFacts},
    webauthn::ceremonies::{self, CeremonyKey, CeremonyKind},
    webauthn::sealed,
    webauthn::{
        client_json, parse_credential, relying_parties::TenantRelyingParty, verification_error,
    },
};

/// A credential the tenant has, but not for this sign-in (another user's, or not the named
/// user's): the browser is not told to forget it (see [`super::signals`]).
fn unknown_credential() -> Error {
    Error::UnknownCredential { to_tenant: false }
}

/// A sign-in that succeeded.
pub struct SignedIn {
    /// The validation token (`lk_val_…`) for the tenant's backend. Shown once.
    pub token: String,
    /// What the browser's password manager should be told.
    pub signals: Signals,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

/// What a sign-in attempt learned on its way, for the refusal's transaction and audit event.
#[derive(Default)]
struct Attempt {
    /// The ceremony presented, once read: a refusal uses it up.
    ceremony: Option<CeremonyKey>,
    /// The user the presented passkey belongs to.
    claimed: Option<String>,
    /// A passkey whose counter went backwards: flagged even though the attempt is refused.
    regressed: Option<Uuid>,
}

/// The verification step of a sign-in, CPU only (run off the async runtime): the assertion
/// checked against the ceremony's state and the stored credential — client data type,
/// challenge and origin, RP ID hash, flags, the ES256/ES384/RS256 signature, the counter.
pub(crate) fn check_assertion(
    rp: &TenantRelyingParty,
    response: &PublicKeyCredential,
    state: &AuthenticationState,
    credential: &Credential,
) -> std::result::Result<AuthenticationResult, WebauthnError> {
    rp.core
        .authenticate_single_credential(response, state, credential)
}

pub(crate) fn decode_credential(row: &authenticator::Model) -> Result<Credential> {
    serde_json::from_str(&row.credential)
        .map_err(|e| Error::Internal(format!("authenticator {}: unreadable: {e}", row.id)))
}

impl EndUsers<'_> {
    /// Sign-in options. With `user_id`, `allowCredentials` lists the user's active passkeys; a
    /// user without any (unknown, or every passkey revoked) gets decoys that look the same and
    /// that no passkey satisfies (see `decoys`: no user oracle). Without `user_id`, the options
    /// are for discoverable credentials.
    pub async fn begin_authentication(
        &self,
        tenant_id: Uuid,
        external_id: Option<&str>,
    ) -> Result<ClientCeremony> {
        let config = self.enabled_config(tenant_id).await?;
        let rp = self.relying_parties.for_config(tenant_id, &config)?;
        let external_id = external_id.map(user_id).transpose()?;
        let mut allowed = Vec::new();
        if let Some(external_id) = external_id {
            // The user's active passkeys in one query (an unknown user simply has none).
            let user = Query::select()
                .column(end_user::Column::Id)
                .from(end_user::Entity)
                .and_where(end_user::Column::TenantId.eq(tenant_id))
                .and_where(end_user::Column::ExternalId.eq(external_id))
                .to_owned();
            for row in self
                .steps
                .all(
                    authenticator::Entity::find()
                        .filter(authenticator::Column::TenantId.eq(tenant_id))
                        .filter(authenticator::Column::UserId.in_subquery(user))
                        .filter(authenticator::Column::RevokedAt.is_null()),
                )
                .await?
            {
                let credential = decode_credential(&row)?;
                allowed.push(AllowCredentials {
                    type_: "public-key".into(),
                    id: credential.cred_id.to_vec(),
                    transports: credential.transports,
                });
            }
        }
        // The tenant's policy, not each credential's registration policy, decides. The state
        // names no credential (it travels sealed in the ceremony ID, kept small): the passkey
        // that answers is looked up in the tenant at verification and must belong to the
        // sealed subject.
        let policy = rp.user_verification();
        let builder = rp
            .core
            .new_challenge_authenticate_builder(Vec::new(), Some(policy))
            .map_err(|e| Error::Internal(format!("sign-in options: {e}")))?;
        let (options, state) = rp
            .core
            .generate_challenge_authenticate(builder)
            .map_err(|e| Error::Internal(format!("sign-in options: {e}")))?;
        let mut public_key = client_json(&options.public_key)?;
        if let Some(external_id) = external_id {
            public_key["allowCredentials"] = if allowed.is_empty() {
                let key = self.keys.decoys(self.key_store()).await?;
                super::decoys::descriptors(&key, tenant_id, external_id).into()
            } else {
                client_json(&allowed)?
            };
        }
        let key = self.keys.sealing(self.key_store()).await?;
        let kind = CeremonyKind::TenantAuthentication;
        let ceremony_id = sealed::seal(
            &key,
            tenant_id,
            kind.as_str(),
            &sealed::Sealed {
                id: Uuid::new_v4(),
                subject: external_id.map(str::to_owned),
                expires_at: self.clock.now()
                    + chrono::Duration::seconds(i64::from(config.timeout_seconds)),
                state,
            },
        )?;
        Ok(ClientCeremony {
            ceremony_id,
            public_key,
        })
    }

    /// Verifies the assertion; answers a validation token (`lk_val_…`) for the tenant's
    /// backend. Success and refusal are audited; either way the step is one write transaction.
    pub async fn finish_authentication(
        &self,
        tenant_id: Uuid,
        ceremony_id: &str,
        credential_json: &str,
        device: Option<&DeviceProof>,
        meta: RequestMeta,
    ) -> Result<SignedIn> {
        // An unknown tenant (or one with passkeys off) is answered before anything is counted.
        self.enabled_config(tenant_id).await?;
        let mut attempt = Attempt::default();
        let result = self
            .authenticate(
                tenant_id,
                ceremony_id,
                credential_json,
                device,
                &meta,
                &mut attempt,
            )
            .await;
        let mut entry = AuditEntry::new(Actor::Anonymous, "user.signed_in")
            .tenant(tenant_id)
            .meta(meta);
        if let Some(user) = attempt.claimed {
            entry = entry.target("user", user);
        }
        self.record_refused_step(&result, attempt.ceremony, entry, attempt.regressed)
            .await?;
        result
    }

    async fn authenticate(
        &self,
        tenant_id: Uuid,
        ceremony_id: &str,
        credential_json: &str,
        device: Option<&DeviceProof>,
        meta: &RequestMeta,
        attempt: &mut Attempt,
    ) -> Result<SignedIn> {
        let response: PublicKeyCredential = parse_credential(credential_json)?;
        // Bad input is refused before the ceremony is opened (and so used up).
        let device = device.map(PresentedDevice::parse).transpose()?;
        let key = self.keys.sealing(self.key_store()).await?;
        let pending = ceremonies::open_sealed::<AuthenticationState>(
            &key,
            self.clock,
            ceremony_id,
            tenant_id,
            CeremonyKind::TenantAuthentication,
        )?;
        attempt.ceremony = Some(pending.key);
        let config = self.enabled_config(tenant_id).await?;
        let rp = self.relying_parties.for_config(tenant_id, &config)?;

        // The passkey, its user and the user's other passkeys (for the signals), read only while
        // the ceremony is unused: a replay is refused here, before any signature work, in the
        // same read. The user is found by the presented credential (`user_id = (…)`, a scalar
        // subquery: SQLite then walks the user's index, where `IN (…)` had it scan the tenant).
        let presented = credential_key(&response.raw_id);
        let owner = Expr::SubQuery(
            None,
            Box::new(
                Query::select()
                    .column(authenticator::Column::UserId)
                    .from(authenticator::Entity)
                    .and_where(authenticator::Column::TenantId.eq(tenant_id))
                    .and_where(authenticator::Column::CredentialId.eq(presented.as_str()))
                    .to_owned()
                    .into(),
            ),
        );
        let mut found = self
            .steps
            .all_pairs(
                authenticator::Entity::find()
                    .find_also_related(end_user::Entity)
                    .filter(authenticator::Column::TenantId.eq(tenant_id))
                    .filter(
                        Expr::col((authenticator::Entity, authenticator::Column::UserId)).eq(owner),
                    )
                    .filter(pending.key.unused())
                    .limit(signals::PASSKEYS_LIMIT + 1),
            )
            .await?;
        // Beyond the limit the list would be partial, and a partial list makes the password
        // manager hide the passkeys left out: then no list is signalled at all.
        let complete = found.len() <= signals::PASSKEYS_LIMIT as usize;
        let at = match found.iter().position(|(a, _)| a.credential_id == presented) {
            Some(at) => Some(at),
            // A user with more passkeys than were read: the presented one on its own.
            None if !complete => {
                found = self
                    .steps
                    .all_pairs(
                        authenticator::Entity::find()
                            .find_also_related(end_user::Entity)
                            .filter(authenticator::Column::TenantId.eq(tenant_id))
                            .filter(authenticator::Column::CredentialId.eq(presented.as_str()))
                            .filter(pending.key.unused())
                            .limit(1),
                    )
                    .await?;
                (!found.is_empty()).then_some(0)
            }
            None => None,
        };
        let Some(at) = at else {
            pending.key.refuse_if_used(self.steps).await?;
            // Nothing read: the tenant has no such credential, or the ceremony is used (which
            // `refuse_if_used` answered). Told to the browser only in the first case.
            return Err(Error::UnknownCredential { to_tenant: true });
        };
        let (stored, user) = found.swap_remove(at);
        let others = found;
        let user = user
            .filter(|u| u.tenant_id == tenant_id)
            .ok_or_else(unknown_credential)?;
        attempt.claimed = Some(user.external_id.clone());
        // A sign-in for a named user accepts only that user's passkeys; the user handle the
        // authenticator returns must be the one registered (it is required when no user was
        // named: that is how a discoverable credential names its user).
        if pending
            .subject
            .as_deref()
            .is_some_and(|s| s != user.external_id)
        {
            return Err(unknown_credential());
        }
        match response.get_user_unique_id() {
            Some(handle) if handle != user.id.as_bytes() => return Err(unknown_credential()),
            None if pending.subject.is_none() => return Err(unknown_credential()),
            _ => {}
        }
        if stored.revoked_at.is_some() {
            return Err(Error::refused(
                ErrorCode::CredentialRevoked,
                "This passkey has been revoked.",
            ));
        }
        let mut credential = decode_credential(&stored)?;
        let required = rp.user_verification() == UserVerificationPolicy::Required;
        // The user's device with the presented key, if already bound.
        let bound = match &device {
            Some(device) => devices::find(self.db, tenant_id, user.id, &device.key_hash).await?,
            None => None,
        };
        let state = pending.state;
        let verifier = rp.clone();
        let checked = credential.clone();
        let (verified, device) = off_runtime(move || {
            let verified = check_assertion(&verifier, &response, &state, &checked);
            // The device's signature, over the client data the assertion vouches for.
            let device = device.map(|d| {
                let ok = d.verifies(response.response.client_data_json.as_ref());
                (d, ok)
            });
            Ok((verified, device))
        })
        .await?;
        let result = match verified {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                // Flagged for support even though the attempt is refused: a cloned
                // authenticator is exactly what they need to see.
                attempt.regressed = Some(stored.id);
                return Err(verification_error(
                    WebauthnError::CredentialPossibleCompromise,
                ));
            }
            Err(err) => return Err(verification_error(err)),
        };
        if required && !result.user_verified() {
            return Err(verification_error(WebauthnError::UserNotVerified));
        }
        // A passkey registered before a policy it breaks: refused only when the policy says so
        // (otherwise it signs in and the health queue lists it). Judged after the signature, so
        // only the passkey's holder learns it.
        let breach = config.policy.breach(&PasskeyFacts::of(&stored));
        if config.policy.existing == ExistingPasskeys::Block
            && let Some(breach) = &breach
        {
            return Err(Error::refused(
                ErrorCode::AuthenticatorNotAllowed,
                breach.message(stored.aaguid),
            ));
        }
        let outside_policy = breach.is_some();
        credential.counter = result.counter();
        credential.backup_state = result.backup_state();
        credential.backup_eligible = result.backup_eligible();

        let now = self.clock.now();
        let reported_device = match &device {
            Some((d, true)) => {
                ReportedDevice::sighted(bound.as_ref(), d.id_for(tenant_id, user.id), now)
            }
            _ => ReportedDevice::none(),
        };
        let risk_signals = [
            (reported_device.status == DeviceStatus::New).then_some(RiskSignal::NewDevice),
            matches!(device, Some((_, false))).then_some(RiskSignal::DeviceKeyFailed),
            (result.backup_state() != stored.backup_state)
                .then_some(RiskSignal::BackupStateChanged),
            stored
                .counter_regressed_at
                .is_some()
                .then_some(RiskSignal::CounterAnomaly),
            (!result.user_verified()).then_some(RiskSignal::UserNotVerified),
            outside_policy.then_some(RiskSignal::OutsidePolicy),
        ]
        .into_iter()
        .flatten()
        .collect();
        let report = CeremonyReport {
            authenticator: ReportedAuthenticator::of(&stored, result.backup_state()),
            first_sign_in: Some(stored.last_used_at.is_none() && stored.sign_in_count == 0),
            sign_in_count: Some(stored.sign_in_count + 1),
            last_used_at: stored.last_used_at,
            device: reported_device,
            risk_signals,
        };
        let mut update = authenticator::Entity::update_many();
        if result.backup_state() != stored.backup_state {
            // Synced, or no longer: the health queue shows when.
            update = update.col_expr(
                authenticator::Column::BackupStateChangedAt,
                Expr::value(now),
            );
        }
        let update = update
            .col_expr(
                authenticator::Column::SignCount,
                Expr::value(i64::from(result.counter())),
            )
            .col_expr(
                authenticator::Column::BackupState,
                Expr::value(result.backup_state()),
            )
            .col_expr(authenticator::Column::LastUsedAt, Expr::value(now))
            .col_expr(
                authenticator::Column::SignInCount,
                Expr::col(authenticator::Column::SignInCount).add(1),
            )
            .col_expr(
                authenticator::Column::Credential,
                Expr::value(
                    serde_json::to_string(&credential)
                        .map_err(|e| Error::Internal(format!("serialising credential: {e}")))?,
                ),
            )
            .filter(authenticator::Column::Id.eq(stored.id))
            .filter(authenticator::Column::TenantId.eq(tenant_id))
            // Revoked meanwhile (on any instance): refused, nothing written.
            .filter(authenticator::Column::RevokedAt.is_null())
            // The counter only moves forward. It was checked against the value read before
            // verifying, but another assertion of the same passkey may have committed a higher
            // one since (two sign-ins verified at once commit in either order).
            .filter(counter_moves_forward(result.counter()))
            .into_query();
        let (token_row, token) = validation::new_token(
            self.clock,
            tenant_id,
            user.id,
            stored.id,
            ValidationKind::SignIn,
            Some(&report),
        )?;
        let entry = AuditEntry::new(
            Actor::EndUser {
                user_id: user.external_id.clone(),
            },
            "user.signed_in",
        )
        .tenant(tenant_id)
        .target("user", user.external_id.clone())
        .details(serde_json::json!({
            "authenticator_id": stored.id,
            "device": report.device,
            "risk_signals": report.risk_signals,
        }))
        .meta(meta.clone());
        // One write step: the ceremony is used up by the write that records its success, so of
        // concurrent verifications of one response one commits; the others are refused.
        let mut step = Chain::default()
            .link(pending.key.consume_link(self.clock)?)
            .link(Link::Update(Box::new(update)))
            .effect(Row::of(&token_row))
            .effect(Row::of(&audit::row(self.clock, entry)));
        if result.backup_state() != stored.backup_state {
            // The health queue's "backup state changed": rare, and worth a `passkey.flagged`.
            step = step.effect(Row::of(&audit::row(
                self.clock,
                AuditEntry::new(Actor::System, "authenticator.flagged")
                    .tenant(tenant_id)
                    .target("user", user.external_id.clone())
                    .details(serde_json::json!({
                        "authenticator_id": stored.id,
                        "name": stored.name,
                        "reason": "backup_state_changed",
                        "status": if result.backup_state() { "backed_up" } else { "not_backed_up" },
                    })),
            )));
        }
        if let Some((device, true)) = &device {
            step = step.effect(device.upsert(tenant_id, user.id, meta.user_agent(), now, true));
            if report.device.status == DeviceStatus::New {
                step = step.effect(Row::of(&audit::row(
                    self.clock,
                    devices::bound_entry(&user, report.device.id, meta),
                )));
            }
        }
        match self.steps.run(step).await? {
            Outcome::Held => Ok(SignedIn {
                token,
                signals: Signals::after_ceremony(
                    rp.rp_id(),
                    &user,
                    complete.then(|| others.iter().map(|(a, _)| a).chain([&stored])),
                    Some(stored.last_used_at.unwrap_or(stored.created_at)),
                ),
            }),
            Outcome::BrokeAt(0) => Err(pending.key.why_not_consumed(self.db, self.clock).await?),
            // The ceremony is used up (a refused attempt uses its challenge), nothing else.
            Outcome::BrokeAt(_) => Err(self.why_not_updated(stored.id, attempt).await?),
        }
    }
}

/// The stored counter may be replaced by `counter`: a larger one, or zero by an authenticator
/// that keeps no counter (and never did: webauthn-rs refuses zero after a non-zero counter).
fn counter_moves_forward(counter: u32) -> sea_orm::Condition {
    let column = authenticator::Column::SignCount;
    if counter == 0 {
        sea_orm::Condition::all().add(column.eq(0))
    } else {
        sea_orm::Condition::all().add(column.lt(i64::from(counter)))
    }
}

impl EndUsers<'_> {
    /// Why a verified assertion's update matched no row: the passkey was revoked meanwhile, or
    /// a concurrent assertion committed a counter at least as high (refused and flagged like any
    /// counter regression: the assertion is older than one already accepted).
    async fn why_not_updated(
        &self,
        authenticator_id: Uuid,
        attempt: &mut Attempt,
    ) -> Result<Error> {
        let now = authenticator::Entity::find_by_id(authenticator_id)
            .one(self.db)
            .await?;
        Ok(match now {
            Some(row) if row.revoked_at.is_none() => {
                attempt.regressed = Some(authenticator_id);
                verification_error(WebauthnError::CredentialPossibleCompromise)
            }
            _ => Error::refused(
                ErrorCode::CredentialRevoked,
                "This passkey has been revoked.",
            ),
        })
    }
}
