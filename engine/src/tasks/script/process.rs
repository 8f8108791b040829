//! Kestra's `io.kestra.plugin.core.runner.Process` task runner: a command in
//! a process group of its own, in a working directory, its output read line
//! by line (Kestra's `::{...}::` protocol, see [`super::protocol`]), killed
//! whole when its time is up or its attempt is interrupted.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::protocol::{self, Said};
use crate::flow::Level;
use crate::tasks::LogKeeper;

/// The longest line read whole; a longer one is cut into pieces.
const MAX_LINE_BYTES: usize = 64 << 10;
/// How often a wait looks at whether its attempt was interrupted.
const POLL: Duration = Duration::from_millis(50);
/// How long the output of a command that exited is read before what it
/// left running in its group (holding its pipes open) is killed.
const DRAIN: Duration = Duration::from_millis(500);

/// What may stop a running process from outside: its worker's interrupt.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    interrupted: AtomicBool,
    /// The process group running now.
    group: Mutex<Option<i32>>,
}

impl Cancel {
    /// Interrupts the job: kills the process group it runs, if any, and
    /// any it starts afterwards.
    pub(crate) fn interrupt(&self) {
        self.interrupted.store(true, Ordering::SeqCst);
        if let Some(group) = *lock(&self.group) {
            kill_group(group);
        }
    }

    fn is_interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How many processes may run at once across the engine's workers.
#[derive(Debug)]
pub(crate) struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    pub(crate) fn new(n: usize) -> Arc<Self> {
        Arc::new(Self {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        })
    }

