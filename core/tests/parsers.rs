//! Property tests of the parsers that take outside input, through the public API: end-user IDs
//! (and the lower-cased search keys made from them), presented secrets (API keys, enrollment,
//! validation, setup and invitation tokens) and tenant configurations. Whatever comes in, the
//! answer is a value or a refusal with its client code — never a panic, never an internal
//! error — and a refusal writes nothing (the audit log aside, where a refusal is audited).
//!
//! The pure rules have their own property tests next to their code (`passkey_config`,
//! `secrets`, `webauthn_support`, `end_users::search`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use latchkey_core::{
    ErrorCode, ManualClock, Services,
    access::OperatorIdentity,
    audit::RequestMeta,
    both_backends,
    end_users::{
        ClientScope, EnrollmentRequest, InvalidReason, UserSearch, ValidationOutcome, user_id,
    },
    tenants::NewTenant,
    tenants::api_keys::ApiKeyPrincipal,
    testing::{
        TestBackend, TestDb, all_rows_as_text,
        fuzz::{
            check_async, near_miss, origin_input, passkey_config_input, rp_id_input, secret_input,
            sprinkled, typo, user_id_input,
        },
        insert_operator,
    },
    validate,
};
use proptest::{prelude::*, sample::Index};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use uuid::Uuid;

both_backends!(
    user_ids_from_outside_are_stored_or_refused_writing_nothing,
    secrets_that_match_nothing_are_refused_writing_nothing,
    configurations_from_outside_are_saved_or_refused_writing_nothing,
    search_text_and_cursors_from_outside_page_or_are_refused,
    audit_filters_from_outside_page_or_are_refused
);

const ORIGIN: &str = "https://shop.example.com";

/// Cases per database property: fewer on PostgreSQL, whose round trips are slower.
fn cases(backend: TestBackend, sqlite: u32, postgres: u32) -> u32 {
    match backend {
        TestBackend::Sqlite => sqlite,
        TestBackend::Postgres => postgres,
    }
}

// ---------------------------------------------------------------------------------------------
// End-user IDs: the rule itself.

