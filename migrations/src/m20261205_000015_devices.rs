//! Device binding, sign-in reports, related origins and iOS app IDs (issue 22).
//!
//! - `devices`: a user's bound devices. A device is a P-256 key the browser (or an app) keeps
//!   and signs each ceremony with; it is known by the SHA-256 of its public key, per user.
//!   `first_seen_at` / `last_seen_at` and the user agent summarise it for support; revoking one
//!   deletes its row (the audit log keeps the record), so that its next sign-in reports it as
//!   new. The unique (tenant, user, key) index decides between concurrent first sightings.
//! - `authenticators.sign_in_count`: successful sign-ins with the passkey (the signature counter
//!   is not one: synced passkeys keep it at 0).
//! - `validation_tokens.report`: what the ceremony saw (authenticator, device, first sign-in,
//!   count, previous use, risk signals), as JSON, for the backend's validation.
//! - `tenants.related_origins` / `tenants.ios_app_ids`: JSON arrays (default `[]`): web origins on
//!   other sites that may use the RP ID (WebAuthn Related Origin Requests), and the tenant's iOS
//!   apps, for the origin doctor.
//!
//! Safe under a running older instance: it reads neither new column nor the new table, and the
//! new columns have defaults or are nullable.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    TenantId,
    UserId,
    KeyHash,
    PublicKey,
    UserAgent,
    FirstSeenAt,
    LastSeenAt,
    SignInCount,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    RelatedOrigins,
    IosAppIds,
}

#[derive(DeriveIden)]
enum EndUsers {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Authenticators {
    Table,
    SignInCount,
}

#[derive(DeriveIden)]
enum ValidationTokens {
    Table,
    Report,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Devices::Table)
                    .col(uuid(Devices::Id).primary_key())
                    .col(uuid(Devices::TenantId))
                    .col(uuid(Devices::UserId))
                    .col(string_len(Devices::KeyHash, 64))
                    .col(text(Devices::PublicKey))
                    .col(text_null(Devices::UserAgent))
                    .col(timestamp_with_time_zone(Devices::FirstSeenAt))
                    .col(timestamp_with_time_zone(Devices::LastSeenAt))
                    .col(big_integer(Devices::SignInCount).default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_devices_tenant")
                            .from(Devices::Table, Devices::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_devices_user")
                            .from(Devices::Table, Devices::UserId)
                            .to(EndUsers::Table, EndUsers::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_devices_user_key")
                    .table(Devices::Table)
                    .col(Devices::TenantId)
                    .col(Devices::UserId)
                    .col(Devices::KeyHash)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Authenticators::Table)
                    .add_column(big_integer(Authenticators::SignInCount).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ValidationTokens::Table)
                    .add_column(text_null(ValidationTokens::Report))
                    .to_owned(),
            )
            .await?;
        // SQLite adds one column per ALTER TABLE.
        for column in [Tenants::RelatedOrigins, Tenants::IosAppIds] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tenants::Table)
                        .add_column(text(column).default("[]"))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Tenants::IosAppIds, Tenants::RelatedOrigins] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Tenants::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(ValidationTokens::Table)
                    .drop_column(ValidationTokens::Report)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Authenticators::Table)
                    .drop_column(Authenticators::SignInCount)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Devices::Table).to_owned())
            .await?;
        Ok(())
    }
}
