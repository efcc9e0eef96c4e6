//! The authenticator policy and the credential health queue, on both databases: refusals at
//! registration and sign-in (with their code, changing nothing else), the dry run's figures, the
//! SQL form of the rule agreeing with the in-memory one, concurrent saves, and the queue's
//! reasons, paging and dismissals.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use latchkey_core::{
    ErrorCode, ManualClock, Services,
    access::OperatorIdentity,
    audit::RequestMeta,
    both_backends,
    end_users::health::{HealthItem, HealthReason},
    tenants::policy::{ExistingPasskeys, ModelRule, PasskeyFacts, PolicyInput, Trust},
    testing::{TestBackend, TestDb, insert_operator, shop, soft_passkey::SoftPasskeys},
};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use uuid::Uuid;

both_backends!(
    a_policy_refuses_registration_and_leaves_the_token_usable,
    existing_passkeys_are_flagged_or_refused_at_sign_in,
    the_dry_run_counts_what_a_policy_would_refuse,
    the_sql_rule_agrees_with_the_in_memory_rule,
    concurrent_policy_saves_one_wins,
    the_health_queue_pages_through_every_reason_and_dismissals_hold,
);

use latchkey_core::testing::shop::ORIGIN;
const GOOGLE: &str = "ea9b8d66-4d01-1d21-3ce4-b6b48cb575d4";
/// A model the community list does not know.
const KEY_MODEL: &str = "00000000-0000-4000-8000-00000000000a";

struct Fixture {
    _db: TestDb,
    conn: DatabaseConnection,
    clock: ManualClock,
    services: Services,
    tenant: Uuid,
    owner: OperatorIdentity,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap());
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock.clone()));
    let owner = insert_operator(&conn, "owner@shop.test", false).await;
    let tenant = shop::create(&services, &owner).await;
    Some(Fixture {
        _db: db,
        conn,
        clock,
        services,
        tenant,
        owner,
    })
}

fn aaguid(text: &str) -> [u8; 16] {
    *Uuid::parse_str(text).unwrap().as_bytes()
}

fn provider(model: &str, synced: bool) -> SoftPasskeys {
    let mut passkeys = SoftPasskeys::new();
    passkeys.aaguid = aaguid(model);
    passkeys.backed_up = synced;
    passkeys
}

impl Fixture {
    async fn access(&self) -> latchkey_core::access::TenantAccess {
        latchkey_core::testing::access(&self.services, &self.owner, self.tenant).await
    }

    async fn token(&self, user: &str) -> String {
        shop::token(&self.services, &self.access().await, user).await
    }

    /// Registers with `token`; the refusal's code when refused.
    async fn register_with(
        &self,
        token: &str,
        passkeys: &mut SoftPasskeys,
    ) -> Result<Uuid, (ErrorCode, String)> {
        shop::register_with(&self.services, token, passkeys)
            .await
            .map_err(|e| (e.code(), e.to_string()))
    }

    async fn register(&self, user: &str, passkeys: &mut SoftPasskeys) -> Uuid {
        let token = self.token(user).await;
        self.register_with(&token, passkeys).await.unwrap()
    }

    async fn sign_in(&self, passkeys: &mut SoftPasskeys) -> Result<String, ErrorCode> {
        let users = self.services.end_users();
        let options = users.begin_authentication(self.tenant, None).await.unwrap();
        let assertion = passkeys.authenticate(ORIGIN, &options.public_key).unwrap();
        users
            .finish_authentication(
                self.tenant,
                &options.ceremony_id,
                &assertion.to_string(),
                None,
                RequestMeta::default(),
            )
            .await
            .map(|signed_in| signed_in.token)
            .map_err(|e| e.code())
    }

    async fn save(&self, input: &PolicyInput) -> latchkey_core::Result<i64> {
        let tenants = self.services.tenants();
        let access = self.access().await;
        let version = tenants.get(&access).await?.config.version;
        let (config, _) = tenants
            .update_authenticator_policy(&access, input, version, RequestMeta::default())
            .await?;
        Ok(config.version)
    }

    async fn count(&self, sql: &str) -> i64 {
        latchkey_core::testing::count(&self.conn, sql).await
    }

