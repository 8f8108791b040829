//! `peregrine flow export DATA_DIR OUT_DIR`: write each flow of a data
//! folder, at its latest revision, as `OUT_DIR/<namespace>/<id>.yaml`, so
//! that a damaged or outdated folder can be rebuilt (start on a fresh one,
//! then create the flows again). The data folder is only read: its flows
//! log is opened as `wal check` opens it, changing nothing; deleted flows
//! are not written. A file that exists already is not overwritten.
//!
//! Output: one `wrote FILE (revision N)` line per flow, then a summary.
//! Exits 1 when a flow could not be written or the flows log is damaged
//! (what it could read is written all the same, and the damage is named).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use peregrine_server::data;
use peregrine_server::store::{FlowChange, read_flows};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The data folder (the server's `--data-dir`).
    pub data_dir: PathBuf,
    /// Where to write the flows; created if missing.
    pub out_dir: PathBuf,
}

pub fn main(args: Args) -> ExitCode {
    let log = data::flows_log(&args.data_dir);
    if !log.is_dir() {
        println!("{}: no flows log", log.display());
        return ExitCode::FAILURE;
    }
    let (changes, report) = match read_flows(&log) {
        Ok(read) => read,
        Err(e) => {
            println!("{}: cannot read: {e}", log.display());
            return ExitCode::FAILURE;
        }
    };
    let mut ok = true;
    for d in &report.damage {
        println!(
            "warning: the flows log is damaged at {}:{}: {}; flows changed there may be missing or at an older revision",
            d.path.display(),
            d.offset,
            d.what
        );
        ok = false;
    }
    let latest = latest_sources(changes);
    let mut written = 0;
    for ((namespace, id), (revision, source)) in &latest {
        match write_flow(&args.out_dir, namespace, id, source) {
            Ok(path) => {
                println!("wrote {} (revision {revision})", path.display());
                written += 1;
            }
            Err(why) => {
                println!("{namespace}.{id}: not written: {why}");
                ok = false;
            }
        }
    }
    println!(
        "exported {written} of {} flows from {} to {}",
        latest.len(),
        log.display(),
        args.out_dir.display()
    );
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Per flow, its latest revision and source, replaying the changes in
/// order; a flow deleted last is left out.
fn latest_sources(changes: Vec<FlowChange>) -> BTreeMap<(String, String), (u32, String)> {
    let mut latest = BTreeMap::new();
    for change in changes {
        match change {
            FlowChange::Saved {
                namespace,
                id,
                revision,
                source,
                ..
            } => {
                latest.insert((namespace, id), (revision, source));
            }
            FlowChange::Deleted { namespace, id, .. } => {
                latest.remove(&(namespace, id));
            }
        }
    }
    latest
}

/// A namespace or id used as a path component: Kestra's characters only,
/// so that a stored name can never point outside `OUT_DIR`.
fn component(name: &str) -> Result<&str, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.starts_with('.') || !name.chars().all(allowed) {
        return Err(format!("`{name}` is not usable as a file name"));
    }
    Ok(name)
}

fn write_flow(out: &Path, namespace: &str, id: &str, source: &str) -> Result<PathBuf, String> {
    let dir = out.join(component(namespace)?);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let path = dir.join(format!("{}.yaml", component(id)?));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(source.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_revision_of_each_flow_not_deleted_is_kept() {
        let saved = |id: &str, revision: u32| FlowChange::Saved {
            namespace: "ns".into(),
            id: id.into(),
            revision,
            source: format!("id: {id} # {revision}"),
            updated: None,
        };
        let latest = latest_sources(vec![
            saved("a", 1),
            saved("b", 1),
            saved("a", 2),
            FlowChange::Deleted {
                namespace: "ns".into(),
                id: "b".into(),
                revision: 1,
            },
        ]);
        let kept: Vec<_> = latest.iter().map(|(k, v)| (k.1.as_str(), v.0)).collect();
        assert_eq!(kept, vec![("a", 2)]);
    }

    #[test]
    fn names_that_would_leave_the_folder_are_refused() {
        for bad in ["", "..", ".hidden", "a/b", "a\\b", "ns/../../etc"] {
            assert!(component(bad).is_err(), "{bad}");
        }
        assert_eq!(component("company.team-1_x"), Ok("company.team-1_x"));
    }
}
