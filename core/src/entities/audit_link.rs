use sea_orm::entity::prelude::*;

/// An audit event's place in its chain (see `crate::audit::chain`). Append-only, and kept when
/// retention purges the event.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: i64,
    pub chain: String,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
    pub seal_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
