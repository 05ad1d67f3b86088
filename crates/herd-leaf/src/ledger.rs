//! The leaf's SQLite ledger (WAL, one connection): what this leaf did, durable across restarts.
//!
//! `tasks` holds each task's current state, epoch, timestamps per state, commit and fork
//! retries; `events` is append-only (one row per state change and per broadcast outcome).
//! The schema version lives in `PRAGMA user_version`; a newer version than this code knows is
//! refused rather than misread.

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use herd_bus::TaskState;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::LeafError;

/// The schema this code writes. Version 2 added `pushed_oid`.
pub const SCHEMA_VERSION: i64 = 2;
/// The ledger's file name inside the leaf directory.
pub const LEDGER_FILE: &str = "ledger.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tasks (
    id            TEXT PRIMARY KEY,
    title         TEXT NOT NULL,
    paths         TEXT NOT NULL,           -- JSON array
    state         TEXT NOT NULL,           -- open|claimed|committed|closed|released|failed
    epoch         INTEGER,
    opened_at     INTEGER,                 -- ms since the Unix epoch, per state
    claimed_at    INTEGER,
    committed_at  INTEGER,
    closed_at     INTEGER,
    released_at   INTEGER,
    failed_at     INTEGER,
    commit_oid    TEXT,                    -- the commit on the trunk
    fork_retries  INTEGER NOT NULL DEFAULT 0,
    pushed_oid    TEXT                     -- the commit pushed, when the hub replayed it
);
CREATE TABLE IF NOT EXISTS events (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    task    TEXT,
    kind    TEXT NOT NULL,
    detail  TEXT
);
";

/// One task as the ledger holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerTask {
    /// Task id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Paths.
    pub paths: Vec<String>,
    /// State.
    pub state: TaskState,
    /// Claim epoch.
    pub epoch: Option<u64>,
    /// Commit on the trunk.
    pub commit: Option<String>,
    /// The commit pushed, when the hub landed it as a different one (merge queue).
    pub pushed: Option<String>,
    /// Fork retries of its commit.
    pub fork_retries: u64,
}

/// The ledger.
pub struct Ledger {
    conn: Mutex<Held>,
}

/// The connection and the notes not yet written.
struct Held {
    conn: Connection,
    notes: Vec<Note>,
}

/// A buffered event row: (at, task, kind, detail).
type Note = (i64, Option<String>, String, Option<String>);

/// Buffered notes written in one transaction once this many are waiting (or before any other
/// access). One row per broadcast per leaf is N² rows a trial; a transaction each cost more
/// than applying the broadcast.
const NOTE_BATCH: usize = 256;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn parse_state(s: &str) -> TaskState {
    match s {
        "claimed" => TaskState::Claimed,
        "committed" => TaskState::Committed,
        "closed" => TaskState::Closed,
        "released" => TaskState::Released,
        "failed" => TaskState::Failed,
        _ => TaskState::Open,
    }
}

