//! The dashboard's adoption figure, "users with at least one passkey": the active passkeys'
//! users, counted distinct from an index alone (on a million passkeys, reading the rows for their
//! user took several times the rest of the dashboard).
//!
//! Safe under a running older instance: it only adds an index.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Authenticators {
    Table,
    TenantId,
    RevokedAt,
    UserId,
}

const INDEX: &str = "idx_authenticators_tenant_active_user";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(Authenticators::Table)
                    .col(Authenticators::TenantId)
                    .col(Authenticators::RevokedAt)
                    .col(Authenticators::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(Authenticators::Table)
                    .to_owned(),
            )
            .await
    }
}
