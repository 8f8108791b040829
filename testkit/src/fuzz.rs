//! A small mutation fuzzer for the test suites, on the stable toolchain
//! (coverage-guided fuzzers need a nightly compiler here).
//!
//! A target is a function of bytes that must not panic. [`run`] first runs
//! every file of the target's corpus (the seeds, and every input that ever
//! made it fail: the regressions), then, until its time is up, mutations of
//! them: bit flips, interesting bytes, insertions, deletions, duplicated
//! ranges, splices of two inputs and dictionary tokens. An input that
//! panics is written to `target/fuzz-failures/` and the test fails naming
//! it; copied into the corpus, it stays a regression test.
//!
//! `PEREGRINE_FUZZ_SECS` sets the time per target (default 3; CI gives
//! 60), `PEREGRINE_FUZZ_SEED` the random seed (printed by every run).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest input a mutation may grow to.
const MAX_LEN: usize = 64 << 10;

/// What a run did.
#[derive(Debug, Clone, Copy)]
pub struct Ran {
    pub seeds: usize,
    pub executions: u64,
}

/// Runs `target` on `corpus` and its mutations for the configured time.
/// `extra_seeds` join the corpus files (for seeds built at run time).
/// `dictionary` holds tokens worth inserting (keywords, delimiters).
pub fn run(
    name: &str,
    corpus: &Path,
    extra_seeds: Vec<Vec<u8>>,
    dictionary: &[&[u8]],
    target: impl FnMut(&[u8]),
) -> Ran {
    let seconds = std::env::var("PEREGRINE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    run_for(name, corpus, extra_seeds, dictionary, seconds, target)
}

/// [`run`] for `seconds`, whatever the environment says.
pub fn run_for(
    name: &str,
    corpus: &Path,
    extra_seeds: Vec<Vec<u8>>,
    dictionary: &[&[u8]],
    seconds: f64,
    mut target: impl FnMut(&[u8]),
) -> Ran {
    let mut seeds = read_corpus(corpus);
    seeds.extend(extra_seeds);
    assert!(
        !seeds.is_empty(),
        "fuzz target {name}: no seeds in {}",
        corpus.display()
    );
    let seed = std::env::var("PEREGRINE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!(
        "fuzz {name}: {} seeds, {seconds}s, PEREGRINE_FUZZ_SEED={seed}",
        seeds.len()
    );
    let mut check = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| target(input))).is_err() {
            let path = save_failure(name, input);
            panic!(
                "fuzz target {name} panicked on {} (PEREGRINE_FUZZ_SEED={seed}); \
                 copy it into {} to keep it as a regression test",
                path.display(),
                corpus.display()
            );
        }
    };
    for input in &seeds {
        check(input);
    }
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut executions = seeds.len() as u64;
    let mut input = Vec::with_capacity(MAX_LEN);
    while Instant::now() < deadline {
        input.clear();
        input.extend_from_slice(&seeds[rng.below(seeds.len())]);
        for _ in 0..1 + rng.below(8) {
            mutate(&mut input, &seeds, dictionary, &mut rng);
        }
        check(&input);
        executions += 1;
    }
    eprintln!("fuzz {name}: {executions} executions");
    Ran {
        seeds: seeds.len(),
        executions,
    }
}

fn read_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

fn save_failure(name: &str, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = dir.join(format!("{name}-{hash:016x}"));
    let _ = std::fs::write(&path, input);
    path
}

/// Bytes that often sit on a boundary.
const INTERESTING: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, b'\n', b'"', b'\\', b'{', b'}', b':'];

fn mutate(input: &mut Vec<u8>, seeds: &[Vec<u8>], dictionary: &[&[u8]], rng: &mut Rng) {
    let len = input.len();
    match rng.below(8) {
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = INTERESTING[rng.below(INTERESTING.len())];
        }
        2 if len < MAX_LEN => {
            let at = rng.below(len + 1);
            let n = 1 + rng.below(8);
            for _ in 0..n {
                input.insert(at, rng.next() as u8);
            }
        }
        3 if len > 1 => {
            let at = rng.below(len);
            let n = (1 + rng.below(16)).min(len - at);
            input.drain(at..at + n);
        }
        4 if len > 1 && len < MAX_LEN => {
            let from = rng.below(len);
            let n = (1 + rng.below(64)).min(len - from);
            let piece = input[from..from + n].to_vec();
            let at = rng.below(len + 1);
            input.splice(at..at, piece);
        }
        5 => {
            let other = &seeds[rng.below(seeds.len())];
            if !other.is_empty() {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                input.truncate(cut);
                input.extend_from_slice(&other[from..]);
            }
        }
        6 if !dictionary.is_empty() && len < MAX_LEN => {
            let token = dictionary[rng.below(dictionary.len())];
            let at = rng.below(len + 1);
            input.splice(at..at, token.iter().copied());
        }
        7 if len > 0 => {
            input.truncate(rng.below(len));
        }
        _ => {}
    }
    input.truncate(MAX_LEN);
}

/// xorshift64*: enough randomness for mutations, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_run_first_and_a_panic_is_saved_and_reported() {
        let dir = std::env::temp_dir().join(format!("fuzz-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        std::fs::write(dir.join("seed"), b"fine").unwrap_or_default();
        let mut seen = Vec::new();
        let ran = run_for(
            "selftest",
            &dir,
            vec![b"also".to_vec()],
            &[],
            0.2,
            |input| seen.push(input.to_vec()),
        );
        assert_eq!(ran.seeds, 2);
        assert_eq!(&seen[..2], &[b"fine".to_vec(), b"also".to_vec()]);
        assert!(ran.executions >= 2);
        let failed = catch_unwind(AssertUnwindSafe(|| {
            run_for("selftest-bad", &dir, Vec::new(), &[], 0.2, |input| {
                assert!(input != b"fine", "a planted bug");
            })
        }));
        let message = failed
            .err()
            .and_then(|p| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(message.contains("fuzz-failures"), "{message}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
