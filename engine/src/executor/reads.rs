//! What an execution's templates read of the KV store (`kv()`), step by
//! step, so that a replay reads the same.
//!
//! A read goes to the store the first time a step asks for a key; the
//! step's later reads of it get the same value. Once the step is handled,
//! the shard journals what it read (`Entry::Read`, right after the step's
//! own records); a replay hands each step what it read before it replays
//! it, and only a step whose reads were not journaled (a crash cut them
//! off, and nothing the step decided was seen outside) reads the store
//! again, and journals it then.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::journal::KvRead;
use crate::kv::KvStore;

/// Most bytes of values one step may read through `kv()`: its reads are one
/// journal record.
pub(crate) const MAX_STEP_READ_BYTES: usize = crate::kv::KvLimits::DEFAULT_MAX_VALUE_BYTES;

/// One step's reads.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// What the journal says this step read (a replay).
    given: Vec<KvRead>,
    /// What this step read, and whether from the store (to journal).
    seen: Vec<(KvRead, bool)>,
    /// Bytes of values read from the store in this step.
    bytes: usize,
}

/// Kestra's `kv(key, namespace, errorOnMissing)`.
pub(crate) struct Call<'a> {
    pub key: &'a str,
    /// None: the flow's namespace, then its parents.
    pub namespace: Option<&'a str>,
    pub error_on_missing: bool,
}

impl Reads {
    /// The value `call` reads from `flow_namespace`: the step's earlier read
    /// of it, the journal's, or the store's.
    pub(crate) fn read(
        &mut self,
        call: &Call<'_>,
        flow_namespace: &str,
        store: Option<&KvStore>,
        now: DateTime<Utc>,
    ) -> Result<Value, String> {
        let namespace = call.namespace.unwrap_or(flow_namespace);
        let inherit = call.namespace.is_none();
        let same =
            |r: &KvRead| r.key == call.key && r.namespace == namespace && r.inherit == inherit;
        let value = if let Some((read, _)) = self.seen.iter().find(|(r, _)| same(r)) {
            read.value.clone()
        } else if let Some(read) = self.given.iter().find(|r| same(r)) {
            self.seen.push((read.clone(), false));
            read.value.clone()
        } else {
            let store = store.ok_or(
                "the KV store is not available: this engine runs without one (kv() needs a server)",
            )?;
            let found = if inherit {
                store.get_inherited(namespace, call.key, now)
            } else {
                store
                    .get(namespace, call.key, now)
                    .map(|e| e.map(|e| (String::new(), e)))
            }
            .map_err(|e| e.to_string())?;
            let value = found.map(|(_, e)| e.value.value.to_string());
            let bytes = value.as_ref().map_or(0, String::len) + call.key.len() + namespace.len();
            if self.bytes + bytes > MAX_STEP_READ_BYTES {
                return Err(format!(
                    "kv('{}') would make this step read more than {MAX_STEP_READ_BYTES} bytes of the KV store",
                    call.key
                ));
            }
            self.bytes += bytes;
            let read = KvRead {
                namespace: namespace.to_owned(),
                key: call.key.to_owned(),
                inherit,
                value,
            };
            self.seen.push((read.clone(), true));
            read.value
        };
        match value {
            Some(text) => serde_json::from_str(&text).map_err(|e| format!("a KV read: {e}")),
            None if call.error_on_missing => Err(format!(
                "The key '{}' does not exist in the namespace '{namespace}'.",
                call.key
            )),
            None => Ok(Value::Null),
        }
    }

    /// The step about to be replayed read `given` (from its journal).
    pub(crate) fn give(&mut self, given: Vec<KvRead>) {
        self.given = given;
    }

    /// Ends the step: what it read from the store, to journal (none when
    /// all came from the journal).
    pub(crate) fn take(&mut self) -> Vec<KvRead> {
        self.given.clear();
        self.bytes = 0;
        std::mem::take(&mut self.seen)
            .into_iter()
            .filter_map(|(read, fresh)| fresh.then_some(read))
            .collect()
    }
}

/// The arguments of Kestra's `kv()`, positional: `key`, `namespace`,
/// `errorOnMissing` (true when absent, as in Kestra 0.22 and later).
pub(crate) fn call(args: &[Value]) -> Result<Call<'_>, String> {
    let key = args
        .first()
        .and_then(Value::as_str)
        .ok_or("The 'kv' function expects an argument 'key'.")?;
    let namespace = match args.get(1) {
        None | Some(Value::Null) => None,
        Some(Value::String(ns)) => Some(ns.as_str()),
        Some(_) => return Err("The 'kv' function expects 'namespace' to be a string.".into()),
    };
    let error_on_missing = match args.get(2) {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err("The 'kv' function expects 'errorOnMissing' to be a boolean.".into());
        }
    };
    Ok(Call {
        key,
        namespace,
        error_on_missing,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kv::{KvLimits, KvMeta, KvValue};

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).expect("a date")
    }

    #[test]
    fn a_step_reads_a_key_once_and_a_replay_reads_what_the_journal_says() {
        let store = KvStore::in_memory(KvLimits::default());
        store
            .put(
                "a.b",
                "k",
                KvValue::untyped(json!(1)),
                KvMeta::default(),
                true,
                at(0),
            )
            .expect("put");
        let args = [json!("k")];
        let kv = call(&args).expect("a call");
        let mut reads = Reads::default();
        assert_eq!(reads.read(&kv, "a.b.c", Some(&store), at(0)), Ok(json!(1)));
        store
            .put(
                "a.b",
                "k",
                KvValue::untyped(json!(2)),
                KvMeta::default(),
                true,
                at(0),
            )
            .expect("put");
        assert_eq!(
            reads.read(&kv, "a.b.c", Some(&store), at(0)),
            Ok(json!(1)),
            "the same step"
        );
        let journaled = reads.take();
        assert_eq!(journaled.len(), 1);
        assert_eq!(
            reads.read(&kv, "a.b.c", Some(&store), at(0)),
            Ok(json!(2)),
            "the next step"
        );
        reads.take();
        // A replay: the journal's value, not the store's, and nothing to
        // journal again.
        reads.give(journaled);
        assert_eq!(reads.read(&kv, "a.b.c", Some(&store), at(0)), Ok(json!(1)));
        assert!(reads.take().is_empty());
    }

    #[test]
    fn a_missing_key_fails_unless_told_not_to_and_the_arguments_are_checked() {
        let store = KvStore::in_memory(KvLimits::default());
        let mut reads = Reads::default();
        let args = [json!("nope")];
        let strict = call(&args).expect("a call");
        assert_eq!(
            reads.read(&strict, "ns", Some(&store), at(0)),
            Err("The key 'nope' does not exist in the namespace 'ns'.".into())
        );
        let args = [json!("nope"), json!("other"), json!(false)];
        let lax = call(&args).expect("a call");
        assert_eq!(reads.read(&lax, "ns", Some(&store), at(0)), Ok(Value::Null));
        assert_eq!(reads.take().len(), 2, "misses are journaled too");
        assert!(call(&[]).is_err());
        assert!(call(&[json!("k"), json!(1)]).is_err());
        assert!(call(&[json!("k"), Value::Null, json!("yes")]).is_err());
        assert!(reads.read(&lax, "ns", None, at(0)).is_err(), "no store");
    }
}
