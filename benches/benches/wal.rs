//! WAL benchmarks (issue 4). Run in release:
//!
//! ```text
//! cargo bench -p peregrine-benches --bench wal
//! ```
//!
//! The append micro-benchmark runs under criterion; the durability,
//! recovery and disk-use figures need custom measurements (latency
//! percentiles against a raw fdatasync, a cold 1 GiB read, directory sizes),
//! so they are printed as a report after it. Environment knobs:
//!
//! - `WAL_BENCH`: comma list of `append,durable,recovery,disk` (default all)
//! - `WAL_BENCH_DIR`: where the WAL files go (default: the temp dir)
//! - `WAL_BENCH_SECS`: seconds per durable-append run (default 5)
//! - `WAL_BENCH_WINDOWS`: producer windows, records appended before waiting
//!   for durability (default `64,1024,4096`)
//! - `WAL_BENCH_DELAY_US`: `group_commit_delay` of the durable runs (default 0)
//! - `WAL_BENCH_RECOVERY_MIB`: size of the recovery WAL (default 1024)
//! - `WAL_BENCH_EXECUTIONS`: executions in the disk-use run (default 1000000)
//! - `WAL_BENCH_DISK_ROWS`: which rows of the disk-use table to run, from 1
//!   (default `1,2,3`)

use std::hint::black_box;
use std::num::NonZeroU64;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use peregrine_wal::{Config, Key, Kind, SyncMode, Wal};

const RECORD: usize = 256;
/// Framed size of a single-record batch of 256 bytes: 32-byte frame header,
/// payload, 32-byte commit marker.
const FRAMED: u64 = 32 + RECORD as u64 + 32;
const STEP: Kind = Kind::new(1);
const DONE: Kind = Kind::new(2);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn wanted(section: &str) -> bool {
    std::env::var("WAL_BENCH").map_or(true, |v| v.split(',').any(|s| s.trim() == section))
}

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("WAL_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    tempfile::tempdir_in(base).expect("bench dir")
}

fn dir_bytes(dir: &Path) -> (u64, u64) {
    let (mut segments, mut spares) = (0, 0);
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let len = e.metadata().map_or(0, |m| m.len());
        if e.file_name().to_string_lossy().ends_with(".wal") {
            segments += len;
        } else {
            spares += len;
        }
    }
    (segments, spares)
}

/// The process's anonymous resident memory (heap and the like), from
/// `/proc/self/smaps_rollup`.
fn anonymous_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Anonymous:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Nanoseconds the calling thread has spent on a CPU (Linux schedstat), so
/// that figures can be read independently of how busy the machine is.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Appends one step of an execution: 5 records per execution, the 5th
/// terminal, so that truncation keeps the disk bounded.
fn append_step(wal: &Wal, n: u64, salt: u128, payload: &[u8]) -> peregrine_wal::Lsn {
    let key = Key::execution((u128::from(n / 5) << 8) | salt);
    let r = if n % 5 == 4 {
        wal.append_terminal(DONE, key, payload)
    } else {
        wal.append(STEP, key, payload)
    };
    r.expect("append")
}

fn throwaway_config(sync: SyncMode) -> Config {
    Config {
        sync,
        terminal_retention: Some(Duration::ZERO),
        ..Config::default()
    }
}

