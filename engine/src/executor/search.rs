//! Which executions a search wants, matched the same way on running
//! executions (in their shard) and on finished ones (their records).

use chrono::{DateTime, Utc};

use crate::execution::{Brief, Execution, Record, State};

/// What a search filters on; an empty filter matches everything. Every
/// condition must hold (Kestra's filters are a conjunction).
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub namespace: Vec<Text>,
    pub flow_id: Vec<Text>,
    /// Any of these states; all when empty.
    pub states: Vec<State>,
    /// None of these states.
    pub not_states: Vec<State>,
    /// Every one of these labels.
    pub labels: Vec<(String, String)>,
    /// None of these labels.
    pub not_labels: Vec<(String, String)>,
    /// Of each group, at least one label.
    pub any_labels: Vec<Vec<(String, String)>>,
    /// Some label's key or value contains this.
    pub label_contains: Vec<String>,
    /// The start date within these bounds.
    pub started: Bounds,
    /// The end date within these bounds; one not ended matches no bound.
    pub ended: Bounds,
    /// Kestra's `q`: the id, the namespace, the flow id or a label holds
    /// this text, whatever its case. Lower-case, as the texts it is looked
    /// for in are made.
    pub query: Option<String>,
    /// Kestra's `q` NOT_EQUALS: none of them holds any of these (lower-case).
    pub not_query: Vec<String>,
    /// The oldest first, instead of the newest.
    pub oldest_first: bool,
    /// Conditions on the id of the execution that started it (a
    /// subflow's parent, `trigger.variables.executionId`); one that none
    /// started holds only the negative ones.
    pub trigger_execution: Vec<Text>,
    /// Only the executions another one started (true: Kestra's
    /// `childFilter` CHILD), or only the others (false: MAIN).
    pub child: Option<bool>,
}

/// A condition on a text, as Kestra's filter operations state it.
#[derive(Debug, Clone)]
pub enum Text {
    Equals(String),
    NotEquals(String),
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    /// This value or one below it, `.`-separated: `company` holds
    /// `company.team`, not `companyx`.
    Prefix(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Regex(regex::Regex),
}

impl Text {
    /// A regular expression condition; its compiled size is bounded, so a
    /// pattern a user sends cannot take much memory (matching is linear).
    pub fn regex(pattern: &str) -> Result<Text, String> {
        regex::RegexBuilder::new(pattern)
            .size_limit(1 << 20)
            .build()
            .map(Text::Regex)
            .map_err(|e| e.to_string())
    }

    pub fn holds(&self, have: &str) -> bool {
        match self {
            Text::Equals(want) => have == want,
            Text::NotEquals(want) => have != want,
            Text::Contains(part) => have.contains(part.as_str()),
            Text::StartsWith(start) => have.starts_with(start.as_str()),
            Text::EndsWith(end) => have.ends_with(end.as_str()),
            Text::Prefix(ns) => {
                have == ns
                    || (have.len() > ns.len()
                        && have.starts_with(ns.as_str())
                        && have.as_bytes()[ns.len()] == b'.')
            }
            Text::In(any) => any.iter().any(|w| w == have),
            Text::NotIn(none) => none.iter().all(|w| w != have),
            Text::Regex(re) => re.is_match(have),
        }
    }
}

/// Bounds on an instant; unbounded by default.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// After this instant, or at it when the flag is true.
    pub after: Option<(DateTime<Utc>, bool)>,
    /// Before this instant, or at it when the flag is true.
    pub before: Option<(DateTime<Utc>, bool)>,
    /// Not at this instant.
    pub not_at: Option<DateTime<Utc>>,
}

impl Bounds {
    /// Whether instant `at` is within the bounds.
    pub fn holds_at(&self, at: DateTime<Utc>) -> bool {
        self.hold(Some(at))
    }

    fn is_unbounded(&self) -> bool {
        *self == Bounds::default()
    }

    fn hold(&self, at: Option<DateTime<Utc>>) -> bool {
        if self.is_unbounded() {
            return true;
        }
        let Some(at) = at else { return false };
        self.after
            .is_none_or(|(t, at_too)| at > t || (at_too && at == t))
            && self
                .before
                .is_none_or(|(t, at_too)| at < t || (at_too && at == t))
            && self.not_at.is_none_or(|t| at != t)
    }
}

