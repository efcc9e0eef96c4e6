use sea_orm::entity::prelude::*;

/// One sealing run, chained to the one before (see `crate::audit::chain`). Append-only.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_seals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: i64,
    pub sealed_at: DateTimeUtc,
    pub floor: DateTimeUtc,
    pub events: i64,
    pub heads: Json,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