    async fn queue(&self, reason: Option<HealthReason>) -> Vec<HealthItem> {
        let users = self.services.end_users();
        let access = self.access().await;
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = users
                .credential_health(&access, reason, after.as_deref(), 2)
                .await
                .unwrap();
            items.extend(page.items);
            match page.next {
                Some(next) => after = Some(next),
                None => return items,
            }
        }
    }
}

fn policy(models: ModelRule, aaguids: &[&str]) -> PolicyInput {
    PolicyInput {
        models,
        aaguids: aaguids.iter().map(|a| (*a).to_owned()).collect(),
        allow_synced: true,
        require_certified: false,
        existing: ExistingPasskeys::Flag,
        unused_after_days: None,
    }
}

async fn a_policy_refuses_registration_and_leaves_the_token_usable(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    f.save(&PolicyInput {
        allow_synced: false,
        ..policy(ModelRule::Block, &[GOOGLE])
    })
    .await
    .unwrap();
    let token = f.token("ada").await;
    let before = f.count("SELECT COUNT(*) FROM authenticators").await;
    let (code, message) = f
        .register_with(&token, &mut provider(GOOGLE, false))
        .await
        .unwrap_err();
    assert_eq!(code, ErrorCode::AuthenticatorNotAllowed);
    assert!(message.contains("Google Password Manager"), "{message}");
    let (code, message) = f
        .register_with(&token, &mut provider(KEY_MODEL, true))
        .await
        .unwrap_err();
    assert_eq!(code, ErrorCode::AuthenticatorNotAllowed);
    assert!(message.contains("device-bound"), "{message}");
    assert_eq!(f.count("SELECT COUNT(*) FROM authenticators").await, before);
    assert_eq!(
        f.count("SELECT COUNT(*) FROM enrollment_tokens WHERE used_at IS NOT NULL")
            .await,
        0,
        "the refusals used the ceremonies, not the token"
    );
    // The same token registers an allowed model.
    f.register_with(&token, &mut provider(KEY_MODEL, false))
        .await
        .unwrap();
    // An allow list refuses what it does not name, the all-zero AAGUID included.
    f.save(&policy(ModelRule::Allow, &[GOOGLE])).await.unwrap();
    let token = f.token("bob").await;
    let (code, _) = f
        .register_with(
            &token,
            &mut provider("00000000-0000-0000-0000-000000000000", false),
        )
        .await
        .unwrap_err();
    assert_eq!(code, ErrorCode::AuthenticatorNotAllowed);
    f.register_with(&token, &mut provider(GOOGLE, true))
        .await
        .unwrap();
}

async fn existing_passkeys_are_flagged_or_refused_at_sign_in(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let mut google = provider(GOOGLE, true);
    let id = f.register("ada", &mut google).await;
    f.save(&policy(ModelRule::Block, &[GOOGLE])).await.unwrap();
    f.sign_in(&mut google)
        .await
        .expect("flagged, still signs in");
    let flagged = f.queue(Some(HealthReason::BreaksPolicy)).await;
    assert_eq!(
        flagged
            .iter()
            .map(|i| i.authenticator_id)
            .collect::<Vec<_>>(),
        vec![id]
    );
    f.save(&PolicyInput {
        existing: ExistingPasskeys::Block,
        ..policy(ModelRule::Block, &[GOOGLE])
    })
    .await
    .unwrap();
    let counter = "SELECT MAX(sign_count) FROM authenticators";
    let tokens = "SELECT COUNT(*) FROM validation_tokens";
    let (counter_before, tokens_before) = (f.count(counter).await, f.count(tokens).await);
    f.clock.advance(Duration::minutes(1));
    assert_eq!(
        f.sign_in(&mut google).await.unwrap_err(),
        ErrorCode::AuthenticatorNotAllowed
    );
    assert_eq!(f.count(tokens).await, tokens_before, "no validation token");
    assert_eq!(
        f.count(counter).await,
        counter_before,
        "the passkey is unchanged"
    );
    // Back to permissive: it signs in again (nothing was revoked).
    f.save(&policy(ModelRule::Any, &[])).await.unwrap();
    f.sign_in(&mut google).await.unwrap();
}