fn bench_append(c: &mut Criterion) {
    let dir = bench_dir();
    let (wal, _) = Wal::open(dir.path(), throwaway_config(SyncMode::None)).expect("open");
    let payload = [7u8; RECORD];
    let mut n = 0u64;
    let mut group = c.benchmark_group("wal_append_256B_none");
    group.throughput(Throughput::Elements(1));
    group.bench_function("records", |b| {
        b.iter(|| {
            n += 1;
            black_box(append_step(&wal, n, 0, &payload))
        })
    });
    group.throughput(Throughput::Bytes(RECORD as u64));
    group.bench_function("payload_bytes", |b| {
        b.iter(|| {
            n += 1;
            black_box(append_step(&wal, n, 0, &payload))
        })
    });
    group.finish();
    drop(wal);

    // A plain timed run, for the report.
    let dir = bench_dir();
    let (wal, _) = Wal::open(dir.path(), throwaway_config(SyncMode::None)).expect("open");
    let count = 4_000_000u64;
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    for n in 0..count {
        append_step(&wal, n, 0, &payload);
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => format!(
            "; the appending thread was on a CPU for {:.3} s: {:.2} M records per CPU-second ({:.0} ns per append)",
            (b - a) as f64 / 1e9,
            count as f64 / ((b - a) as f64 / 1e9) / 1e6,
            (b - a) as f64 / count as f64
        ),
        _ => String::new(),
    };
    println!(
        "\n## append, 256-byte records, one writer, mode none\n\n\
         {count} records in {secs:.3} s: {:.2} M records/s, {:.3} GB/s payload, {:.3} GB/s framed{cpu}",
        count as f64 / secs / 1e6,
        count as f64 * RECORD as f64 / secs / 1e9,
        count as f64 * FRAMED as f64 / secs / 1e9,
    );
}

/// fdatasync of a 4 KiB overwrite in a preallocated file on the same disk.
fn raw_fsync(dir: &Path, samples: usize) -> Vec<Duration> {
    let path = dir.join("raw-fsync.bin");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("raw file");
    let block = vec![0u8; 1 << 20];
    file.write_all_at(&block, 0).expect("prefill");
    file.sync_all().expect("sync");
    let page = [0x5Au8; 4096];
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let start = Instant::now();
        file.write_all_at(&page, (i as u64 % 256) * 4096)
            .expect("write");
        file.sync_data().expect("fdatasync");
        out.push(start.elapsed());
    }
    drop(file);
    let _ = std::fs::remove_file(path);
    out.sort_unstable();
    out
}

fn bench_durable() {
    let secs = env_or("WAL_BENCH_SECS", 5u64);
    let windows: Vec<u64> = std::env::var("WAL_BENCH_WINDOWS")
        .unwrap_or_else(|_| "64,1024,4096".into())
        .split(',')
        .filter_map(|w| w.trim().parse().ok())
        .collect();
    let dir = bench_dir();
    let raw_before = raw_fsync(dir.path(), 300);
    let raw_p50 = percentile(&raw_before, 0.5);
    let raw_p99 = percentile(&raw_before, 0.99);
    println!(
        "\n## durable append, mode sync, 256-byte records\n\n\
         raw fdatasync of a 4 KiB overwrite (same disk, before): p50 {:.0} us, p99 {:.0} us\n\n\
         Each producer appends a window of records, then waits for the last to be durable; \
         a record's commit latency runs from its append to the end of that wait (an upper bound).\n\n\
         | producers | window | records/s | p50 commit | p99 commit | p50 / raw p50 | p99 / raw p50 | p99 / raw p99 | records per fsync |\n\
         |---|---|---|---|---|---|---|---|---|",
        us(raw_p50),
        us(percentile(&raw_before, 0.99)),
    );
    for &window in &windows {
        for producers in [1usize, 2, 4] {
            let run = bench_dir();
            let config = Config {
                group_commit_delay: Duration::from_micros(env_or("WAL_BENCH_DELAY_US", 0)),
                ..throwaway_config(SyncMode::Sync)
            };
            let (wal, _) = Wal::open(run.path(), config).expect("open");
            let deadline = Instant::now() + Duration::from_secs(secs);
            let syncs_before = wal.stats().syncs;
            let start = Instant::now();
            let threads: Vec<_> = (0..producers)
                .map(|p| {
                    let wal = wal.clone();
                    std::thread::spawn(move || {
                        let payload = [p as u8; RECORD];
                        let mut lat = Vec::new();
                        let mut stamps = Vec::with_capacity(window as usize);
                        let mut n = 0u64;
                        while Instant::now() < deadline {
                            stamps.clear();
                            let mut last = peregrine_wal::Lsn::ZERO;
                            for _ in 0..window {
                                stamps.push(Instant::now());
                                last = append_step(&wal, n, p as u128, &payload);
                                n += 1;
                            }
                            wal.durable(last).expect("durable");
                            let done = Instant::now();
                            lat.extend(stamps.iter().map(|t| done - *t));
                        }
                        lat
                    })
                })
                .collect();
            let mut lat: Vec<Duration> = threads
                .into_iter()
                .flat_map(|t| t.join().expect("producer"))
                .collect();
            let elapsed = start.elapsed().as_secs_f64();
            let syncs = wal.stats().syncs - syncs_before;
            lat.sort_unstable();
            let (p50, p99) = (percentile(&lat, 0.5), percentile(&lat, 0.99));
            println!(
                "| {producers} | {window} | {:.0} | {:.0} us | {:.0} us | {:.2} | {:.2} | {:.2} | {:.0} |",
                lat.len() as f64 / elapsed,
                us(p50),
                us(p99),
                p50.as_secs_f64() / raw_p50.as_secs_f64(),
                p99.as_secs_f64() / raw_p50.as_secs_f64(),
                p99.as_secs_f64() / raw_p99.as_secs_f64(),
                lat.len() as f64 / syncs.max(1) as f64,
            );
            drop(wal);
        }
    }
    let raw_after = raw_fsync(dir.path(), 300);
    println!(
        "\nraw fdatasync (after): p50 {:.0} us, p99 {:.0} us",
        us(percentile(&raw_after, 0.5)),
        us(percentile(&raw_after, 0.99))
    );
}

