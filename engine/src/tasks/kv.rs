//! The KV store's tasks (Kestra's `io.kestra.plugin.core.kv`): `Set`,
//! `Get`, `Delete`, `GetKeys` and `PurgeKV`. Each renders its properties on
//! the shard and runs on the worker pool against the engine's
//! [`KvStore`](crate::kv::KvStore): a write returns once durable, and its
//! answer is journaled like any work's, so a replay neither writes again
//! nor reads a different value. A write whose answer a crash lost runs
//! again, at least once as any work: the same value set again (its
//! revision one more), or, with `overwrite: false`, a failure, since the
//! key now holds the first run's value.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Answer, Job, Started, TaskContext, TaskKind, TaskType, WorkerEnv, work};
use crate::expression::Property;
use crate::kv::{KvMeta, KvStore, KvValue, glob_matches};

pub(super) static SET: TaskType = TaskType {
    name: "io.kestra.plugin.core.kv.Set",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let key = p.req_string_property("key");
        let value = p.req_property("value");
        let namespace = p.string_property("namespace");
        let overwrite = p.bool("overwrite", true);
        let ttl = p.opt_duration_property("ttl");
        if let Some(text) = p.peek_text("kvType")
            && !text.contains("{{")
            && KvValue::typed(Value::Null, Some(&text)).is_err()
        {
            let at = p.here("kvType");
            p.problem(
                &at,
                format!(
                    "kvType must be one of STRING, NUMBER, BOOLEAN, DATETIME, DATE, DURATION, JSON, not `{text}`"
                ),
            );
        }
        let kv_type = p.string_property("kvType");
        let description = p.string_property("kvDescription");
        Some(Arc::new(Set {
            key: key?,
            value: value?,
            namespace,
            overwrite,
            ttl,
            kv_type,
            description,
        }))
    },
};

pub(super) static GET: TaskType = TaskType {
    name: "io.kestra.plugin.core.kv.Get",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let (key, namespace, error_on_missing) = one_key(p)?;
        Some(Arc::new(Get {
            key,
            namespace,
            error_on_missing,
        }))
    },
};

/// `key`, `namespace` and `errorOnMissing` (false), as `Get` and `Delete`
/// read them.
fn one_key(p: &mut crate::flow::Props<'_, '_>) -> Option<(Property, Option<Property>, bool)> {
    let key = p.req_string_property("key");
    let namespace = p.string_property("namespace");
    let error_on_missing = p.bool("errorOnMissing", false);
    Some((key?, namespace, error_on_missing))
}

pub(super) static DELETE: TaskType = TaskType {
    name: "io.kestra.plugin.core.kv.Delete",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let (key, namespace, error_on_missing) = one_key(p)?;
        Some(Arc::new(Delete {
            key,
            namespace,
            error_on_missing,
        }))
    },
};

pub(super) static GET_KEYS: TaskType = TaskType {
    name: "io.kestra.plugin.core.kv.GetKeys",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let prefix = p.string_property("prefix");
        let namespace = p.string_property("namespace");
        Some(Arc::new(GetKeys { prefix, namespace }))
    },
};

pub(super) static PURGE_KV: TaskType = TaskType {
    name: "io.kestra.plugin.core.kv.PurgeKV",
    aliases: &[],
    flowable: false,
    own_timeout: false,
    parse: |p| {
        let key_pattern = p.string_property("keyPattern");
        let listed = p.peek_text("namespaces").is_some() || p.has("namespaces");
        let namespaces = if listed {
            p.list_property("namespaces")
        } else {
            None
        };
        let namespace_pattern = p.string_property("namespacePattern");
        if listed && namespace_pattern.is_some() {
            let at = p.here("namespacePattern");
            p.problem(
                &at,
                "`namespaces` and `namespacePattern` can't be used together: use one or the other",
            );
        }
        let include_children = p.bool("includeChildNamespaces", true);
        let mut expired_only = true;
        if let Some((behavior, at)) = p.json("behavior") {
            match behavior_expired_only(&behavior) {
                Ok(only) => expired_only = only,
                Err(message) => p.problem(&at, message),
            }
        }
        // The deprecated `expiredOnly` overrides `behavior`, as in Kestra.
        if p.has("expiredOnly") {
            expired_only = p.bool("expiredOnly", true);
        }
        Some(Arc::new(PurgeKv {
            key_pattern,
            namespaces,
            namespace_pattern,
            include_children,
            expired_only,
        }))
    },
};

