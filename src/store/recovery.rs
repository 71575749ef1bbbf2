//! What disaster recovery needs of the store (`ringmaster backup`,
//! `restore` and `rebuild`, see `docs/operations.md`): an online copy of
//! the file through SQLite's backup API, and a bulk-load mode for filling
//! a fresh store from the evidence branch.

use super::{Store, StoreError};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Pages copied per step of an online backup; between steps the source is
/// unlocked, so a running daemon keeps writing while the copy is made.
const BACKUP_PAGES_PER_STEP: std::os::raw::c_int = 256;

/// What an online backup copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Database pages in the copy.
    pub pages: u64,
    /// The copy's schema version (`PRAGMA user_version`).
    pub schema_version: i64,
    /// The last evidence record the copy knows of.
    pub evidence_sequence: Option<u64>,
}

impl Store {
    /// Copies the state database at `source` to `destination` (which must
    /// not exist) with SQLite's online backup API: a consistent snapshot of
    /// one moment even while a daemon writes the file (a write during the
    /// copy restarts it from that moment's pages). The copy is checked with
    /// `quick_check` before it is reported, and is a plain SQLite file in
    /// rollback-journal mode (a restore opens it in WAL again).
    pub fn backup_file(
        source: &Path,
        destination: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<BackupReport, StoreError> {
        let open_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Open { path, source }
        };
        let from = Connection::open_with_flags(
            source,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_error(source))?;
        from.busy_timeout(super::BUSY_TIMEOUT)
            .map_err(open_error(source))?;
        let version: i64 = from
            .pragma_query_one(None, "user_version")
            .map_err(|error| super::classify_open_error(source, error))?;
        if version == 0 {
            return Err(StoreError::Empty {
                path: source.to_path_buf(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut to =
            Connection::open_with_flags(destination, flags).map_err(open_error(destination))?;
        {
            let backup = rusqlite::backup::Backup::new(&from, &mut to)?;
            use rusqlite::backup::StepResult;
            loop {
                let step = backup.step(BACKUP_PAGES_PER_STEP)?;
                let done = backup.progress();
                let total = u64::try_from(done.pagecount).unwrap_or(0);
                let remaining = u64::try_from(done.remaining).unwrap_or(0);
                progress(total.saturating_sub(remaining), total);
                match step {
                    StepResult::Done => break,
                    StepResult::More => {}
                    // The daemon holds the lock for a moment: wait, go on.
                    _ => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        }
        to.pragma_update(None, "journal_mode", "delete")?;
        let pages: i64 = to.pragma_query_one(None, "page_count")?;
        let copy = Store {
            connection: super::db::Connection::sqlite(to),
            path: Some(destination.to_path_buf()),
            url: None,
        };
        copy.quick_check()?;
        Ok(BackupReport {
            pages: u64::try_from(pages).unwrap_or(0),
            schema_version: copy.schema_version()?,
            evidence_sequence: copy.evidence_head()?.map(|head| head.sequence),
        })
    }

    /// Bulk load on (`true`): commits stop waiting for the disk
    /// (`synchronous=OFF`), for `rebuild` filling a fresh store, which is
    /// simply made again if the machine fails meanwhile. Off (`false`):
    /// back to `synchronous=FULL`, and the write-ahead log is checkpointed
    /// into the file, so everything loaded is durable when this returns.
    /// PostgreSQL: nothing to change (its durability is the server's).
    pub fn set_bulk_load(&mut self, on: bool) -> Result<(), StoreError> {
        let has_file = self.path.is_some();
        let Some(connection) = self.connection.as_sqlite() else {
            return Ok(());
        };
        if on {
            connection.pragma_update(None, "synchronous", "OFF")?;
        } else {
            connection.pragma_update(None, "synchronous", "FULL")?;
            if has_file {
                connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            }
        }
        Ok(())
    }
}
