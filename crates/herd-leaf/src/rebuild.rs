//! F13: a leaf's ledger found damaged when it opens (SQLite cannot read it, `PRAGMA
//! quick_check` fails, or it is behind the bus — the bus holds a task of this leaf numbered
//! past the ledger's last, as when a crash lost its write-ahead log) is set aside (`ledger.sqlite.damaged-<ms>`) and rebuilt from the
//! bus, which holds every task's record: the leaf's own tasks are `<leaf>.tNNNN`, numbered from
//! 0, so they are read back in order until the first missing number. Each comes back with its
//! title, paths, state, claim epoch and commit; nothing is pushed while rebuilding. Tasks the
//! leaf took from a shared board are not found this way (their ids are the board's).

use std::path::Path;

use herd_bus::Bus;

use crate::error::LeafError;
use crate::ledger::{LEDGER_FILE, Ledger};

/// Opens the ledger in `dir`; a damaged one is set aside and rebuilt from `bus` for leaf `id`.
/// Returns the ledger and whether it was rebuilt.
pub(crate) async fn open_or_rebuild(
    dir: &Path,
    id: &str,
    bus: &Bus,
) -> Result<(Ledger, bool), LeafError> {
    let damage = match Ledger::open(dir) {
        Ok(ledger) => match ledger.quick_check() {
            Ok(()) => match behind(&ledger, id, bus).await? {
                None => return Ok((ledger, false)),
                Some(why) => why,
            },
            Err(why) => why,
        },
        Err(e) => e.to_string(),
    };
    tracing::warn!(leaf = id, damage = %damage, "ledger damaged: rebuilding it from the bus");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    for ext in ["", "-wal", "-shm"] {
        let from = dir.join(format!("{LEDGER_FILE}{ext}"));
        if from.exists() {
            let to = dir.join(format!("{LEDGER_FILE}{ext}.damaged-{stamp}"));
            std::fs::rename(&from, &to).map_err(|source| LeafError::Io {
                what: "setting aside the damaged ledger",
                path: from.display().to_string(),
                source,
            })?;
        }
    }
    let ledger = Ledger::open(dir)?;
    for n in 0.. {
        let task = format!("{id}.t{n:04}");
        let Some((record, _)) = bus
            .task(&task)
            .await
            .map_err(|e| LeafError::bus(&task, e))?
        else {
            break;
        };
        ledger.insert_task(&task, &record.title, &record.paths)?;
        ledger.set_state(
            &task,
            record.state,
            record.epoch,
            record.commit.as_deref(),
            None,
        )?;
    }
    ledger.event(None, "ledger_rebuilt", Some(&damage))?;
    Ok((ledger, true))
}

/// Why the ledger is behind the bus, if it is: the bus holds the task this leaf would number
/// next (it opened it, and the ledger lost the row).
async fn behind(ledger: &Ledger, id: &str, bus: &Bus) -> Result<Option<String>, LeafError> {
    let next = format!("{id}.t{:04}", ledger.own_task_count(id)?);
    let found = bus
        .task(&next)
        .await
        .map_err(|e| LeafError::bus(&next, e))?;
    Ok(found
        .map(|_| format!("the ledger is behind the bus: {next} is on the bus, not in the ledger")))
}