/// The spec's rule, written independently: 1–128 characters, none of them a control, format,
/// line-separator or paragraph-separator character.
fn acceptable_user_id(value: &str) -> bool {
    let count = value.chars().count();
    (1..=128).contains(&count)
        && value.chars().all(|c| {
            !matches!(
                c.general_category(),
                GeneralCategory::Control
                    | GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Accepted user IDs are exactly those of the rule, answered unchanged; the others are
    /// `invalid_request` naming `user_id`. Their lower-cased search key fits its column
    /// (`external_id_key`, 256 characters on PostgreSQL).
    #[test]
    fn user_ids_follow_the_rule_and_their_keys_fit(value in user_id_input()) {
        match user_id(&value) {
            Ok(accepted) => {
                prop_assert!(acceptable_user_id(&value), "{:?} accepted", value);
                prop_assert_eq!(accepted, value.as_str());
                let key = accepted.to_lowercase();
                prop_assert!(key.chars().count() <= 256, "{:?}: key of {} characters", value, key.chars().count());
                prop_assert!(key.chars().count() <= 2 * accepted.chars().count());
            }
            Err(e) => {
                prop_assert!(!acceptable_user_id(&value), "{:?} refused: {}", value, e);
                prop_assert_eq!(e.code(), ErrorCode::InvalidRequest);
                prop_assert_eq!(e.field(), Some("user_id"));
            }
        }
    }

    /// Usernames and display names (labels of at most 256 characters): the username's search
    /// key (`username_key`, 512 characters on PostgreSQL) fits too.
    #[test]
    fn username_keys_fit_their_column(value in prop_oneof![
        (proptest::sample::select(vec!['İ', 'a', 'ﬃ']), 250..=260usize)
            .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect::<String>()),
        sprinkled("[a-zA-Z ]{0,300}"),
        any::<String>(),
    ]) {
        match validate::label("username", "username", &value, 256) {
            Ok(accepted) => {
                prop_assert!(accepted.to_lowercase().chars().count() <= 512);
            }
            Err(e) => {
                prop_assert_eq!(e.code(), ErrorCode::InvalidRequest);
                prop_assert_eq!(e.field(), Some("username"));
            }
        }
    }
}

/// The bound the migrations rely on ("no character lower-cases to more than two"), for every
/// character there is: so no accepted ID or username, whatever it holds, outgrows its key.
#[test]
fn no_character_lower_cases_to_more_than_two() {
    let longest = (char::MIN..=char::MAX)
        .map(|c| (c.to_lowercase().count(), c))
        .max()
        .unwrap();
    assert!(
        longest.0 <= 2,
        "{:?} lower-cases to {} characters",
        longest.1,
        longest.0
    );
}

// ---------------------------------------------------------------------------------------------
// Database properties.

struct Fixture {
    _db: TestDb,
    conn: sea_orm::DatabaseConnection,
    clock: ManualClock,
    services: Services,
    owner: OperatorIdentity,
    tenant: Uuid,
    /// Real secrets of every kind, which nothing presented below may match.
    api_key: String,
    key: ApiKeyPrincipal,
    enrollment_token: String,
    setup_token: String,
    invitation: String,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap());
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock.clone()));
    let setup_token = services
        .operators()
        .issue_setup_token()
        .await
        .unwrap()
        .expect("no operator yet")
        .token;
    let owner = insert_operator(&conn, "owner@shop.test", true).await;
    let tenant = services
        .tenants()
        .create_for_automation(NewTenant {
            name: "Shop".into(),
            rp_id: Some("shop.example.com".into()),
            origins: vec![ORIGIN.into()],
            enable_passkeys: true,
            owner_email: Some(owner.email.clone()),
        })
        .await
        .unwrap();
    let api_key = services
        .api_keys()
        .create(
            &latchkey_core::testing::host_access(&services, tenant).await,
            "backend",
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .secret;
    let key = services.api_keys().authenticate(&api_key).await.unwrap();
    let enrollment_token = services
        .end_users()
        .issue_enrollment_token(
            &key.access(),
            "user-1",
            EnrollmentRequest::default(),
            RequestMeta::default(),
        )
        .await
        .unwrap()
        .token;
    let invitation = match services
        .tenants()
        .add_member(
            &latchkey_core::testing::access(&services, &owner, tenant).await,
            "newcomer@shop.test",
            latchkey_core::access::Role::Viewer,
            RequestMeta::default(),
        )
        .await
        .unwrap()
    {
        latchkey_core::tenants::MemberAdded::Invited(issued) => issued.token,
        other => panic!("expected an invitation, got {other:?}"),
    };
    Some(Fixture {
        _db: db,
        conn,
        clock,
        services,
        owner,
        tenant,
        api_key,
        key,
        enrollment_token,
        setup_token,
        invitation,
    })
}

/// Every row but the audit log's.
async fn rows_but_audit(conn: &sea_orm::DatabaseConnection) -> Vec<(String, String)> {
    all_rows_as_text(conn)
        .await
        .into_iter()
        .filter(|(table, _)| table != "audit_events")
        .collect()
}

fn client_error(e: &latchkey_core::Error) -> Result<(), TestCaseError> {
    prop_assert!(!e.is_internal(), "internal error: {:?}", e);
    prop_assert!((400..500).contains(&e.code().http_status()), "{:?}", e);
    Ok(())
}

/// A username or display name: none, at and around the 256-character limit, or anything.
fn optional_name() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        2 => Just(None),
        1 => (proptest::sample::select(vec!['İ', 'a']), 250..=258usize)
            .prop_map(|(c, n)| Some(std::iter::repeat_n(c, n).collect::<String>())),
        1 => any::<String>().prop_map(Some),
    ]
}

