//! Kestra's `envs` and `globals`: values every template of every execution
//! reads, which come from the process's configuration rather than from an
//! execution (Kestra's `RunContextCache`, handed to `RunVariables`); and
//! the secrets `secret('NAME')` reads, whose values never reach a log line
//! or an output: they are masked there before anything is kept.
//!
//! The same handle carries the engine's KV store (`kv()` and the `kv.*`
//! tasks), whose reads, unlike these values, are journaled
//! (`executor::reads`).
//!
//! They are not journaled. A shard's replay after a restart renders with
//! the variables of the process that replays, so an execution in flight
//! across a restart whose configuration changed may render differently
//! after it than before (see ARCHITECTURE.md, "Replay determinism").

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::kv::KvStore;

/// `envs` and `globals`, shared by every execution of an engine (cloning
/// is a reference count).
#[derive(Clone, PartialEq)]
pub struct ConfigVariables(Arc<Inner>);

#[derive(PartialEq)]
struct Inner {
    /// A JSON object of strings.
    envs: Value,
    /// A JSON object.
    globals: Value,
    /// By name, upper case (Kestra's `SecretService`).
    secrets: BTreeMap<String, String>,
    /// The KV store `kv()` and the `kv.*` tasks read and write (none: an
    /// engine on its own, where they fail saying so).
    kv: Option<KvStore>,
    /// The internal storage and where scripts work (none: an engine on its
    /// own, whose scripts work under the system's temporary folder and
    /// keep no files).
    files: Option<crate::storage::Files>,
}

/// What a secret's value is replaced with where it would be kept.
pub const MASK: &str = "********";

/// `text` with each of `values` in it masked (an execution's SECRET
/// inputs).
pub(crate) fn mask_with(values: &[String], mut text: String) -> String {
    for value in values.iter().filter(|v| !v.is_empty()) {
        if text.contains(value.as_str()) {
            text = text.replace(value.as_str(), MASK);
        }
    }
    text
}

/// `value` with each of `values` masked in its strings (and keys).
pub(crate) fn mask_value_with(values: &[String], value: Value) -> Value {
    if values.is_empty() {
        return value;
    }
    match value {
        Value::String(s) => Value::String(mask_with(values, s)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| mask_value_with(values, v))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (mask_with(values, k), mask_value_with(values, v)))
                .collect(),
        ),
        other => other,
    }
}

/// Why [`ConfigVariables::new`] refused its values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`envs` and `globals` take {bytes} bytes as JSON, more than the limit of {max} bytes \
     (every template of every execution can read them whole)"
)]
pub struct VariablesTooLarge {
    pub bytes: usize,
    pub max: usize,
}

impl ConfigVariables {
    /// Most bytes `envs` and `globals` may take together, as compact JSON.
    /// They are held once, but a template may print them whole (`{{
    /// globals }}`) into an output, a label or a log line, which should
    /// stay small beside an execution's own limits (a task run's outputs,
    /// 1 MiB by default).
    pub const MAX_BYTES: usize = 256 << 10;

    /// `envs` (names as flows read them: `envs.my_var`) and `globals`,
    /// refused when larger together than [`Self::MAX_BYTES`].
    pub fn new(
        envs: BTreeMap<String, String>,
        globals: Map<String, Value>,
    ) -> Result<Self, VariablesTooLarge> {
        let envs = Value::Object(
            envs.into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        );
        let globals = Value::Object(globals);
        let bytes = json_len(&envs) + json_len(&globals);
        if bytes > Self::MAX_BYTES {
            return Err(VariablesTooLarge {
                bytes,
                max: Self::MAX_BYTES,
            });
        }
        Ok(Self(Arc::new(Inner {
            envs,
            globals,
            secrets: BTreeMap::new(),
            kv: None,
            files: None,
        })))
    }

