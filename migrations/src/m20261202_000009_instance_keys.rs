//! Keys the instance itself needs and every instance must share (they live in the database, as
//! the instances share nothing else): the key of the decoy credentials that sign-in options
//! answer for unknown users (`latchkey_core::end_users::decoys`). Created on first use.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InstanceKeys {
    Table,
    /// What the key is for (`decoy_credentials`).
    Name,
    /// 32 random bytes, hex.
    Secret,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InstanceKeys::Table)
                    .col(string_len(InstanceKeys::Name, 64).primary_key())
                    .col(string_len(InstanceKeys::Secret, 64))
                    .col(timestamp_with_time_zone(InstanceKeys::CreatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(InstanceKeys::Table).to_owned())
            .await
    }
}