impl Ledger {
    /// Opens (or creates) the ledger in `dir`.
    pub fn open(dir: &Path) -> Result<Ledger, LeafError> {
        let err = |e| LeafError::ledger("", e);
        let conn = Connection::open(dir.join(LEDGER_FILE)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        // A ledger is small and written far more than read: 256 KiB of page cache, not the
        // default 2 MiB, per leaf (a trial holds hundreds of ledgers open in one process).
        conn.pragma_update(None, "cache_size", -256).map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(LeafError::Config(format!(
                "ledger {} has schema version {version}, newer than this herd's {SCHEMA_VERSION}",
                dir.join(LEDGER_FILE).display()
            )));
        }
        conn.execute_batch(SCHEMA).map_err(err)?;
        if version == 1 {
            conn.execute_batch("ALTER TABLE tasks ADD COLUMN pushed_oid TEXT")
                .map_err(err)?;
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(err)?;
        Ok(Ledger {
            conn: Mutex::new(Held {
                conn,
                notes: Vec::new(),
            }),
        })
    }

    /// `PRAGMA quick_check`: `Err` with what SQLite found when the file is damaged.
    pub fn quick_check(&self) -> Result<(), String> {
        let held = self
            .conn
            .lock()
            .map_err(|_| "ledger lock poisoned".to_string())?;
        let result: Result<String, _> = held.conn.query_row("PRAGMA quick_check", [], |r| r.get(0));
        match result {
            Ok(s) if s == "ok" => Ok(()),
            Ok(s) => Err(s),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Runs `f` on the connection after writing any buffered notes (so rows keep their order).
    fn with<T>(
        &self,
        task: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, LeafError> {
        let mut held = self
            .conn
            .lock()
            .map_err(|_| LeafError::Config("ledger lock poisoned".into()))?;
        write_notes(&mut held).map_err(|e| LeafError::ledger(task, e))?;
        f(&held.conn).map_err(|e| LeafError::ledger(task, e))
    }

    /// Writes buffered notes now.
    pub fn flush(&self) -> Result<(), LeafError> {
        self.with("", |_| Ok(()))
    }

    /// Appends an event row like [`Ledger::event`], buffered: rows are written in batches (and
    /// before any other ledger access, and when the ledger is dropped). For high-rate events
    /// such as broadcast outcomes.
    pub fn note(
        &self,
        task: Option<&str>,
        kind: &str,
        detail: Option<&str>,
    ) -> Result<(), LeafError> {
        let mut held = self
            .conn
            .lock()
            .map_err(|_| LeafError::Config("ledger lock poisoned".into()))?;
        held.notes.push((
            now_ms(),
            task.map(str::to_string),
            kind.to_string(),
            detail.map(str::to_string),
        ));
        if held.notes.len() >= NOTE_BATCH {
            write_notes(&mut held).map_err(|e| LeafError::ledger("", e))?;
        }
        Ok(())
    }

    /// Records a new open task.
    pub fn insert_task(&self, id: &str, title: &str, paths: &[String]) -> Result<(), LeafError> {
        let paths = serde_json::to_string(paths).unwrap_or_else(|_| "[]".into());
        self.with(id, |c| {
            c.execute(
                "INSERT INTO tasks (id, title, paths, state, opened_at) VALUES (?1, ?2, ?3, 'open', ?4)",
                params![id, title, paths, now_ms()],
            )?;
            c.execute("INSERT INTO events (at, task, kind) VALUES (?1, ?2, 'open')", params![now_ms(), id])?;
            Ok(())
        })
    }

    /// Moves a task to `state` (setting that state's timestamp), with optional epoch / commit /
    /// fork retries, and appends the event.
    pub fn set_state(
        &self,
        id: &str,
        state: TaskState,
        epoch: Option<u64>,
        commit: Option<&str>,
        fork_retries: Option<u64>,
    ) -> Result<(), LeafError> {
        let column = match state {
            TaskState::Open => "opened_at",
            TaskState::Claimed => "claimed_at",
            TaskState::Committed => "committed_at",
            TaskState::Closed => "closed_at",
            TaskState::Released => "released_at",
            TaskState::Failed => "failed_at",
        };
        let sql = format!(
            "UPDATE tasks SET state = ?2, {column} = ?3, epoch = COALESCE(?4, epoch), commit_oid = COALESCE(?5, commit_oid), \
             fork_retries = COALESCE(?6, fork_retries) WHERE id = ?1"
        );
        let epoch = epoch.map(|e| e as i64);
        let retries = fork_retries.map(|r| r as i64);
        self.with(id, |c| {
            let n = c.execute(
                &sql,
                params![id, state.as_str(), now_ms(), epoch, commit, retries],
            )?;
            if n == 0 {
                return Err(rusqlite::Error::QueryReturnedNoRows);
            }
            c.execute(
                "INSERT INTO events (at, task, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![now_ms(), id, state.as_str(), commit],
            )?;
            Ok(())
        })
    }

    /// Records the commit a task pushed when the hub landed it as a different commit (the merge
    /// queue replays a push built on an older tip); `commit_oid` holds the landed one.
    pub fn set_pushed(&self, id: &str, pushed: &str) -> Result<(), LeafError> {
        self.with(id, |c| {
            c.execute(
                "UPDATE tasks SET pushed_oid = ?2 WHERE id = ?1",
                params![id, pushed],
            )?;
            c.execute(
                "INSERT INTO events (at, task, kind, detail) VALUES (?1, ?2, 'replayed', ?3)",
                params![now_ms(), id, pushed],
            )?;
            Ok(())
        })
    }

    /// Appends an event not tied to a state change (broadcast outcomes, fork retries).
    pub fn event(
        &self,
        task: Option<&str>,
        kind: &str,
        detail: Option<&str>,
    ) -> Result<(), LeafError> {
        self.with(task.unwrap_or(""), |c| {
            c.execute(
                "INSERT INTO events (at, task, kind, detail) VALUES (?1, ?2, ?3, ?4)",
                params![now_ms(), task, kind, detail],
            )?;
            Ok(())
        })
    }

    /// One task.
    pub fn task(&self, id: &str) -> Result<Option<LedgerTask>, LeafError> {
        self.with(id, |c| {
            c.query_row("SELECT id, title, paths, state, epoch, commit_oid, fork_retries, pushed_oid FROM tasks WHERE id = ?1", [id], row)
                .optional()
        })
    }

    /// Every task, in id order.
    pub fn tasks(&self) -> Result<Vec<LedgerTask>, LeafError> {
        self.with("", |c| {
            let mut stmt = c.prepare("SELECT id, title, paths, state, epoch, commit_oid, fork_retries, pushed_oid FROM tasks ORDER BY id")?;
            stmt.query_map([], row)?.collect()
        })
    }

    /// Events of `kind` recorded so far.
    pub fn count_events(&self, kind: &str) -> Result<u64, LeafError> {
        self.with("", |c| {
            c.query_row("SELECT COUNT(*) FROM events WHERE kind = ?1", [kind], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
        })
    }

    /// Number of tasks this ledger ever opened (the next task number).
    /// How many of its own tasks (`<leaf>.tNNNN`) the ledger holds.
    pub fn own_task_count(&self, leaf: &str) -> Result<u64, LeafError> {
        let prefix = format!("{leaf}.t");
        self.with("", |c| {
            c.query_row(
                "SELECT COUNT(*) FROM tasks WHERE substr(id, 1, length(?1)) = ?1",
                [&prefix],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
        })
    }

    pub fn task_count(&self) -> Result<u64, LeafError> {
        self.with("", |c| {
            c.query_row("SELECT COUNT(*) FROM tasks", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
    }
}

/// Writes the buffered notes in one transaction.
fn write_notes(held: &mut Held) -> rusqlite::Result<()> {
    if held.notes.is_empty() {
        return Ok(());
    }
    let tx = held.conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO events (at, task, kind, detail) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (at, task, kind, detail) in &held.notes {
            stmt.execute(params![at, task, kind, detail])?;
        }
    }
    tx.commit()?;
    held.notes.clear();
    Ok(())
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if let Ok(held) = self.conn.get_mut()
            && let Err(e) = write_notes(held)
        {
            tracing::warn!(error = %e, "writing buffered ledger events");
        }
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerTask> {
    let paths: String = r.get(2)?;
    let state: String = r.get(3)?;
    Ok(LedgerTask {
        id: r.get(0)?,
        title: r.get(1)?,
        paths: serde_json::from_str(&paths).unwrap_or_default(),
        state: parse_state(&state),
        epoch: r.get::<_, Option<i64>>(4)?.map(|e| e as u64),
        commit: r.get(5)?,
        fork_retries: r.get::<_, i64>(6)? as u64,
        pushed: r.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_timestamps_and_events_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let l = Ledger::open(dir.path()).unwrap();
            l.insert_task("leaf-0.t0000", "t", &["slot-0/a".into()])
                .unwrap();
            l.set_state("leaf-0.t0000", TaskState::Claimed, Some(7), None, None)
                .unwrap();
            l.set_state(
                "leaf-0.t0000",
                TaskState::Committed,
                None,
                Some("abc"),
                Some(2),
            )
            .unwrap();
            l.event(None, "pulled", Some("def")).unwrap();
            assert!(
                l.set_state("missing", TaskState::Closed, None, None, None)
                    .is_err()
            );
        }
        let l = Ledger::open(dir.path()).unwrap();
        let t = l.task("leaf-0.t0000").unwrap().unwrap();
        assert_eq!(
            (t.state, t.epoch, t.commit.as_deref(), t.fork_retries),
            (TaskState::Committed, Some(7), Some("abc"), 2)
        );
        assert_eq!(l.count_events("pulled").unwrap(), 1);
        assert_eq!(l.task_count().unwrap(), 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let c = Connection::open(dir.path().join(LEDGER_FILE)).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(
            Ledger::open(dir.path())
                .err()
                .unwrap()
                .to_string()
                .contains("schema version 99")
        );
    }
}
