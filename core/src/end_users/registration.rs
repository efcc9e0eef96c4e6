//! Passkey registration with an enrollment token (Client API).
//!
//! options: the token must be redeemable (unused, unexpired, scope rule) → options from the
//! tenant's configuration, `excludeCredentials` = the user's active credentials → ceremony
//! stored with tenant, user and token. verify: read the pending ceremony → verify off the
//! runtime → one transaction: consume the ceremony (one attempt) and the token, re-check the
//! scope rule, store the credential, issue a validation token, audit. A refusal uses up the
//! ceremony in the transaction that audits it.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::Deserialize;
use uuid::Uuid;
use webauthn_rs_core::proto::{
    ParsedAttestationData, RegisterPublicKeyCredential, RegistrationState,
};

use super::{
    AuthenticatorView, ClientCeremony, EndUsers, aaguid,
    devices::{self, DeviceProof, DeviceStatus, PresentedDevice},
    enrollment::{self, Redeemable, ScopeCheck},
    report::{CeremonyReport, ReportedAuthenticator, ReportedDevice, RiskSignal},
    signals::{self, Signals},
    validation::{self, ValidationKind},
};
use crate::{
    Error, ErrorCode, Result,
    abuse::SourceKey,
    audit::{self, Actor, AuditEntry, RequestMeta},
    cpu::off_runtime,
    entities::{authenticator, end_user, enrollment_token},
    error::on_unique,
    metadata::{self, ModelMetadata},
    tenants::config::{Attestation, Requirement},
    tenants::policy::{Breach, PasskeyFacts, Trust},
    validate,
    webauthn::ceremonies::{self, CeremonyKey, CeremonyKind},
    webauthn::{client_json, parse_credential, verification_error},
};

/// What a browser submits to finish a registration.
struct Submitted<'a> {
    ceremony_id: &'a str,
    credential_json: &'a str,
    name: Option<&'a str>,
    device: Option<&'a DeviceProof>,
}

/// A registration that succeeded.
#[derive(Clone)]
pub struct Registered {
    /// The validation token (`lk_val_…`) for the tenant's backend. Shown once.
    pub token: String,
    pub authenticator: AuthenticatorView,
    /// What the browser's password manager should be told.
    pub signals: Signals,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("authenticator", &self.authenticator)
            .finish_non_exhaustive()
    }
}

/// The members of a browser's `RegistrationResponseJSON` webauthn-rs does not keep for
/// attestation `none`, read by us.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ResponseExtras {
    authenticator_attachment: Option<String>,
    #[serde(default)]
    response: TransportsOnly,
    #[serde(default)]
    client_extension_results: ExtensionResults,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ExtensionResults {
    #[serde(default)]
    cred_props: CredProps,
}

#[derive(Deserialize, Default)]
struct CredProps {
    rk: Option<bool>,
}

