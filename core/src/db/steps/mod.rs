//! The hot write steps of the Client and Server APIs (a sign-in's verification, a token's
//! validation), each sent to the database as **one unit**: one hand-off to SQLite's writer
//! thread, one statement to PostgreSQL.
//!
//! A step is a [`Chain`]: *links* — single-row writes that must each change exactly one row, in
//! order (a single-use marker inserted, a conditional update) — then *effects*, rows inserted only
//! when every link held (the validation token, the audit event). The first link that changes no
//! row stops the chain: what the links before it wrote stays (a ceremony used up by a refused
//! attempt stays used up), nothing after it is written, and the caller learns which link broke
//! ([`Outcome`]) to say why. A chain is atomic: all of it that runs commits together or not at
//! all, and its answer is given only once it is durable.
//!
//! How a chain runs, by database:
//! - **SQLite file**: on the [`sqlite_queue`] thread, which owns a connection (rusqlite) and
//!   runs every step waiting in its queue in one transaction, each in a savepoint of its own,
//!   with one commit (and, with `synchronous=full`, one fsync) for all (group commit). The
//!   statements are built by sea-query from the same entities and bound exactly as sqlx binds
//!   them, so every other query reads what they wrote.
//! - **PostgreSQL**: one data-modifying `WITH` statement ([`postgres`]): each link a CTE that
//!   runs only if the previous one returned its row, the effects `INSERT … SELECT … WHERE
//!   EXISTS` the last link. One round trip, no explicit `BEGIN`/`COMMIT`.
//! - **In-memory SQLite** (tests that ask for it): the same statements in a sea-orm
//!   transaction.

mod postgres;
pub(crate) mod sqlite_queue;

use std::{collections::HashMap, sync::Arc};

use rusqlite::types::ValueRef;
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend,
    EntityTrait, IdenStatic, Iterable, QueryTrait, Select, SelectTwo, TryIntoModel,
    sea_query::{
        ColumnType, DynIden, InsertStatement, IntoIden, OnConflict, Query, SqliteQueryBuilder,
        UpdateStatement, Value,
    },
};

use crate::{Error, Result, db::SqliteDurability};

/// One row to insert, as sea-orm would insert it (the columns the model sets).
#[derive(Debug, Clone)]
pub(crate) struct Row {
    table: DynIden,
    columns: Vec<DynIden>,
    values: Vec<Value>,
    /// What a row with the same unique key makes of the insert: nothing
    /// ([`Row::unless_exists`]) or an update ([`Row::or_update`]).
    on_conflict: Option<OnConflict>,
}

impl Row {
    pub(crate) fn of<A: ActiveModelTrait>(model: &A) -> Self {
        let mut columns = Vec::new();
        let mut values = Vec::new();
        for column in <<A::Entity as EntityTrait>::Column as Iterable>::iter() {
            if let ActiveValue::Set(value) | ActiveValue::Unchanged(value) = model.get(column) {
                columns.push(column.into_iden());
                values.push(value);
            }
        }
        Self {
            table: A::Entity::default().into_iden(),
            columns,
            values,
            on_conflict: None,
        }
    }

    /// Inserts nothing (and changes no row: the link breaks) when `column` already holds this
    /// row's value: a single-use marker whose unique key records the use.
    pub(crate) fn unless_exists(mut self, column: impl IntoIden) -> Self {
        self.on_conflict = Some(OnConflict::column(column).do_nothing().to_owned());
        self
    }

    /// An upsert: where a row with the same unique key exists, `on_conflict` updates it. As an
    /// effect only (a link must change exactly one row, which an upsert always does).
    pub(crate) fn or_update(mut self, on_conflict: OnConflict) -> Self {
        self.on_conflict = Some(on_conflict);
        self
    }

    fn on_conflict(&self) -> Option<OnConflict> {
        self.on_conflict.clone()
    }

