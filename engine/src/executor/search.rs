//! Which executions a search wants, matched the same way on running
//! executions (in their shard) and on finished ones (their records).

use chrono::{DateTime, Utc};

use crate::execution::{Execution, Record, State};

/// What a search filters on; an empty filter matches everything.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// This namespace or one below it (`company` matches `company.team`).
    pub namespace: Option<String>,
    pub flow_id: Option<String>,
    /// Any of these states; all when empty.
    pub states: Vec<State>,
    /// Every one of these labels.
    pub labels: Vec<(String, String)>,
}

/// What a filter reads of an execution, live or frozen.
pub(crate) trait Listed {
    fn namespace(&self) -> &str;
    fn flow_id(&self) -> &str;
    fn state(&self) -> State;
    fn start_date(&self) -> DateTime<Utc>;
    fn has_label(&self, key: &str, value: &str) -> bool;
}

impl Listed for Execution {
    fn namespace(&self) -> &str {
        Execution::namespace(self)
    }
    fn flow_id(&self) -> &str {
        Execution::flow_id(self)
    }
    fn state(&self) -> State {
        Execution::state(self)
    }
    fn start_date(&self) -> DateTime<Utc> {
        self.history().start_date()
    }
    fn has_label(&self, key: &str, value: &str) -> bool {
        self.labels().iter().any(|(k, v)| k == key && v == value)
    }
}

impl Listed for Record {
    fn namespace(&self) -> &str {
        Record::namespace(self)
    }
    fn flow_id(&self) -> &str {
        Record::flow_id(self)
    }
    fn state(&self) -> State {
        Record::state(self)
    }
    fn start_date(&self) -> DateTime<Utc> {
        Record::start_date(self)
    }
    fn has_label(&self, key: &str, value: &str) -> bool {
        self.labels().any(|(k, v)| k == key && v == value)
    }
}

impl Filter {
    pub(crate) fn matches(&self, e: &impl Listed) -> bool {
        if let Some(ns) = &self.namespace {
            let have = e.namespace();
            let below = have.len() > ns.len()
                && have.starts_with(ns.as_str())
                && have.as_bytes()[ns.len()] == b'.';
            if have != ns && !below {
                return false;
            }
        }
        if self.flow_id.as_deref().is_some_and(|f| f != e.flow_id()) {
            return false;
        }
        if !self.states.is_empty() && !self.states.contains(&e.state()) {
            return false;
        }
        self.labels.iter().all(|(k, v)| e.has_label(k, v))
    }
}

/// The newest `limit` matches of a search, and how many matched in all.
#[derive(Debug)]
pub(crate) struct Newest<T> {
    /// Kept newest first once [`Newest::into_sorted`] runs.
    kept: Vec<(DateTime<Utc>, T)>,
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
    pub fn offer(&mut self, start: DateTime<Utc>, item: T) {
        self.total += 1;
        if self.limit == 0 {
            return;
        }
        self.kept.push((start, item));
        if self.kept.len() >= self.limit.saturating_mul(2).max(64) {
            self.cut();
        }
    }

    fn cut(&mut self) {
        self.kept
            .sort_unstable_by_key(|(start, _)| std::cmp::Reverse(*start));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_keeps_the_latest_and_counts_all() {
        let base = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let mut a = Newest::new(3);
        for i in [5, 1, 9, 3, 7] {
            a.offer(base + chrono::Duration::seconds(i), i);
        }
        let mut b = Newest::new(3);
        b.offer(base + chrono::Duration::seconds(8), 8);
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
    fn namespaces_match_themselves_and_below_only() {
        let filter = Filter {
            namespace: Some("company".into()),
            ..Filter::default()
        };
        struct E(&'static str);
        impl Listed for E {
            fn namespace(&self) -> &str {
                self.0
            }
            fn flow_id(&self) -> &str {
                "f"
            }
            fn state(&self) -> State {
                State::Running
            }
            fn start_date(&self) -> DateTime<Utc> {
                DateTime::<Utc>::UNIX_EPOCH
            }
            fn has_label(&self, _: &str, _: &str) -> bool {
                false
            }
        }
        assert!(filter.matches(&E("company")));
        assert!(filter.matches(&E("company.team")));
        assert!(!filter.matches(&E("companyx")));
        assert!(!filter.matches(&E("other.company")));
    }
}
