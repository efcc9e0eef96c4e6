//! Online backups of the SQLite database (`latchkey backup --to FILE`), taken while instances
//! serve from it.
//!
//! `VACUUM INTO` rather than the page-by-page backup API: it is one read transaction, so the
//! copy is a consistent snapshot of one moment however much is written meanwhile (the backup
//! API restarts whenever another connection writes, and under steady load may never finish),
//! and the copy comes out compacted. Writers are not blocked (WAL). The copy is written beside
//! the target under a `.partial` name, flushed to disk, checked with `PRAGMA integrity_check`
//! and only then renamed into place, so a file at the target path is always a whole backup.
//!
//! PostgreSQL has `pg_dump` for this, which does the same (one snapshot, writers unblocked) and
//! whatever the operator's tooling expects; Latchkey does not wrap it.

use std::path::{Path, PathBuf};

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

use super::{DbOpenError, DbOptions};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(
        "`latchkey backup` copies SQLite databases; back PostgreSQL up with pg_dump \
         (e.g. pg_dump --format=custom --file latchkey.dump \"$LATCHKEY_DATABASE_URL\")"
    )]
    NotSqlite,
    #[error("no database at {0}: nothing to back up")]
    NoDatabase(PathBuf),
    #[error("{0} already exists: choose a new file (a backup never overwrites)")]
    TargetExists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Open(#[from] DbOpenError),
    #[error("the copy failed: {0}")]
    Copy(sea_orm::DbErr),
    #[error("the copy at {path} failed its integrity check: {detail}")]
    Damaged { path: PathBuf, detail: String },
}

/// What a finished backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Copies the SQLite database `options` names to `to` (which must not exist), consistently and
/// while it is in use.
pub async fn sqlite(options: &DbOptions, to: &Path) -> Result<Backup, BackupError> {
    let source = options.url.sqlite_file().ok_or(BackupError::NotSqlite)?;
    if !source.is_file() {
        return Err(BackupError::NoDatabase(source));
    }
    if to.exists() {
        return Err(BackupError::TargetExists(to.to_path_buf()));
    }
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    // Left by an interrupted backup to the same target: never a backup, ours to replace.
    if partial.exists() {
        std::fs::remove_file(&partial).map_err(io(&partial))?;
    }

    let conn = super::connect(&DbOptions {
        max_connections: 1,
        ..options.clone()
    })
    .await?;
    let copied = conn
        .execute_raw(Statement::from_sql_and_values(
            DatabaseBackend::Sqlite,
            "VACUUM INTO ?",
            [partial.to_string_lossy().into_owned().into()],
        ))
        .await;
    let _ = conn.close().await;
    copied.map_err(BackupError::Copy)?;

    std::fs::File::open(&partial)
        .and_then(|f| f.sync_all())
        .map_err(io(&partial))?;
    check(&partial).await?;
    std::fs::rename(&partial, to).map_err(io(to))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself is durable only once the directory is.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    let bytes = std::fs::metadata(to).map_err(io(to))?.len();
    Ok(Backup {
        path: to.to_path_buf(),
        bytes,
    })
}

/// `PRAGMA integrity_check` of the copy, opened read-only.
async fn check(path: &Path) -> Result<(), BackupError> {
    let url = format!("sqlite://{}?mode=ro", path.display());
    let conn = sea_orm::Database::connect(&url)
        .await
        .map_err(BackupError::Copy)?;
    let rows = conn
        .query_all_raw(Statement::from_string(
            DatabaseBackend::Sqlite,
            "PRAGMA integrity_check",
        ))
        .await;
    let _ = conn.close().await;
    let detail = rows
        .map_err(BackupError::Copy)?
        .iter()
        .filter_map(|row| row.try_get_by_index::<String>(0).ok())
        .collect::<Vec<_>>()
        .join("; ");
    match detail.as_str() {
        "ok" => Ok(()),
        _ => Err(BackupError::Damaged {
            path: path.to_path_buf(),
            detail,
        }),
    }
}