/// User IDs (with usernames and display names) from a tenant's backend: a token is issued for
/// exactly the acceptable ones, and the user is found under the ID as given; anything else is
/// a field error with nothing written. Sign-in options for a named user follow the same rule.
async fn user_ids_from_outside_are_stored_or_refused_writing_nothing(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let strategy = (user_id_input(), optional_name(), optional_name());
    check_async(
        cases(backend, 48, 16),
        strategy,
        |(id, username, display_name)| {
            let f = &f;
            async move {
                let before = all_rows_as_text(&f.conn).await;
                let issued = f
                    .services
                    .end_users()
                    .issue_enrollment_token(
                        &f.key.access(),
                        &id,
                        EnrollmentRequest {
                            username: username.clone(),
                            display_name: display_name.clone(),
                            ..EnrollmentRequest::default()
                        },
                        RequestMeta::default(),
                    )
                    .await;
                match issued {
                    Ok(issued) => {
                        prop_assert!(acceptable_user_id(&id), "{:?} accepted", id);
                        prop_assert_eq!(&issued.user_id, &id);
                        let user = f.services.end_users().user(&f.key.access(), &id).await;
                        prop_assert_eq!(user.map(|u| u.user_id).ok(), Some(id.clone()));
                    }
                    Err(e) => {
                        client_error(&e)?;
                        prop_assert_eq!(e.code(), ErrorCode::InvalidRequest, "{:?}", e);
                        let field = e.field().unwrap_or_default();
                        prop_assert!(
                            ["user_id", "username", "display_name"].contains(&field),
                            "{:?}",
                            e
                        );
                        prop_assert_eq!(
                            field == "user_id",
                            !acceptable_user_id(&id),
                            "{:?}: {:?}",
                            id,
                            e
                        );
                        prop_assert!(all_rows_as_text(&f.conn).await == before, "a refusal wrote");
                        // Looked up (a Server API path), the ID finds nobody.
                        if field == "user_id" {
                            let user = f.services.end_users().user(&f.key.access(), &id).await;
                            prop_assert_eq!(
                                user.err().map(|e| e.code()),
                                Some(ErrorCode::NotFound)
                            );
                        }
                    }
                }
                let before = all_rows_as_text(&f.conn).await;
                match f
                    .services
                    .end_users()
                    .begin_authentication(f.tenant, Some(&id))
                    .await
                {
                    Ok(_) => prop_assert!(acceptable_user_id(&id), "{:?} accepted", id),
                    Err(e) => {
                        client_error(&e)?;
                        prop_assert_eq!(e.field(), Some("user_id"), "{:?}", e);
                        prop_assert!(!acceptable_user_id(&id));
                        prop_assert!(all_rows_as_text(&f.conn).await == before, "a refusal wrote");
                    }
                }
                Ok(())
            }
        },
    )
    .await;
}

/// Presented secrets that are not real ones — anything at all, well-formed random ones, and
/// real ones with a typo — are refused by every door that takes one, with its code, and change
/// nothing but the audit log.
async fn secrets_that_match_nothing_are_refused_writing_nothing(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let real = [
        f.api_key.clone(),
        f.enrollment_token.clone(),
        f.setup_token.clone(),
        f.invitation.clone(),
    ];
    let strategy = prop_oneof![
        2 => secret_input().prop_map(|s| (s, None)),
        1 => (any::<Index>(), typo()).prop_map(|(which, edit)| (String::new(), Some((which, edit)))),
    ];
    let before = rows_but_audit(&f.conn).await;
    check_async(cases(backend, 96, 32), strategy, |(random, typo)| {
        let (f, real, before) = (&f, &real, &before);
        async move {
            let presented = match typo {
                Some((which, edit)) => near_miss(&real[which.index(real.len())], &edit),
                None => random,
            };
            prop_assume!(!real.contains(&presented));
            let meta = RequestMeta::new(Some("192.0.2.7".into()), Some("fuzz".into()));

            let key = f.services.api_keys().authenticate(&presented).await;
            prop_assert_eq!(key.err().map(|e| e.code()), Some(ErrorCode::Unauthorized));

            let validated = f
                .services
                .end_users()
                .validate_token(&f.key.access(), &presented, meta.clone())
                .await;
            prop_assert!(
                matches!(
                    validated,
                    Ok(ValidationOutcome::Invalid(InvalidReason::Unknown))
                ),
                "{:?}",
                validated
            );

            let info = f.services.operators().token_info(&presented).await;
            prop_assert_eq!(info.err().map(|e| e.code()), Some(ErrorCode::TokenInvalid));

            let started = f
                .services
                .end_users()
                .begin_registration(&presented, meta.clone())
                .await;
            prop_assert_eq!(
                started.err().map(|e| e.code()),
                Some(ErrorCode::TokenInvalid)
            );

            let finished = f
                .services
                .end_users()
                .finish_registration(
                    &presented,
                    &Uuid::new_v4().to_string(),
                    "{}",
                    None,
                    None,
                    meta.clone(),
                )
                .await;
            prop_assert_eq!(
                finished.err().map(|e| e.code()),
                Some(ErrorCode::TokenInvalid)
            );

            // CORS for a registration with this token: judged like a preflight, no error.
            let verdict = f
                .services
                .end_users()
                .client_origin(ClientScope::Enrollment(Some(&presented)), Some(ORIGIN))
                .await;
            prop_assert!(verdict.is_ok(), "{:?}", verdict);

            prop_assert!(rows_but_audit(&f.conn).await == *before, "a refusal wrote");
            Ok(())
        }
    })
    .await;
    // The real ones still work: nothing above used them up.
    assert!(f.services.api_keys().authenticate(&f.api_key).await.is_ok());
    assert!(
        f.services
            .operators()
            .token_info(&f.invitation)
            .await
            .is_ok()
    );
}

