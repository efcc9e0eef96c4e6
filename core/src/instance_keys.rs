//! Keys the instances themselves need and must all share: they live in the database (table
//! `instance_keys`), as the instances share nothing else. Each is 32 random bytes, created by
//! whichever instance needs it first (an insert that loses to another instance's reads the
//! winner's), then read once per process.
//!
//! - `decoy_credentials`: derives the decoy credentials of sign-in options for unknown users
//!   (`crate::end_users` decoys);
//! - `ceremony_sealing`: encrypts the sealed ceremonies of tenant sign-ins
//!   ([`crate::webauthn::sealed`]).

use std::sync::OnceLock;

use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, sea_query::OnConflict};

use crate::{Clock, Error, Result, entities::instance_key};

/// The shared keys, each read (or created) once per process.
#[derive(Default)]
pub struct InstanceKeys {
    decoys: OnceLock<[u8; 32]>,
    sealing: OnceLock<[u8; 32]>,
}

/// Where the services read and write the keys.
pub(crate) struct KeyStore<'a> {
    pub db: &'a DatabaseConnection,
    pub writer: &'a DatabaseConnection,
    pub clock: &'a dyn Clock,
}

impl InstanceKeys {
    pub(crate) async fn decoys(&self, store: KeyStore<'_>) -> Result<[u8; 32]> {
        get(&self.decoys, "decoy_credentials", store).await
    }

    pub(crate) async fn sealing(&self, store: KeyStore<'_>) -> Result<[u8; 32]> {
        get(&self.sealing, "ceremony_sealing", store).await
    }
}

async fn get(cell: &OnceLock<[u8; 32]>, name: &str, store: KeyStore<'_>) -> Result<[u8; 32]> {
    if let Some(key) = cell.get() {
        return Ok(*key);
    }
    let key = match read(store.db, name).await? {
        Some(key) => key,
        None => create(store.writer, store.clock, name).await?,
    };
    Ok(*cell.get_or_init(|| key))
}

async fn read(conn: &DatabaseConnection, name: &str) -> Result<Option<[u8; 32]>> {
    let Some(row) = instance_key::Entity::find_by_id(name).one(conn).await? else {
        return Ok(None);
    };
    decode(&row.secret).map(Some)
}

/// Inserts a fresh key unless another instance got there first; answers the stored one.
async fn create(writer: &DatabaseConnection, clock: &dyn Clock, name: &str) -> Result<[u8; 32]> {
    let mut fresh = [0u8; 32];
    getrandom::fill(&mut fresh).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    instance_key::Entity::insert(instance_key::ActiveModel {
        name: Set(name.to_owned()),
        secret: Set(crate::secrets::hex(&fresh)),
        created_at: Set(clock.now()),
    })
    .on_conflict(
        OnConflict::column(instance_key::Column::Name)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(writer)
    .await?;
    read(writer, name)
        .await?
        .ok_or_else(|| Error::Internal(format!("the {name} key was not stored")))
}

fn decode(hex: &str) -> Result<[u8; 32]> {
    let bad = || Error::Internal("instance key: not 32 hex bytes".into());
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_as_64_hex_digits() {
        assert_eq!(decode(&"ab".repeat(32)).ok(), Some([0xab; 32]));
        assert!(decode("zz").is_err());
        assert!(decode(&"zz".repeat(32)).is_err());
    }
}