/// What a filter reads of a flow, or of an execution.
pub(crate) trait Named {
    fn namespace(&self) -> &str;
    fn flow_id(&self) -> &str;
    /// Whether `f` holds for some label.
    fn any_label(&self, f: &mut dyn FnMut(&str, &str) -> bool) -> bool;
    /// Whether `f` holds for some other text `q` looks in (an execution's
    /// id).
    fn any_other_text(&self, _f: &mut dyn FnMut(&str) -> bool) -> bool {
        false
    }
}

/// What a filter reads of an execution, live or frozen.
pub(crate) trait Listed: Named {
    fn state(&self) -> State;
    fn start_date(&self) -> DateTime<Utc>;
    fn end_date(&self) -> Option<DateTime<Utc>>;
    /// The id of the execution that started this one, if one did.
    fn trigger_execution(&self) -> Option<String>;
}

/// `trigger.variables.executionId` of an execution's trigger.
fn triggering(trigger: &serde_json::Value) -> Option<String> {
    trigger["variables"]["executionId"]
        .as_str()
        .map(str::to_owned)
}

/// A flow, as a filter reads it.
struct FlowNamed<'a> {
    namespace: &'a str,
    flow_id: &'a str,
    labels: &'a [(String, String)],
}

impl Named for FlowNamed<'_> {
    fn namespace(&self) -> &str {
        self.namespace
    }
    fn flow_id(&self) -> &str {
        self.flow_id
    }
    fn any_label(&self, f: &mut dyn FnMut(&str, &str) -> bool) -> bool {
        self.labels.iter().any(|(k, v)| f(k, v))
    }
}

impl Named for Execution {
    fn namespace(&self) -> &str {
        Execution::namespace(self)
    }
    fn flow_id(&self) -> &str {
        Execution::flow_id(self)
    }
    fn any_label(&self, f: &mut dyn FnMut(&str, &str) -> bool) -> bool {
        self.labels().iter().any(|(k, v)| f(k, v))
    }
    fn any_other_text(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        f(&Execution::id(self).to_string())
    }
}

impl Listed for Execution {
    fn state(&self) -> State {
        Execution::state(self)
    }
    fn start_date(&self) -> DateTime<Utc> {
        self.history().start_date()
    }
    fn end_date(&self) -> Option<DateTime<Utc>> {
        self.history().end_date()
    }
    fn trigger_execution(&self) -> Option<String> {
        self.trigger.as_ref().and_then(triggering)
    }
}

impl Named for Record {
    fn namespace(&self) -> &str {
        Record::namespace(self)
    }
    fn flow_id(&self) -> &str {
        Record::flow_id(self)
    }
    fn any_label(&self, f: &mut dyn FnMut(&str, &str) -> bool) -> bool {
        self.labels().any(|(k, v)| f(k, v))
    }
    fn any_other_text(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        f(&Record::id(self).to_string())
    }
}

impl Listed for Record {
    fn state(&self) -> State {
        Record::state(self)
    }
    fn start_date(&self) -> DateTime<Utc> {
        Record::start_date(self)
    }
    fn end_date(&self) -> Option<DateTime<Utc>> {
        Record::end_date(self)
    }
    fn trigger_execution(&self) -> Option<String> {
        self.trigger().as_ref().and_then(triggering)
    }
}

impl Named for Brief {
    fn namespace(&self) -> &str {
        Brief::namespace(self)
    }
    fn flow_id(&self) -> &str {
        Brief::flow_id(self)
    }
    fn any_label(&self, f: &mut dyn FnMut(&str, &str) -> bool) -> bool {
        self.labels().iter().any(|(k, v)| f(k, v))
    }
    fn any_other_text(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
        f(&Brief::id(self).to_string())
    }
}

impl Listed for Brief {
    fn state(&self) -> State {
        Brief::state(self)
    }
    fn start_date(&self) -> DateTime<Utc> {
        self.history().start_date()
    }
    fn end_date(&self) -> Option<DateTime<Utc>> {
        self.history().end_date()
    }
    fn trigger_execution(&self) -> Option<String> {
        self.trigger_execution.clone()
    }
}

