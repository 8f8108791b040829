//! A full disk, for real: a small tmpfs holds the data folder. The server
//! starts on it with the default settings; when the disk fills, new
//! executions get 503 with Retry-After and never run; once space returns,
//! work resumes without a restart; after a restart no finished execution
//! runs again. Needs root to mount the tmpfs (as CI runs).

mod common;

use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hyper::{StatusCode, header};
use serde_json::{Value, json};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "this test mounts a tmpfs and needs root to do it"
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system holding `dir` until it refuses more.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write as _;
    let junk = dir.join("junk");
    let mut file = std::fs::File::create(&junk).expect("junk file");
    let block = vec![0xAAu8; 64 << 10];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    junk
}

const BIG: &str = r#"
id: big
namespace: disk
inputs:
  - id: blob
    type: STRING
tasks:
  - id: echo
    type: io.kestra.plugin.core.debug.Return
    format: "{{ inputs.blob | length }}"
"#;

async fn count(server: &Server) -> u64 {
    let reply = server
        .get("/api/v1/main/executions/search?namespace=disk&size=1")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    reply.json()["total"].as_u64().expect("a total")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_work_loses_nothing_and_recovers() {
    let disk = Tmpfs::mount("40m");
    let data = disk.path().join("data");

    // A configured segment larger than the disk: the start fails, saying
    // why, and leaves no file behind.
    let mut command = Command::new(env!("CARGO_BIN_EXE_peregrine"));
    let output = command
        .args(["server", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("PEREGRINE_WAL_SEGMENT_SIZE", "1GiB")
        .env("PEREGRINE_WAL_MAX_RECORD_SIZE", "16MiB")
        .env("RUST_LOG", "warn")
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("disk full"), "{stderr}");
    let free = peregrine_wal::free_space(disk.path()).expect("statvfs");
    assert!(
        free > 35 << 20,
        "a failed start leaves its files: {free} free"
    );
    std::fs::remove_dir_all(&data).expect("clean");

    // The default settings fit a small disk.
    let mut server = Server::start_in(&data, &[]).await;
    assert_eq!(server.create_flow(BIG).await.status, StatusCode::OK);
    let blob = "x".repeat(200 << 10);
    let path = "/api/v1/main/executions/disk/big";
    let mut acknowledged: Vec<String> = Vec::new();
    for _ in 0..3 {
        let reply = server.trigger(path, json!({ "blob": blob })).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        acknowledged.push(id_of(&reply));
    }

    // Fill the disk, then go on until every shard refuses (each has its
    // own WAL, and fills on its own).
    let junk = fill(disk.path());
    let mut refused = None;
    let mut in_a_row = 0;
    for _ in 0..1000 {
        let reply = server.trigger(path, json!({ "blob": blob })).await;
        match reply.status {
            StatusCode::OK => {
                acknowledged.push(id_of(&reply));
                in_a_row = 0;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                in_a_row += 1;
                refused = Some(reply);
                if in_a_row == 20 {
                    break;
                }
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&reply.body)),
        }
    }
    assert_eq!(in_a_row, 20, "the server never refused everything");
    let refused = refused.expect("a full disk is refused");
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
    let message = refused.json()["message"].as_str().unwrap_or("").to_owned();
    assert!(message.contains("disk space"), "{message}");
    // What was refused never runs: only the acknowledged ones exist.
    assert_eq!(count(&server).await, acknowledged.len() as u64);

    // Space returns: work resumes without a restart, and every
    // acknowledged execution ends.
    std::fs::remove_file(&junk).expect("junk removed");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = server.trigger(path, json!({ "blob": "small" })).await;
        if reply.status == StatusCode::OK {
            acknowledged.push(id_of(&reply));
            break;
        }
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(Instant::now() < deadline, "never took work again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut ended: Vec<(String, Value)> = Vec::new();
    for id in &acknowledged {
        let json = server.wait_for_state(id, "SUCCESS").await;
        ended.push((id.clone(), json["state"]["endDate"].clone()));
    }
    assert_eq!(count(&server).await, acknowledged.len() as u64);

    // After a restart nothing runs again: same ends, nothing more.
    assert!(server.terminate().success());
    let server = Server::start_in(&data, &[]).await;
    for (id, end) in &ended {
        let reply = server.get(&format!("/api/v1/main/executions/{id}")).await;
        assert_eq!(reply.status, StatusCode::OK);
        let json = reply.json();
        assert_eq!(json["state"]["current"], "SUCCESS", "{id}");
        assert_eq!(&json["state"]["endDate"], end, "{id} ran again");
    }
    assert_eq!(count(&server).await, acknowledged.len() as u64);
}
