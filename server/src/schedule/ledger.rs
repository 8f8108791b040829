//! Where each Schedule trigger stands, made durable in its own log
//! (`data/schedules`): the next date it is to fire, and the last date it
//! fired with the execution that date started.
//!
//! One terminal record per trigger and change: each supersedes the one
//! before (the log truncates the dead ones), never expires, and is
//! forgotten when its trigger goes. A record is written only once the
//! execution it names is durably created, so that after a crash at any
//! moment a date is fired again only if its record was lost, and then it
//! names the same execution (its id derives from the date): nothing starts
//! twice.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use chrono::{DateTime, Utc};
use peregrine_engine::ExecutionId;
use peregrine_wal::{Key, Kind, Wal};
use serde_json::{Map, Value, json};

/// The key space of schedule records.
const SCHEDULES: u8 = 1;
const STANDS: Kind = Kind::new(1);
/// The trigger is gone: what stood before is dead.
const GONE: Kind = Kind::new(2);

/// A trigger: its flow's namespace and id, and its own id.
pub(crate) type TriggerKey = (String, String, String);

/// Where one trigger stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Standing {
    /// The next date it is to fire.
    pub next: DateTime<Utc>,
    /// The last date it fired, and the execution that date started.
    pub fired: Option<(DateTime<Utc>, ExecutionId)>,
    /// What its dates were computed from (cron, seconds, zone): a trigger
    /// whose dates changed starts afresh, as a new one.
    pub dates: String,
    /// Disabled through the API (Kestra's trigger context `disabled`): it
    /// fires nothing until enabled again.
    pub disabled: bool,
    /// A backfill under way (through the API): it fires its dates first.
    pub backfill: Option<Backfill>,
}

/// Kestra's trigger-context `backfill`: the dates from `start` to `end`,
/// fired (again) before the schedule goes on from `resume`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Backfill {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The next of its dates to fire.
    pub current: DateTime<Utc>,
    pub paused: bool,
    /// Over the trigger's own.
    pub inputs: Map<String, Value>,
    /// Beside the trigger's own.
    pub labels: Vec<(String, String)>,
    /// The schedule's next date when the backfill began.
    pub resume: DateTime<Utc>,
}

impl Backfill {
    fn json(&self) -> Value {
        json!({
            "start": self.start.timestamp_micros(),
            "end": self.end.timestamp_micros(),
            "current": self.current.timestamp_micros(),
            "paused": self.paused,
            "inputs": self.inputs,
            "labels": self.labels,
            "resume": self.resume.timestamp_micros(),
        })
    }

    fn read(v: &Value) -> Option<Self> {
        let date = |k: &str| v.get(k)?.as_i64().and_then(DateTime::from_timestamp_micros);
        Some(Self {
            start: date("start")?,
            end: date("end")?,
            current: date("current")?,
            paused: v.get("paused")?.as_bool()?,
            inputs: v.get("inputs")?.as_object()?.clone(),
            labels: serde_json::from_value(v.get("labels")?.clone()).ok()?,
            resume: date("resume")?,
        })
    }
}

/// Every trigger's standing, and the log that keeps it (none: in memory).
#[derive(Debug)]
pub(crate) struct Ledger {
    wal: Option<Wal>,
    /// Ordered, so that a flow's triggers are a range.
    standings: BTreeMap<TriggerKey, Standing>,
}

/// The schedules' log settings: small segments (a record per fire), none
/// kept spare, records that never expire.
pub(crate) fn wal_config(executions: &peregrine_wal::Config) -> peregrine_wal::Config {
    peregrine_wal::Config {
        segment_bytes: std::num::NonZeroU64::new(4 << 20).expect("non-zero"),
        max_record_bytes: std::num::NonZeroU32::new(64 << 10).expect("non-zero"),
        ..crate::state::flows_wal(executions)
    }
}

