//! The schema's only source: every table is created and changed here, never from entities.
//!
//! Landed migrations are never edited; a change is a new, later migration. `landed.sha256` holds
//! every migration file's SHA-256 and a test fails when a file differs from it (see
//! `tests/landed.rs`).

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_initial;
mod m20261122_000002_operator_auth;
mod m20261123_000003_tenant_passkey_config;
mod m20261123_000004_tenant_invitations;
mod m20261123_000005_api_keys;
mod m20261124_000006_end_users;
mod m20261125_000007_support_console;
mod m20261202_000008_level_and_bound;
mod m20261202_000009_instance_keys;
mod m20261202_000010_ceremony_sources;
mod m20261203_000011_ceremony_uses;
mod m20261204_000012_audit_retention;
mod m20261204_000013_authenticator_policy;
mod m20261205_000014_fido_metadata;
mod m20261205_000015_devices;
mod m20261206_000016_audit_chain;
mod m20261206_000017_webhooks;
mod m20261207_000018_adoption;
mod m20261208_000019_active_passkeys;
mod m20261209_000020_webhook_history_indexes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_initial::Migration),
            Box::new(m20261122_000002_operator_auth::Migration),
            Box::new(m20261123_000003_tenant_passkey_config::Migration),
            Box::new(m20261123_000004_tenant_invitations::Migration),
            Box::new(m20261123_000005_api_keys::Migration),
            Box::new(m20261124_000006_end_users::Migration),
            Box::new(m20261125_000007_support_console::Migration),
            Box::new(m20261202_000008_level_and_bound::Migration),
            Box::new(m20261202_000009_instance_keys::Migration),
            Box::new(m20261202_000010_ceremony_sources::Migration),
            Box::new(m20261203_000011_ceremony_uses::Migration),
            Box::new(m20261204_000012_audit_retention::Migration),
            Box::new(m20261204_000013_authenticator_policy::Migration),
            Box::new(m20261205_000014_fido_metadata::Migration),
            Box::new(m20261205_000015_devices::Migration),
            Box::new(m20261206_000016_audit_chain::Migration),
            Box::new(m20261206_000017_webhooks::Migration),
            Box::new(m20261207_000018_adoption::Migration),
            Box::new(m20261208_000019_active_passkeys::Migration),
            Box::new(m20261209_000020_webhook_history_indexes::Migration),
        ]
    }
}
