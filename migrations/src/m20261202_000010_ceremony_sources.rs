//! Where each ceremony was started from (`source`: an IPv4 address or an IPv6 /64), so that one
//! source can hold only a bounded number of unfinished ceremonies (`latchkey_core::abuse`). The
//! index serves that count: the source's rows still open at a given time.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Ceremonies {
    Table,
    /// `192.0.2.7` or `2001:db8:1:2::/64`; NULL when the request had no address (the CLI, tests).
    Source,
    ExpiresAt,
}

const INDEX: &str = "idx_ceremonies_source_expires";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Ceremonies::Table)
                    .add_column(ColumnDef::new(Ceremonies::Source).string_len(64).null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Ceremonies::Table)
                    .col(Ceremonies::Source)
                    .col(Ceremonies::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(Ceremonies::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Ceremonies::Table)
                    .drop_column(Ceremonies::Source)
                    .to_owned(),
            )
            .await
    }
}
