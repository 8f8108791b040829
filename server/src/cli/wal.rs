//! `peregrine wal check DATA_DIR`: read every log of a data folder (each
//! shard's WAL, the flows log) without changing anything on disk, and say
//! what a start would find.
//!
//! Output, one line per log, then one indented line per further finding:
//!
//! ```text
//! PATH: N segments, M records, LSNs A..=B: clean
//! PATH: ...: torn tail at FILE:OFFSET (the unsynced end of the log after a crash; a start cuts it)
//! PATH: ...: damaged at FILE:OFFSET: WHAT
//!   damaged at FILE:OFFSET: WHAT
//! ```
//!
//! Exits 1 when a log is damaged, cannot be read, or is in a format the
//! server no longer opens (a start would refuse the folder); 0 otherwise.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use peregrine_server::data;
use peregrine_wal::{Damage, RecoveryReport};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The data folder (the server's `--data-dir`).
    pub data_dir: PathBuf,
}

pub fn check(args: CheckArgs) -> ExitCode {
    let logs = match data::logs(&args.data_dir) {
        Ok(logs) => logs,
        Err(e) => {
            println!("{}: cannot read: {e}", args.data_dir.display());
            return ExitCode::FAILURE;
        }
    };
    if logs.is_empty() {
        println!(
            "{}: no logs (an empty data folder)",
            args.data_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    let mut fine = true;
    for log in &logs {
        fine &= check_one(log);
    }
    if fine {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints one log's lines; false when a start would refuse it.
fn check_one(log: &Path) -> bool {
    // Only what the liveness of records needs differs between the logs,
    // and the check counts every valid record, live or not.
    let recovered = match peregrine_wal::check(log, &peregrine_wal::Config::default()) {
        Ok(recovered) => recovered,
        Err(e) => {
            println!("{}: cannot check: {e}", log.display());
            return false;
        }
    };
    let report = recovered.report();
    let (state, fine) = state(report);
    println!("{}: {}: {state}", log.display(), summary(report));
    for d in report.damage.iter().skip(1) {
        println!("  damaged at {}", at(d));
    }
    for d in &report.skipped_before {
        println!(
            "  dropped by an earlier --skip-damaged-wal start: {}",
            at(d)
        );
    }
    if report.removing > 0 {
        println!(
            "  {} segment files truncation was removing (a start removes them)",
            report.removing
        );
    }
    fine
}

fn summary(report: &RecoveryReport) -> String {
    let plural = |n: u64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let lsns = match report.first_lsn {
        Some(first) => format!("LSNs {first}..={}", report.next_lsn.get() - 1),
        None => "no LSNs".to_owned(),
    };
    format!(
        "{}, {}, {lsns}",
        plural(report.segments as u64, "segment"),
        plural(report.records, "record")
    )
}

fn at(d: &Damage) -> String {
    format!("{}:{}: {}", d.path.display(), d.offset, d.what)
}

/// The log's state, and whether a start would accept it.
fn state(report: &RecoveryReport) -> (String, bool) {
    if report.format != peregrine_wal::FORMAT {
        return (
            format!(
                "format {} (an earlier build's): the server refuses it; save the flows with \
                 `peregrine flow export` and start on a fresh data folder",
                report.format
            ),
            false,
        );
    }
    if let Some(first) = report.damage.first() {
        return (format!("damaged at {}", at(first)), false);
    }
    match &report.torn_tail {
        Some(tail) => (
            format!(
                "torn tail at {}:{} (the unsynced end of the log after a crash; a start cuts it)",
                tail.path.display(),
                tail.offset
            ),
            true,
        ),
        None => ("clean".to_owned(), true),
    }
}
