//! Fuzz target of the WAL's recovery reader: whatever bytes a segment file
//! holds, opening the WAL answers (recovered records, or an error naming
//! the damage) and never panics. Seeds are real segments written here, and
//! the regressions in `wal/fuzz/recovery/`; the runner is
//! `peregrine_testkit::fuzz` (`PEREGRINE_FUZZ_SECS`).

use std::num::{NonZeroU32, NonZeroU64};
use std::path::Path;

use peregrine_wal::{Config, Key, Kind, SyncMode, Wal};

const SEGMENT: u64 = 16 << 10;

/// A file of a WAL directory: its name and bytes.
type NamedFile = (std::ffi::OsString, Vec<u8>);

fn config() -> Config {
    Config {
        segment_bytes: NonZeroU64::new(SEGMENT).expect("non-zero"),
        max_record_bytes: NonZeroU32::new(4096).expect("non-zero"),
        sync: SyncMode::None,
        spare_segments: 0,
        ..Config::default()
    }
}

/// Real segments: records of several keys and kinds, terminal records that
/// kill earlier ones, across a roll; and the directory's other files (the
/// manifest), which every fuzzed directory gets as they were.
fn written_segments() -> (Vec<Vec<u8>>, Vec<NamedFile>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (wal, _) = Wal::open(dir.path(), config()).expect("opens");
    for i in 0..200u32 {
        let key = Key::execution(u128::from(i % 7));
        let payload = vec![i as u8; 40 + (i as usize * 37) % 300];
        if i % 5 == 4 {
            wal.append_terminal(Kind::new(16), key, &payload)
                .expect("terminal");
        } else {
            wal.append(Kind::new(11 + (i % 4) as u16), key, &payload)
                .expect("append");
        }
    }
    wal.close().expect("closes");
    let mut files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("lists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    let others = std::fs::read_dir(dir.path())
        .expect("lists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|x| x != "wal"))
        .map(|p| {
            (
                p.file_name().unwrap_or_default().to_owned(),
                std::fs::read(&p).expect("reads"),
            )
        })
        .collect();
    let segments = files
        .iter()
        .map(|p| std::fs::read(p).expect("reads"))
        .collect();
    (segments, others)
}

#[test]
fn fuzz_recovery_reader() {
    let (seeds, others) = written_segments();
    assert!(seeds.len() >= 2, "the seeds span a roll");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join("recovery");
    let last = seeds[seeds.len() - 1].clone();
    peregrine_testkit::fuzz::run("wal-recovery", &corpus, seeds, &[], |bytes| {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in &others {
            std::fs::write(dir.path().join(name), content).expect("writes");
        }
        std::fs::write(dir.path().join("00000000000000000001.wal"), bytes).expect("writes");
        // Half the time a good segment follows the damaged one: damage in
        // the middle of the log, not only at its end.
        if bytes.len() % 2 == 0 {
            std::fs::write(dir.path().join("00000000000000000100.wal"), &last).expect("writes");
        }
        if let Ok((wal, recovered)) = Wal::open(dir.path(), config()) {
            for (_, records) in recovered.iter() {
                for record in records {
                    let _ = (record.kind(), record.payload().len());
                }
            }
            let _ = wal.close();
        }
    });
}
