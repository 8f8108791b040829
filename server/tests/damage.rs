//! Damaged logs on a real server: a flipped byte in a sealed segment of a
//! shard's WAL makes `peregrine server` exit non-zero with the segment's
//! path in its log, and `wal check` say so; `--skip-damaged-wal` starts it,
//! logging the execution that was lost by id, and later starts need no
//! flag. The flows log gets the same care, and `flow export` saves the
//! flows of a folder, damaged or not.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::*;
use hyper::StatusCode;
use serde_json::json;

const SLEEPY: &str = r#"
id: sleepy
namespace: damage
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT1H
"#;

/// The record frames of a segment file (`wal/FORMAT.md`): (offset, key id).
fn records(segment: &Path) -> Vec<(u64, u128)> {
    let bytes = std::fs::read(segment).expect("read segment");
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let mut out = Vec::new();
    let mut at = 64;
    while at + 32 <= bytes.len() {
        match word(at) {
            0xFFFF_FFFF => at += 32,  // commit marker
            0xFFFF_FFFE | 0 => break, // seal, or never written
            len => {
                let id = u128::from_le_bytes(bytes[at + 16..at + 32].try_into().expect("16 bytes"));
                out.push((at as u64, id));
                at += (32 + len as usize).div_ceil(16) * 16;
            }
        }
    }
    out
}

/// The segment files of a WAL directory, in LSN order.
fn segments(wal: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(wal)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs
}