/// `PurgeKV`'s `behavior`: `{type: key, expiredOnly}` (the default); Kestra's
/// `version` behavior needs versions this store does not keep.
fn behavior_expired_only(behavior: &Value) -> Result<bool, String> {
    let Some(map) = behavior.as_object() else {
        return Err("`behavior` must be a map with a `type`".into());
    };
    match map.get("type").and_then(Value::as_str) {
        Some("key") => {}
        Some(other) => {
            return Err(format!(
                "the purge behavior `{other}` is not supported yet: only `key` (keys are not versioned)"
            ));
        }
        None => return Err("`behavior` needs a `type` (`key`)".into()),
    }
    for k in map.keys() {
        if k != "type" && k != "expiredOnly" {
            return Err(format!("`behavior.{k}` is not supported yet"));
        }
    }
    match map.get("expiredOnly") {
        None => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err("`behavior.expiredOnly` must be true or false".into()),
    }
}

/// `kv.Set`: `key` of `namespace` (the flow's by default) set to `value`,
/// typed by `kvType`, expiring after `ttl`; with `overwrite: false`, a key
/// that holds a value fails the task.
#[derive(Debug)]
pub(crate) struct Set {
    key: Property,
    value: Property,
    namespace: Option<Property>,
    overwrite: bool,
    ttl: Option<Property>,
    kv_type: Option<Property>,
    description: Option<Property>,
}

/// `kv.Get`: the value of `key` (`value`, null when missing, unless
/// `errorOnMissing`).
#[derive(Debug)]
pub(crate) struct Get {
    key: Property,
    namespace: Option<Property>,
    error_on_missing: bool,
}

/// `kv.Delete`: deletes `key`; `deleted` says whether it held a value.
#[derive(Debug)]
pub(crate) struct Delete {
    key: Property,
    namespace: Option<Property>,
    error_on_missing: bool,
}

/// `kv.GetKeys`: the keys of `namespace` starting with `prefix`.
#[derive(Debug)]
pub(crate) struct GetKeys {
    prefix: Option<Property>,
    namespace: Option<Property>,
}

/// `kv.PurgeKV`: deletes the keys (expired ones only, by default) of the
/// namespaces named, or matching `namespacePattern`, or all, with their
/// children unless `includeChildNamespaces: false`; `size` is how many.
#[derive(Debug)]
pub(crate) struct PurgeKv {
    key_pattern: Option<Property>,
    namespaces: Option<Property>,
    namespace_pattern: Option<Property>,
    include_children: bool,
    expired_only: bool,
}

/// The namespace a task names, or its flow's.
fn namespace(ctx: &TaskContext<'_>, property: &Option<Property>) -> Result<String, String> {
    match property {
        Some(p) => ctx.render_text(p),
        None => Ok(ctx.flow_name().0),
    }
}

fn opt_text(ctx: &TaskContext<'_>, property: &Option<Property>) -> Result<Option<String>, String> {
    property.as_ref().map(|p| ctx.render_text(p)).transpose()
}

impl TaskKind for Set {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        work((|| {
            let kv_type = opt_text(ctx, &self.kv_type)?.filter(|t| !t.is_empty());
            let value = KvValue::typed(ctx.render(&self.value)?, kv_type.as_deref())
                .map_err(|e| e.to_string())?;
            let ttl = self
                .ttl
                .as_ref()
                .map(|p| ctx.render_duration(p))
                .transpose()?;
            Ok(KvJob::Set {
                namespace: namespace(ctx, &self.namespace)?,
                key: ctx.render_text(&self.key)?,
                value,
                meta: KvMeta {
                    description: opt_text(ctx, &self.description)?,
                    ttl,
                },
                overwrite: self.overwrite,
            })
        })())
    }
}

impl TaskKind for Get {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        work((|| {
            Ok(KvJob::Get {
                namespace: namespace(ctx, &self.namespace)?,
                key: ctx.render_text(&self.key)?,
                error_on_missing: self.error_on_missing,
            })
        })())
    }
}