    /// Inserts the row in `conn`'s transaction (outside a chain).
    pub(crate) async fn insert_in(&self, conn: &impl ConnectionTrait) -> Result<()> {
        let statement = conn.get_database_backend().build(&self.insert()?);
        conn.execute_raw(statement).await?;
        Ok(())
    }

    /// `INSERT … VALUES …`.
    fn insert(&self) -> Result<InsertStatement> {
        let mut insert = Query::insert();
        insert
            .into_table(self.table.clone())
            .columns(self.columns.clone())
            .values(self.values.iter().cloned().map(Into::into))
            .map_err(|e| Error::Internal(format!("building an insert: {e}")))?;
        if let Some(on_conflict) = self.on_conflict() {
            insert.on_conflict(on_conflict);
        }
        Ok(insert)
    }
}

/// A single-row write of a chain.
#[derive(Debug, Clone)]
pub(crate) enum Link {
    Insert(Row),
    /// A conditional update of at most one row (its `WHERE` names the row by key).
    Update(Box<UpdateStatement>),
}

/// A write step: links that must each change one row, then effects (see the module's docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Chain {
    links: Vec<Link>,
    effects: Vec<Row>,
}

impl Chain {
    pub(crate) fn link(mut self, link: Link) -> Self {
        self.links.push(link);
        self
    }

    pub(crate) fn effect(mut self, row: Row) -> Self {
        self.effects.push(row);
        self
    }

    /// The statements in order, for SQLite (links first, then effects).
    fn sqlite_statements(&self) -> Result<Vec<(String, Vec<Value>)>> {
        let mut out = Vec::with_capacity(self.links.len() + self.effects.len());
        for link in &self.links {
            out.push(match link {
                Link::Insert(row) => row.insert()?.build(SqliteQueryBuilder),
                Link::Update(update) => update.build(SqliteQueryBuilder),
            });
        }
        for row in &self.effects {
            out.push(row.insert()?.build(SqliteQueryBuilder));
        }
        Ok(out
            .into_iter()
            .map(|(sql, values)| (sql, values.0))
            .collect())
    }
}

/// How a chain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Every link held; the effects are written.
    Held,
    /// Link `n` (from 0) changed no row; links before it are written, nothing else.
    BrokeAt(usize),
}

/// Where the hot write steps go.
#[derive(Clone)]
pub(crate) enum StepWriter {
    /// A SQLite file: the group-commit queue.
    SqliteQueue(Arc<sqlite_queue::CommitQueue>),
    /// PostgreSQL (one statement per step), or an in-memory SQLite database (a transaction).
    Pool(DatabaseConnection),
}

impl StepWriter {
    /// The step writer for `conn`'s database; `durability` is SQLite's `synchronous` setting,
    /// which the queue's connection must share with the pool's.
    pub(crate) fn for_pool(conn: &DatabaseConnection, durability: SqliteDurability) -> Self {
        if conn.get_database_backend() != DbBackend::Sqlite {
            return Self::Pool(conn.clone());
        }
        let options = conn.get_sqlite_connection_pool().connect_options();
        let file = options.get_filename().to_string_lossy().into_owned();
        if file == ":memory:" || file.starts_with("file:sqlx-in-memory") {
            return Self::Pool(conn.clone());
        }
        Self::SqliteQueue(Arc::new(sqlite_queue::CommitQueue::new(
            options.get_filename().to_path_buf(),
            durability,
        )))
    }

    /// Steps and reads waiting for SQLite's step thread; `None` where there is no such queue.
    pub(crate) fn queue_depth(&self) -> Option<usize> {
        match self {
            Self::SqliteQueue(queue) => Some(queue.depth()),
            Self::Pool(_) => None,
        }
    }

    /// Runs `chain` as one atomic step; answers once it is committed.
    pub(crate) async fn run(&self, chain: Chain) -> Result<Outcome> {
        match self {
            Self::SqliteQueue(queue) => {
                queue
                    .run(chain.links.len(), chain.sqlite_statements()?)
                    .await
            }
            Self::Pool(conn) if conn.get_database_backend() == DbBackend::Postgres => {
                postgres::run(conn, &chain).await
            }
            Self::Pool(conn) => run_in_transaction(conn, &chain).await,
        }
    }
}

