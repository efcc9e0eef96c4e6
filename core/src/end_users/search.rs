//! "Search users": a case-insensitive prefix match on the user ID or the username, a page at a
//! time.
//!
//! Each match kind is one range scan on its own index (`external_id_key` / `username_key`, both
//! lower-cased and compared byte-wise, see migration 000007), read in key order from a keyset
//! cursor — never `LIKE`, never `OFFSET`. The two ordered streams are merged here by their sort
//! key: a user matched by its user ID is listed under that key, and one matched only by its
//! username under the username. The cursor is the last row's (sort key, id): rows inserted while
//! an operator pages can neither repeat a row nor hide one that existed.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, QueryTrait, Select,
    sea_query::{Expr, ExprTrait, Query},
};
use uuid::Uuid;

use super::EndUsers;
use crate::{
    Error, Result,
    access::{Permission, TenantAccess},
    entities::{authenticator, end_user},
};

/// Users per page unless asked otherwise.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Matches counted exactly; beyond this the page says "more than".
pub const MATCH_COUNT_CAP: u64 = 1000;
/// Longest search text accepted (the longest key is 256 characters).
const MAX_QUERY_CHARS: usize = 256;

/// A search request: the text typed into **Search users** and where the previous page ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSearch {
    pub query: String,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Page size (1..=200; default 50).
    pub limit: Option<u64>,
}

/// Which key matched the search text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedOn {
    UserId,
    Username,
}

/// One row of the users list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub user_id: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub created_at: DateTime<Utc>,
    pub active_authenticators: u64,
    pub matched_on: MatchedOn,
}

/// How many users match, exactly up to [`MATCH_COUNT_CAP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchCount {
    Exactly(u64),
    MoreThan(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPage {
    pub users: Vec<UserSummary>,
    /// Cursor of the next page, if there is one.
    pub next: Option<String>,
    /// Users of the tenant.
    pub total_users: u64,
    /// Users matching the search text (all users when it is empty).
    pub matches: MatchCount,
}

/// A user row with the key it is sorted under.
struct Hit {
    key: String,
    user: end_user::Model,
    matched_on: MatchedOn,
}

/// The search text as a key prefix: trimmed and lower-cased like the stored keys. No key holds
/// a control character (user IDs and usernames refuse them), and PostgreSQL refuses NUL in any
/// text parameter: such text is refused here rather than failing in the database.
fn normalise(query: &str) -> Result<String> {
    let query = query.trim();
    if query.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid(
            "query",
            format!("Search for at most {MAX_QUERY_CHARS} characters."),
        ));
    }
    if query.chars().any(char::is_control) {
        return Err(Error::invalid(
            "query",
            "The search text cannot contain control characters.",
        ));
    }
    Ok(query.to_lowercase())
}

/// `(key, id)` of the last row of a page, opaque to the browser.
fn encode_cursor(key: &str, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{id}{key}"))
}

fn decode_cursor(cursor: &str) -> Result<(String, Uuid)> {
    let bad = || Error::invalid("after", "This page link is no longer valid; search again.");
    let raw = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    // A hyphenated UUID is 36 ASCII characters.
    let (id, key) = (
        raw.get(..36).ok_or_else(bad)?,
        raw.get(36..).ok_or_else(bad)?,
    );
    // Made only from stored keys, which hold no control character (nor NUL, which PostgreSQL
    // refuses in a parameter).
    if key.chars().any(char::is_control) {
        return Err(bad());
    }
    Ok((key.to_owned(), Uuid::parse_str(id).map_err(|_| bad())?))
}

/// Rows whose `column` starts with `prefix` (a range on the byte-ordered key; `U+10FFFF` sorts
/// after every character a key can hold), from the cursor on. The range starts at the cursor's
/// key when there is one: SQLite seeks with one lower bound only, and given the prefix it would
/// walk from the range's start to the cursor (page n reading n pages).
fn prefix_range(
    select: Select<end_user::Entity>,
    column: end_user::Column,
    prefix: &str,
    after: Option<&(String, Uuid)>,
) -> Select<end_user::Entity> {
    let lower = match after {
        Some((key, _)) if key.as_str() > prefix => key.as_str(),
        _ => prefix,
    };
    let mut select = select;
    if !lower.is_empty() {
        select = select.filter(column.gte(lower));
    }
    if !prefix.is_empty() {
        select = select.filter(column.lt(format!("{prefix}\u{10FFFF}")));
    }
    select
}

/// Users matched by their user ID.
fn by_user_id(
    tenant_id: Uuid,
    prefix: &str,
    after: Option<&(String, Uuid)>,
) -> Select<end_user::Entity> {
    prefix_range(
        end_user::Entity::find().filter(end_user::Column::TenantId.eq(tenant_id)),
        end_user::Column::ExternalIdKey,
        prefix,
        after,
    )
}

