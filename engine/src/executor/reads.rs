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

/// One step's reads.
#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// What the journal says this step read (a replay).
    given: Vec<KvRead>,
    /// What this step read, and whether from the store (to journal).
    seen: Vec<(KvRead, bool)>,
    /// Bytes of what this step read (from the store or the journal).
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
        max_bytes: usize,
    ) -> Result<Value, String> {
        let namespace = call.namespace.unwrap_or(flow_namespace);
        let inherit = call.namespace.is_none();
        let same =
            |r: &KvRead| r.key == call.key && r.namespace == namespace && r.inherit == inherit;
        let too_much = |key: &str| {
            format!(
                "kv('{key}') would make this step read more than {max_bytes} bytes of the KV store"
            )
        };
        let value = if let Some((read, _)) = self.seen.iter().find(|(r, _)| same(r)) {
            if read.refused {
                return Err(too_much(call.key));
            }
            read.value.clone()
        } else if let Some(read) = self.given.iter().find(|r| same(r)) {
            // As it went: refused again, or counted as it was.
            let read = read.clone();
            self.seen.push((read.clone(), false));
            if read.refused {
                return Err(too_much(call.key));
            }
            self.bytes += read_bytes(&read);
            read.value
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
            let mut read = KvRead {
                namespace: namespace.to_owned(),
                key: call.key.to_owned(),
                inherit,
                value: found.map(|(_, e)| e.value.value.to_string()),
                refused: false,
            };
            let bytes = read_bytes(&read);
            if self.bytes + bytes > max_bytes {
                // Journaled refused, without its value: a replay fails the
                // same way, whatever the store holds then.
                read.value = None;
                read.refused = true;
                self.seen.push((read, true));
                return Err(too_much(call.key));
            }
            self.bytes += bytes;
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

/// The namespace file reads are journaled under: no KV namespace can be
/// it, so a file read and a `kv()` read never meet.
pub(crate) const FILES: &str = "kestra://";

/// What a template asks of a file of the internal storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileAsk {
    /// `read(path)`: its text.
    Read,
    /// `fileSize(path)`.
    Size,
    /// `fileExists(path)`.
    Exists,
    /// `isFileEmpty(path)`.
    Empty,
}

impl FileAsk {
    pub(crate) fn name(self) -> &'static str {
        match self {
            FileAsk::Read => "read",
            FileAsk::Size => "fileSize",
            FileAsk::Exists => "fileExists",
            FileAsk::Empty => "isFileEmpty",
        }
    }
}