async fn the_dry_run_counts_what_a_policy_would_refuse(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    // ada: Google only; bob: Google and a key; cleo: a key.
    let mut ada = provider(GOOGLE, true);
    f.register("ada", &mut ada).await;
    f.register("bob", &mut provider(GOOGLE, true)).await;
    f.register("bob", &mut provider(KEY_MODEL, false)).await;
    f.register("cleo", &mut provider(KEY_MODEL, false)).await;
    let tenants = f.services.tenants();
    let access = f.access().await;
    let block_google = PolicyInput {
        existing: ExistingPasskeys::Block,
        ..policy(ModelRule::Block, &[GOOGLE])
    };
    let run = tenants
        .dry_run_policy(&access, &block_google)
        .await
        .unwrap();
    assert_eq!(run.active_passkeys, 4);
    assert_eq!(run.refused_passkeys, 2);
    assert_eq!(run.affected_users, 2);
    assert_eq!(run.users_left_without_passkey, 1, "ada");
    assert!(run.blocks_existing);
    assert_eq!(run.by_model.len(), 1);
    assert_eq!(
        run.by_model[0].provider_name.as_deref(),
        Some("Google Password Manager")
    );
    assert_eq!((run.by_model[0].passkeys, run.by_model[0].users), (2, 2));
    let affected = tenants
        .users_affected_by(&access, &block_google, None, 1)
        .await
        .unwrap();
    let next = tenants
        .users_affected_by(&access, &block_google, affected.next, 1)
        .await
        .unwrap();
    let mut names: Vec<String> = affected
        .users
        .into_iter()
        .chain(next.users)
        .map(|u| u.user_id)
        .collect();
    names.sort();
    assert_eq!(names, ["ada", "bob"]);
    assert_eq!(next.next, None);
    // Device-bound only: the two synced Google passkeys again; an allow list of the key: same.
    let device_bound = PolicyInput {
        allow_synced: false,
        ..policy(ModelRule::Any, &[])
    };
    assert_eq!(
        tenants
            .dry_run_policy(&access, &device_bound)
            .await
            .unwrap()
            .refused_passkeys,
        2
    );
    // Nothing was saved by a dry run; saving records its figures in the audit event.
    assert_eq!(
        f.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'tenant.authenticator_policy_changed'"
        )
        .await,
        0
    );
    f.save(&block_google).await.unwrap();
    let details = f
        .conn
        .query_one_raw(sea_orm::Statement::from_string(
            f.conn.get_database_backend(),
            "SELECT CAST(details AS TEXT) FROM audit_events WHERE action = 'tenant.authenticator_policy_changed'"
                .to_owned(),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<String>(0)
        .unwrap();
    let details: serde_json::Value = serde_json::from_str(&details).unwrap();
    assert_eq!(details["dry_run"]["refused_passkeys"], 2);
    assert_eq!(details["before"]["models"], "any");
    assert_eq!(details["after"]["models"], "block");
    // Bad input is refused with its field, and a refused dry run reads nothing.
    let err = tenants
        .dry_run_policy(&access, &policy(ModelRule::Allow, &[]))
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("aaguids"));
    // Roles: support may not dry-run or save; an outsider's tenant is not found.
    let support = insert_operator(&f.conn, "support@shop.test", false).await;
    tenants
        .add_member(
            &access,
            &support.email,
            latchkey_core::access::Role::Support,
            RequestMeta::default(),
        )
        .await
        .unwrap();
    let support_access = latchkey_core::testing::access(&f.services, &support, f.tenant).await;
    assert_eq!(
        tenants
            .dry_run_policy(&support_access, &block_google)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::Forbidden
    );
}