/// Users matched by their username and not by their user ID (those are listed once, by ID).
fn by_username_only(
    tenant_id: Uuid,
    prefix: &str,
    after: Option<&(String, Uuid)>,
) -> Select<end_user::Entity> {
    prefix_range(
        end_user::Entity::find().filter(end_user::Column::TenantId.eq(tenant_id)),
        end_user::Column::UsernameKey,
        prefix,
        after,
    )
    .filter(
        end_user::Column::ExternalIdKey
            .lt(prefix)
            .or(end_user::Column::ExternalIdKey.gte(format!("{prefix}\u{10FFFF}"))),
    )
}

/// At most `limit` rows of a stream after the cursor, in (key, id) order.
async fn page_of(
    conn: &impl ConnectionTrait,
    select: Select<end_user::Entity>,
    key: end_user::Column,
    after: Option<&(String, Uuid)>,
    limit: u64,
) -> Result<Vec<end_user::Model>> {
    let mut select = select;
    if let Some((after_key, after_id)) = after {
        select = select.filter(
            Expr::tuple([Expr::col(key), Expr::col(end_user::Column::Id)]).gt(Expr::tuple([
                Expr::value(after_key.clone()),
                Expr::value(*after_id),
            ])),
        );
    }
    Ok(select
        .order_by_asc(key)
        .order_by_asc(end_user::Column::Id)
        .limit(limit)
        .all(conn)
        .await?)
}