/// Passkey configurations typed into the portal (or sent by the CLI): saved and then readable
/// as saved — by another instance too, whose cache is empty — and, with passkeys on, usable for
/// a sign-in; or refused with a field, with nothing written.
async fn configurations_from_outside_are_saved_or_refused_writing_nothing(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let fields = [
        "rp_id",
        "rp_name",
        "origins",
        "algorithms",
        "timeout_seconds",
        "enabled",
    ];
    let strategy = (
        passkey_config_input(),
        (
            "\\PC{0,110}",
            proptest::option::of(rp_id_input()),
            proptest::collection::vec(origin_input(), 0..3),
            any::<bool>(),
        ),
    );
    check_async(cases(backend, 48, 16), strategy, |(input, new_tenant)| {
        let (f, fields) = (&f, &fields);
        async move {
            let version = f
                .services
                .tenants()
                .get(&latchkey_core::testing::access(&f.services, &f.owner, f.tenant).await)
                .await
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .config
                .version;
            let before = all_rows_as_text(&f.conn).await;
            match f
                .services
                .tenants()
                .update_passkey_config(
                    &latchkey_core::testing::access(&f.services, &f.owner, f.tenant).await,
                    &input,
                    version,
                    RequestMeta::default(),
                )
                .await
            {
                Ok(saved) => {
                    // Another instance reads the row itself.
                    let other =
                        latchkey_core::testing::services(f.conn.clone(), Arc::new(f.clock.clone()));
                    let read = other.tenants().passkey_config(f.tenant).await;
                    prop_assert!(read.is_ok(), "{:?}", read.err());
                    let read = read.ok().flatten();
                    prop_assert_eq!(read.as_deref(), Some(&saved));
                    if saved.enabled {
                        let options = other.end_users().begin_authentication(f.tenant, None).await;
                        prop_assert!(options.is_ok(), "{:?}", options.err());
                    }
                }
                Err(e) => {
                    client_error(&e)?;
                    prop_assert_eq!(e.code(), ErrorCode::InvalidRequest, "{:?}", e);
                    prop_assert!(
                        e.field().is_some_and(|field| fields.contains(&field)),
                        "{:?}",
                        e
                    );
                    prop_assert!(all_rows_as_text(&f.conn).await == before, "a refusal wrote");
                }
            }

            // `latchkey tenant create` with the same rules.
            let (name, rp_id, origins, enable_passkeys) = new_tenant;
            let before = all_rows_as_text(&f.conn).await;
            match f
                .services
                .tenants()
                .create_for_automation(NewTenant {
                    name,
                    rp_id,
                    origins,
                    enable_passkeys,
                    owner_email: None,
                })
                .await
            {
                Ok(id) => {
                    let read = f.services.tenants().passkey_config(id).await;
                    prop_assert!(read.is_ok(), "{:?}", read.err());
                }
                Err(e) => {
                    client_error(&e)?;
                    prop_assert!(
                        e.field()
                            .is_some_and(|field| field == "name" || fields.contains(&field)),
                        "{:?}",
                        e
                    );
                    prop_assert!(all_rows_as_text(&f.conn).await == before, "a refusal wrote");
                }
            }
            Ok(())
        }
    })
    .await;
}