impl StepWriter {
    /// The models `select` finds: on the step thread for a SQLite file (see
    /// [`sqlite_queue::CommitQueue::read`]), through the pool otherwise. For the hot path's
    /// reads.
    pub(crate) async fn all<E: EntityTrait>(&self, select: Select<E>) -> Result<Vec<E::Model>>
    where
        E::ActiveModel: ActiveModelTrait<Entity = E> + TryIntoModel<E::Model>,
    {
        let queue = match self {
            Self::SqliteQueue(queue) => queue,
            Self::Pool(conn) => return Ok(select.all(conn).await?),
        };
        let (sql, values) = select.into_query().build(SqliteQueryBuilder);
        let types = column_types::<E>("");
        let rows = queue
            .read(sql, values.0, move |name, value| {
                sea_value(types.get(name), value)
            })
            .await?;
        rows.into_iter()
            .map(|row| model::<E>(&row, ""))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .map(|m| m.ok_or_else(|| Error::Internal("SQLite reader: an empty row".into())))
            .collect()
    }

    /// The pairs `select` finds (a row and its related row, if any), as [`StepWriter::all`].
    pub(crate) async fn all_pairs<E: EntityTrait, F: EntityTrait>(
        &self,
        select: SelectTwo<E, F>,
    ) -> Result<Vec<(E::Model, Option<F::Model>)>>
    where
        E::ActiveModel: ActiveModelTrait<Entity = E> + TryIntoModel<E::Model>,
        F::ActiveModel: ActiveModelTrait<Entity = F> + TryIntoModel<F::Model>,
    {
        let queue = match self {
            Self::SqliteQueue(queue) => queue,
            Self::Pool(conn) => return Ok(select.all(conn).await?),
        };
        let (sql, values) = select.into_query().build(SqliteQueryBuilder);
        // sea-orm names the two sides' columns `A_…` and `B_…`.
        let mut types = column_types::<E>("A_");
        types.extend(column_types::<F>("B_"));
        let rows = queue
            .read(sql, values.0, move |name, value| {
                sea_value(types.get(name), value)
            })
            .await?;
        rows.into_iter()
            .map(|row| {
                let first = model::<E>(&row, "A_")?
                    .ok_or_else(|| Error::Internal("SQLite reader: an empty row".into()))?;
                Ok((first, model::<F>(&row, "B_")?))
            })
            .collect()
    }
}

fn column_types<E: EntityTrait>(prefix: &str) -> HashMap<String, ColumnType> {
    <E::Column as Iterable>::iter()
        .map(|c| {
            (
                format!("{prefix}{}", c.as_str()),
                c.def().get_column_type().clone(),
            )
        })
        .collect()
}

/// The model of `E` in the columns named `prefix…` of `row`; `None` when they are all NULL (the
/// missing side of a left join).
fn model<E: EntityTrait>(row: &[(String, Value)], prefix: &str) -> Result<Option<E::Model>>
where
    E::ActiveModel: ActiveModelTrait<Entity = E> + TryIntoModel<E::Model>,
{
    let values: HashMap<&str, &Value> = row
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix(prefix)?, value)))
        .collect();
    let mut model = E::ActiveModel::default();
    let mut any = false;
    for column in <E::Column as Iterable>::iter() {
        let value = values.get(column.as_str()).ok_or_else(|| {
            Error::Internal(format!(
                "SQLite reader: no column {prefix}{}",
                column.as_str()
            ))
        })?;
        any |= !is_null(value);
        model.try_set(column, (*value).clone())?;
    }
    if !any {
        return Ok(None);
    }
    Ok(Some(model.try_into_model()?))
}