impl ResponseExtras {
    /// The tenant's attachment and resident-key requirements, checked against what the client
    /// reports (`authenticatorAttachment`, the `credProps` extension). A client that reports
    /// nothing is given the benefit of the doubt: the options already asked for it.
    fn check(&self, config: &crate::tenants::config::PasskeyConfig) -> Result<()> {
        use crate::tenants::config::Attachment;
        let required = match config.attachment {
            Attachment::Any => None,
            Attachment::Platform => Some("platform"),
            Attachment::CrossPlatform => Some("cross-platform"),
        };
        if let (Some(required), Some(reported)) = (required, &self.authenticator_attachment)
            && reported != required
        {
            return Err(Error::invalid(
                "credential",
                format!("This service accepts only {required} authenticators."),
            ));
        }
        if config.resident_key == Requirement::Required
            && self.client_extension_results.cred_props.rk == Some(false)
        {
            return Err(Error::invalid(
                "credential",
                "This service needs a passkey stored on the authenticator (discoverable).",
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
struct TransportsOnly {
    #[serde(default)]
    transports: Vec<String>,
    #[serde(rename = "attestationObject")]
    attestation_object: Option<String>,
}

/// The attestation verified, but does not chain to the roots it was checked against (or cannot
/// chain to any: `none` and self attestation).
fn untrusted_attestation(err: &webauthn_rs_core::error::WebauthnError) -> bool {
    use webauthn_rs_core::error::WebauthnError as W;
    matches!(
        err,
        W::AttestationTrustFailure
            | W::AttestationCertificateTrustStoreEmpty
            | W::AttestationLeafCertMissing
            | W::AttestationNotVerifiable
            | W::AttestationUntrustedAaguid
            | W::AttestationFormatMissingAaguid
            | W::AttestationChainNotTrusted(_)
    )
}

/// The AAGUID from the attestation object's authenticator data (bytes 37..53 when the
/// attested-credential-data flag is set). webauthn-rs only exposes it for attested formats;
/// with attestation `none` it is still there, and providers are named by it.
fn aaguid_of(attestation_object_b64: Option<&str>) -> Uuid {
    const AT_FLAG: u8 = 0x40;
    let parse = || -> Option<Uuid> {
        let bytes = URL_SAFE_NO_PAD
            .decode(attestation_object_b64?.trim_end_matches('='))
            .ok()?;
        let object: std::collections::BTreeMap<String, serde_cbor_2::Value> =
            serde_cbor_2::from_slice(&bytes).ok()?;
        let serde_cbor_2::Value::Bytes(auth_data) = object.get("authData")? else {
            return None;
        };
        if auth_data.len() < 53 || auth_data[32] & AT_FLAG == 0 {
            return None;
        }
        Uuid::from_slice(&auth_data[37..53]).ok()
    };
    parse().unwrap_or(Uuid::nil())
}

/// A credential ID as stored (base64url, no padding).
pub(crate) fn credential_key(id: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id)
}

impl EndUsers<'_> {
    /// Records a refused redemption against the token's tenant and user (when the token is
    /// known: garbage tokens belong to no tenant and are not worth a row), using up the ceremony
    /// it presented, in one transaction.
    async fn audit_redemption<T>(
        &self,
        token: Option<&enrollment_token::Model>,
        action: &'static str,
        result: &Result<T>,
        ceremony: Option<CeremonyKey>,
        meta: &RequestMeta,
    ) -> Result<()> {
        let (Some(token), Err(_)) = (token, result) else {
            return Ok(());
        };
        let user = end_user::Entity::find_by_id(token.user_id)
            .filter(end_user::Column::TenantId.eq(token.tenant_id))
            .one(self.db)
            .await?;
        let mut entry = AuditEntry::new(Actor::Anonymous, action)
            .tenant(token.tenant_id)
            .details(serde_json::json!({ "enrollment_token": token.token_prefix }))
            .meta(meta.clone());
        if let Some(user) = user {
            entry = entry.target("user", user.external_id);
        }
        self.record_refused_step(result, ceremony, entry, None)
            .await
    }

    /// Registration options for the holder of an enrollment token.
    pub async fn begin_registration(
        &self,
        enrollment_token: &str,
        meta: RequestMeta,
    ) -> Result<ClientCeremony> {
        self.begin_registration_as(enrollment_token, false, meta)
            .await
    }

    /// Registration options; `conditional` for conditional create (an automatic passkey
    /// upgrade), whose response may lack user presence (see [`with_user_presence`]).
    pub async fn begin_registration_as(
        &self,
        enrollment_token: &str,
        conditional: bool,
        meta: RequestMeta,
    ) -> Result<ClientCeremony> {
        let token = enrollment::find(self.db, enrollment_token).await?;
        let result = self
            .registration_options(token.clone(), SourceKey::of_request(&meta), conditional)
            .await;
        self.audit_redemption(token.as_ref(), "registration.started", &result, None, &meta)
            .await?;
        result
    }

    async fn registration_options(
        &self,
        token: Option<enrollment_token::Model>,
        source: Option<SourceKey>,
        conditional: bool,
    ) -> Result<ClientCeremony> {
        let Redeemable { token, user } =
            enrollment::redeemable(self.db, self.clock, token, ScopeCheck::Now).await?;
        let config = self.enabled_config(token.tenant_id).await?;
        let rp = self.relying_parties.for_config(token.tenant_id, &config)?;
        let exclude = authenticator::Entity::find()
            .filter(authenticator::Column::TenantId.eq(token.tenant_id))
            .filter(authenticator::Column::UserId.eq(user.id))
            .filter(authenticator::Column::RevokedAt.is_null())
            .all(self.db)
            .await?
            .into_iter()
            .filter_map(|a| URL_SAFE_NO_PAD.decode(a.credential_id).ok())
            .collect::<Vec<_>>();
        let name = user.username.as_deref().unwrap_or(&user.external_id);
        let display_name = user.display_name.as_deref().unwrap_or(name);
        let builder = rp
            .core
            .new_challenge_register_builder(user.id.as_bytes(), name, display_name)
            .map_err(|e| Error::Internal(format!("registration options: {e}")))?
            .attestation(rp.attestation())
            .user_verification_policy(rp.user_verification())
            .exclude_credentials((!exclude.is_empty()).then_some(exclude))
            .credential_algorithms(rp.algorithms())
            .require_resident_key(config.resident_key == Requirement::Required)
            .authenticator_attachment(rp.attachment());
        let (options, state) = rp
            .core
            .generate_challenge_register(builder)
            .map_err(|e| Error::Internal(format!("registration options: {e}")))?;
        let mut public_key = client_json(&options.public_key)?;
        // The builder knows only required / discouraged; `preferred` is the tenant's to ask.
        if config.resident_key == Requirement::Preferred
            && let Some(selection) = public_key.get_mut("authenticatorSelection")
        {
            selection["residentKey"] = "preferred".into();
            selection["requireResidentKey"] = false.into();
        }
        self.start_ceremony(
            &config,
            token.tenant_id,
            CeremonyKind::TenantRegistration,
            Some(user.id.to_string()),
            Some(token.id),
            state,
            public_key,
            source,
            conditional,
        )
        .await
    }

    /// Verifies the browser's registration response and stores the passkey, redeeming the
    /// enrollment token exactly once. Answers a validation token for the tenant's backend.
    pub async fn finish_registration(
        &self,
        enrollment_token: &str,
        ceremony_id: &str,
        credential_json: &str,
        name: Option<&str>,
        device: Option<&DeviceProof>,
        meta: RequestMeta,
    ) -> Result<Registered> {
        let token = enrollment::find(self.db, enrollment_token).await?;
        let mut ceremony = None;
        let submitted = Submitted {
            ceremony_id,
            credential_json,
            name,
            device,
        };
        let result = self
            .register(token.clone(), submitted, &meta, &mut ceremony)
            .await;
        self.audit_redemption(
            token.as_ref(),
            "registration.finished",
            &result,
            ceremony,
            &meta,
        )
        .await?;
        result
    }

    async fn register(
        &self,
        token: Option<enrollment_token::Model>,
        submitted: Submitted<'_>,
        meta: &RequestMeta,
        ceremony: &mut Option<CeremonyKey>,
    ) -> Result<Registered> {
        let Submitted {
            ceremony_id,
            credential_json,
            name,
            device,
        } = submitted;
        let Redeemable { token, user } =
            enrollment::redeemable(self.db, self.clock, token, ScopeCheck::InTransaction).await?;
        let name = name
            .map(|n| validate::label("name", "passkey name", n, 100))
            .transpose()?;
        let response: RegisterPublicKeyCredential = parse_credential(credential_json)?;
        let device = device.map(PresentedDevice::parse).transpose()?;
        // The members webauthn-rs drops, read from the same text (a second, shallow look: the
        // two types share the `response` member, so one `#[serde(flatten)]` parse cannot hold both).
        let extras: ResponseExtras = serde_json::from_str(credential_json).unwrap_or_default();
        // A registration's ceremony is stored: its ID is a UUID, anything else is unknown.
        let ceremony_id = Uuid::parse_str(ceremony_id).map_err(|_| ceremonies::unknown())?;
        let pending = ceremonies::pending::<RegistrationState>(
            self.db,
            self.clock,
            ceremony_id,
            Some(token.tenant_id),
            CeremonyKind::TenantRegistration,
        )
        .await?;
        *ceremony = Some(pending.key);
        // Conditional create: the password manager creates the passkey without the user's
        // presence (UP=0), which the WebAuthn specification allows for this mediation and
        // webauthn-rs refuses at every registration; see `with_user_presence`.
        let conditional = pending
            .context
            .as_ref()
            .is_some_and(|c| c["conditional"] == serde_json::Value::Bool(true));
        let (response, user_present) = match conditional {
            true => match with_user_presence(credential_json) {
                (rewritten, false) => (parse_credential(&rewritten)?, false),
                (_, true) => (response, true),
            },
            false => (response, true),
        };
        if pending.token_id != Some(token.id) {
            return Err(Error::refused(
                ErrorCode::CeremonyInvalid,
                "This attempt was started with another enrollment token. Start again.",
            ));
        }
        let config = self.enabled_config(token.tenant_id).await?;
        let rp = self.relying_parties.for_config(token.tenant_id, &config)?;
        let rp_id = rp.rp_id().to_owned();
        // The AAGUID as the authenticator states it: it only picks which metadata to consult;
        // the trust list below ties the attestation's roots to this AAGUID.
        let aaguid = aaguid_of(extras.response.attestation_object.as_deref());
        // Attestation is conveyed only when the tenant asks for it ("direct").
        let model = match config.attestation {
            Attestation::Direct => metadata::model(self.db, aaguid).await?,
            _ => None,
        };
        let trust_list = model
            .as_ref()
            .filter(|m| m.refused_status.is_none())
            .and_then(ModelMetadata::trust_list);
        let state = pending.state;
        let (credential, certified, device) = off_runtime(move || {
            // The device's signature, over the client data the attestation vouches for.
            let device = device.map(|d| {
                let ok = d.verifies(response.response.client_data_json.as_ref());
                (d, ok)
            });
            if let Some(list) = &trust_list {
                match rp.core.register_credential(&response, &state, Some(list)) {
                    Ok(credential) => return Ok((credential, true, device)),
                    // Not certified, but may still be acceptable: verified again without roots.
                    Err(err) if untrusted_attestation(&err) => {}
                    Err(err) => return Err(verification_error(err)),
                }
            }
            rp.core
                .register_credential(&response, &state, None)
                .map(|credential| (credential, false, device))
                .map_err(verification_error)
        })
        .await?;
        extras.check(&config)?;

        let trust = match (&credential.attestation.data, certified) {
            (_, true) => Trust::Certified,
            (ParsedAttestationData::Self_, _) => Trust::SelfAttested,
            _ => Trust::None,
        };
        // The tenant's policy, on the server: the options only ask, this decides.
        if let Some(breach) = config.policy.breach(&PasskeyFacts {
            aaguid,
            backup_eligible: credential.backup_eligible,
            trust,
        }) {
            let message = match model.as_ref().and_then(ModelMetadata::refusal) {
                Some(refusal) if breach == Breach::NotCertified => refusal,
                _ => breach.message(aaguid),
            };
            return Err(Error::refused(ErrorCode::AuthenticatorNotAllowed, message));
        }
        let provider = aaguid::provider(aaguid);
        let now = self.clock.now();
        let authenticator_id = Uuid::new_v4();
        let credential_id = credential_key(&credential.cred_id);
        let row = authenticator::Model {
            id: authenticator_id,
            tenant_id: token.tenant_id,
            user_id: user.id,
            credential_id: credential_id.clone(),
            credential: serde_json::to_string(&credential)
                .map_err(|e| Error::Internal(format!("serialising credential: {e}")))?,
            name: name.unwrap_or_else(|| aaguid::default_name(aaguid)),
            aaguid,
            provider_name: provider.map(|p| p.name.clone()),
            transports: serde_json::to_string(&extras.response.transports)
                .map_err(|e| Error::Internal(format!("serialising transports: {e}")))?,
            algorithm: credential.cred.type_ as i32,
            backup_eligible: credential.backup_eligible,
            backup_state: credential.backup_state,
            user_verified: credential.user_verified,
            sign_count: i64::from(credential.counter),
            attachment: extras
                .authenticator_attachment
                .filter(|a| matches!(a.as_str(), "platform" | "cross-platform")),
            user_agent: meta.user_agent().map(str::to_owned),
            created_at: now,
            last_used_at: None,
            counter_regressed_at: None,
            revoked_at: None,
            revoked_by: None,
            revoked_reason: None,
            backup_state_changed_at: None,
            attestation_trust: trust.as_str().to_owned(),
            certification: model
                .as_ref()
                .filter(|_| certified)
                .map(ModelMetadata::certification_record),
            // A model the metadata refuses, accepted because the tenant does not require
            // certification: support sees it in the health queue from the start.
            metadata_flagged_at: model
                .as_ref()
                .and_then(|m| m.refused_status.as_ref())
                .map(|_| now),
            metadata_status: model.as_ref().and_then(|m| m.refused_status.clone()),
            sign_in_count: 0,
        };

        let txn = crate::db::begin_write(self.writer).await?;
        // Used up with everything its success writes (see `ceremonies`).
        pending.key.consume_in(&txn, self.clock).await?;
        enrollment::consume_in(
            &txn,
            self.clock,
            token.id,
            token.tenant_id,
            authenticator_id,
        )
        .await?;
        enrollment::check_scope(&txn, &token, user.id).await?;
        insert_authenticator(&txn, &row).await?;
        let reported_device = match &device {
            Some((device, true)) => {
                let bound = devices::find(&txn, token.tenant_id, user.id, &device.key_hash).await?;
                device
                    .upsert(token.tenant_id, user.id, meta.user_agent(), now, false)
                    .insert_in(&txn)
                    .await?;
                let id = device.id_for(token.tenant_id, user.id);
                let reported = ReportedDevice::sighted(bound.as_ref(), id, now);
                if reported.status == DeviceStatus::New {
                    audit::record_in(
                        &txn,
                        self.clock,
                        devices::bound_entry(&user, Some(id), meta),
                    )
                    .await?;
                }
                reported
            }
            _ => ReportedDevice::none(),
        };
        let report = CeremonyReport {
            authenticator: ReportedAuthenticator::of(&row, row.backup_state),
            device: reported_device,
            first_sign_in: None,
            sign_in_count: None,
            last_used_at: None,
            risk_signals: [
                matches!(device, Some((_, false))).then_some(RiskSignal::DeviceKeyFailed),
                (!row.user_verified).then_some(RiskSignal::UserNotVerified),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        let validation = validation::issue_in(
            &txn,
            self.clock,
            token.tenant_id,
            user.id,
            authenticator_id,
            ValidationKind::SignUp,
            Some(&report),
        )
        .await?;
        audit::record_in(
            &txn,
            self.clock,
            AuditEntry::new(
                Actor::EndUser {
                    user_id: user.external_id.clone(),
                },
                "authenticator.registered",
            )
            .tenant(token.tenant_id)
            .target("user", user.external_id.clone())
            .details(serde_json::json!({
                "authenticator_id": authenticator_id,
                "enrollment_token_id": token.id,
                "enrollment_token": token.token_prefix,
                "name": row.name,
                "aaguid": aaguid,
                "provider": row.provider_name,
                "conditional": conditional,
                "user_present": user_present,
            }))
            .meta(meta.clone()),
        )
        .await?;
        // The user's active passkeys, the new one among them, as this transaction leaves them.
        let active = authenticator::Entity::find()
            .filter(authenticator::Column::TenantId.eq(token.tenant_id))
            .filter(authenticator::Column::UserId.eq(user.id))
            .filter(authenticator::Column::RevokedAt.is_null())
            .limit(signals::PASSKEYS_LIMIT + 1)
            .all(&txn)
            .await?;
        txn.commit().await?;
        let complete = active.len() <= signals::PASSKEYS_LIMIT as usize;
        Ok(Registered {
            token: validation,
            signals: Signals::after_ceremony(&rp_id, &user, complete.then_some(&active), None),
            authenticator: row.into(),
        })
    }
}

/// A conditional-create response without user presence, made acceptable to webauthn-rs, and
/// whether the user was present.
///
/// WebAuthn lets a client create a passkey with conditional mediation without user presence
/// (password managers' automatic upgrades report UP=0), but webauthn-rs 0.6 requires UP at
/// every registration and has no option to relax it. For attestation `none` the authenticator
/// data is signed by nothing at registration — its flags are the client's word either way — so
/// setting the UP bit there changes no verification but that one check, which this ceremony
/// (started as conditional by the enrollment token's holder) does not need. Any other format
/// signs the authenticator data and is left as it is (and refused by webauthn-rs if UP=0).
fn with_user_presence(credential_json: &str) -> (std::borrow::Cow<'_, str>, bool) {
    use serde_cbor_2::Value as Cbor;
    let unchanged = || (std::borrow::Cow::Borrowed(credential_json), true);
    let Ok(mut json) = serde_json::from_str::<serde_json::Value>(credential_json) else {
        return unchanged();
    };
    let Some(encoded) = json["response"]["attestationObject"].as_str() else {
        return unchanged();
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')) else {
        return unchanged();
    };
    let Ok(Cbor::Map(mut object)) = serde_cbor_2::from_slice::<Cbor>(&bytes) else {
        return unchanged();
    };
    let fmt = object.get(&Cbor::Text("fmt".into())).cloned();
    let auth_data = object.get_mut(&Cbor::Text("authData".into()));
    let (Some(Cbor::Text(fmt)), Some(Cbor::Bytes(auth_data))) = (fmt, auth_data) else {
        return unchanged();
    };
    if fmt != "none" || auth_data.len() < 33 || auth_data[32] & 0x01 != 0 {
        return unchanged();
    }
    auth_data[32] |= 0x01;
    let auth_data = auth_data.clone();
    let Ok(rewritten) = serde_cbor_2::to_vec(&Cbor::Map(object)) else {
        return unchanged();
    };
    json["response"]["attestationObject"] = URL_SAFE_NO_PAD.encode(rewritten).into();
    if json["response"].get("authenticatorData").is_some() {
        json["response"]["authenticatorData"] = URL_SAFE_NO_PAD.encode(auth_data).into();
    }
    (std::borrow::Cow::Owned(json.to_string()), false)
}

/// Stores a new authenticator; a credential ID the tenant already has is `credential_exists`
/// (checked first, and by the unique index against a concurrent registration).
async fn insert_authenticator(
    conn: &impl ConnectionTrait,
    row: &authenticator::Model,
) -> Result<()> {
    let exists = || {
        Error::refused(
            ErrorCode::CredentialExists,
            "This passkey is already registered.",
        )
    };
    let taken = authenticator::Entity::find()
        .filter(authenticator::Column::TenantId.eq(row.tenant_id))
        .filter(authenticator::Column::CredentialId.eq(&row.credential_id))
        .one(conn)
        .await?;
    if taken.is_some() {
        return Err(exists());
    }
    let model: authenticator::ActiveModel = row.clone().into();
    authenticator::Entity::insert(model)
        .exec_without_returning(conn)
        .await
        .map(drop)
        .map_err(on_unique(exists))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aaguid_is_read_from_the_authenticator_data() {
        let aaguid = Uuid::parse_str("ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4")
            .unwrap_or_else(|e| panic!("{e}"));
        let mut auth_data = vec![0u8; 32];
        auth_data.push(0x45); // UP, UV, AT
        auth_data.extend_from_slice(&[0, 0, 0, 0]);
        auth_data.extend_from_slice(aaguid.as_bytes());
        auth_data.extend_from_slice(&[0, 0]);
        let mut object = std::collections::BTreeMap::new();
        object.insert("fmt", serde_cbor_2::Value::Text("none".into()));
        object.insert("authData", serde_cbor_2::Value::Bytes(auth_data));
        let cbor = serde_cbor_2::to_vec(&object).unwrap_or_default();
        let encoded = URL_SAFE_NO_PAD.encode(cbor);
        assert_eq!(aaguid_of(Some(&encoded)), aaguid);
        assert_eq!(aaguid_of(Some("not base64!")), Uuid::nil());
        assert_eq!(aaguid_of(None), Uuid::nil());
    }
}