/// The support console's user search (text typed by an operator, cursors from the page's
/// links): a page, or a refusal of `query`, `after` or `limit`; a search writes nothing.
async fn search_text_and_cursors_from_outside_page_or_are_refused(backend: TestBackend) {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    let Some(f) = fixture(backend).await else {
        return;
    };
    for id in ["ada", "İstanbul-1", "İİ", "user-2"] {
        f.services
            .end_users()
            .issue_enrollment_token(
                &f.key.access(),
                id,
                EnrollmentRequest {
                    username: Some(format!("{id}-name")),
                    ..EnrollmentRequest::default()
                },
                RequestMeta::default(),
            )
            .await
            .unwrap();
    }
    let before = all_rows_as_text(&f.conn).await;
    // What PostgreSQL refuses in a text parameter (NUL), in the search text and in a cursor's
    // key, whatever the random cases below happen to hold.
    let nul_cursor = URL_SAFE_NO_PAD.encode(format!("{}a\0b", Uuid::nil()));
    for (query, after) in [
        ("\0", None),
        ("a\0b", None),
        ("a", Some(nul_cursor.as_str())),
    ] {
        let search = UserSearch {
            query: query.into(),
            after: after.map(str::to_owned),
            limit: None,
        };
        let result = f
            .services
            .end_users()
            .search_users(
                &latchkey_core::testing::access(&f.services, &f.owner, f.tenant).await,
                &search,
            )
            .await;
        if let Err(e) = &result {
            assert!(!e.is_internal(), "{search:?}: {e:?}");
            assert!(
                ["query", "after"].contains(&e.field().unwrap_or_default()),
                "{e:?}"
            );
        }
    }
    let cursor = prop_oneof![
        2 => Just(None),
        1 => any::<String>().prop_map(Some),
        2 => (any::<u128>(), prop_oneof![any::<String>(), user_id_input()]).prop_map(|(id, key)| {
            Some(URL_SAFE_NO_PAD.encode(format!("{}{key}", Uuid::from_u128(id))))
        }),
    ];
    let query = prop_oneof![user_id_input(), any::<String>(), "[a-zİ ]{0,4}"];
    let limit = prop_oneof![
        Just(None),
        (0..=210u64).prop_map(Some),
        any::<u64>().prop_map(Some)
    ];
    let strategy = (query, cursor, limit);
    check_async(cases(backend, 96, 32), strategy, |(query, after, limit)| {
        let (f, before) = (&f, &before);
        async move {
            let search = UserSearch {
                query,
                after,
                limit,
            };
            match f
                .services
                .end_users()
                .search_users(
                    &latchkey_core::testing::access(&f.services, &f.owner, f.tenant).await,
                    &search,
                )
                .await
            {
                Ok(page) => {
                    prop_assert!(page.users.len() as u64 <= search.limit.unwrap_or(50));
                }
                Err(e) => {
                    client_error(&e)?;
                    prop_assert!(
                        e.field()
                            .is_some_and(|field| ["query", "after", "limit"].contains(&field)),
                        "{:?}",
                        e
                    );
                }
            }
            prop_assert!(all_rows_as_text(&f.conn).await == *before, "a search wrote");
            Ok(())
        }
    })
    .await;
}

/// The audit log's filters (text typed by an operator, or in an export link): a page, or a
/// refusal naming the filter; reading the log writes nothing.
async fn audit_filters_from_outside_page_or_are_refused(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let before = all_rows_as_text(&f.conn).await;
    let text = || {
        prop_oneof![
            2 => Just(None),
            1 => proptest::sample::select(vec![
                "operator", "api_key", "cli", "owner@shop.test", "user-1", "tenant.created",
                "\0", "a\0b", " \t ",
            ])
            .prop_map(|s| Some(s.to_owned())),
            2 => user_id_input().prop_map(Some),
            1 => any::<String>().prop_map(Some),
        ]
    };
    let strategy = (
        text(),
        text(),
        text(),
        proptest::option::of(any::<i64>()),
        proptest::option::of(0..=1100u64),
    );
    check_async(
        cases(backend, 64, 24),
        strategy,
        |(actor, action, target_user, before_id, limit)| {
            let (f, before) = (&f, &before);
            async move {
                let filter = latchkey_core::audit::AuditFilter {
                    actor,
                    action,
                    target_user,
                    before: before_id,
                    limit,
                    ..Default::default()
                };
                for page in [
                    f.services
                        .audit()
                        .tenant_page(
                            &latchkey_core::testing::access(&f.services, &f.owner, f.tenant).await,
                            &filter,
                        )
                        .await,
                    f.services.audit().instance_page(&f.owner, &filter).await,
                ] {
                    if let Err(e) = page {
                        client_error(&e)?;
                        prop_assert!(
                            e.field().is_some_and(
                                |field| ["actor", "action", "user", "limit"].contains(&field)
                            ),
                            "{:?}: {:?}",
                            filter,
                            e
                        );
                    }
                }
                prop_assert!(
                    all_rows_as_text(&f.conn).await == *before,
                    "reading the log wrote"
                );
                Ok(())
            }
        },
    )
    .await;
}
