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
    If,
    Switch,
    Sequential,
    Parallel,
    ForEach,
    EachSequential,
    EachParallel,
    Dag,
    AllowFailure,
}

/// Canonical name, deprecated aliases, type (`None`: a Kestra type Peregrine
/// knows but does not run yet, refused as "not supported yet" rather than
/// "unknown"; nothing is accepted that would fail only at run time).
const TASKS: &[(&str, &[&str], Option<TaskType>)] = &[
    (
        "io.kestra.plugin.core.debug.Return",
        &["io.kestra.core.tasks.debugs.Return"],
        Some(TaskType::Return),
    ),
    (
        "io.kestra.plugin.core.log.Log",
        &["io.kestra.core.tasks.log.Log"],
        Some(TaskType::Log),
    ),
    (
        "io.kestra.plugin.core.output.OutputValues",
        &[],
        Some(TaskType::OutputValues),
    ),
    (
        "io.kestra.plugin.core.execution.Fail",
        &["io.kestra.core.tasks.executions.Fail"],
        Some(TaskType::Fail),
    ),
    (
        "io.kestra.plugin.core.flow.Sleep",
        &[],
        Some(TaskType::Sleep),
    ),
    (
        "io.kestra.plugin.transform.jsonata.TransformValue",
        &[],
        Some(TaskType::TransformValue),
    ),
    (
        "io.kestra.plugin.core.http.Request",
        &["io.kestra.plugin.fs.http.Request"],
        Some(TaskType::HttpRequest),
    ),
    (
        "io.kestra.plugin.core.flow.Subflow",
        &[
            "io.kestra.core.tasks.flows.Subflow",
            "io.kestra.core.tasks.flows.Flow",
        ],
        None,
    ),
    (
        "io.kestra.plugin.core.flow.If",
        &["io.kestra.core.tasks.flows.If"],
        Some(TaskType::If),
    ),
    (
        "io.kestra.plugin.core.flow.Switch",
        &["io.kestra.core.tasks.flows.Switch"],
        Some(TaskType::Switch),
    ),
    (
        "io.kestra.plugin.core.flow.Sequential",
        &["io.kestra.core.tasks.flows.Sequential"],
        Some(TaskType::Sequential),
    ),
    (
        "io.kestra.plugin.core.flow.Parallel",
        &["io.kestra.core.tasks.flows.Parallel"],
        Some(TaskType::Parallel),
    ),
    (
        "io.kestra.plugin.core.flow.ForEach",
        &[],
        Some(TaskType::ForEach),
    ),
    (
        "io.kestra.plugin.core.flow.EachSequential",
        &["io.kestra.core.tasks.flows.EachSequential"],
        Some(TaskType::EachSequential),
    ),
    (
        "io.kestra.plugin.core.flow.EachParallel",
        &["io.kestra.core.tasks.flows.EachParallel"],
        Some(TaskType::EachParallel),
    ),
    (
        "io.kestra.plugin.core.flow.Dag",
        &["io.kestra.core.tasks.flows.Dag"],
        Some(TaskType::Dag),
    ),
    (
        "io.kestra.plugin.core.flow.AllowFailure",
        &["io.kestra.core.tasks.flows.AllowFailure"],
        Some(TaskType::AllowFailure),
    ),
    (
        "io.kestra.plugin.core.flow.Pause",
        &["io.kestra.core.tasks.flows.Pause"],
        None,
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

/// A task type's canonical name, and the type when Peregrine runs it.
pub(crate) fn task_type(name: &str) -> Result<(&'static str, Option<TaskType>), Unresolved> {
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
            assert_eq!(
                task_type(name),
                Ok((canonical, Some(TaskType::Return))),
                "{name}"
            );
        }
        assert_eq!(
            task_type("io.kestra.core.tasks.flows.Flow"),
            Ok(("io.kestra.plugin.core.flow.Subflow", None)),
            "known, not run yet"
        );
        assert_eq!(
            task_type("pause"),
            Ok(("io.kestra.plugin.core.flow.Pause", None))
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