impl Reads {
    /// What `ask` of `uri` answers: the step's earlier answer, the
    /// journal's, or the storage's (a local file read, bounded by what the
    /// step may read). A file's reads are journaled as the step's `kv()`
    /// reads are, so that a replay answers the same though the file has
    /// been deleted since.
    pub(crate) fn file(
        &mut self,
        ask: FileAsk,
        uri: &crate::storage::Uri,
        files: Option<&crate::storage::Files>,
        max_bytes: usize,
    ) -> Result<Value, String> {
        let key = format!("{} {uri}", ask.name());
        let same = |r: &KvRead| r.namespace == FILES && r.key == key;
        let too_much = || {
            format!(
                "{}('{uri}') would make this step read more than {max_bytes} bytes",
                ask.name()
            )
        };
        // A refused read keeps why (an I/O error's text), or none: it
        // would have been too much.
        let refusal = |read: &KvRead| read.value.clone().unwrap_or_else(too_much);
        let value = if let Some((read, _)) = self.seen.iter().find(|(r, _)| same(r)) {
            if read.refused {
                return Err(refusal(read));
            }
            read.value.clone()
        } else if let Some(read) = self.given.iter().find(|r| same(r)) {
            let read = read.clone();
            self.seen.push((read.clone(), false));
            if read.refused {
                return Err(refusal(&read));
            }
            self.bytes += read_bytes(&read);
            read.value
        } else {
            let files = files.ok_or(
                "the internal storage is not available: this engine runs without one (file functions need a server)",
            )?;
            let storage = files.storage();
            let room = max_bytes.saturating_sub(self.bytes + key.len());
            // Err(None): too much; Err(Some(why)): the storage failed,
            // journaled so that a replay fails the same way.
            let found: Result<Option<Value>, Option<String>> = match ask {
                FileAsk::Read => match crate::storage::read_to_string(storage, uri, room as u64) {
                    Ok(text) => Ok(Some(Value::String(text))),
                    Err(crate::storage::Error::NotFound(_)) => Ok(None),
                    Err(crate::storage::Error::TooLarge { .. }) => Err(None),
                    Err(e) => Err(Some(e.to_string())),
                },
                FileAsk::Size | FileAsk::Exists | FileAsk::Empty => match storage.size(uri) {
                    Ok(size) => Ok(match ask {
                        FileAsk::Size => size.map(Value::from),
                        FileAsk::Exists => Some(Value::Bool(size.is_some())),
                        _ => size.map(|n| Value::Bool(n == 0)),
                    }),
                    Err(e) => Err(Some(e.to_string())),
                },
            };
            let mut read = KvRead {
                namespace: FILES.to_owned(),
                key,
                inherit: false,
                value: None,
                refused: false,
            };
            match found {
                Err(why) => {
                    read.refused = true;
                    read.value = why;
                    let refused = refusal(&read);
                    self.seen.push((read, true));
                    return Err(refused);
                }
                Ok(value) => read.value = value.map(|v| v.to_string()),
            }
            let bytes = read_bytes(&read);
            if self.bytes + bytes > max_bytes {
                read.value = None;
                read.refused = true;
                self.seen.push((read, true));
                return Err(too_much());
            }
            self.bytes += bytes;
            self.seen.push((read.clone(), true));
            read.value
        };
        match value {
            Some(text) => serde_json::from_str(&text).map_err(|e| format!("a file read: {e}")),
            None => Err(format!("File '{uri}' does not exist")),
        }
    }
}