impl Ledger {
    /// Nothing kept on disk (a server with `none` durability, tests).
    pub fn in_memory() -> Self {
        Self {
            wal: None,
            standings: BTreeMap::new(),
        }
    }

    /// Opens (or creates) the log in `dir` and reads back every trigger's
    /// last standing. Damage refuses to open it, unless the config skips
    /// it: then the triggers it held start afresh (logged).
    pub fn open(dir: &Path, config: peregrine_wal::Config) -> io::Result<Self> {
        let (wal, recovered) = crate::data::open_log(
            dir,
            config,
            "schedule records",
            "their triggers fire from their next date",
        )?;
        let mut standings = BTreeMap::new();
        for (key, records) in recovered.iter() {
            if key.space() != SCHEDULES {
                continue;
            }
            // The last record of a key is its standing.
            let Some(last) = records.last() else { continue };
            if last.kind() == GONE {
                continue;
            }
            match decode(last.payload()) {
                Some((trigger, standing)) => {
                    standings.insert(trigger, standing);
                }
                None => tracing::error!("an unreadable schedule record is skipped"),
            }
        }
        Ok(Self {
            wal: Some(wal),
            standings,
        })
    }

    pub fn get(&self, trigger: &TriggerKey) -> Option<&Standing> {
        self.standings.get(trigger)
    }

    /// The triggers of flow `namespace.flow_id` with a standing.
    pub fn triggers_of(&self, namespace: &str, flow_id: &str) -> Vec<TriggerKey> {
        flow_range(&self.standings, namespace, flow_id)
    }

    /// Every trigger with a standing.
    pub fn triggers(&self) -> Vec<TriggerKey> {
        self.standings.keys().cloned().collect()
    }

    /// Records where `trigger` stands; with `durable`, waits until it is.
    /// A fire's standing need not wait: the log syncs it at once anyway,
    /// and if a crash loses it, its date fires again and finds the
    /// execution it started. What the API answers waits.
    pub fn record(
        &mut self,
        trigger: &TriggerKey,
        standing: Standing,
        durable: bool,
    ) -> io::Result<()> {
        if self.standings.get(trigger) == Some(&standing) {
            return Ok(());
        }
        if let Some(wal) = &self.wal {
            let payload = encode(trigger, &standing).to_string();
            let lsn = wal
                .append_terminal(STANDS, key(trigger), payload.as_bytes())
                .map_err(io::Error::other)?;
            if durable {
                wal.durable(lsn).map_err(io::Error::other)?;
            }
        }
        self.standings.insert(trigger.clone(), standing);
        Ok(())
    }

    /// `trigger` is gone (its flow deleted, or the trigger removed): its
    /// standing goes too, and a trigger of that id later starts afresh.
    pub fn forget(&mut self, trigger: &TriggerKey) -> io::Result<()> {
        if self.standings.remove(trigger).is_none() {
            return Ok(());
        }
        if let Some(wal) = &self.wal {
            // A restart before the log lets the record go finds it gone.
            let lsn = wal
                .append_terminal(GONE, key(trigger), b"")
                .map_err(io::Error::other)?;
            wal.durable(lsn).map_err(io::Error::other)?;
            wal.forget(key(trigger));
        }
        Ok(())
    }

    /// Makes what was recorded durable, and closes the log.
    pub fn close(self) -> io::Result<()> {
        match self.wal {
            Some(wal) => wal.close().map_err(io::Error::other),
            None => Ok(()),
        }
    }
}

/// The keys of `map` that are flow `namespace.flow_id`'s triggers.
pub(crate) fn flow_range<V>(
    map: &BTreeMap<TriggerKey, V>,
    namespace: &str,
    flow_id: &str,
) -> Vec<TriggerKey> {
    let from = (namespace.to_owned(), flow_id.to_owned(), String::new());
    map.range(from..)
        .take_while(|(k, _)| k.0 == namespace && k.1 == flow_id)
        .map(|(k, _)| k.clone())
        .collect()
}

