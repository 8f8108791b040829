//! Task and trigger type names: canonical names and the aliases Kestra accepts.
//!
//! Kestra looks a type up by its lower-cased class name or by one of the
//! plugin's `aliases` (the deprecated `io.kestra.core.tasks.*` names). We do
//! the same, and also accept two shorter spellings when they name exactly one
//! type: the name without `io.kestra.plugin.` (`core.debug.Return`) and the
//! bare class name (`Return`). Task names come from [`crate::tasks::REGISTRY`]
//! and [`crate::tasks::NOT_YET`].

use crate::tasks::{self, TaskType};

/// The trigger types the flow model knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TriggerType {
    Schedule,
    Webhook,
    Flow,
    KafkaRealtime,
}

/// The canonical name of the Schedule trigger, as executions it starts
/// name their trigger's type.
pub const SCHEDULE: &str = "io.kestra.plugin.core.trigger.Schedule";

const TRIGGERS: &[(&str, &[&str], TriggerType)] = &[
    (
        SCHEDULE,
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

/// A task type's canonical name, and the type when Peregrine runs it
/// (`None`: a Kestra type it does not run yet).
pub(crate) fn task_type(
    name: &str,
) -> Result<(&'static str, Option<&'static TaskType>), Unresolved> {
    let runs = tasks::REGISTRY
        .iter()
        .map(|t| (t.name, t.aliases, Some(*t)));
    let not_yet = tasks::NOT_YET.iter().map(|(n, a)| (*n, *a, None));
    resolve(runs.chain(not_yet), name)
}

pub(crate) fn trigger_type(name: &str) -> Result<(&'static str, TriggerType), Unresolved> {
    resolve(TRIGGERS.iter().copied(), name)
}

/// Finds `name` among `(canonical, aliases, T)` entries.
fn resolve<T: Copy>(
    table: impl Iterator<Item = (&'static str, &'static [&'static str], T)> + Clone,
    name: &str,
) -> Result<(&'static str, T), Unresolved> {
    let exact = table.clone().find(|(canonical, aliases, _)| {
        canonical.eq_ignore_ascii_case(name) || aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
    });
    if let Some((canonical, _, t)) = exact {
        return Ok((canonical, t));
    }
    // A short spelling matches a suffix of the canonical name at a dot.
    if name.is_empty() || name.starts_with('.') {
        return Err(Unresolved::Unknown);
    }
    let matches: Vec<_> = table
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

    /// The canonical name, and the registered type's name when it runs.
    fn named(name: &str) -> Result<(&'static str, Option<&'static str>), Unresolved> {
        task_type(name).map(|(c, t)| (c, t.map(|t| t.name)))
    }

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
            assert_eq!(named(name), Ok((canonical, Some(canonical))), "{name}");
        }
        assert_eq!(
            named("io.kestra.core.tasks.flows.Flow"),
            Ok((
                "io.kestra.plugin.core.flow.Subflow",
                Some("io.kestra.plugin.core.flow.Subflow")
            )),
            "the legacy name"
        );
        assert_eq!(
            named("io.kestra.core.tasks.flows.Template"),
            Ok(("io.kestra.plugin.core.flow.Template", None)),
            "known, not run yet"
        );
        assert_eq!(
            named("pause"),
            Ok((
                "io.kestra.plugin.core.flow.Pause",
                Some("io.kestra.plugin.core.flow.Pause")
            ))
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
        assert_eq!(named("eturn"), Err(Unresolved::Unknown));
        assert_eq!(
            named("io.kestra.plugin.core.debug.Echoes"),
            Err(Unresolved::Unknown)
        );
        assert_eq!(named(""), Err(Unresolved::Unknown));
        assert_eq!(named(".Return"), Err(Unresolved::Unknown));
    }
}