async fn the_sql_rule_agrees_with_the_in_memory_rule(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    // Every combination of model, sync and trust.
    let models = [GOOGLE, KEY_MODEL, "00000000-0000-0000-0000-000000000000"];
    let backend_sql = f.conn.get_database_backend();
    for (n, model) in models.iter().enumerate() {
        for synced in [false, true] {
            f.register(&format!("user-{n}-{synced}"), &mut provider(model, synced))
                .await;
            // A certified twin (certification itself is tested with metadata).
            let twin = f
                .register(
                    &format!("user-{n}-{synced}-c"),
                    &mut provider(model, synced),
                )
                .await;
            let update = sea_orm::Statement::from_sql_and_values(
                backend_sql,
                if backend == TestBackend::Postgres {
                    "UPDATE authenticators SET attestation_trust = 'certified' WHERE id = $1"
                } else {
                    "UPDATE authenticators SET attestation_trust = 'certified' WHERE id = ?"
                },
                [twin.into()],
            );
            assert_eq!(f.conn.execute_raw(update).await.unwrap().rows_affected(), 1);
        }
    }
    let rows = f
        .conn
        .query_all_raw(sea_orm::Statement::from_string(
            backend_sql,
            "SELECT aaguid, backup_eligible, attestation_trust FROM authenticators".to_owned(),
        ))
        .await
        .unwrap();
    let facts: Vec<PasskeyFacts> = rows
        .iter()
        .map(|r| PasskeyFacts {
            aaguid: r.try_get_by_index::<Uuid>(0).unwrap(),
            backup_eligible: r.try_get_by_index::<bool>(1).unwrap(),
            trust: Trust::stored(&r.try_get_by_index::<String>(2).unwrap()),
        })
        .collect();
    assert_eq!(facts.len(), 12);
    assert_eq!(
        facts.iter().filter(|f| f.trust == Trust::Certified).count(),
        6
    );
    let access = f.access().await;
    let tenants = f.services.tenants();
    // Certification needs attestation "direct" to be saved; a dry run checks it too.
    let mut config = latchkey_core::tenants::config::PasskeyConfigInput::from(
        &tenants.get(&access).await.unwrap().config,
    );
    config.attestation = latchkey_core::tenants::config::Attestation::Direct;
    let version = tenants.get(&access).await.unwrap().config.version;
    tenants
        .update_passkey_config(&access, &config, version, RequestMeta::default())
        .await
        .unwrap();
    for models in [ModelRule::Any, ModelRule::Allow, ModelRule::Block] {
        for list in [vec![GOOGLE], vec![GOOGLE, KEY_MODEL], vec![KEY_MODEL]] {
            for allow_synced in [true, false] {
                for require_certified in [false, true] {
                    let input = PolicyInput {
                        allow_synced,
                        require_certified,
                        ..policy(models, &list)
                    };
                    let rule = input
                        .validate(latchkey_core::tenants::config::Attestation::Direct)
                        .unwrap();
                    let expected = facts.iter().filter(|p| rule.breach(p).is_some()).count();
                    let run = tenants.dry_run_policy(&access, &input).await.unwrap();
                    assert_eq!(
                        run.refused_passkeys as usize, expected,
                        "{input:?}: SQL and memory disagree"
                    );
                }
            }
        }
    }
    // Certification cannot be saved before metadata can be imported: it would refuse everyone.
    let err = f
        .save(&PolicyInput {
            require_certified: true,
            ..policy(ModelRule::Any, &[])
        })
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("require_certified"));
}

async fn concurrent_policy_saves_one_wins(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let access = f.access().await;
    let version = f
        .services
        .tenants()
        .get(&access)
        .await
        .unwrap()
        .config
        .version;
    for round in 0..5 {
        let saves = (0..4).map(|n| {
            let services = f.services.clone();
            let access = access.clone();
            let input = policy(
                ModelRule::Block,
                &[if n % 2 == 0 { GOOGLE } else { KEY_MODEL }],
            );
            let version = version + round;
            tokio::spawn(async move {
                services
                    .tenants()
                    .update_authenticator_policy(&access, &input, version, RequestMeta::default())
                    .await
                    .map(|_| ())
            })
        });
        let results: Vec<_> = futures_util::future::join_all(saves)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
    }
    assert_eq!(
        f.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'tenant.authenticator_policy_changed'"
        )
        .await,
        5
    );
}

