//! The sharded executor.

mod engine;
mod inbox;
mod outputs;
mod plan;
mod render;
mod run;
mod shard;
mod timer;

pub use engine::{Engine, EngineConfig, Observer, SubmitError, run_to_end, run_to_end_observed};
pub use inbox::{PushError, Receiver, Sender, inbox};
pub use plan::FlowRevision;
pub use run::NewExecution;
pub use shard::{Effect, Message, Shard};
pub use timer::TimerWheel;

/// An ISO-8601 duration (`PT1S`, `PT1M30.5S`, `P1DT2H`).
pub(crate) fn parse_iso_duration(text: &str) -> Option<std::time::Duration> {
    let rest = text
        .trim()
        .strip_prefix('P')
        .or_else(|| text.trim().strip_prefix('p'))?;
    let (date, time) = match rest.find(['T', 't']) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let mut total = 0f64;
    let mut any = false;
    let mut scan = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' || c == ',' {
                number.push(if c == ',' { '.' } else { c });
                continue;
            }
            let unit = units.iter().find(|(u, _)| u.eq_ignore_ascii_case(&c))?;
            total += number.parse::<f64>().ok()? * unit.1;
            number.clear();
            any = true;
        }
        number.is_empty().then_some(())
    };
    scan(date, &[('W', 604_800.0), ('D', 86_400.0)])?;
    if let Some(time) = time {
        if time.is_empty() {
            return None;
        }
        scan(time, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    (any && total.is_finite()).then(|| std::time::Duration::from_secs_f64(total))
}