fn flip(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).expect("read");
    bytes[at as usize] ^= 0x20;
    std::fs::write(path, bytes).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_sealed_segment_stops_the_server_until_the_operator_skips_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("data");
    // Two runs: a stop seals the segment a run wrote, and the next run
    // writes a new one, so the first run's executions (asleep for an hour)
    // end up in a sealed segment with a later one after it.
    let mut ids = Vec::new();
    for run in 0..2 {
        let mut server = Server::start_in(&dir, &[]).await;
        if run == 0 {
            assert_eq!(server.create_flow(SLEEPY).await.status, StatusCode::OK);
        }
        for _ in 0..20 {
            let reply = server
                .trigger("/api/v1/main/executions/damage/sleepy", json!({}))
                .await;
            assert_eq!(reply.status, StatusCode::OK);
            ids.push(id_of(&reply));
        }
        assert!(server.terminate().success());
    }
    // In a shard whose first segment is followed by another with records:
    // its last record, the creation of an execution of the first run.
    let (segment, offset, victim) = std::fs::read_dir(dir.join("executions"))
        .expect("shards")
        .map(|e| e.expect("entry").path())
        .find_map(|shard| {
            let segs = segments(&shard);
            let later = segs.iter().skip(1).any(|s| !records(s).is_empty());
            let first = segs.first()?.clone();
            let &(offset, id) = records(&first).last()?;
            later.then_some((first, offset, id))
        })
        .expect("a shard with a sealed segment followed by another");
    let victim = peregrine_engine::ExecutionId::from_u128(victim).to_string();
    assert!(ids.contains(&victim));
    flip(&segment, offset + 40);
    let segment = segment.canonicalize().expect("absolute path");
    let at = format!("{}", segment.display());

    // The server refuses to start, saying where.
    let (status, _, log) = run_peregrine(&mut server_command(&dir));
    assert!(
        !status.success(),
        "a damaged WAL must stop the start: {log}"
    );
    assert!(log.contains("ERROR"), "{log}");
    assert!(log.contains(&at), "the log names {at}: {log}");
    assert!(log.contains(&format!("offset {offset}")), "{log}");
    assert!(log.contains("--skip-damaged-wal"), "{log}");

    // `wal check` says the same, and fails.
    let (status, out, _) = run_peregrine(&mut peregrine(&[
        OsStr::new("wal"),
        OsStr::new("check"),
        dir.as_os_str(),
    ]));
    assert!(!status.success(), "{out}");
    assert!(out.contains(&format!("damaged at {at}:{offset}")), "{out}");

    // With the flag it starts, and says which execution was lost.
    let log_path = data.path().join("skip.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut server =
        Server::start_with(&dir, &[], &["--skip-damaged-wal"], Stdio::from(log_file)).await;
    let log = std::fs::read_to_string(&log_path).expect("log");
    let line = log
        .lines()
        .find(|l| l.contains(&format!("execution={victim}")))
        .unwrap_or_else(|| panic!("no line names {victim}: {log}"));
    assert!(line.contains("ERROR") && line.contains(&at), "{line}");
    assert!(line.contains("it is lost"), "{line}");
    let reply = server
        .get(&format!("/api/v1/main/executions/{victim}"))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    for id in ids.iter().filter(|id| **id != victim) {
        let reply = server.get(&format!("/api/v1/main/executions/{id}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{id} is kept");
        assert_eq!(reply.json()["state"]["current"], "RUNNING");
    }
    assert!(server.terminate().success());

    // The loss was recorded: the next start needs no flag, and logs no error.
    let log_path = data.path().join("after.log");
    let log_file = std::fs::File::create(&log_path).expect("log file");
    let mut server = Server::start_with(&dir, &[], &[], Stdio::from(log_file)).await;
    let log = std::fs::read_to_string(&log_path).expect("log");
    assert!(!log.contains("ERROR"), "{log}");
    assert!(server.terminate().success());
}

const HELLO: &str = r#"
id: hello
namespace: damage.flows
tasks:
  - id: say
    type: io.kestra.plugin.core.debug.Return
    format: hello
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_flows_log_stops_the_server_and_the_flows_can_be_exported() {
    let data = tempfile::tempdir().expect("temp dir");
    let dir = data.path().join("data");
    let mut server = Server::start_in(&dir, &[]).await;
    assert_eq!(server.create_flow(HELLO).await.status, StatusCode::OK);
    assert_eq!(server.create_flow(SLEEPY).await.status, StatusCode::OK);
    assert!(server.terminate().success());

    // A clean folder exports every flow as it was saved.
    let out = data.path().join("export");
    let export = |out: &Path| {
        run_peregrine(&mut peregrine(&[
            OsStr::new("flow"),
            OsStr::new("export"),
            dir.as_os_str(),
            out.as_os_str(),
        ]))
    };
    let (status, stdout, _) = export(&out);
    assert!(status.success(), "{stdout}");
    let hello = out.join("damage.flows").join("hello.yaml");
    assert_eq!(std::fs::read_to_string(&hello).expect("exported"), HELLO);
    let sleepy = out.join("damage").join("sleepy.yaml");
    assert_eq!(std::fs::read_to_string(&sleepy).expect("exported"), SLEEPY);
    let (status, stdout, _) = export(&out);
    assert!(
        !status.success(),
        "existing files are not overwritten: {stdout}"
    );

    // Damage the last flow change: the start stops, naming the flows log.
    let segment = segments(&dir.join("flows"))
        .into_iter()
        .find(|s| !records(s).is_empty())
        .expect("the flows segment");
    let &(offset, _) = records(&segment).last().expect("records");
    flip(&segment, offset + 40);
    let at = segment.canonicalize().expect("absolute path");
    let (status, _, log) = run_peregrine(&mut server_command(&dir));
    assert!(!status.success(), "{log}");
    assert!(log.contains(&format!("{}", at.display())), "{log}");

    // What is readable still exports; the damage is said, and fails it.
    let out = data.path().join("export-damaged");
    let (status, stdout, _) = export(&out);
    assert!(!status.success(), "{stdout}");
    assert!(stdout.contains("damaged"), "{stdout}");
    let hello = out.join("damage.flows").join("hello.yaml");
    assert_eq!(std::fs::read_to_string(&hello).expect("exported"), HELLO);
    assert!(!out.join("damage").join("sleepy.yaml").exists());
}