async fn the_health_queue_pages_through_every_reason_and_dismissals_hold(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let users = f.services.end_users();
    let access = f.access().await;
    // Not user verified, and (all-zero AAGUID) of no known model.
    let mut careless = SoftPasskeys::new();
    careless.user_verified = false;
    let no_uv = f.register("ada", &mut careless).await;
    f.clock.advance(Duration::minutes(1));
    // A known, backup-eligible model not backed up at registration, backed up at a sign-in.
    let mut flipping = provider(GOOGLE, true);
    flipping.backup_state = Some(false);
    let flipped = f.register("bob", &mut flipping).await;
    flipping.backup_state = None;
    f.clock.advance(Duration::minutes(1));
    f.sign_in(&mut flipping).await.unwrap();
    f.clock.advance(Duration::minutes(1));
    let fine = f.register("cleo", &mut provider(GOOGLE, true)).await;
    let items = f.queue(None).await;
    let pairs: Vec<(HealthReason, Uuid)> = items
        .iter()
        .map(|i| (i.reason, i.authenticator_id))
        .collect();
    assert!(
        pairs.contains(&(HealthReason::NotUserVerified, no_uv)),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&(HealthReason::UnknownModel, no_uv)),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&(HealthReason::BackupStateChanged, flipped)),
        "{pairs:?}"
    );
    // The change is flagged in the audit log (a `passkey.flagged` webhook), once.
    let flags: Vec<_> = f
        .services
        .audit()
        .recent(Some(access.tenant_id()), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.action == "authenticator.flagged")
        .collect();
    assert_eq!(flags.len(), 1, "{flags:?}");
    let event = &latchkey_core::webhooks::events::from_audit(&flags[0])[0];
    assert_eq!(event.user_id.as_deref(), Some("bob"));
    assert_eq!(event.data["reason"], "backup_state_changed");
    assert_eq!(event.data["status"], "backed_up");
    assert_eq!(event.data["passkey"]["id"], flipped.to_string());
    assert!(!pairs.iter().any(|(_, id)| *id == fine), "{pairs:?}");
    // Unused: only once the tenant sets it, then by last use.
    f.save(&PolicyInput {
        unused_after_days: Some(30),
        ..policy(ModelRule::Any, &[])
    })
    .await
    .unwrap();
    assert!(f.queue(Some(HealthReason::Unused)).await.is_empty());
    f.clock.advance(Duration::days(31));
    let unused = f.queue(Some(HealthReason::Unused)).await;
    assert_eq!(unused.len(), 3);
    // Newest first, and every (reason, passkey) once across pages of two.
    let all = f.queue(None).await;
    let mut seen: Vec<(HealthReason, Uuid)> =
        all.iter().map(|i| (i.reason, i.authenticator_id)).collect();
    assert!(all.windows(2).all(|w| w[0].flagged_at >= w[1].flagged_at));
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "no item twice");
    // no_uv twice (no UV, unknown model), flipped once, and three unused.
    assert_eq!(total, 6, "{seen:?}");
    // Counts agree with the pages.
    let counts = users.credential_health_counts(&access).await.unwrap();
    let count_of = |r: HealthReason| counts.iter().find(|c| c.reason == r).map_or(0, |c| c.count);
    assert_eq!(count_of(HealthReason::Unused), 3);
    assert_eq!(count_of(HealthReason::NotUserVerified), 1);
    // Dismissed with a note: gone, audited; a blank note is refused and dismisses nothing.
    let err = users
        .dismiss_health_flag(
            &access,
            no_uv,
            HealthReason::NotUserVerified,
            "  ",
            RequestMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("note"));
    users
        .dismiss_health_flag(
            &access,
            no_uv,
            HealthReason::NotUserVerified,
            "Old laptop, user confirmed",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert!(
        f.queue(Some(HealthReason::NotUserVerified))
            .await
            .is_empty()
    );
    assert_eq!(
        f.count(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'authenticator.health_flag_dismissed'"
        )
        .await,
        1
    );
    // Unused, dismissed, then used and unused again: back in the queue.
    users
        .dismiss_health_flag(
            &access,
            fine,
            HealthReason::Unused,
            "Seasonal user",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(f.queue(Some(HealthReason::Unused)).await.len(), 2);
    // A passkey of another tenant is not found.
    let err = users
        .dismiss_health_flag(
            &access,
            Uuid::new_v4(),
            HealthReason::Unused,
            "x",
            RequestMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotFound);
    // A policy flag: raised when the policy is saved, hidden once dismissed, raised again by
    // the next save.
    f.save(&policy(ModelRule::Block, &[GOOGLE])).await.unwrap();
    assert_eq!(f.queue(Some(HealthReason::BreaksPolicy)).await.len(), 2);
    users
        .dismiss_health_flag(
            &access,
            fine,
            HealthReason::BreaksPolicy,
            "VIP, exempt",
            RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(f.queue(Some(HealthReason::BreaksPolicy)).await.len(), 1);
    f.clock.advance(Duration::minutes(1));
    f.save(&policy(ModelRule::Block, &[GOOGLE, KEY_MODEL]))
        .await
        .unwrap();
    assert_eq!(f.queue(Some(HealthReason::BreaksPolicy)).await.len(), 2);
    // A garbage cursor is a field error.
    let err = users
        .credential_health(&access, None, Some("garbage!"), 10)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("after"));
}