    /// The same, with these secrets (by name, matched without case).
    pub fn with_secrets(self, secrets: BTreeMap<String, String>) -> Self {
        let secrets = secrets
            .into_iter()
            .map(|(k, v)| (k.to_uppercase(), v))
            .collect();
        let inner = self.unshared();
        Self(Arc::new(Inner { secrets, ..inner }))
    }

    /// The same, reading and writing `kv` (Kestra's KV store).
    pub fn with_kv(self, kv: KvStore) -> Self {
        let inner = self.unshared();
        Self(Arc::new(Inner {
            kv: Some(kv),
            ..inner
        }))
    }

    fn unshared(self) -> Inner {
        Arc::try_unwrap(self.0).unwrap_or_else(|shared| Inner {
            envs: shared.envs.clone(),
            globals: shared.globals.clone(),
            secrets: shared.secrets.clone(),
            kv: shared.kv.clone(),
            files: shared.files.clone(),
        })
    }

    /// The same, with the internal storage `files`.
    pub fn with_files(self, files: crate::storage::Files) -> Self {
        let inner = self.unshared();
        Self(Arc::new(Inner {
            files: Some(files),
            ..inner
        }))
    }

    /// The internal storage, if the engine has one.
    pub fn files(&self) -> Option<&crate::storage::Files> {
        self.0.files.as_ref()
    }

    /// The KV store, if the engine has one.
    pub fn kv(&self) -> Option<&KvStore> {
        self.0.kv.as_ref()
    }

    /// Secret `key` (Kestra's `secret('key')`), if known.
    pub fn secret(&self, key: &str) -> Option<&str> {
        self.0.secrets.get(&key.to_uppercase()).map(String::as_str)
    }

    /// Kestra's `secret(key)` called with `args`: the secret's value, or
    /// its message.
    pub(crate) fn secret_call(&self, args: &[Value]) -> Result<Value, String> {
        let key = args
            .first()
            .and_then(Value::as_str)
            .ok_or("The 'secret' function expects an argument 'key'.")?;
        self.secret(key)
            .map(Value::from)
            .ok_or_else(|| format!("Cannot find secret for key '{key}'."))
    }

    /// The secrets' values (what [`ConfigVariables::mask`] masks).
    pub(crate) fn secret_values(&self) -> Vec<String> {
        self.0
            .secrets
            .values()
            .filter(|v| !v.is_empty())
            .cloned()
            .collect()
    }

    /// `text` with every secret's value in it masked.
    pub fn mask(&self, text: String) -> String {
        let mut text = text;
        for value in self.0.secrets.values().filter(|v| !v.is_empty()) {
            if text.contains(value.as_str()) {
                text = text.replace(value.as_str(), MASK);
            }
        }
        text
    }

    /// `value` with every secret's value masked in its strings (and keys).
    pub fn mask_value(&self, value: Value) -> Value {
        if self.0.secrets.is_empty() {
            return value;
        }
        match value {
            Value::String(s) => Value::String(self.mask(s)),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|v| self.mask_value(v)).collect())
            }
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (self.mask(k), self.mask_value(v)))
                    .collect(),
            ),
            other => other,
        }
    }

    /// Kestra's `envs`: a JSON object of strings.
    pub fn envs(&self) -> &Value {
        &self.0.envs
    }

    /// Kestra's `globals`: a JSON object.
    pub fn globals(&self) -> &Value {
        &self.0.globals
    }
}

impl Default for ConfigVariables {
    /// No envs, no globals (Kestra's empty maps).
    fn default() -> Self {
        Self(Arc::new(Inner {
            envs: Value::Object(Map::new()),
            globals: Value::Object(Map::new()),
            secrets: BTreeMap::new(),
            kv: None,
            files: None,
        }))
    }
}

/// Renders over `vars` (a JSON object of roots) and the engine's `envs`,
/// `globals` and `secret()`, outside any execution (a webhook's key).
struct ConfigContext<'a> {
    vars: &'a Value,
    config: &'a ConfigVariables,
    now: chrono::DateTime<chrono::Utc>,
}