impl Filter {
    /// Whether an execution, in brief, meets the filter: what a search
    /// would find of it.
    pub fn matches_brief(&self, brief: &Brief) -> bool {
        self.matches(brief)
    }

    pub(crate) fn matches(&self, e: &impl Listed) -> bool {
        let state = e.state();
        (self.states.is_empty() || self.states.contains(&state))
            && !self.not_states.contains(&state)
            && self.started.hold(Some(e.start_date()))
            && self.ended.hold(e.end_date())
            && self.names_hold(e)
            && self.trigger_holds(e)
    }

    fn trigger_holds(&self, e: &impl Listed) -> bool {
        if self.trigger_execution.is_empty() && self.child.is_none() {
            return true;
        }
        match e.trigger_execution() {
            Some(id) => {
                self.child != Some(false) && self.trigger_execution.iter().all(|t| t.holds(&id))
            }
            None => {
                self.child != Some(true)
                    && self
                        .trigger_execution
                        .iter()
                        .all(|t| matches!(t, Text::NotEquals(_) | Text::NotIn(_)))
            }
        }
    }

    /// Whether a flow meets the conditions a flow has the fields of: its
    /// namespace, flow id, labels and `q` (the others hold of no flow, and
    /// a flow search does not set them).
    pub fn matches_flow(
        &self,
        namespace: &str,
        flow_id: &str,
        labels: &[(String, String)],
    ) -> bool {
        self.names_hold(&FlowNamed {
            namespace,
            flow_id,
            labels,
        })
    }

    fn names_hold(&self, e: &(impl Named + ?Sized)) -> bool {
        let all = |conditions: &[Text], have: &str| conditions.iter().all(|c| c.holds(have));
        if !all(&self.namespace, e.namespace()) || !all(&self.flow_id, e.flow_id()) {
            return false;
        }
        let has = |key: &str, value: &str| e.any_label(&mut |k, v| k == key && v == value);
        if !self.labels.iter().all(|(k, v)| has(k, v))
            || self.not_labels.iter().any(|(k, v)| has(k, v))
            || !self
                .any_labels
                .iter()
                .all(|group| group.iter().any(|(k, v)| has(k, v)))
        {
            return false;
        }
        if !self.label_contains.iter().all(|part| {
            e.any_label(&mut |k, v| k.contains(part.as_str()) || v.contains(part.as_str()))
        }) {
            return false;
        }
        // `q` looks in every text, lower-cased once per text here.
        let holds_text = |q: &str| {
            let holds = |s: &str| s.to_lowercase().contains(q);
            holds(e.namespace())
                || holds(e.flow_id())
                || e.any_label(&mut |k, v| holds(k) || holds(v))
                || e.any_other_text(&mut |s| holds(s))
        };
        self.query.as_deref().is_none_or(holds_text)
            && !self.not_query.iter().any(|q| holds_text(q))
    }

    /// Where an execution started at `start` ranks: the kept are those
    /// with the highest keys.
    pub(crate) fn rank(&self, start: DateTime<Utc>) -> i64 {
        let micros = start.timestamp_micros();
        if self.oldest_first { -micros } else { micros }
    }
}

/// The first `limit` matches of a search by rank (see [`Filter::rank`]:
/// the newest, or the oldest), and how many matched in all.
#[derive(Debug)]
pub(crate) struct Newest<T> {
    /// Kept highest rank first once [`Newest::into_sorted`] runs.
    kept: Vec<(i64, T)>,
    limit: usize,
    pub total: usize,
}

impl<T> Newest<T> {
    pub fn new(limit: usize) -> Self {
        Self {
            kept: Vec::new(),
            limit,
            total: 0,
        }
    }

    /// Counts a match and keeps it for now. Amortised O(1): the kept list
    /// is cut back to the newest `limit` whenever it doubles.
    pub fn offer(&mut self, rank: i64, item: T) {
        self.total += 1;
        if self.limit == 0 {
            return;
        }
        self.kept.push((rank, item));
        if self.kept.len() >= self.limit.saturating_mul(2).max(64) {
            self.cut();
        }
    }

    fn cut(&mut self) {
        self.kept
            .sort_unstable_by_key(|(rank, _)| std::cmp::Reverse(*rank));
        self.kept.truncate(self.limit);
    }