/// What a read counts against a step's limit.
fn read_bytes(read: &KvRead) -> usize {
    read.value.as_ref().map_or(0, String::len) + read.key.len() + read.namespace.len()
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
        assert_eq!(
            reads.read(&kv, "a.b.c", Some(&store), at(0), 1 << 20),
            Ok(json!(1))
        );
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
            reads.read(&kv, "a.b.c", Some(&store), at(0), 1 << 20),
            Ok(json!(1)),
            "the same step"
        );
        let journaled = reads.take();
        assert_eq!(journaled.len(), 1);
        assert_eq!(
            reads.read(&kv, "a.b.c", Some(&store), at(0), 1 << 20),
            Ok(json!(2)),
            "the next step"
        );
        reads.take();
        // A replay: the journal's value, not the store's, and nothing to
        // journal again.
        reads.give(journaled);
        assert_eq!(
            reads.read(&kv, "a.b.c", Some(&store), at(0), 1 << 20),
            Ok(json!(1))
        );
        assert!(reads.take().is_empty());
    }

    #[test]
    fn a_missing_key_fails_unless_told_not_to_and_the_arguments_are_checked() {
        let store = KvStore::in_memory(KvLimits::default());
        let mut reads = Reads::default();
        let args = [json!("nope")];
        let strict = call(&args).expect("a call");
        assert_eq!(
            reads.read(&strict, "ns", Some(&store), at(0), 1 << 20),
            Err("The key 'nope' does not exist in the namespace 'ns'.".into())
        );
        let args = [json!("nope"), json!("other"), json!(false)];
        let lax = call(&args).expect("a call");
        assert_eq!(
            reads.read(&lax, "ns", Some(&store), at(0), 1 << 20),
            Ok(Value::Null)
        );
        assert_eq!(reads.take().len(), 2, "misses are journaled too");
        assert!(call(&[]).is_err());
        assert!(call(&[json!("k"), json!(1)]).is_err());
        assert!(call(&[json!("k"), Value::Null, json!("yes")]).is_err());
        assert!(
            reads.read(&lax, "ns", None, at(0), 1 << 20).is_err(),
            "no store"
        );
    }

    #[test]
    fn a_read_past_the_steps_limit_fails_and_fails_again_in_a_replay() {
        let store = KvStore::in_memory(KvLimits::default());
        for key in ["a", "b"] {
            store
                .put(
                    "ns",
                    key,
                    KvValue::untyped(json!("x".repeat(60))),
                    KvMeta::default(),
                    true,
                    at(0),
                )
                .expect("put");
        }
        let (a, b) = ([json!("a")], [json!("b")]);
        let (a, b) = (call(&a).expect("a call"), call(&b).expect("a call"));
        let mut reads = Reads::default();
        assert!(reads.read(&a, "ns", Some(&store), at(0), 100).is_ok());
        let refused = reads
            .read(&b, "ns", Some(&store), at(0), 100)
            .expect_err("past 100 bytes");
        assert!(refused.contains("100 bytes"), "{refused}");
        let journaled = reads.take();
        assert_eq!(journaled.len(), 2);
        assert!(journaled[1].refused && journaled[1].value.is_none());
        // The store changed: `b` is small now. The replay fails all the same.
        store
            .put(
                "ns",
                "b",
                KvValue::untyped(json!("y")),
                KvMeta::default(),
                true,
                at(0),
            )
            .expect("put");
        reads.give(journaled);
        assert!(reads.read(&a, "ns", Some(&store), at(0), 100).is_ok());
        assert!(reads.read(&b, "ns", Some(&store), at(0), 100).is_err());
        assert!(reads.take().is_empty());
    }

    #[test]
    fn a_file_read_is_kept_for_the_replay_though_the_file_goes() {
        use crate::storage::{Files, LocalStorage, Storage, Uri};
        let dir = tempfile::tempdir().expect("a dir");
        let storage = LocalStorage::open(dir.path()).expect("storage");
        let files = Files::new(storage.clone(), dir.path().join("work"), 1 << 20);
        let uri = Uri::from_path("ns/f/executions/x/tasks/t/r/a.txt").expect("a uri");
        storage.put(&uri, &mut &b"before"[..], 100).expect("put");
        let mut reads = Reads::default();
        assert_eq!(
            reads.file(FileAsk::Read, &uri, Some(&files), 1 << 20),
            Ok(json!("before"))
        );
        // The same step reads it once.
        storage.delete(&uri).expect("delete");
        assert_eq!(
            reads.file(FileAsk::Read, &uri, Some(&files), 1 << 20),
            Ok(json!("before"))
        );
        let journaled = reads.take();
        assert_eq!(journaled.len(), 1);
        assert_eq!(journaled[0].namespace, FILES);
        // A replay of the step reads what the journal says; a new step,
        // what the storage has now.
        let mut replay = Reads::default();
        replay.give(journaled);
        assert_eq!(
            replay.file(FileAsk::Read, &uri, Some(&files), 1 << 20),
            Ok(json!("before"))
        );
        assert!(replay.take().is_empty());
        assert!(
            replay
                .file(FileAsk::Read, &uri, Some(&files), 1 << 20)
                .unwrap_err()
                .contains("does not exist")
        );
        assert_eq!(
            replay.file(FileAsk::Exists, &uri, Some(&files), 1 << 20),
            Ok(json!(false))
        );
        // A storage error is journaled with its text: a replay fails the
        // same way, whatever the storage says then.
        storage.put(&uri, &mut &[0xff, 0xfe][..], 100).expect("put");
        let mut broken = Reads::default();
        let why = broken
            .file(FileAsk::Read, &uri, Some(&files), 1 << 20)
            .unwrap_err();
        let journaled = broken.take();
        assert_eq!(journaled[0].value.as_deref(), Some(why.as_str()));
        storage.put(&uri, &mut &b"fine now"[..], 100).expect("put");
        let mut replay = Reads::default();
        replay.give(journaled);
        assert_eq!(
            replay.file(FileAsk::Read, &uri, Some(&files), 1 << 20),
            Err(why)
        );
        // A file past the step's room is refused, and stays refused.
        storage.put(&uri, &mut &[b'x'; 200][..], 1000).expect("put");
        let mut small = Reads::default();
        assert!(small.file(FileAsk::Read, &uri, Some(&files), 100).is_err());
        let refused = small.take();
        assert!(refused[0].refused);
    }
}