fn key((namespace, flow_id, trigger_id): &TriggerKey) -> Key {
    let id = ExecutionId::for_schedule(namespace, flow_id, trigger_id, DateTime::UNIX_EPOCH);
    Key::new(SCHEDULES, id.as_u128())
}

fn encode((namespace, flow_id, trigger_id): &TriggerKey, s: &Standing) -> Value {
    let mut v = json!({
        "namespace": namespace,
        "flowId": flow_id,
        "triggerId": trigger_id,
        "next": s.next.timestamp_micros(),
        "dates": s.dates,
    });
    if s.disabled {
        v["disabled"] = true.into();
    }
    if let Some(backfill) = &s.backfill {
        v["backfill"] = backfill.json();
    }
    if let Some((date, id)) = s.fired {
        v["fired"] = date.timestamp_micros().into();
        v["execution"] = id.to_string().into();
    }
    v
}

fn decode(payload: &[u8]) -> Option<(TriggerKey, Standing)> {
    let v: Value = serde_json::from_slice(payload).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let date = |k: &str| v.get(k)?.as_i64().and_then(DateTime::from_timestamp_micros);
    let fired = match (date("fired"), text("execution")) {
        (Some(at), Some(id)) => Some((at, id.parse().ok()?)),
        _ => None,
    };
    let trigger = (text("namespace")?, text("flowId")?, text("triggerId")?);
    let standing = Standing {
        next: date("next")?,
        fired,
        dates: text("dates")?,
        disabled: v.get("disabled").and_then(Value::as_bool).unwrap_or(false),
        backfill: match v.get("backfill") {
            None => None,
            Some(b) => Some(Backfill::read(b)?),
        },
    };
    Some((trigger, standing))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> peregrine_wal::Config {
        wal_config(&peregrine_wal::Config::default())
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("a date")
    }

    #[test]
    fn the_last_standing_of_each_trigger_comes_back_after_a_reopen_and_a_forgotten_one_does_not() {
        let dir = tempfile::tempdir().expect("a dir");
        let a: TriggerKey = ("ns".into(), "f".into(), "a".into());
        let b: TriggerKey = ("ns".into(), "f".into(), "b".into());
        let id = ExecutionId::for_schedule("ns", "f", "a", at(60));
        {
            let mut ledger = Ledger::open(dir.path(), config()).expect("opens");
            for s in [0, 60] {
                let standing = Standing {
                    next: at(s + 60),
                    fired: Some((at(s), id)),
                    dates: "0 * * * *|false|UTC".into(),
                    disabled: s == 60,
                    backfill: (s == 60).then(|| Backfill {
                        start: at(0),
                        end: at(7200),
                        current: at(3600),
                        paused: true,
                        inputs: serde_json::Map::from_iter([("day".to_owned(), json!("x"))]),
                        labels: vec![("from".into(), "backfill".into())],
                        resume: at(120),
                    }),
                };
                ledger.record(&a, standing, s == 0).expect("recorded");
            }
            let standing = Standing {
                next: at(5),
                fired: None,
                dates: "x".into(),
                disabled: false,
                backfill: None,
            };
            ledger.record(&b, standing, true).expect("recorded");
            ledger.forget(&b).expect("forgotten");
            ledger.close().expect("closes");
        }
        let ledger = Ledger::open(dir.path(), config()).expect("reopens");
        assert_eq!(ledger.triggers(), std::slice::from_ref(&a));
        assert_eq!(
            ledger.get(&a),
            Some(&Standing {
                next: at(120),
                fired: Some((at(60), id)),
                dates: "0 * * * *|false|UTC".into(),
                disabled: true,
                backfill: Some(Backfill {
                    start: at(0),
                    end: at(7200),
                    current: at(3600),
                    paused: true,
                    inputs: serde_json::Map::from_iter([("day".to_owned(), json!("x"))]),
                    labels: vec![("from".into(), "backfill".into())],
                    resume: at(120),
                }),
            })
        );
    }
}
