//! Kestra's states and the history an execution or task run keeps of them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The states of Kestra's `State.Type`, with the same names on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    Created,
    Running,
    Paused,
    Restarted,
    Killing,
    Success,
    Warning,
    Failed,
    Killed,
    Cancelled,
    Queued,
    Retrying,
    Retried,
    Skipped,
}

impl State {
    pub const ALL: [State; 14] = [
        State::Created,
        State::Running,
        State::Paused,
        State::Restarted,
        State::Killing,
        State::Success,
        State::Warning,
        State::Failed,
        State::Killed,
        State::Cancelled,
        State::Queued,
        State::Retrying,
        State::Retried,
        State::Skipped,
    ];

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            State::Success
                | State::Warning
                | State::Failed
                | State::Killed
                | State::Cancelled
                | State::Retried
                | State::Skipped
        )
    }

    pub fn is_failed(self) -> bool {
        matches!(self, State::Failed)
    }

    /// The name Kestra uses (`SUCCESS`, `FAILED`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Created => "CREATED",
            State::Running => "RUNNING",
            State::Paused => "PAUSED",
            State::Restarted => "RESTARTED",
            State::Killing => "KILLING",
            State::Success => "SUCCESS",
            State::Warning => "WARNING",
            State::Failed => "FAILED",
            State::Killed => "KILLED",
            State::Cancelled => "CANCELLED",
            State::Queued => "QUEUED",
            State::Retrying => "RETRYING",
            State::Retried => "RETRIED",
            State::Skipped => "SKIPPED",
        }
    }

    pub fn parse(name: &str) -> Option<State> {
        State::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a state history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub state: State,
    pub date: DateTime<Utc>,
}

/// The current state and how it got there, serialized as Kestra's `State`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateHistory {
    current: State,
    histories: Vec<StateChange>,
}

impl StateHistory {
    pub fn new(state: State, at: DateTime<Utc>) -> Self {
        Self {
            current: state,
            histories: vec![StateChange { state, date: at }],
        }
    }

    /// A history rebuilt from its changes, oldest first (`None` if empty).
    pub(crate) fn from_changes(histories: Vec<StateChange>) -> Option<Self> {
        let current = histories.last()?.state;
        Some(Self { current, histories })
    }

    /// How many times it entered `state`.
    pub fn count(&self, state: State) -> usize {
        self.histories.iter().filter(|c| c.state == state).count()
    }

    pub fn current(&self) -> State {
        self.current
    }

    pub fn histories(&self) -> &[StateChange] {
        &self.histories
    }

    /// Moves to `state`; a repeat of the current state is not recorded twice.
    pub fn transition(&mut self, state: State, at: DateTime<Utc>) {
        if self.current == state {
            return;
        }
        self.current = state;
        self.histories.push(StateChange { state, date: at });
    }

    pub fn start_date(&self) -> DateTime<Utc> {
        self.histories
            .first()
            .map(|c| c.date)
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    pub fn end_date(&self) -> Option<DateTime<Utc>> {
        if self.current.is_terminal() {
            self.histories.last().map(|c| c.date)
        } else {
            None
        }
    }

    /// From the first state to the end, or to `now` while still running.
    pub fn duration(&self, now: DateTime<Utc>) -> chrono::Duration {
        self.end_date().unwrap_or(now) - self.start_date()
    }
}

/// An instant as Kestra prints it: RFC 3339 in UTC, milliseconds, a `Z`.
pub fn format_date(date: DateTime<Utc>) -> String {
    date.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A duration as `java.time.Duration::toString` prints it (`PT1M2.5S`).
pub fn iso_duration(d: chrono::Duration) -> String {
    let negative = d < chrono::Duration::zero();
    let d = if negative { -d } else { d };
    let total_secs = d.num_seconds();
    let nanos = (d - chrono::Duration::seconds(total_secs))
        .num_nanoseconds()
        .unwrap_or(0);
    let hours = total_secs / 3600;
    let minutes = (total_secs % 3600) / 60;
    let secs = total_secs % 60;
    let sign = if negative { "-" } else { "" };
    let mut out = String::from("PT");
    if hours > 0 {
        out.push_str(&format!("{sign}{hours}H"));
    }
    if minutes > 0 {
        out.push_str(&format!("{sign}{minutes}M"));
    }
    if secs == 0 && nanos == 0 && out.len() > 2 {
        return out;
    }
    out.push_str(sign);
    out.push_str(&secs.to_string());
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('S');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_java_does() {
        assert_eq!(iso_duration(chrono::Duration::zero()), "PT0S");
        assert_eq!(iso_duration(chrono::Duration::milliseconds(12)), "PT0.012S");
        assert_eq!(iso_duration(chrono::Duration::seconds(62)), "PT1M2S");
        assert_eq!(iso_duration(chrono::Duration::seconds(3600)), "PT1H");
        assert_eq!(
            iso_duration(chrono::Duration::milliseconds(3_723_500)),
            "PT1H2M3.5S"
        );
    }

    #[test]
    fn history_records_transitions_once_and_ends_on_terminal() {
        let t0 = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap();
        let t1 = t0 + chrono::Duration::milliseconds(250);
        let mut h = StateHistory::new(State::Created, t0);
        h.transition(State::Running, t0);
        h.transition(State::Running, t0);
        assert_eq!(h.histories().len(), 2);
        assert_eq!(h.end_date(), None);
        h.transition(State::Success, t1);
        assert_eq!(h.end_date(), Some(t1));
        assert_eq!(h.duration(t1), chrono::Duration::milliseconds(250));
        assert_eq!(h.histories().len(), 3);
    }

    #[test]
    fn states_parse_from_kestra_names() {
        assert_eq!(State::parse("success"), Some(State::Success));
        assert_eq!(State::parse("KILLED"), Some(State::Killed));
        assert_eq!(State::parse("nope"), None);
        assert!(State::Skipped.is_terminal());
        assert!(!State::Paused.is_terminal());
    }
}