    /// The kept matches turned into something else, once cut to the newest
    /// `limit`: only those pay for `f`.
    pub fn map<U>(mut self, mut f: impl FnMut(T) -> U) -> Newest<U> {
        self.cut();
        Newest {
            kept: self.kept.into_iter().map(|(at, t)| (at, f(t))).collect(),
            limit: self.limit,
            total: self.total,
        }
    }

    pub fn merge(&mut self, other: Newest<T>) {
        self.total += other.total;
        self.kept.extend(other.kept);
        self.cut();
    }

    /// The kept matches, newest first.
    pub fn into_sorted(mut self) -> (Vec<T>, usize) {
        self.cut();
        (self.kept.into_iter().map(|(_, t)| t).collect(), self.total)
    }
}

/// Which executions an `execution.Count` task counts (Kestra's
/// `executionCounts`): those started from `from` to `to` (both included),
/// in one of `states` (any when empty), of one of `flows` or in one of
/// `namespaces`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tally {
    /// `(namespace, flow id)`, in the order the task lists them.
    pub flows: Vec<(String, String)>,
    pub namespaces: Vec<String>,
    pub states: Vec<State>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// What a [`Tally`] counted: per listed flow, and per namespace of every
/// execution it counted.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Counts {
    flows: Vec<u64>,
    namespaces: std::collections::BTreeMap<String, u64>,
}

impl Tally {
    /// Nothing counted yet.
    pub fn zero(&self) -> Counts {
        Counts {
            flows: vec![0; self.flows.len()],
            namespaces: std::collections::BTreeMap::new(),
        }
    }

    /// Counts `e` if it is one of those this tally counts.
    pub fn count(&self, e: &impl Listed, counts: &mut Counts) {
        let start = e.start_date();
        if start < self.from || start > self.to {
            return;
        }
        if !self.states.is_empty() && !self.states.contains(&e.state()) {
            return;
        }
        let namespace = e.namespace();
        let flow = self
            .flows
            .iter()
            .position(|(ns, id)| ns == namespace && id == e.flow_id());
        if flow.is_none() && !self.namespaces.iter().any(|ns| ns == namespace) {
            return;
        }
        if let Some(i) = flow {
            counts.flows[i] += 1;
        }
        match counts.namespaces.get_mut(namespace) {
            Some(n) => *n += 1,
            None => {
                counts.namespaces.insert(namespace.to_owned(), 1);
            }
        }
    }

    /// Kestra's rows, as JSON: each listed flow with its count (0 when
    /// none), then, when namespaces are listed, the count of each namespace
    /// any counted execution is in (all of them, those counted for a
    /// listed flow too, as Kestra sums them).
    pub fn rows(&self, counts: &Counts) -> serde_json::Value {
        let flows = self.flows.iter().map(|(namespace, flow_id)| {
            // A flow listed twice is counted at its first place.
            let first = self
                .flows
                .iter()
                .position(|(ns, id)| ns == namespace && id == flow_id)
                .unwrap_or(0);
            serde_json::json!({
                "namespace": namespace,
                "flowId": flow_id,
                "count": counts.flows[first],
            })
        });
        let namespaces = counts
            .namespaces
            .iter()
            .filter(|_| !self.namespaces.is_empty())
            .map(|(namespace, n)| serde_json::json!({ "namespace": namespace, "count": n }));
        serde_json::Value::Array(flows.chain(namespaces).collect())
    }
}

