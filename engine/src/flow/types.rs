//! Task and trigger type names: canonical names and the aliases Kestra accepts.
//!
//! Kestra looks a type up by its lower-cased class name or by one of the
//! plugin's `aliases` (the deprecated `io.kestra.core.tasks.*` names). We do
//! the same, and also accept two shorter spellings when they name exactly one
//! type: the name without `io.kestra.plugin.` (`core.debug.Return`) and the
//! bare class name (`Return`).

/// The task types the flow model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskType {
    Return,
    Log,
    OutputValues,
    Fail,
    Sleep,
    TransformValue,
    HttpRequest,
    Subflow,
    If,
    Switch,
    Sequential,
    Parallel,
    ForEach,
    EachSequential,
    EachParallel,
    Dag,
    AllowFailure,
    Pause,
}

/// Canonical name, deprecated aliases, type.
const TASKS: &[(&str, &[&str], TaskType)] = &[
    (
        "io.kestra.plugin.core.debug.Return",
        &["io.kestra.core.tasks.debugs.Return"],
        TaskType::Return,
    ),
    (
        "io.kestra.plugin.core.log.Log",
        &["io.kestra.core.tasks.log.Log"],
        TaskType::Log,
    ),
    (
        "io.kestra.plugin.core.output.OutputValues",
        &[],
        TaskType::OutputValues,
    ),
    (
        "io.kestra.plugin.core.execution.Fail",
        &["io.kestra.core.tasks.executions.Fail"],
        TaskType::Fail,
    ),
    ("io.kestra.plugin.core.flow.Sleep", &[], TaskType::Sleep),
    (
        "io.kestra.plugin.transform.jsonata.TransformValue",
        &[],
        TaskType::TransformValue,
    ),
    (
        "io.kestra.plugin.core.http.Request",
        &["io.kestra.plugin.fs.http.Request"],
        TaskType::HttpRequest,
    ),
    (
        "io.kestra.plugin.core.flow.Subflow",
        &[
            "io.kestra.core.tasks.flows.Subflow",
            "io.kestra.core.tasks.flows.Flow",
        ],
        TaskType::Subflow,
    ),
    (
        "io.kestra.plugin.core.flow.If",
        &["io.kestra.core.tasks.flows.If"],
        TaskType::If,
    ),
    (
        "io.kestra.plugin.core.flow.Switch",
        &["io.kestra.core.tasks.flows.Switch"],
        TaskType::Switch,
    ),
    (
        "io.kestra.plugin.core.flow.Sequential",
        &["io.kestra.core.tasks.flows.Sequential"],
        TaskType::Sequential,
    ),
    (
        "io.kestra.plugin.core.flow.Parallel",
        &["io.kestra.core.tasks.flows.Parallel"],
        TaskType::Parallel,
    ),
    ("io.kestra.plugin.core.flow.ForEach", &[], TaskType::ForEach),
    (
        "io.kestra.plugin.core.flow.EachSequential",
        &["io.kestra.core.tasks.flows.EachSequential"],
        TaskType::EachSequential,
    ),
    (
        "io.kestra.plugin.core.flow.EachParallel",
        &["io.kestra.core.tasks.flows.EachParallel"],
        TaskType::EachParallel,
    ),
    (
        "io.kestra.plugin.core.flow.Dag",
        &["io.kestra.core.tasks.flows.Dag"],
        TaskType::Dag,
    ),
    (
        "io.kestra.plugin.core.flow.AllowFailure",
        &["io.kestra.core.tasks.flows.AllowFailure"],
        TaskType::AllowFailure,
    ),
    (
        "io.kestra.plugin.core.flow.Pause",
        &["io.kestra.core.tasks.flows.Pause"],
        TaskType::Pause,
    ),
];

/// The trigger types the flow model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TriggerType {
    Schedule,
    Webhook,
    Flow,
    KafkaRealtime,
}

const TRIGGERS: &[(&str, &[&str], TriggerType)] = &[
    (
        "io.kestra.plugin.core.trigger.Schedule",
        &["io.kestra.core.models.triggers.types.Schedule"],
        TriggerType::Schedule,
    ),
    (
        "io.kestra.plugin.core.trigger.Webhook",
        &["io.kestra.core.models.triggers.types.Webhook"],
        TriggerType::Webhook,
    ),
    (
        "io.kestra.plugin.core.trigger.Flow",
        &["io.kestra.core.models.triggers.types.Flow"],
        TriggerType::Flow,
    ),
    (
        "io.kestra.plugin.kafka.RealtimeTrigger",
        &[],
        TriggerType::KafkaRealtime,
    ),
];

/// Why a type name did not resolve.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unresolved {
    Unknown,
    /// A short name several types share; the candidates' canonical names.
    Ambiguous(Vec<&'static str>),
}

pub(crate) fn task_type(name: &str) -> Result<(&'static str, TaskType), Unresolved> {
    resolve(TASKS, name)
}

pub(crate) fn trigger_type(name: &str) -> Result<(&'static str, TriggerType), Unresolved> {
    resolve(TRIGGERS, name)
}

fn resolve<T: Copy>(
    table: &'static [(&'static str, &'static [&'static str], T)],
    name: &str,
) -> Result<(&'static str, T), Unresolved> {
    let exact = table.iter().find(|(canonical, aliases, _)| {
        canonical.eq_ignore_ascii_case(name) || aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    });
    if let Some((canonical, _, t)) = exact {
        return Ok((canonical, *t));
    }
    // A short spelling matches a suffix of the canonical name at a dot.
    if name.is_empty() || name.starts_with('.') {
        return Err(Unresolved::Unknown);
    }
    let matches: Vec<_> = table
        .iter()
        .filter(|(canonical, _, _)| {
            canonical.len() > name.len()
                && canonical[canonical.len() - name.len()..].eq_ignore_ascii_case(name)
                && canonical.as_bytes()[canonical.len() - name.len() - 1] == b'.'
        })
        .collect();
    match matches.as_slice() {
        [] => Err(Unresolved::Unknown),
        [(canonical, _, t)] => Ok((canonical, *t)),
        many => Err(Unresolved::Ambiguous(
            many.iter().map(|(c, _, _)| *c).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_aliases_and_short_names() {
        let canonical = "io.kestra.plugin.core.debug.Return";
        for name in [
            canonical,
            "io.kestra.core.tasks.debugs.Return",
            "IO.KESTRA.PLUGIN.CORE.DEBUG.RETURN",
            "core.debug.Return",
            "debug.Return",
            "Return",
        ] {
            assert_eq!(task_type(name), Ok((canonical, TaskType::Return)), "{name}");
        }
        assert_eq!(
            task_type("io.kestra.core.tasks.flows.Flow"),
            Ok(("io.kestra.plugin.core.flow.Subflow", TaskType::Subflow))
        );
        assert_eq!(
            trigger_type("Schedule"),
            Ok((
                "io.kestra.plugin.core.trigger.Schedule",
                TriggerType::Schedule
            ))
        );
    }

    #[test]
    fn unknown_and_partial_names() {
        assert_eq!(task_type("eturn"), Err(Unresolved::Unknown));
        assert_eq!(
            task_type("io.kestra.plugin.core.debug.Echo"),
            Err(Unresolved::Unknown)
        );
        assert_eq!(task_type(""), Err(Unresolved::Unknown));
        assert_eq!(task_type(".Return"), Err(Unresolved::Unknown));
    }
}
