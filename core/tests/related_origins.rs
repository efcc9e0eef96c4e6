//! Related origins on both databases: saved with the configuration (refused past the browsers'
//! label limit, changing nothing), accepted as the client data's origin and by CORS only when
//! listed, and the `/.well-known/webauthn` document generated from them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is the test failing

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use latchkey_core::{
    ErrorCode, ManualClock, Services,
    access::{OperatorIdentity, TenantAccess},
    audit::RequestMeta,
    both_backends,
    end_users::{ClientScope, OriginVerdict},
    tenants::config::PasskeyConfigInput,
    testing::{TestBackend, TestDb, insert_operator, shop, soft_passkey::SoftPasskeys},
};
use uuid::Uuid;

both_backends!(
    related_origins_are_saved_within_the_label_limit,
    a_listed_related_origin_signs_in_and_others_are_refused,
);

const RELATED: &str = "https://shop.example.de";

struct Fixture {
    _db: TestDb,
    services: Services,
    tenant: Uuid,
    owner: OperatorIdentity,
}

async fn fixture(backend: TestBackend) -> Option<Fixture> {
    let db = TestDb::create(backend).await?;
    let conn = db.connect().await;
    let clock = ManualClock::new(Utc.with_ymd_and_hms(2026, 12, 5, 9, 0, 0).unwrap());
    let services = latchkey_core::testing::services(conn.clone(), Arc::new(clock));
    let owner = insert_operator(&conn, "owner@shop.test", false).await;
    let tenant = shop::create(&services, &owner).await;
    Some(Fixture {
        _db: db,
        services,
        tenant,
        owner,
    })
}

impl Fixture {
    async fn access(&self) -> TenantAccess {
        latchkey_core::testing::access(&self.services, &self.owner, self.tenant).await
    }

    /// Saves the shop's configuration with `related` and `ios` (one per line).
    async fn save(&self, related: &str, ios: &str) -> latchkey_core::Result<()> {
        let tenants = self.services.tenants();
        let access = self.access().await;
        let config = tenants.get(&access).await?.config;
        let mut input = PasskeyConfigInput::from(&config);
        input.related_origins = related.into();
        input.ios_app_ids = ios.into();
        tenants
            .update_passkey_config(&access, &input, config.version, RequestMeta::default())
            .await
            .map(drop)
    }
}

async fn related_origins_are_saved_within_the_label_limit(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    f.save(
        &format!("{RELATED}\nhttps://example.fr\n{RELATED}"),
        "ABCDE12345.com.example.app",
    )
    .await
    .unwrap();
    let config = f
        .services
        .tenants()
        .get(&f.access().await)
        .await
        .unwrap()
        .config;
    assert_eq!(config.related_origins, vec![RELATED, "https://example.fr"]);
    assert_eq!(config.ios_app_ids, vec!["ABCDE12345.com.example.app"]);
    let document = f
        .services
        .tenants()
        .well_known_webauthn(&f.access().await)
        .await
        .unwrap();
    assert_eq!(
        document,
        serde_json::json!({ "origins": [RELATED, "https://example.fr"] })
    );

    // Six site names, an origin of the RP ID's own site, a bad iOS app ID: refused, naming the
    // field, and the saved configuration stays as it was.
    for (related, ios, field) in [
        (
            "https://a.de\nhttps://b.de\nhttps://c.de\nhttps://d.de\nhttps://e.de\nhttps://f.de",
            "",
            "related_origins",
        ),
        ("https://login.shop.example.com", "", "related_origins"),
        ("", "com.example.app", "ios_app_ids"),
    ] {
        let err = f.save(related, ios).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        assert_eq!(err.field(), Some(field));
    }
    let after = f
        .services
        .tenants()
        .get(&f.access().await)
        .await
        .unwrap()
        .config;
    assert_eq!(after.related_origins, config.related_origins);
    assert_eq!(after.version, config.version);
}

async fn a_listed_related_origin_signs_in_and_others_are_refused(backend: TestBackend) {
    let Some(f) = fixture(backend).await else {
        return;
    };
    let users = f.services.end_users();
    // Not listed yet: CORS refuses the related site, and a passkey made there is refused.
    let verdict = users
        .client_origin(ClientScope::Tenant(f.tenant), Some(RELATED))
        .await
        .unwrap();
    assert_eq!(verdict, OriginVerdict::Refused);
    let mut passkeys = SoftPasskeys::new();
    let token = shop::token(&f.services, &f.access().await, "ada").await;
    let options = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let credential = passkeys.register(RELATED, &options.public_key).unwrap();
    let err = users
        .finish_registration(
            &token,
            &options.ceremony_id,
            &credential.to_string(),
            None,
            None,
            RequestMeta::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OriginMismatch);

    // Listed: allowed by CORS, registered and signed in from there.
    f.save(RELATED, "").await.unwrap();
    let verdict = users
        .client_origin(ClientScope::Tenant(f.tenant), Some(RELATED))
        .await
        .unwrap();
    assert_eq!(verdict, OriginVerdict::Allowed);
    let mut passkeys = SoftPasskeys::new();
    let token = shop::token(&f.services, &f.access().await, "ada").await;
    let options = users
        .begin_registration(&token, RequestMeta::default())
        .await
        .unwrap();
    let credential = passkeys.register(RELATED, &options.public_key).unwrap();
    users
        .finish_registration(
            &token,
            &options.ceremony_id,
            &credential.to_string(),
            None,
            None,
            RequestMeta::default(),
        )
        .await
        .unwrap();
    let sign_in = |origin: &'static str, mut passkeys: SoftPasskeys| {
        let services = f.services.clone();
        let tenant = f.tenant;
        async move {
            let users = services.end_users();
            let options = users.begin_authentication(tenant, None).await.unwrap();
            let assertion = passkeys.authenticate(origin, &options.public_key).unwrap();
            users
                .finish_authentication(
                    tenant,
                    &options.ceremony_id,
                    &assertion.to_string(),
                    None,
                    RequestMeta::default(),
                )
                .await
                .map(drop)
                .map_err(|e| e.code())
        }
    };
    assert_eq!(sign_in(RELATED, passkeys.clone()).await, Ok(()));
    assert_eq!(
        sign_in("https://shop.example.org", passkeys.clone()).await,
        Err(ErrorCode::OriginMismatch)
    );
    let verdict = users
        .client_origin(
            ClientScope::Tenant(f.tenant),
            Some("https://shop.example.org"),
        )
        .await
        .unwrap();
    assert_eq!(verdict, OriginVerdict::Refused);
}
