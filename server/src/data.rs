//! The data folder's layout: where each log lives, for the server and for
//! the commands that read a folder offline (`wal check`, `flow export`).
//!
//! ```text
//! DATA_DIR/flows/                 the flows log (one WAL)
//! DATA_DIR/executions/shard-N/    one WAL per engine shard
//! DATA_DIR/schedules/             where each Schedule trigger stands (one WAL)
//! DATA_DIR/flow-triggers/         the latest end the Flow triggers acted on (one WAL)
//! DATA_DIR/kv/                    the KV store (one WAL)
//! DATA_DIR/logs/                  the lines executions logged (one WAL)
//! DATA_DIR/kafka/                 each Kafka trigger's last group member id
//! ```

use std::io;
use std::path::{Path, PathBuf};

/// The flows log.
pub fn flows_log(data_dir: &Path) -> PathBuf {
    data_dir.join("flows")
}

/// The schedules' log.
pub fn schedules_log(data_dir: &Path) -> PathBuf {
    data_dir.join("schedules")
}

/// The Flow triggers' log (their watermark).
pub fn flow_triggers_log(data_dir: &Path) -> PathBuf {
    data_dir.join("flow-triggers")
}

/// The KV store's log.
pub fn kv_log(data_dir: &Path) -> PathBuf {
    data_dir.join("kv")
}

/// The log store's log.
pub fn logs_log(data_dir: &Path) -> PathBuf {
    data_dir.join("logs")
}

/// The metric store's log.
pub fn metrics_log(data_dir: &Path) -> PathBuf {
    data_dir.join("metrics")
}

/// The member ids of the Kafka triggers' consumers, one file each: the
/// next start removes its previous incarnation from the group.
pub fn kafka_members(data_dir: &Path) -> PathBuf {
    data_dir.join("kafka")
}

/// The internal storage's files (`kestra:///...`).
pub fn storage(data_dir: &Path) -> PathBuf {
    data_dir.join("storage")
}

/// Where scripts work, a folder per attempt; emptied at start.
pub fn work(data_dir: &Path) -> PathBuf {
    data_dir.join("work")
}

/// The folder of the shards' WALs.
pub fn executions(data_dir: &Path) -> PathBuf {
    data_dir.join("executions")
}

/// Every log of a data folder that exists: the shards' WALs in shard order,
/// then the flows log, the schedules', the Flow triggers', the KV store's and the log store's.
pub fn logs(data_dir: &Path) -> io::Result<Vec<PathBuf>> {
    if !std::fs::metadata(data_dir)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("{} is not a directory", data_dir.display()),
        ));
    }
    let mut shards = Vec::new();
    match std::fs::read_dir(executions(data_dir)) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let n = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_prefix("shard-"))
                    .and_then(|n| n.parse::<usize>().ok());
                if let Some(n) = n {
                    shards.push((n, entry.path()));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    shards.sort();
    let mut logs: Vec<PathBuf> = shards.into_iter().map(|(_, p)| p).collect();
    let flows = flows_log(data_dir);
    if flows.is_dir() {
        logs.push(flows);
    }
    for log in [
        schedules_log(data_dir),
        flow_triggers_log(data_dir),
        kv_log(data_dir),
        logs_log(data_dir),
        metrics_log(data_dir),
    ] {
        if log.is_dir() {
            logs.push(log);
        }
    }
    Ok(logs)
}

/// What to tell an operator whose start a damaged log refused.
pub(crate) const DAMAGE_HINT: &str = "The server does not start on a damaged log: \
     `peregrine wal check DATA_DIR` lists the damage; start with --skip-damaged-wal \
     (wal.skip-damaged) to drop what is unreadable and keep the rest, or rebuild the \
     folder (`peregrine flow export DATA_DIR OUT_DIR` saves the flows)";

/// What to tell an operator whose folder an earlier build wrote.
pub(crate) const FORMAT_HINT: &str = "save the flows with \
     `peregrine flow export DATA_DIR OUT_DIR` (it reads the earlier format) and \
     start on a fresh data folder";

/// Opens one of the server's own logs (flows, schedules, Flow triggers, KV, logs):
/// what `skip_damaged` dropped is logged as records of `what` lost, and
/// what follows from it.
pub(crate) fn open_log(
    dir: &Path,
    config: peregrine_wal::Config,
    what: &str,
    follows: &str,
) -> io::Result<(peregrine_wal::Wal, peregrine_wal::Recovered)> {
    let (wal, recovered) = peregrine_wal::Wal::open(dir, config).map_err(open_error)?;
    for d in &recovered.report().damage {
        tracing::error!(
            path = %d.path.display(),
            offset = d.offset,
            "{what} lost to damage: {} ({follows})",
            d.what
        );
    }
    Ok((wal, recovered))
}

/// A WAL's open error as the server reports it: with what to do next.
pub(crate) fn open_error(e: peregrine_wal::Error) -> io::Error {
    match e {
        peregrine_wal::Error::Damaged { .. } => io::Error::other(format!("{e}. {DAMAGE_HINT}")),
        peregrine_wal::Error::UnsupportedVersion { .. } => {
            io::Error::other(format!("{e}: {FORMAT_HINT}"))
        }
        e => io::Error::other(e),
    }
}