fn evict(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        peregrine_wal::internals::evict_from_page_cache(&e.path()).expect("evict");
    }
}

fn config_for_warm() -> Config {
    Config {
        sync: SyncMode::None,
        terminal_retention: None,
        spare_segments: 0,
        ..Config::default()
    }
}

fn bench_recovery() {
    let mib = env_or("WAL_BENCH_RECOVERY_MIB", 1024u64);
    let dir = bench_dir();
    let config = config_for_warm();
    let (wal, _) = Wal::open(dir.path(), config.clone()).expect("open");
    // Executions that never finish: every record stays live, the worst case.
    let payload = [3u8; RECORD];
    let records = (mib << 20) / FRAMED;
    for n in 0..records {
        let key = Key::execution(u128::from(n / 5));
        wal.append(STEP, key, &payload).expect("append");
    }
    wal.close().expect("close");
    let (bytes, _) = dir_bytes(dir.path());
    evict(dir.path());
    let start = Instant::now();
    let (wal, recovered) = Wal::open(dir.path(), config).expect("recover");
    let open_secs = start.elapsed().as_secs_f64();
    let mut touched = 0u64;
    for (_, recs) in recovered.iter() {
        for r in recs {
            touched = touched.wrapping_add(u64::from(r.payload()[0]));
        }
    }
    black_box(touched);
    let total_secs = start.elapsed().as_secs_f64();
    let report = recovered.report().clone();
    drop(recovered);
    drop(wal);
    // Again with the files in the page cache: the CPU cost alone.
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    let (wal, recovered) = Wal::open(dir.path(), config_for_warm()).expect("recover warm");
    let warm_secs = start.elapsed().as_secs_f64();
    let warm_cpu = match (cpu_start, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => format!(" ({:.3} s on a CPU)", (b - a) as f64 / 1e9),
        _ => String::new(),
    };
    drop(recovered);
    drop(wal);
    // The same files read sequentially from a cold cache, for comparison.
    evict(dir.path());
    let start = Instant::now();
    let mut read = 0u64;
    for e in std::fs::read_dir(dir.path()).expect("read dir").flatten() {
        if e.file_name().to_string_lossy().ends_with(".wal") {
            read += std::fs::read(e.path()).expect("read").len() as u64;
        }
    }
    let read_secs = start.elapsed().as_secs_f64();
    println!(
        "\n## recovery\n\n\
         {:.2} GiB in {} segments, {} records ({} live, {} keys), cold page cache.\n\
         open + recovery: {open_secs:.3} s ({:.2} GB/s); plus touching every payload: {total_secs:.3} s; \
         warm page cache: {warm_secs:.3} s{warm_cpu}.\n\
         plain sequential read of the same segment files, cold: {read_secs:.3} s ({:.2} GB/s); \
         recovery / read = {:.2}",
        bytes as f64 / (1u64 << 30) as f64,
        report.segments,
        report.records,
        report.live_records,
        report.live_records / 5,
        bytes as f64 / open_secs / 1e9,
        read as f64 / read_secs / 1e9,
        open_secs / read_secs,
    );
}