/// Rows of `select`, counted up to the cap: `COUNT(*)` over a limited subquery, so a prefix that
/// matches everyone reads at most the cap's worth of index entries. (SeaORM's paginator count
/// drops the limit.)
async fn capped_count(
    conn: &impl ConnectionTrait,
    select: Select<end_user::Entity>,
) -> Result<u64> {
    let limited = select
        .select_only()
        .column(end_user::Column::Id)
        .limit(MATCH_COUNT_CAP + 1)
        .into_query();
    let count = Query::select()
        .expr_as(Expr::cust("COUNT(*)"), "n")
        .from_subquery(limited, "limited")
        .to_owned();
    let n: i64 = match conn.query_one(&count).await? {
        Some(row) => row.try_get("", "n")?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

impl EndUsers<'_> {
    /// A page of the tenant's users matching the search text (all of them when it is empty),
    /// ordered by user ID (username for users matched by it), with their active authenticator
    /// counts. Readers of users only (`viewer` and up); another tenant is `not_found`.
    pub async fn search_users(
        &self,
        access: &TenantAccess,
        search: &UserSearch,
    ) -> Result<UserPage> {
        let tenant_id = access.tenant_id();
        access.require(Permission::ReadUsers)?;
        let prefix = normalise(&search.query)?;
        let limit = search.limit.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=200).contains(&limit) {
            return Err(Error::invalid("limit", "A page holds 1 to 200 users."));
        }
        let after = search.after.as_deref().map(decode_cursor).transpose()?;

        // One more than a page from each stream tells whether another page follows.
        let mut hits: Vec<Hit> = page_of(
            self.db,
            by_user_id(tenant_id, &prefix, after.as_ref()),
            end_user::Column::ExternalIdKey,
            after.as_ref(),
            limit + 1,
        )
        .await?
        .into_iter()
        .map(|user| Hit {
            key: user.external_id_key.clone(),
            user,
            matched_on: MatchedOn::UserId,
        })
        .collect();
        if !prefix.is_empty() {
            let by_name = page_of(
                self.db,
                by_username_only(tenant_id, &prefix, after.as_ref()),
                end_user::Column::UsernameKey,
                after.as_ref(),
                limit + 1,
            )
            .await?;
            hits.extend(by_name.into_iter().map(|user| Hit {
                key: user.username_key.clone().unwrap_or_default(),
                user,
                matched_on: MatchedOn::Username,
            }));
            // Byte order of the key, then the id: the order both indexes are read in.
            hits.sort_by(|a, b| (a.key.as_bytes(), a.user.id).cmp(&(b.key.as_bytes(), b.user.id)));
        }
        let more = hits.len() as u64 > limit;
        hits.truncate(limit as usize);
        let next = more
            .then(|| hits.last().map(|h| encode_cursor(&h.key, h.user.id)))
            .flatten();

        let counts = self
            .active_counts(tenant_id, hits.iter().map(|h| h.user.id).collect())
            .await?;
        let total_users = end_user::Entity::find()
            .filter(end_user::Column::TenantId.eq(tenant_id))
            .count(self.db)
            .await?;
        let matches = if prefix.is_empty() {
            MatchCount::Exactly(total_users)
        } else {
            let n = capped_count(self.db, by_user_id(tenant_id, &prefix, None)).await?
                + capped_count(self.db, by_username_only(tenant_id, &prefix, None)).await?;
            if n > MATCH_COUNT_CAP {
                MatchCount::MoreThan(MATCH_COUNT_CAP)
            } else {
                MatchCount::Exactly(n)
            }
        };
        let users = hits
            .into_iter()
            .map(|h| UserSummary {
                active_authenticators: counts.get(&h.user.id).copied().unwrap_or(0),
                user_id: h.user.external_id,
                username: h.user.username,
                display_name: h.user.display_name,
                created_at: h.user.created_at,
                matched_on: h.matched_on,
            })
            .collect();
        Ok(UserPage {
            users,
            next,
            total_users,
            matches,
        })
    }

    /// Active authenticators per user, for the users of one page.
    async fn active_counts(&self, tenant_id: Uuid, users: Vec<Uuid>) -> Result<HashMap<Uuid, u64>> {
        if users.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, i64)> = authenticator::Entity::find()
            .select_only()
            .column(authenticator::Column::UserId)
            .column_as(authenticator::Column::Id.count(), "n")
            .filter(authenticator::Column::TenantId.eq(tenant_id))
            .filter(authenticator::Column::UserId.is_in(users))
            .filter(authenticator::Column::RevokedAt.is_null())
            .group_by(authenticator::Column::UserId)
            .into_tuple()
            .all(self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, n)| (id, u64::try_from(n).unwrap_or(0)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = Uuid::new_v4();
        for key in ["", "alice", "ünïcödé-ключ", "i̇stanbul"] {
            assert_eq!(
                decode_cursor(&encode_cursor(key, id)).ok(),
                Some((key.to_owned(), id))
            );
        }
        let nul = URL_SAFE_NO_PAD.encode(format!("{id}with\u{0}nul"));
        for garbage in [
            "",
            "%%%",
            "YWJj",
            &URL_SAFE_NO_PAD.encode("x".repeat(40)),
            &nul,
        ] {
            assert!(matches!(
                decode_cursor(garbage),
                Err(Error::InvalidRequest { .. })
            ));
        }
    }

    #[test]
    fn search_text_is_trimmed_lower_cased_and_bounded() {
        assert_eq!(normalise("  ALice ").ok().as_deref(), Some("alice"));
        assert_eq!(normalise("ÄBC").ok().as_deref(), Some("äbc"));
        assert!(normalise(&"x".repeat(257)).is_err());
        for control in ["\u{0}", "a\u{0}b", "a\tb", "\u{7f}"] {
            assert_eq!(
                normalise(control)
                    .err()
                    .and_then(|e| e.field().map(str::to_owned))
                    .as_deref(),
                Some("query"),
                "{control:?}"
            );
        }
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            /// Any search text is a key prefix (trimmed, lower-cased, within twice the longest
            /// key) or a refusal of `query`.
            #[test]
            fn search_text_is_a_bounded_prefix_or_refused(query in prop_oneof![
                any::<String>(),
                (proptest::sample::select(vec!['İ', 'A', ' ']), 250..=260usize)
                    .prop_map(|(c, n)| std::iter::repeat_n(c, n).collect::<String>()),
            ]) {
                match normalise(&query) {
                    Ok(prefix) => {
                        prop_assert_eq!(&prefix, &query.trim().to_lowercase());
                        prop_assert!(prefix.chars().count() <= 2 * MAX_QUERY_CHARS);
                        prop_assert!(!prefix.contains('\0'));
                    }
                    Err(e) => prop_assert_eq!(e.field(), Some("query")),
                }
            }

            /// Any cursor decodes to a key and an id, or is refused as `after`; every cursor we
            /// make decodes to what it was made of.
            #[test]
            fn cursors_decode_or_are_refused(
                cursor in prop_oneof![
                    any::<String>(),
                    "[A-Za-z0-9_-]{0,80}",
                    (any::<u128>(), any::<String>())
                        .prop_map(|(id, key)| encode_cursor(&key, Uuid::from_u128(id))),
                    proptest::collection::vec(any::<u8>(), 0..64)
                        .prop_map(|bytes| URL_SAFE_NO_PAD.encode(bytes)),
                ],
                key in any::<String>(),
                id in any::<u128>(),
            ) {
                match decode_cursor(&cursor) {
                    Ok((key, _)) => prop_assert!(!key.contains('\0')),
                    Err(e) => prop_assert_eq!(e.field(), Some("after")),
                }
                // The keys cursors are made of: stored ones, without control characters.
                let key: String = key.chars().filter(|c| !c.is_control()).collect();
                let id = Uuid::from_u128(id);
                prop_assert_eq!(decode_cursor(&encode_cursor(&key, id)).ok(), Some((key, id)));
            }
        }
    }
}