impl Counts {
    /// Adds what another part of the engine counted.
    pub fn add(&mut self, other: Counts) {
        for (mine, theirs) in self.flows.iter_mut().zip(other.flows) {
            *mine += theirs;
        }
        for (namespace, n) in other.namespaces {
            *self.namespaces.entry(namespace).or_insert(0) += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_keeps_the_highest_ranks_and_counts_all() {
        let mut a = Newest::new(3);
        for i in [5, 1, 9, 3, 7] {
            a.offer(i, i);
        }
        let mut b = Newest::new(3);
        b.offer(8, 8);
        a.merge(b);
        let mut mapped = 0;
        let a = a.map(|n| {
            mapped += 1;
            n * 10
        });
        assert_eq!(mapped, 3, "only the kept ones are mapped");
        assert_eq!(a.into_sorted(), (vec![90, 80, 70], 6));
    }

    #[test]
    fn the_oldest_first_ranks_earlier_starts_higher() {
        let base = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let later = base + chrono::Duration::seconds(1);
        let newest = Filter::default();
        assert!(newest.rank(later) > newest.rank(base));
        let oldest = Filter {
            oldest_first: true,
            ..Filter::default()
        };
        assert!(oldest.rank(later) < oldest.rank(base));
    }

    struct E {
        namespace: &'static str,
        flow_id: &'static str,
        state: State,
        end: Option<DateTime<Utc>>,
        labels: &'static [(&'static str, &'static str)],
        parent: Option<&'static str>,
    }

    const E0: E = E {
        namespace: "company.team",
        flow_id: "hello",
        state: State::Running,
        end: None,
        labels: &[("team", "core")],
        parent: None,
    };

    impl Named for E {
        fn namespace(&self) -> &str {
            self.namespace
        }
        fn flow_id(&self) -> &str {
            self.flow_id
        }
        fn any_label(&self, f: &mut dyn FnMut(&str, &str) -> bool) -> bool {
            self.labels.iter().any(|(k, v)| f(k, v))
        }
        fn any_other_text(&self, f: &mut dyn FnMut(&str) -> bool) -> bool {
            f("7ExecutionId")
        }
    }

    impl Listed for E {
        fn state(&self) -> State {
            self.state
        }
        fn start_date(&self) -> DateTime<Utc> {
            DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap()
        }
        fn end_date(&self) -> Option<DateTime<Utc>> {
            self.end
        }
        fn trigger_execution(&self) -> Option<String> {
            self.parent.map(str::to_owned)
        }
    }

    #[test]
    fn children_are_told_from_main_executions_by_who_started_them() {
        let child = E {
            parent: Some("p1"),
            ..E0
        };
        let filter = |trigger_execution: Vec<Text>, child: Option<bool>| Filter {
            trigger_execution,
            child,
            ..Filter::default()
        };
        let cases = [
            (filter(vec![], Some(true)), false, true),
            (filter(vec![], Some(false)), true, false),
            (filter(vec![Text::Equals("p1".into())], None), false, true),
            (filter(vec![Text::Equals("p2".into())], None), false, false),
            (filter(vec![Text::NotEquals("p2".into())], None), true, true),
            (
                filter(vec![Text::NotIn(vec!["p1".into()])], None),
                true,
                false,
            ),
        ];
        for (f, main_matches, child_matches) in cases {
            assert_eq!(f.matches(&E0), main_matches, "{f:?} on a main execution");
            assert_eq!(f.matches(&child), child_matches, "{f:?} on a child");
        }
    }

    #[test]
    fn prefixes_match_themselves_and_below_only() {
        let filter = Filter {
            namespace: vec![Text::Prefix("company".into())],
            ..Filter::default()
        };
        let at = |namespace| E { namespace, ..E0 };
        assert!(filter.matches(&at("company")));
        assert!(filter.matches(&at("company.team")));
        assert!(!filter.matches(&at("companyx")));
        assert!(!filter.matches(&at("other.company")));
    }

    #[test]
    fn every_condition_must_hold() {
        let cases: Vec<(Filter, bool)> = vec![
            (Filter::default(), true),
            (
                Filter {
                    namespace: vec![Text::Equals("company.team".into())],
                    ..Filter::default()
                },
                true,
            ),
            (
                Filter {
                    namespace: vec![Text::Equals("company".into())],
                    ..Filter::default()
                },
                false,
            ),
            (
                Filter {
                    namespace: vec![Text::NotEquals("company.team".into())],
                    ..Filter::default()
                },
                false,
            ),
            (
                Filter {
                    flow_id: vec![Text::Contains("ell".into())],
                    ..Filter::default()
                },
                true,
            ),
            (
                Filter {
                    flow_id: vec![Text::StartsWith("he".into()), Text::EndsWith("lo".into())],
                    ..Filter::default()
                },
                true,
            ),
            (
                Filter {
                    flow_id: vec![Text::StartsWith("he".into()), Text::EndsWith("x".into())],
                    ..Filter::default()
                },
                false,
            ),
            (
                Filter {
                    flow_id: vec![Text::In(vec!["a".into(), "hello".into()])],
                    ..Filter::default()
                },
                true,
            ),
            (
                Filter {
                    flow_id: vec![Text::NotIn(vec!["a".into(), "hello".into()])],
                    ..Filter::default()
                },
                false,
            ),
            (
                Filter {
                    flow_id: vec![Text::Regex(regex::Regex::new("^h.l+o$").unwrap())],
                    ..Filter::default()
                },
                true,
            ),
            (
                Filter {
                    states: vec![State::Success, State::Running],
                    ..Filter::default()
                },
                true,
            ),
            (
                Filter {
                    states: vec![State::Success],
                    ..Filter::default()
                },
                false,
            ),
            (
                Filter {
                    not_states: vec![State::Running],
                    ..Filter::default()
                },
                false,
            ),
            (
                Filter {
                    labels: vec![("team".into(), "core".into())],
                    ..Filter::default()
                },
                true,
            ),
            (
                Filter {
                    labels: vec![("team".into(), "other".into())],
                    ..Filter::default()
                },
                false,
            ),
            (
                Filter {
                    not_labels: vec![("team".into(), "core".into())],
                    ..Filter::default()
                },
                false,
            ),
            (
                Filter {
                    label_contains: vec!["cor".into()],
                    ..Filter::default()
                },
                true,
            ),
            (
                Filter {
                    query: Some("company.t".into()),
                    ..Filter::default()
                },
                true,
            ),
            // In any case: the id reads "7ExecutionId".
            (
                Filter {
                    query: Some("7execution".into()),
                    ..Filter::default()
                },
                true,
            ),
            (
                Filter {
                    not_query: vec!["nowhere".into()],
                    ..Filter::default()
                },
                true,
            ),
            (
                Filter {
                    not_query: vec!["core".into()],
                    ..Filter::default()
                },
                false,
            ),
            (
                Filter {
                    query: Some("nowhere".into()),
                    ..Filter::default()
                },
                false,
            ),
        ];
        for (i, (filter, want)) in cases.iter().enumerate() {
            assert_eq!(filter.matches(&E0), *want, "case {i}: {filter:?}");
        }
    }

    #[test]
    fn a_flow_is_matched_on_the_conditions_it_has_fields_for() {
        let labels = [("team".to_owned(), "core".to_owned())];
        let filter = Filter {
            namespace: vec![Text::Prefix("company".into())],
            labels: labels.to_vec(),
            query: Some("hel".into()),
            ..Filter::default()
        };
        assert!(filter.matches_flow("company.team", "Hello", &labels));
        assert!(!filter.matches_flow("company.team", "Hello", &[]));
        assert!(!filter.matches_flow("other", "Hello", &labels));
        assert!(!filter.matches_flow("company", "bye", &labels));
    }

    #[test]
    fn date_bounds_hold_inclusively_or_not_and_an_end_date_bound_needs_an_end() {
        let start = E0.start_date();
        let at = |t: DateTime<Utc>, inclusive| Some((t, inclusive));
        let bounded = |started: Bounds| Filter {
            started,
            ..Filter::default()
        };
        assert!(
            bounded(Bounds {
                after: at(start, true),
                ..Bounds::default()
            })
            .matches(&E0)
        );
        assert!(
            !bounded(Bounds {
                after: at(start, false),
                ..Bounds::default()
            })
            .matches(&E0)
        );
        assert!(
            bounded(Bounds {
                before: at(start, true),
                ..Bounds::default()
            })
            .matches(&E0)
        );
        assert!(
            !bounded(Bounds {
                before: at(start, false),
                ..Bounds::default()
            })
            .matches(&E0)
        );
        assert!(
            !bounded(Bounds {
                not_at: Some(start),
                ..Bounds::default()
            })
            .matches(&E0)
        );
        let ended_after = Filter {
            ended: Bounds {
                after: at(start, true),
                ..Bounds::default()
            },
            ..Filter::default()
        };
        assert!(!ended_after.matches(&E0), "a running execution has no end");
        assert!(ended_after.matches(&E {
            end: Some(start),
            state: State::Success,
            ..E0
        }));
    }
}