fn is_null(value: &Value) -> bool {
    matches!(
        value,
        Value::Uuid(None)
            | Value::String(None)
            | Value::ChronoDateTimeUtc(None)
            | Value::Json(None)
            | Value::Bool(None)
            | Value::BigInt(None)
            | Value::Int(None)
            | Value::SmallInt(None)
            | Value::Bytes(None)
    )
}

/// A SQLite column value as the sea-query value its column type reads as (the inverse of the
/// binding in [`sqlite_queue`], which follows sqlx).
fn sea_value(column: Option<&ColumnType>, value: ValueRef<'_>) -> Result<Value> {
    let bad = |what: &str| Error::Internal(format!("SQLite reader: {what} in a {column:?} column"));
    let text = |value: ValueRef<'_>| -> Result<Option<String>> {
        match value {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => Ok(Some(String::from_utf8_lossy(t).into_owned())),
            _ => Err(bad("not text")),
        }
    };
    let integer = |value: ValueRef<'_>| -> Result<Option<i64>> {
        match value {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(i) => Ok(Some(i)),
            _ => Err(bad("not an integer")),
        }
    };
    let Some(column) = column else {
        return Err(bad("an unknown column"));
    };
    Ok(match column {
        ColumnType::Uuid => Value::Uuid(match value {
            ValueRef::Null => None,
            ValueRef::Blob(b) => Some(uuid::Uuid::from_slice(b).map_err(|_| bad("not a UUID"))?),
            ValueRef::Text(t) => {
                Some(uuid::Uuid::try_parse_ascii(t).map_err(|_| bad("not a UUID"))?)
            }
            _ => return Err(bad("not a UUID")),
        }),
        ColumnType::TimestampWithTimeZone | ColumnType::Timestamp | ColumnType::DateTime => {
            Value::ChronoDateTimeUtc(
                text(value)?
                    .map(|t| {
                        chrono::DateTime::parse_from_rfc3339(&t)
                            .map(|t| t.to_utc())
                            .map_err(|_| bad("not an RFC 3339 time"))
                    })
                    .transpose()?,
            )
        }
        ColumnType::Json | ColumnType::JsonBinary => Value::Json(
            text(value)?
                .map(|t| serde_json::from_str(&t).map_err(|_| bad("not JSON")))
                .transpose()?,
        ),
        ColumnType::Boolean => Value::Bool(integer(value)?.map(|i| i != 0)),
        ColumnType::BigInteger => Value::BigInt(integer(value)?),
        ColumnType::Integer => Value::Int(
            integer(value)?
                .map(|i| i32::try_from(i).map_err(|_| bad("out of range")))
                .transpose()?,
        ),
        ColumnType::SmallInteger => Value::SmallInt(
            integer(value)?
                .map(|i| i16::try_from(i).map_err(|_| bad("out of range")))
                .transpose()?,
        ),
        ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => {
            Value::String(text(value)?)
        }
        ColumnType::Binary(_) | ColumnType::VarBinary(_) | ColumnType::Blob => {
            Value::Bytes(match value {
                ValueRef::Null => None,
                ValueRef::Blob(b) => Some(b.to_vec()),
                _ => return Err(bad("not bytes")),
            })
        }
        _ => return Err(bad("a type the reader does not map")),
    })
}

/// The chain's statements one by one in a sea-orm transaction.
async fn run_in_transaction(conn: &DatabaseConnection, chain: &Chain) -> Result<Outcome> {
    let backend = conn.get_database_backend();
    let txn = crate::db::begin_write(conn).await?;
    let links = chain.links.len();
    for (n, (sql, values)) in chain.sqlite_statements()?.into_iter().enumerate() {
        let changed = txn
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                backend, sql, values,
            ))
            .await?
            .rows_affected();
        if n < links && changed != 1 {
            txn.commit().await?;
            return Ok(Outcome::BrokeAt(n));
        }
    }
    txn.commit().await?;
    Ok(Outcome::Held)
}