impl crate::expression::Context for ConfigContext<'_> {
    fn root(&self, name: &str) -> Option<crate::expression::Scope<'_>> {
        use crate::expression::Scope;
        match name {
            "envs" => Some(Scope::Json(self.config.envs())),
            "globals" => Some(Scope::Json(self.config.globals())),
            _ => self.vars.get(name).map(Scope::Json),
        }
    }

    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.now
    }

    fn function(&self, name: &str, args: &[Value]) -> Option<Result<Value, String>> {
        (name == "secret").then(|| self.config.secret_call(args))
    }
}

impl ConfigVariables {
    /// `property` rendered as text over `vars` and these variables (with
    /// `secret()`), outside any execution.
    pub fn render_text(
        &self,
        property: &crate::expression::Property,
        vars: &Value,
    ) -> Result<String, String> {
        let ctx = ConfigContext {
            vars,
            config: self,
            now: chrono::Utc::now(),
        };
        property
            .render(&ctx)
            .map(crate::executor::into_text)
            .map_err(|e| e.to_string())
    }
}

/// Names only: environment variables often carry secrets, and a config
/// printed in a log must not show them.
impl fmt::Debug for ConfigVariables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = |v: &Value| {
            v.as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        f.debug_struct("ConfigVariables")
            .field("envs", &keys(&self.0.envs))
            .field("globals", &keys(&self.0.globals))
            .field("secrets", &self.0.secrets.keys().collect::<Vec<_>>())
            .field("kv", &self.0.kv)
            .finish()
    }
}

