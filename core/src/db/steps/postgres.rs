//! A chain as one PostgreSQL statement: each link a data-modifying CTE that runs only when the
//! previous one returned its row, the effects inserted only when the last link did.
//!
//! ```sql
//! WITH l0 AS (INSERT INTO … SELECT $1, $2 ON CONFLICT (id) DO NOTHING RETURNING 1),
//!      l1 AS (UPDATE … WHERE … AND EXISTS (SELECT 1 FROM l0) RETURNING 1),
//!      e0 AS (INSERT INTO … SELECT $3, $4 WHERE EXISTS (SELECT 1 FROM l1) RETURNING 1)
//! SELECT (SELECT count(*) FROM l0) AS l0, (SELECT count(*) FROM l1) AS l1
//! ```
//!
//! One statement is one transaction (autocommit): no `BEGIN`/`COMMIT` round trips. Single use
//! still decides by the database: a conditional update re-checks its `WHERE` after waiting for a
//! concurrent winner's row lock, and an `ON CONFLICT DO NOTHING` insert waits for a concurrent
//! insert of the same key to commit, then inserts nothing.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, Statement,
    sea_query::{
        Alias, CommonTableExpression, Expr, InsertStatement, PostgresQueryBuilder, Query,
        SelectStatement, WithClause,
    },
};

use super::{Chain, Link, Outcome, Row};
use crate::{Error, Result};

fn name(prefix: char, n: usize) -> Alias {
    Alias::new(format!("{prefix}{n}"))
}

/// `EXISTS (SELECT 1 FROM <cte>)`.
fn exists(cte: &Alias) -> sea_orm::sea_query::SimpleExpr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(cte.clone())
            .to_owned(),
    )
}

/// `INSERT INTO t (cols) SELECT vals [WHERE EXISTS (SELECT 1 FROM after)] [ON CONFLICT …]
/// RETURNING 1`.
fn insert_select(row: &Row, after: Option<&Alias>) -> Result<InsertStatement> {
    let mut select: SelectStatement = Query::select();
    select.exprs(row.values.iter().cloned().map(Expr::val));
    if let Some(after) = after {
        select.and_where(exists(after));
    }
    let mut insert = Query::insert();
    insert
        .into_table(row.table.clone())
        .columns(row.columns.clone())
        .select_from(select)
        .map_err(|e| Error::Internal(format!("building an insert: {e}")))?;
    if let Some(on_conflict) = row.on_conflict() {
        insert.on_conflict(on_conflict);
    }
    insert.returning(Query::returning().expr(Expr::val(1)));
    Ok(insert)
}

fn statement(chain: &Chain) -> Result<Statement> {
    let mut with = WithClause::new();
    let mut previous: Option<Alias> = None;
    for (n, link) in chain.links.iter().enumerate() {
        let cte = name('l', n);
        let mut expression = CommonTableExpression::new();
        match link {
            Link::Insert(row) => {
                expression.query(insert_select(row, previous.as_ref())?);
            }
            Link::Update(update) => {
                let mut update = update.as_ref().clone();
                if let Some(previous) = &previous {
                    update.and_where(exists(previous));
                }
                update.returning(Query::returning().expr(Expr::val(1)));
                expression.query(update);
            }
        }
        with.cte(expression.table_name(cte.clone()).to_owned());
        previous = Some(cte);
    }
    for (n, row) in chain.effects.iter().enumerate() {
        with.cte(
            CommonTableExpression::new()
                .query(insert_select(row, previous.as_ref())?)
                .table_name(name('e', n))
                .to_owned(),
        );
    }
    let mut answer = Query::select();
    for n in 0..chain.links.len() {
        answer.expr_as(
            Expr::cust(format!("(SELECT count(*) FROM l{n})")),
            name('l', n),
        );
    }
    let (sql, values) = with.query(answer).build(PostgresQueryBuilder);
    Ok(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
}

pub(super) async fn run(conn: &DatabaseConnection, chain: &Chain) -> Result<Outcome> {
    let row = conn
        .query_one_raw(statement(chain)?)
        .await?
        .ok_or_else(|| Error::Internal("write step: no answer row".into()))?;
    for n in 0..chain.links.len() {
        let changed: i64 = row.try_get("", &format!("l{n}"))?;
        if changed != 1 {
            return Ok(Outcome::BrokeAt(n));
        }
    }
    Ok(Outcome::Held)
}
