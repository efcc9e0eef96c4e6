use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "metadata_blobs")]
pub struct Model {
    /// The BLOB's serial number (`no`), strictly increasing from one BLOB to the next.
    #[sea_orm(primary_key, auto_increment = false)]
    pub serial: i64,
    pub next_update: Date,
    pub models: i32,
    pub sha256: String,
    pub imported_at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub imported_by: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
