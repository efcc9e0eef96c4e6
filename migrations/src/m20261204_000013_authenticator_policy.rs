//! Authenticator policy, attestation trust on passkeys, and the credential health queue.
//!
//! - `tenants.authenticator_policy`: the tenant's policy as JSON (`{}` is the default policy,
//!   which allows every authenticator, as before).
//! - `authenticators`: when the backup state last flipped, the attestation trust recorded at
//!   registration (`none` / `self` / `certified`, with the metadata's description and
//!   certification level), and when FIDO metadata downgraded the model (and to what status).
//!   The metadata itself gets its own tables with its import.
//! - `credential_dismissals`: support's "dismiss with a note", per passkey and reason. A
//!   dismissal hides a flag raised before it; a flag raised again later shows again.
//! - Partial indexes, one per health reason, ending in the row id: the queue is a keyset walk of
//!   each reason's index, never a scan of the tenant's passkeys (the "policy" reason excepted: it
//!   depends on the policy of the day; see `latchkey_core::end_users::health`).
//!
//! Safe under a running older instance: new columns have defaults and new tables are unread by
//! it. The older release does not enforce a policy saved meanwhile.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    AuthenticatorPolicy,
}

#[derive(DeriveIden)]
enum Authenticators {
    Table,
    Id,
    BackupStateChangedAt,
    AttestationTrust,
    Certification,
    MetadataFlaggedAt,
    MetadataStatus,
}

#[derive(DeriveIden)]
enum CredentialDismissals {
    Table,
    Id,
    TenantId,
    AuthenticatorId,
    Reason,
    DismissedAt,
    DismissedBy,
    Note,
}

/// The health queue's indexes. Each predicate is written exactly as the queue's query writes it:
/// SQLite uses a partial index only when the query's WHERE clause contains the same terms.
const HEALTH_INDEXES: &[(&str, &str, &str)] = &[
    (
        "idx_authenticators_health_counter",
        "tenant_id, counter_regressed_at, id",
        "counter_regressed_at IS NOT NULL AND revoked_at IS NULL",
    ),
    (
        "idx_authenticators_health_backup",
        "tenant_id, backup_state_changed_at, id",
        "backup_state_changed_at IS NOT NULL AND revoked_at IS NULL",
    ),
    (
        "idx_authenticators_health_metadata",
        "tenant_id, metadata_flagged_at, id",
        "metadata_flagged_at IS NOT NULL AND revoked_at IS NULL",
    ),
    (
        "idx_authenticators_health_unknown",
        "tenant_id, created_at, id",
        "provider_name IS NULL AND revoked_at IS NULL",
    ),
    (
        "idx_authenticators_health_no_uv",
        "tenant_id, created_at, id",
        "NOT user_verified AND revoked_at IS NULL",
    ),
    (
        "idx_authenticators_health_unused",
        "tenant_id, COALESCE(last_used_at, created_at), id",
        "revoked_at IS NULL",
    ),
    (
        "idx_authenticators_active_created",
        "tenant_id, created_at, id",
        "revoked_at IS NULL",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .add_column(text(Tenants::AuthenticatorPolicy).default("{}"))
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        for column in [
            timestamp_with_time_zone_null(Authenticators::BackupStateChangedAt),
            string_len(Authenticators::AttestationTrust, 16)
                .default("none")
                .to_owned(),
            text_null(Authenticators::Certification),
            timestamp_with_time_zone_null(Authenticators::MetadataFlaggedAt),
            string_len_null(Authenticators::MetadataStatus, 64),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table(Authenticators::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(CredentialDismissals::Table)
                    .col(uuid(CredentialDismissals::Id).primary_key())
                    .col(uuid(CredentialDismissals::TenantId))
                    .col(uuid(CredentialDismissals::AuthenticatorId))
                    .col(string_len(CredentialDismissals::Reason, 32))
                    .col(timestamp_with_time_zone(CredentialDismissals::DismissedAt))
                    .col(text(CredentialDismissals::DismissedBy))
                    .col(text(CredentialDismissals::Note))
                    // A dismissal goes with its passkey and its tenant.
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_credential_dismissals_tenant")
                            .from(CredentialDismissals::Table, CredentialDismissals::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_credential_dismissals_authenticator")
                            .from(
                                CredentialDismissals::Table,
                                CredentialDismissals::AuthenticatorId,
                            )
                            .to(Authenticators::Table, Authenticators::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_credential_dismissals_passkey_reason")
                    .table(CredentialDismissals::Table)
                    .col(CredentialDismissals::AuthenticatorId)
                    .col(CredentialDismissals::Reason)
                    .col(CredentialDismissals::DismissedAt)
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        for (name, columns, predicate) in HEALTH_INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX {name} ON authenticators ({columns}) WHERE {predicate}"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _, _) in HEALTH_INDEXES {
            db.execute_unprepared(&format!("DROP INDEX {name}")).await?;
        }
        manager
            .drop_table(Table::drop().table(CredentialDismissals::Table).to_owned())
            .await?;
        for column in [
            Authenticators::BackupStateChangedAt.into_iden(),
            Authenticators::AttestationTrust.into_iden(),
            Authenticators::Certification.into_iden(),
            Authenticators::MetadataFlaggedAt.into_iden(),
            Authenticators::MetadataStatus.into_iden(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Authenticators::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Tenants::Table)
                    .drop_column(Tenants::AuthenticatorPolicy)
                    .to_owned(),
            )
            .await
    }
}
