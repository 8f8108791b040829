//! Flows made durable in their own write-ahead log (`data/flows`).
//!
//! Every flow change is one record under a key of its own, numbered in
//! order, and no record is ever terminal: nothing supersedes a change, so the
//! WAL never truncates it and recovery hands every change back, oldest
//! first. Flows change rarely; the log stays small.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use peregrine_wal::{Key, Kind, Wal};
use serde_json::{Value, json};

use super::persistence::{Durable, FlowChange, Persistence};

/// The key space of flow changes (executions use space 0).
const FLOW_CHANGES: u8 = 1;
const SAVED: Kind = Kind::new(1);
const DELETED: Kind = Kind::new(2);

/// The WAL behind the flows.
#[derive(Debug)]
pub struct WalFlows {
    wal: Wal,
    next: AtomicU64,
    recovered: Vec<FlowChange>,
}

impl WalFlows {
    /// Opens (or creates) the flows' WAL in `dir` and reads back its changes.
    /// A damaged log refuses to open (naming the file and the offset) unless
    /// `config.skip_damaged`: then the lost changes are logged and the flows
    /// they touched may be missing or at an older revision.
    pub fn open(dir: &Path, config: peregrine_wal::Config) -> io::Result<Self> {
        let (wal, recovered) = crate::data::open_log(
            dir,
            config,
            "flow changes in the flows log",
            "flows changed there may be missing or older",
        )?;
        let (changes, last) = changes(&recovered);
        Ok(Self {
            wal,
            next: AtomicU64::new(u64::try_from(last).unwrap_or(u64::MAX).saturating_add(1)),
            recovered: changes,
        })
    }
}

/// Reads the flows log in `dir` without changing anything on disk (see
/// `peregrine_wal::check`): its changes, oldest first, and what reading
/// found (a torn tail, damage: the changes there are missing).
pub fn read_flows(dir: &Path) -> io::Result<(Vec<FlowChange>, peregrine_wal::RecoveryReport)> {
    let config = crate::state::flows_wal(&peregrine_wal::Config::default());
    let recovered = peregrine_wal::check(dir, &config).map_err(io::Error::other)?;
    let (changes, _) = changes(&recovered);
    Ok((changes, recovered.report().clone()))
}

/// The flow changes of a recovered log, oldest first, and the highest
/// sequence number.
fn changes(recovered: &peregrine_wal::Recovered) -> (Vec<FlowChange>, u128) {
    let mut changes = Vec::new();
    let mut last = 0u128;
    for (key, records) in recovered.iter() {
        if key.space() != FLOW_CHANGES {
            continue;
        }
        last = last.max(key.id());
        for record in records {
            match decode(record.kind(), record.payload()) {
                Some(change) => changes.push((key.id(), change)),
                None => tracing::error!(seq = key.id(), "unreadable flow change skipped"),
            }
        }
    }
    changes.sort_by_key(|(seq, _)| *seq);
    (changes.into_iter().map(|(_, c)| c).collect(), last)
}

fn encode(change: &FlowChange) -> (Kind, Value) {
    match change {
        FlowChange::Saved {
            namespace,
            id,
            revision,
            source,
            updated,
        } => {
            let mut payload =
                json!({"namespace": namespace, "id": id, "revision": revision, "source": source});
            if let Some(updated) = updated {
                payload["updated"] = super::flows::rfc3339(*updated).into();
            }
            (SAVED, payload)
        }
        FlowChange::Deleted {
            namespace,
            id,
            revision,
        } => (
            DELETED,
            json!({"namespace": namespace, "id": id, "revision": revision}),
        ),
    }
}

fn decode(kind: Kind, payload: &[u8]) -> Option<FlowChange> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let namespace = text("namespace")?;
    let id = text("id")?;
    let revision = u32::try_from(v.get("revision")?.as_u64()?).ok()?;
    if kind == SAVED {
        // Absent from changes logged before dates were kept.
        let updated = text("updated")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|d| d.with_timezone(&Utc));
        Some(FlowChange::Saved {
            namespace,
            id,
            revision,
            source: text("source")?,
            updated,
        })
    } else if kind == DELETED {
        Some(FlowChange::Deleted {
            namespace,
            id,
            revision,
        })
    } else {
        None
    }
}

impl Persistence for WalFlows {
    fn flow_changed(&self, change: FlowChange) -> Durable {
        let (kind, payload) = encode(&change);
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let appended = self.wal.append(
            kind,
            Key::new(FLOW_CHANGES, u128::from(seq)),
            payload.to_string().as_bytes(),
        );
        match appended {
            Ok(lsn) => {
                let durable = self.wal.wait_durable(lsn);
                Box::pin(async move { durable.await.map_err(io::Error::other) })
            }
            Err(e) => Box::pin(std::future::ready(Err(io::Error::other(e)))),
        }
    }

    fn recovered_flows(&self) -> io::Result<Vec<FlowChange>> {
        Ok(self.recovered.clone())
    }

    fn sync(&self) -> io::Result<()> {
        self.wal
            .durable(self.wal.stats().written_lsn)
            .map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> peregrine_wal::Config {
        peregrine_wal::Config {
            segment_bytes: std::num::NonZeroU64::new(1 << 20).expect("non-zero"),
            max_record_bytes: std::num::NonZeroU32::new(64 << 10).expect("non-zero"),
            ..peregrine_wal::Config::default()
        }
    }

    #[test]
    fn changes_come_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let changes = vec![
            FlowChange::Saved {
                namespace: "ns".into(),
                id: "a".into(),
                revision: 1,
                source: "id: a".into(),
                updated: None,
            },
            FlowChange::Saved {
                namespace: "ns".into(),
                id: "a".into(),
                revision: 2,
                source: "id: a # 2".into(),
                updated: Some("2026-03-01T10:20:30.456Z".parse().unwrap()),
            },
            FlowChange::Deleted {
                namespace: "ns".into(),
                id: "a".into(),
                revision: 2,
            },
        ];
        {
            let flows = WalFlows::open(dir.path(), config()).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            for change in &changes {
                rt.block_on(flows.flow_changed(change.clone())).unwrap();
            }
        }
        let flows = WalFlows::open(dir.path(), config()).unwrap();
        assert_eq!(flows.recovered_flows().unwrap(), changes);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let later = FlowChange::Saved {
            namespace: "ns".into(),
            id: "b".into(),
            revision: 1,
            source: "id: b".into(),
            updated: Some("2026-03-02T00:00:00Z".parse().unwrap()),
        };
        rt.block_on(flows.flow_changed(later.clone())).unwrap();
        drop(flows);
        let flows = WalFlows::open(dir.path(), config()).unwrap();
        let all = flows.recovered_flows().unwrap();
        assert_eq!(all.len(), 4);
        assert_eq!(all[3], later, "numbering continues after a reopen");
    }
}