fn bench_disk() {
    let executions = env_or("WAL_BENCH_EXECUTIONS", 1_000_000u64);
    println!(
        "\n## disk use after {executions} executions of 5 records (256 B), all terminal\n\n\
         Executions run 1000 at a time, interleaved; mode none; truncation in the background.\n\n\
         | terminal retention | segment size | untruncated | segment files | ratio | spare files | ratio with spares | live keys | heap per live key |\n\
         |---|---|---|---|---|---|---|---|---|"
    );
    let rows: Vec<usize> = std::env::var("WAL_BENCH_DISK_ROWS").map_or(vec![1, 2, 3], |v| {
        v.split(',').filter_map(|r| r.trim().parse().ok()).collect()
    });
    for (row, (label, retention, segment_mib)) in [
        ("0 (expire at once)", Some(Duration::ZERO), 64u64),
        ("0 (expire at once)", Some(Duration::ZERO), 16),
        ("24 h (default)", Some(Duration::from_secs(24 * 3600)), 64),
    ]
    .into_iter()
    .enumerate()
    {
        if !rows.contains(&(row + 1)) {
            continue;
        }
        let dir = bench_dir();
        let config = Config {
            sync: SyncMode::None,
            terminal_retention: retention,
            segment_bytes: NonZeroU64::new(segment_mib << 20).expect("non-zero"),
            ..Config::default()
        };
        let heap_before = anonymous_bytes();
        let (wal, _) = Wal::open(dir.path(), config).expect("open");
        let payload = [9u8; RECORD];
        let mut appended = 0u64;
        for chunk in 0..executions.div_ceil(1000) {
            let ids = chunk * 1000..((chunk + 1) * 1000).min(executions);
            for step in 0..5u64 {
                for id in ids.clone() {
                    append_step(&wal, id * 5 + step, 0, &payload);
                    appended += 1;
                }
            }
        }
        for _ in 0..3 {
            wal.truncate_now().expect("truncate");
        }
        let (segments, spares) = dir_bytes(dir.path());
        let untruncated = appended * FRAMED;
        let live_keys = wal.stats().live_keys;
        // What the WAL's index costs per key it keeps (the segments are
        // file-backed, not anonymous memory).
        let per_key = anonymous_bytes().saturating_sub(heap_before) / (live_keys.max(1) as u64);
        println!(
            "| {label} | {segment_mib} MiB | {:.0} MiB | {:.0} MiB | {:.2}% | {:.0} MiB | {:.2}% | {live_keys} | {per_key} B |",
            untruncated as f64 / (1u64 << 20) as f64,
            segments as f64 / (1u64 << 20) as f64,
            segments as f64 * 100.0 / untruncated as f64,
            spares as f64 / (1u64 << 20) as f64,
            (segments + spares) as f64 * 100.0 / untruncated as f64,
        );
        drop(wal);
    }
}

fn main() {
    if wanted("append") {
        let mut c = Criterion::default()
            .configure_from_args()
            .sample_size(20)
            .measurement_time(Duration::from_secs(5));
        bench_append(&mut c);
        c.final_summary();
    }
    if wanted("durable") {
        bench_durable();
    }
    if wanted("recovery") {
        bench_recovery();
    }
    if wanted("disk") {
        bench_disk();
    }
}