impl TaskKind for Delete {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        work((|| {
            Ok(KvJob::Delete {
                namespace: namespace(ctx, &self.namespace)?,
                key: ctx.render_text(&self.key)?,
                error_on_missing: self.error_on_missing,
            })
        })())
    }
}

impl TaskKind for GetKeys {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        work((|| {
            Ok(KvJob::Keys {
                namespace: namespace(ctx, &self.namespace)?,
                prefix: opt_text(ctx, &self.prefix)?,
            })
        })())
    }
}

impl TaskKind for PurgeKv {
    fn start(&self, ctx: &mut TaskContext<'_>) -> Started {
        work((|| {
            let namespaces = match &self.namespaces {
                None => None,
                Some(p) => Some(match ctx.render(p)? {
                    Value::Array(items) => items
                        .into_iter()
                        .map(|v| match v {
                            Value::String(s) => Ok(s),
                            other => Err(format!("`namespaces` holds {other}, not a namespace")),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    Value::String(s) => serde_json::from_str(&s).map_err(|e| {
                        format!("`namespaces` is not a JSON list of namespaces: {e}")
                    })?,
                    other => return Err(format!("`namespaces` must be a list, not {other}")),
                }),
            };
            Ok(KvJob::Purge {
                key_pattern: opt_text(ctx, &self.key_pattern)?,
                namespaces,
                namespace_pattern: opt_text(ctx, &self.namespace_pattern)?,
                include_children: self.include_children,
                expired_only: self.expired_only,
            })
        })())
    }
}

/// One call on the store, rendered.
#[derive(Debug)]
enum KvJob {
    Set {
        namespace: String,
        key: String,
        value: KvValue,
        meta: KvMeta,
        overwrite: bool,
    },
    Get {
        namespace: String,
        key: String,
        error_on_missing: bool,
    },
    Delete {
        namespace: String,
        key: String,
        error_on_missing: bool,
    },
    Keys {
        namespace: String,
        prefix: Option<String>,
    },
    Purge {
        key_pattern: Option<String>,
        namespaces: Option<Vec<String>>,
        namespace_pattern: Option<String>,
        include_children: bool,
        expired_only: bool,
    },
}

impl Job for KvJob {
    fn run(self: Box<Self>, env: &WorkerEnv, within: Option<Duration>) -> Answer {
        (*self).work(env, within).into()
    }
}

impl KvJob {
    fn work(self, env: &WorkerEnv, _within: Option<Duration>) -> Result<Value, String> {
        let Some(store) = &env.kv else {
            return Err("the KV store is not available: this engine runs without one (the kv tasks need a server)".into());
        };
        let now = chrono::Utc::now();
        let err = |e: crate::kv::Error| e.to_string();
        match self {
            KvJob::Set {
                namespace,
                key,
                value,
                meta,
                overwrite,
            } => {
                store
                    .put(&namespace, &key, value, meta, overwrite, now)
                    .map_err(err)?;
                Ok(json!({}))
            }
            KvJob::Get {
                namespace,
                key,
                error_on_missing,
            } => match store.get(&namespace, &key, now).map_err(err)? {
                Some(entry) => Ok(json!({ "value": entry.value.value })),
                None if error_on_missing => Err(format!(
                    "No value found for key '{key}' in namespace '{namespace}' and `errorOnMissing` is set to true"
                )),
                None => Ok(json!({ "value": null })),
            },
            KvJob::Delete {
                namespace,
                key,
                error_on_missing,
            } => {
                let deleted = store.delete(&namespace, &key, now).map_err(err)?;
                if error_on_missing && !deleted {
                    return Err(format!(
                        "No value found for key '{key}' in namespace '{namespace}' and `errorOnMissing` is set to true"
                    ));
                }
                Ok(json!({ "deleted": deleted }))
            }
            KvJob::Keys { namespace, prefix } => {
                let keys: Vec<String> = store
                    .list(&namespace, now, false)
                    .into_iter()
                    .map(|(k, _)| k)
                    .filter(|k| prefix.as_deref().is_none_or(|p| k.starts_with(p)))
                    .collect();
                Ok(json!({ "keys": keys }))
            }
            KvJob::Purge {
                key_pattern,
                namespaces,
                namespace_pattern,
                include_children,
                expired_only,
            } => {
                let chosen = purged_namespaces(
                    store,
                    namespaces.as_deref(),
                    namespace_pattern.as_deref(),
                    include_children,
                );
                let mut size = 0u64;
                for ns in &chosen {
                    let keys: Vec<String> = store
                        .list(ns, now, true)
                        .into_iter()
                        .filter(|(_, e)| !expired_only || e.is_expired(now))
                        .filter(|(k, _)| key_pattern.as_deref().is_none_or(|p| glob_matches(p, k)))
                        .map(|(k, _)| k)
                        .collect();
                    store.remove(ns, &keys, now).map_err(err)?;
                    size += keys.len() as u64;
                }
                Ok(json!({ "size": size }))
            }
        }
    }
}

/// The namespaces holding keys that a purge looks at.
fn purged_namespaces(
    store: &KvStore,
    named: Option<&[String]>,
    pattern: Option<&str>,
    include_children: bool,
) -> Vec<String> {
    let held = store.namespaces();
    held.into_iter()
        .filter(|ns| match (named, pattern) {
            (Some(named), _) => named
                .iter()
                .any(|n| ns == n || (include_children && crate::flow::is_within_namespace(ns, n))),
            (None, Some(pattern)) => {
                glob_matches(pattern, ns)
                    || (include_children
                        && ns
                            .match_indices('.')
                            .any(|(dot, _)| glob_matches(pattern, &ns[..dot])))
            }
            (None, None) => true,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::execution::{Execution, State};
    use crate::kv::KvLimits;
    use crate::tasks::testing::{flow, only, problems};

    fn run_with(store: &KvStore, tasks: &str) -> Execution {
        let variables = crate::executor::ConfigVariables::default().with_kv(store.clone());
        crate::tasks::testing::run_with_variables(tasks, variables)
    }

    fn at(s: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::Duration::seconds(s)
    }

    #[test]
    fn set_then_get_then_kv_then_delete_in_one_flow() {
        let store = KvStore::in_memory(KvLimits::default());
        let e = run_with(
            &store,
            r#"
  - id: set
    type: io.kestra.plugin.core.kv.Set
    key: "count_{{ flow.id }}"
    value: "{{ [1, 2] }}"
    kvDescription: two numbers
  - id: typed
    type: io.kestra.plugin.core.kv.Set
    key: when
    value: "2025-01-02T03:04:05Z"
    kvType: DATETIME
    ttl: PT1H
  - id: get
    type: io.kestra.plugin.core.kv.Get
    key: "count_{{ flow.id }}"
  - id: read
    type: io.kestra.plugin.core.debug.Return
    format: "{{ kv('count_' ~ flow.id) | length }} {{ kv('when') }} {{ kv('none', errorOnMissing=false) is null }}"
  - id: keys
    type: io.kestra.plugin.core.kv.GetKeys
    prefix: count
  - id: delete
    type: io.kestra.plugin.core.kv.Delete
    key: when
"#,
        );
        assert_eq!(e.state.current(), State::Success, "{e:?}");
        let outputs = |id: &str| only(&e, id).outputs.clone().unwrap_or_default();
        assert_eq!(outputs("get")["value"], json!([1, 2]));
        assert_eq!(
            outputs("read")["value"],
            json!("2 2025-01-02T03:04:05.000Z true")
        );
        assert_eq!(outputs("keys")["keys"], json!(["count_t"]));
        assert_eq!(outputs("delete")["deleted"], json!(true));
        let kept = store
            .get("tests", "count_t", at(0))
            .expect("a key")
            .expect("kept");
        assert_eq!(kept.description.as_deref(), Some("two numbers"));
        assert_eq!(store.get("tests", "when", at(0)).expect("a key"), None);
    }

    #[test]
    fn failures_say_why() {
        let store = KvStore::in_memory(KvLimits::default());
        let e = run_with(
            &store,
            r#"
  - id: first
    type: io.kestra.plugin.core.kv.Set
    key: k
    value: v
  - id: again
    type: io.kestra.plugin.core.kv.Set
    key: k
    value: w
    overwrite: false
"#,
        );
        assert_eq!(only(&e, "again").state(), State::Failed);
        let e = run_with(
            &store,
            "  - id: get\n    type: io.kestra.plugin.core.kv.Get\n    key: missing\n    errorOnMissing: true\n",
        );
        assert_eq!(only(&e, "get").state(), State::Failed);
        let e = run_with(
            &store,
            "  - id: read\n    type: io.kestra.plugin.core.debug.Return\n    format: \"{{ kv('missing') }}\"\n",
        );
        assert_eq!(
            only(&e, "read").state(),
            State::Failed,
            "errorOnMissing is true by default"
        );
        let e = run_with(
            &store,
            "  - id: bad\n    type: io.kestra.plugin.core.kv.Set\n    key: \"not a key\"\n    value: v\n",
        );
        assert_eq!(only(&e, "bad").state(), State::Failed);
        // Without a store, the tasks and kv() fail saying so.
        let e = crate::tasks::testing::run(
            "  - id: get\n    type: io.kestra.plugin.core.kv.Get\n    key: k\n",
        );
        assert_eq!(only(&e, "get").state(), State::Failed);
    }

    #[test]
    fn purge_takes_expired_keys_of_the_namespaces_chosen_and_their_children() {
        let store = KvStore::in_memory(KvLimits::default());
        let short = KvMeta {
            description: None,
            ttl: Some(Duration::from_secs(1)),
        };
        let past = at(-10);
        for ns in ["company", "company.team", "companyx", "other"] {
            for key in ["AI_a", "b"] {
                store
                    .put(
                        ns,
                        key,
                        KvValue::untyped(json!(1)),
                        short.clone(),
                        true,
                        past,
                    )
                    .expect("put");
            }
            store
                .put(
                    ns,
                    "keep",
                    KvValue::untyped(json!(1)),
                    KvMeta::default(),
                    true,
                    past,
                )
                .expect("put");
        }
        let e = run_with(
            &store,
            "  - id: purge\n    type: io.kestra.plugin.core.kv.PurgeKV\n    namespaces: [company]\n    keyPattern: \"AI_*\"\n",
        );
        assert_eq!(
            only(&e, "purge").outputs.clone().unwrap_or_default()["size"],
            json!(2)
        );
        let e = run_with(
            &store,
            "  - id: purge\n    type: io.kestra.plugin.core.kv.PurgeKV\n    namespaces: [company]\n    includeChildNamespaces: false\n    behavior:\n      type: key\n      expiredOnly: false\n",
        );
        // company's b and keep; not company.team's.
        assert_eq!(
            only(&e, "purge").outputs.clone().unwrap_or_default()["size"],
            json!(2)
        );
        let e = run_with(
            &store,
            "  - id: purge\n    type: io.kestra.plugin.core.kv.PurgeKV\n    namespacePattern: \"*x\"\n",
        );
        // companyx's expired AI_a and b.
        assert_eq!(
            only(&e, "purge").outputs.clone().unwrap_or_default()["size"],
            json!(2)
        );
        assert_eq!(store.list("company.team", past, true).len(), 2);
        assert_eq!(store.list("other", past, true).len(), 3);
    }

    #[test]
    fn what_is_not_honoured_is_refused_at_validation() {
        let flow_ok = flow(
            "  - id: s\n    type: io.kestra.plugin.core.kv.Set\n    key: k\n    value: v\n    kvType: JSON\n",
        );
        assert_eq!(flow_ok.tasks.len(), 1);
        let refused = |tasks: &str, needle: &str| {
            let p = problems(tasks);
            assert!(p.iter().any(|p| p.contains(needle)), "{p:?} names {needle}");
        };
        refused(
            "  - id: s\n    type: io.kestra.plugin.core.kv.Set\n    key: k\n    value: v\n    kvType: LIST\n",
            "kvType",
        );
        refused(
            "  - id: p\n    type: io.kestra.plugin.core.kv.PurgeKV\n    behavior:\n      type: version\n      before: P1D\n",
            "not supported yet",
        );
        refused(
            "  - id: p\n    type: io.kestra.plugin.core.kv.PurgeKV\n    namespaces: [a]\n    namespacePattern: \"b*\"\n",
            "namespacePattern",
        );
        refused(
            "  - id: s\n    type: io.kestra.plugin.core.state.Set\n    data:\n      a: 1\n",
            "not supported yet",
        );
    }
}
