//! Invitations from a tenant's Members page: the invitation remembers the tenant and role, and
//! accepting it makes the new operator a member in the same transaction.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum OperatorTokens {
    Table,
    TenantId,
    TenantRole,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key: a deleted tenant simply grants nothing when the invitation is used.
        for mut column in [
            uuid_null(OperatorTokens::TenantId).to_owned(),
            string_len_null(OperatorTokens::TenantRole, 16).to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(OperatorTokens::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [OperatorTokens::TenantRole, OperatorTokens::TenantId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(OperatorTokens::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