fn json_len(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing to a counter cannot fail, and a `Value` always serializes.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::State;
    use crate::executor::engine::run_to_end_with_variables;
    use crate::executor::{FlowRevision, NewExecution};
    use crate::flow::Flow;

    fn globals(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    fn envs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn run(yaml: &str, variables: ConfigVariables) -> crate::Execution {
        let flow = Flow::parse(yaml).expect("the flow parses");
        let revision = Arc::new(FlowRevision::new(Arc::new(flow)));
        run_to_end_with_variables(NewExecution::new(revision, Map::new()), variables)
    }

    fn value(e: &crate::Execution, task: &str) -> Value {
        let run = e.task_runs_of(task).next().expect("a task run");
        assert_eq!(run.state(), State::Success, "{task}: {e:?}");
        run.outputs().expect("outputs")["value"].clone()
    }

    #[test]
    fn templates_read_envs_and_globals_everywhere_in_an_execution() {
        let variables = ConfigVariables::new(
            envs(&[("region", "eu-west"), ("test2", "Pass by env")]),
            globals(json!({"string": "string", "int": 1, "nested": {"list": [1, 2]}})),
        )
        .expect("small");
        let e = run(
            r#"
id: vars
namespace: t
tasks:
  - id: plain
    type: io.kestra.plugin.core.debug.Return
    format: "{{ envs.region }}/{{ envs['test2'] }}/{{ globals.int + 1 }}/{{ globals.nested.list[1] }}"
  - id: whole
    type: io.kestra.plugin.core.debug.Return
    format: "{{ envs }} {{ globals.nested }}"
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a"]
    tasks:
      - id: inner
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}-{{ globals.string }}"
outputs:
  - id: region
    type: STRING
    value: "{{ envs.region }}"
"#,
            variables,
        );
        assert_eq!(e.state(), State::Success, "{e:?}");
        assert_eq!(value(&e, "plain"), "eu-west/Pass by env/2/2");
        assert_eq!(
            value(&e, "whole"),
            r#"{"region":"eu-west","test2":"Pass by env"} {"list":[1,2]}"#
        );
        assert_eq!(value(&e, "inner"), "a-string");
        assert_eq!(e.outputs(), Some(&json!({"region": "eu-west"})));
    }

    #[test]
    fn a_missing_name_fails_the_task_as_any_missing_key_does() {
        let e = run(
            r#"
id: vars
namespace: t
tasks:
  - id: env
    type: io.kestra.plugin.core.debug.Return
    format: "{{ envs.absent }}"
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: "not reached"
"#,
            ConfigVariables::default(),
        );
        assert_eq!(e.state(), State::Failed);
        let env = e.task_runs_of("env").next().expect("a task run");
        assert_eq!(env.state(), State::Failed);
        assert!(
            e.logs()
                .entries()
                .iter()
                .any(|l| l.message.contains("absent")),
            "the error names the missing key: {:?}",
            e.logs().entries()
        );
        assert_eq!(e.task_runs_of("after").count(), 0);
        // Without any configured, both are empty maps, as in Kestra.
        let e = run(
            r#"
id: vars
namespace: t
tasks:
  - id: empty
    type: io.kestra.plugin.core.debug.Return
    format: "{{ envs }} {{ globals }} {{ envs.absent ?? 'none' }}"
"#,
            ConfigVariables::default(),
        );
        assert_eq!(value(&e, "empty"), "{} {} none");
    }

    #[test]
    fn values_past_the_limit_are_refused_with_their_size() {
        let big = "x".repeat(ConfigVariables::MAX_BYTES);
        let err = ConfigVariables::new(envs(&[("big", &big)]), Map::new()).expect_err("too large");
        assert!(err.bytes > ConfigVariables::MAX_BYTES, "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("envs") && message.contains(&ConfigVariables::MAX_BYTES.to_string()),
            "{message}"
        );
        // The two count together.
        let half = "x".repeat(ConfigVariables::MAX_BYTES / 2);
        assert!(ConfigVariables::new(envs(&[("a", &half)]), Map::new()).is_ok());
        assert!(
            ConfigVariables::new(envs(&[("a", &half)]), globals(json!({ "b": half }))).is_err()
        );
    }

    #[test]
    fn debug_shows_names_not_values() {
        let variables = ConfigVariables::new(
            envs(&[("token", "s3cr3t")]),
            globals(json!({"password": "hunter2"})),
        )
        .expect("small");
        let shown = format!("{variables:?}");
        assert!(
            shown.contains("token") && shown.contains("password"),
            "{shown}"
        );
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn secret_reads_a_secret_and_its_value_is_masked_where_it_would_be_kept() {
        let variables = ConfigVariables::default().with_secrets(
            [("Slack_Token".to_owned(), "xoxb-123".to_owned())]
                .into_iter()
                .collect(),
        );
        let e = run(
            r#"
id: secrets
namespace: t
tasks:
  - id: header
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('SLACK_TOKEN') | length }} {{ secret('slack_token') == 'xoxb-123' }}"
  - id: leak
    type: io.kestra.plugin.core.log.Log
    message: "token is {{ secret('SLACK_TOKEN') }}"
  - id: copy
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('SLACK_TOKEN') }}"
  - id: missing
    type: io.kestra.plugin.core.debug.Return
    format: "{{ secret('NOPE') }}"
"#,
            variables,
        );
        assert_eq!(
            value(&e, "header"),
            json!("8 true"),
            "the task sees the value"
        );
        let copy = e.task_runs_of("copy").next().expect("copy");
        assert_eq!(
            copy.outputs().expect("outputs")["value"],
            json!(MASK),
            "never kept"
        );
        let logs: Vec<&str> = e
            .logs()
            .entries()
            .iter()
            .map(|l| l.message.as_str())
            .collect();
        assert!(logs.contains(&"token is ********"), "{logs:?}");
        assert!(logs.iter().all(|l| !l.contains("xoxb-123")), "{logs:?}");
        assert!(
            logs.iter()
                .any(|l| l.contains("Cannot find secret for key 'NOPE'.")),
            "{logs:?}"
        );
        assert_eq!(e.state(), State::Failed);
        assert!(
            !format!(
                "{:?}",
                ConfigVariables::default().with_secrets(
                    [("A".to_owned(), "value-a".to_owned())]
                        .into_iter()
                        .collect()
                )
            )
            .contains("value-a"),
            "Debug shows names only"
        );
    }
}