    /// Waits for a permit until `deadline` or an interrupt: `None` then.
    fn acquire(self: &Arc<Self>, deadline: Option<Instant>, cancel: &Cancel) -> Option<Permit> {
        let mut free = lock(&self.free);
        loop {
            if cancel.is_interrupted() || deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
            if *free > 0 {
                *free -= 1;
                return Some(Permit(Arc::clone(self)));
            }
            free = self
                .freed
                .wait_timeout(free, POLL)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// A running process's place; given back when dropped.
struct Permit(Arc<Permits>);

impl Drop for Permit {
    fn drop(&mut self) {
        *lock(&self.0.free) += 1;
        self.0.freed.notify_one();
    }
}

/// One command to run.
#[derive(Debug)]
pub(crate) struct Spec<'a> {
    /// The program and its arguments.
    pub argv: &'a [String],
    pub dir: &'a Path,
    /// Set on top of the worker's environment.
    pub env: &'a [(String, String)],
    /// Its time: past it the group is killed.
    pub within: Option<Duration>,
    /// What stderr lines are logged at.
    pub stderr_level: Level,
    /// The log bytes kept.
    pub max_log_bytes: usize,
    /// Where the process group's id is written while it runs, so that a
    /// server killed meanwhile kills the group at its next start
    /// ([`kill_leftovers`]).
    pub group_file: Option<&'a Path>,
    /// Where its lines are shown as they come, if anywhere.
    pub live: Option<crate::logs::Live>,
}

/// How a command ended.
#[derive(Debug)]
pub(crate) struct Ended {
    /// Its exit code; `None` when a signal ended it.
    pub exit_code: Option<i32>,
    /// Its time was up: it was killed.
    pub timed_out: bool,
    /// Its attempt was interrupted: it was killed.
    pub interrupted: bool,
    /// It wrote to stderr.
    pub wrote_stderr: bool,
    /// What it said through the protocol.
    pub said: Said,
    /// The lines it printed, within the budget (more may be added).
    pub logs: LogKeeper,
}

/// Why a command did not run.
#[derive(Debug)]
pub(crate) enum NotRun {
    /// It could not be started (`argv[0]` missing, not executable...).
    Spawn(String),
    /// No permit came before its time was up, or it was interrupted while
    /// waiting for one.
    NoPermit { interrupted: bool },
}

/// Runs `spec` to its end, once a permit of `permits` is free.
pub(crate) fn run(
    spec: &Spec<'_>,
    permits: &Arc<Permits>,
    cancel: &Cancel,
) -> Result<Ended, NotRun> {
    let started = Instant::now();
    let deadline = spec.within.map(|w| started + w);
    let Some(_permit) = permits.acquire(deadline, cancel) else {
        return Err(NotRun::NoPermit {
            interrupted: cancel.is_interrupted(),
        });
    };
    let (program, args) = spec
        .argv
        .split_first()
        .ok_or_else(|| NotRun::Spawn("the command is empty".to_owned()))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(spec.dir)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec; it calls
    // only `prctl`, which is async-signal-safe, and touches no memory of
    // the parent's (no allocation, no lock).
    unsafe {
        command.pre_exec(|| {
            // The command dies with the server: a process whose answer
            // nobody waits for any more is not left running.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| NotRun::Spawn(format!("`{program}` could not be started: {e}")))?;
    let group = i32::try_from(child.id()).unwrap_or(i32::MAX);
    *lock(&cancel.group) = Some(group);
    if let Some(file) = spec.group_file {
        // Best effort: without it, only the group's leader dies with the
        // server (its parent-death signal). With the leader's start time,
        // so that a group id reused since names no other group.
        let started = start_time(group).unwrap_or_default();
        let _ = std::fs::write(file, format!("{group} {started} {}", boot_id()));
    }
    // An interrupt that came between the check above and the spawn.
    if cancel.is_interrupted() {
        kill_group(group);
    }
    let ended = watch(&mut child, group, spec, deadline, cancel);
    *lock(&cancel.group) = None;
    if let Some(file) = spec.group_file {
        let _ = std::fs::remove_file(file);
    }
    Ok(ended)
}

/// One line a stream gave.
struct Line {
    stderr: bool,
    text: String,
    at: chrono::DateTime<chrono::Utc>,
}

fn watch(
    child: &mut Child,
    group: i32,
    spec: &Spec<'_>,
    deadline: Option<Instant>,
    cancel: &Cancel,
) -> Ended {
    let (tx, rx) = flume::bounded::<Line>(1024);
    let mut readers = Vec::with_capacity(2);
    if let Some(out) = child.stdout.take() {
        readers.push(spawn_reader(out, false, tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(spawn_reader(err, true, tx.clone()));
    }
    drop(tx);
    let mut keeper = LogKeeper::showing(spec.max_log_bytes, spec.live.clone());
    let mut said = Said::default();
    let mut wrote_stderr = false;
    let mut timed_out = false;
    let mut interrupted = false;
    let mut status = None;
    let mut exited_at: Option<Instant> = None;
    let mut killed_at: Option<Instant> = None;
    let mut streams_open = true;
    loop {
        if streams_open {
            match rx.recv_timeout(POLL) {
                Ok(line) => {
                    wrote_stderr |= line.stderr;
                    let level = if line.stderr {
                        spec.stderr_level
                    } else {
                        Level::Info
                    };
                    protocol::read_line(&line.text, level, line.at, &mut said, &mut keeper);
                    continue;
                }
                // Both streams closed: the command is ending (or closed
                // them and goes on: its end is still waited for, within
                // its time).
                Err(flume::RecvTimeoutError::Disconnected) => streams_open = false,
                Err(flume::RecvTimeoutError::Timeout) => {}
            }
        } else if status.is_none() {
            std::thread::sleep(POLL);
        }
        if killed_at.is_none() {
            if cancel.is_interrupted() {
                interrupted = true;
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                timed_out = true;
            }
            if interrupted || timed_out {
                kill_group(group);
                killed_at = Some(Instant::now());
            }
        }
        if status.is_none()
            && let Ok(Some(done)) = child.try_wait()
        {
            status = Some(done);
            exited_at = Some(Instant::now());
        }
        if status.is_some() && !streams_open {
            break;
        }
        // It exited, and what it started still holds its output open.
        if exited_at.is_some_and(|at| at.elapsed() >= DRAIN) && killed_at.is_none() {
            kill_group(group);
            killed_at = Some(Instant::now());
        }
        // Killed, and a process outside its group (`setsid`) still holds
        // its output: the job ends anyway, its readers left to end when
        // that process does.
        if status.is_some() && killed_at.is_some_and(|at| at.elapsed() >= DRAIN) {
            break;
        }
    }
    // An interrupt that killed it before the loop saw the flag.
    interrupted |= cancel.is_interrupted();
    // What it left in its group goes with it.
    kill_group(group);
    if !streams_open {
        for reader in readers {
            let _ = reader.join();
        }
    }
    let exit_code = status.and_then(|s| s.code());
    Ended {
        exit_code,
        timed_out,
        interrupted,
        wrote_stderr,
        said,
        logs: keeper,
    }
}

fn spawn_reader(
    stream: impl Read + Send + 'static,
    stderr: bool,
    tx: flume::Sender<Line>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let read = (&mut reader)
                .take(MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut buf);
            match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    let line = Line {
                        stderr,
                        text: String::from_utf8_lossy(&buf).into_owned(),
                        at: chrono::Utc::now(),
                    };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Kills the process groups a server killed while they ran left behind
/// under `root` (the `<execution>/<attempt>.pgid` files beside their
/// folders): what their scripts started goes before they run again. A
/// group recorded in another boot, or whose leader runs but is not the
/// process recorded (its id was reused), is left alone. How many were
/// killed.
pub(crate) fn kill_leftovers(root: &Path) -> usize {
    let mut killed = 0;
    let Ok(executions) = std::fs::read_dir(root) else {
        return 0;
    };
    for execution in executions.flatten() {
        let Ok(entries) = std::fs::read_dir(execution.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_file())
                || path.extension().is_none_or(|e| e != "pgid")
            {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let mut parts = text.split_whitespace();
            let (Some(Ok(group)), Some(Ok(started)), Some(boot)) = (
                parts.next().map(str::parse::<i32>),
                parts.next().map(str::parse::<u64>),
                parts.next(),
            ) else {
                continue;
            };
            // Another boot's ids name nothing of ours. Within this one, a
            // group's id is not given to a new process while the group
            // has members: a leader that is gone (the parent-death signal
            // took it) leaves the id to what it started; one that runs
            // must be the one recorded.
            let ours = boot == boot_id() && start_time(group).is_none_or(|t| t == started);
            if ours {
                kill_group(group);
                killed += 1;
            }
        }
    }
    killed
}

/// This boot's id (empty where the kernel does not say).
fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// When process `pid` started, in clock ticks since boot (`/proc/<pid>/stat`
/// field 22), if it runs.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Kills every process of group `group`.
fn kill_group(group: i32) {
    if group <= 1 {
        return;
    }
    // SAFETY: `kill` takes plain integers; a negative pid names the group
    // the command leads (its pid is the group's id, `process_group(0)`).
    unsafe {
        libc::kill(-group, libc::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, within: Option<Duration>) -> Ended {
        let dir = tempfile::tempdir().unwrap();
        let argv = ["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()];
        let spec = Spec {
            argv: &argv,
            dir: dir.path(),
            env: &[("GREETING".to_owned(), "hi".to_owned())],
            within,
            stderr_level: Level::Warn,
            max_log_bytes: 1 << 16,
            group_file: None,
            live: None,
        };
        run(&spec, &Permits::new(1), &Cancel::default()).unwrap()
    }

    fn messages(ended: Ended) -> Vec<(Level, String)> {
        ended
            .logs
            .finish()
            .into_iter()
            .map(|l| (l.level, l.message))
            .collect()
    }

    #[test]
    fn output_lines_are_logs_and_the_exit_code_is_kept() {
        let ended = sh("echo $GREETING; echo oops >&2; exit 3", None);
        assert_eq!(ended.exit_code, Some(3));
        assert!(ended.wrote_stderr);
        let mut logs = messages(ended);
        logs.sort_by(|a, b| a.1.cmp(&b.1));
        assert_eq!(
            logs,
            [
                (Level::Info, "hi".to_owned()),
                (Level::Warn, "oops".to_owned())
            ]
        );
    }

    #[test]
    fn a_command_past_its_time_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("sleep 60 & echo $! > {}; wait", pid_file.display());
        let started = Instant::now();
        let ended = sh(&script, Some(Duration::from_millis(500)));
        assert!(ended.timed_out);
        assert_eq!(ended.exit_code, None);
        assert!(started.elapsed() < Duration::from_secs(30));
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background sleep went with its group (reaped by init, or
        // a zombie at worst, never running).
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false);
        assert!(!alive, "sleep {pid} is still running");
    }

    #[test]
    fn an_interrupt_kills_the_running_command() {
        let dir = tempfile::tempdir().unwrap();
        let argv = ["/bin/sh".to_owned(), "-c".to_owned(), "sleep 60".to_owned()];
        let cancel = Arc::new(Cancel::default());
        let by = Arc::clone(&cancel);
        let interrupter = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            by.interrupt();
        });
        let spec = Spec {
            argv: &argv,
            dir: dir.path(),
            env: &[],
            within: None,
            stderr_level: Level::Error,
            max_log_bytes: 1024,
            group_file: None,
            live: None,
        };
        let ended = run(&spec, &Permits::new(1), &cancel).unwrap();
        interrupter.join().unwrap();
        assert!(ended.interrupted);
        assert_eq!(ended.exit_code, None);
    }

    #[test]
    fn a_missing_program_is_not_run() {
        let dir = tempfile::tempdir().unwrap();
        let argv = ["/no/such/program".to_owned()];
        let spec = Spec {
            argv: &argv,
            dir: dir.path(),
            env: &[],
            within: None,
            stderr_level: Level::Error,
            max_log_bytes: 1024,
            group_file: None,
            live: None,
        };
        match run(&spec, &Permits::new(1), &Cancel::default()) {
            Err(NotRun::Spawn(why)) => assert!(why.contains("/no/such/program"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn processes_wait_for_a_permit_within_their_time() {
        let permits = Permits::new(1);
        let cancel = Cancel::default();
        let held = permits.acquire(None, &cancel).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let argv = ["/bin/true".to_owned()];
        let spec = Spec {
            argv: &argv,
            dir: dir.path(),
            env: &[],
            within: Some(Duration::from_millis(200)),
            stderr_level: Level::Error,
            max_log_bytes: 1024,
            group_file: None,
            live: None,
        };
        assert!(matches!(
            run(&spec, &permits, &cancel),
            Err(NotRun::NoPermit { interrupted: false })
        ));
        drop(held);
        assert_eq!(run(&spec, &permits, &cancel).unwrap().exit_code, Some(0));
    }

    #[test]
    fn a_flood_of_output_keeps_its_first_and_last_lines() {
        let ended = sh("seq 1 100000", None);
        let logs = messages(ended);
        assert_eq!(logs[0].1, "1");
        assert_eq!(logs.last().unwrap().1, "100000");
        assert!(
            logs.iter()
                .any(|(l, m)| *l == Level::Warn && m.contains("not kept"))
        );
        let bytes: usize = logs.iter().map(|(_, m)| m.len() + 32).sum();
        assert!(bytes < (1 << 16) + 200, "{bytes}");
    }

    #[test]
    fn a_process_that_leaves_the_group_does_not_hold_the_job() {
        let started = Instant::now();
        // The escapee keeps stdout open for 30 s; the job ends with its
        // command, within the drain.
        let ended = sh("setsid sleep 31 & echo started", None);
        assert_eq!(ended.exit_code, Some(0));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let _ = std::process::Command::new("pkill")
            .args(["-f", "^sleep 31$"])
            .status();
    }

    #[test]
    fn a_command_that_closes_its_output_is_still_held_to_its_time() {
        let started = Instant::now();
        let ended = sh("exec >&- 2>&-; sleep 60", Some(Duration::from_millis(500)));
        assert!(ended.timed_out);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn empty_lines_are_not_free() {
        // 200,000 empty lines: each costs its overhead, so most go.
        let ended = sh(
            "i=0; while [ $i -lt 200000 ]; do echo; i=$((i+1)); done",
            None,
        );
        let logs = messages(ended);
        assert!(logs.len() < 3000, "{} lines kept", logs.len());
        assert!(logs.iter().any(|(_, m)| m.contains("not kept")));
    }
}
