//! Sealed ceremonies (`latchkey_core::webauthn::sealed`): a tenant sign-in's state travels in its
//! ceremony ID, encrypted with a key every instance shares, so starting one writes nothing. Its
//! single use is recorded when it is verified, by inserting its id here: the primary key decides
//! (of concurrent attempts one inserts, on every instance and both databases). Rows are kept
//! until the ceremony has expired, after which its ID is refused for its age anyway.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CeremonyUses {
    Table,
    /// The id sealed into the ceremony ID.
    Id,
    TenantId,
    /// When the ceremony expires (rows are purged some time after).
    ExpiresAt,
    UsedAt,
}

const INDEX: &str = "idx_ceremony_uses_expires_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CeremonyUses::Table)
                    .col(uuid(CeremonyUses::Id).primary_key())
                    .col(uuid(CeremonyUses::TenantId))
                    .col(timestamp_with_time_zone(CeremonyUses::ExpiresAt))
                    .col(timestamp_with_time_zone(CeremonyUses::UsedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(CeremonyUses::Table)
                    .col(CeremonyUses::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CeremonyUses::Table).to_owned())
            .await
    }
}
