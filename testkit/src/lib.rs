//! What the Kafka tests need: a real Kafka-protocol broker on loopback
//! (tansu), and topics created through Kafka's admin API (tansu creates
//! none by itself); and a mutation fuzzer for the suites ([`fuzz`]).
//!
//! The broker is `TEST_KAFKA_BROKERS` when it is set (`.ci/run` starts one
//! and sets it); otherwise one `tansu` per test process, started on a free
//! loopback port the first time a test asks, and killed with the process.
//! Tests never skip for want of a broker: without `tansu` they fail, and say
//! how to install it.

pub mod fuzz;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

/// Why the broker or a topic is not there.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "no `tansu` binary (looked at $TANSU, $PATH and ~/.cargo/bin): install it with \
         `cargo install tansu@0.6.0 --locked --features dynostore,libsql`, or point \
         TEST_KAFKA_BROKERS at a running broker"
    )]
    NoTansu,
    #[error("starting tansu: {0}")]
    Spawn(std::io::Error),
    #[error("tansu did not listen on {addr} within {secs} s: {log}")]
    NotListening {
        addr: SocketAddr,
        secs: u64,
        log: String,
    },
    #[error("kafka admin: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {topic}: {why}")]
    Topic { topic: String, why: String },
}

/// How long a broker may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running broker.
#[derive(Debug)]
pub struct Broker {
    bootstrap: String,
}

impl Broker {
    /// The broker every test of this process shares.
    pub fn shared() -> &'static Broker {
        static SHARED: OnceLock<Result<Broker, String>> = OnceLock::new();
        match SHARED.get_or_init(|| Broker::connect_or_start().map_err(|e| e.to_string())) {
            Ok(broker) => broker,
            Err(e) => panic!("no Kafka broker for the tests: {e}"),
        }
    }

    fn connect_or_start() -> Result<Broker, Error> {
        if let Ok(bootstrap) = std::env::var("TEST_KAFKA_BROKERS")
            && !bootstrap.is_empty()
        {
            return Ok(Broker { bootstrap });
        }
        let tansu = tansu_binary().ok_or(Error::NoTansu)?;
        let addr = free_port()?;
        let log = std::env::temp_dir().join(format!("peregrine-tansu-{}.log", addr.port()));
        let dir = std::env::temp_dir().join(format!("peregrine-tansu-{}", addr.port()));
        // A folder left by an earlier broker on this port holds its topics.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(Error::Spawn)?;
        spawn_for_life(tansu, addr, dir, log.clone())?;
        wait_listening(addr, &log)?;
        Ok(Broker {
            bootstrap: addr.to_string(),
        })
    }

    /// `host:port`, for `bootstrap.servers`.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }
}

/// `$TANSU`, then `tansu` on `$PATH`, then `~/.cargo/bin/tansu`.
pub fn tansu_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TANSU").map(PathBuf::from)
        && path.is_file()
    {
        return Some(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = std::env::var_os("HOME")?;
        let path = PathBuf::from(home).join(".cargo/bin/tansu");
        path.is_file().then_some(path)
    })
}

/// The arguments that start tansu on `addr`, keeping its topics in
/// `tansu.db` in its working folder. Not `memory://`: tansu 0.6's memory
/// engine answers a fetch that starts inside a record batch with nothing,
/// which a consumer resuming after a pause (or a restart at a committed
/// offset) meets whenever the producer batched.
pub fn tansu_args(addr: SocketAddr) -> Vec<String> {
    let url = format!("tcp://{addr}");
    vec![
        "broker".into(),
        "--listener-url".into(),
        url.clone(),
        "--advertised-listener-url".into(),
        url,
        "--storage-engine".into(),
        "sqlite://tansu.db".into(),
    ]
}

/// A loopback address nobody listens on (at the time of asking).
pub fn free_port() -> Result<SocketAddr, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(Error::Spawn)?;
    listener.local_addr().map_err(Error::Spawn)
}

/// Starts tansu from a thread that lives as long as the process, with the
/// kernel told to kill tansu when that thread ends (the parent-death signal
/// follows the spawning thread, not the process): the broker never outlives
/// the tests, even when they are killed.
fn spawn_for_life(
    tansu: PathBuf,
    addr: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
) -> Result<(), Error> {
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), Error>>();
    std::thread::Builder::new()
        .name("tansu".into())
        .spawn(move || {
            let spawned = spawn(&tansu, addr, &dir, &log);
            match spawned {
                Ok(mut child) => {
                    let _ = tx.send(Ok(()));
                    // Reap it if it dies; otherwise wait here for ever.
                    let _ = child.wait();
                    loop {
                        std::thread::park();
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            }
        })
        .map_err(Error::Spawn)?;
    rx.recv()
        .unwrap_or_else(|_| Err(Error::Spawn(std::io::Error::other("the tansu thread died"))))
}

fn spawn(tansu: &PathBuf, addr: SocketAddr, dir: &Path, log: &PathBuf) -> Result<Child, Error> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::File::create(log).map_err(Error::Spawn)?;
    let err = out.try_clone().map_err(Error::Spawn)?;
    let mut command = Command::new(tansu);
    command
        .args(tansu_args(addr))
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: the closure runs in the child between fork and exec, and only
    // calls prctl(2), which is async-signal-safe; it touches no memory of
    // the parent's.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn().map_err(Error::Spawn)
}

fn wait_listening(addr: SocketAddr, log: &PathBuf) -> Result<(), Error> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(log) {
        let _ = f.read_to_string(&mut text);
    }
    Err(Error::NotListening {
        addr,
        secs: START_TIMEOUT.as_secs(),
        log: text,
    })
}

/// A name no other test of any process on this machine uses.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{:x}-{}",
        std::process::id(),
        nanos & 0xFFFF_FFFF,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `topic` with `partitions` partitions (replication 1) and waits
/// until the broker lists every partition with a leader.
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<(), Error> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    // On a thread of its own: callers may be inside an async runtime, where
    // blocking on another is refused.
    let results = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(Error::Spawn)?;
                Ok::<_, Error>(runtime.block_on(admin.create_topics([&new], &options))?)
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::Spawn(std::io::Error::other(
                    "the admin thread panicked",
                )))
            })
    })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(Error::Topic {
                    topic: name,
                    why: code.to_string(),
                });
            }
        }
    }
    wait_for_partitions(bootstrap, topic, partitions)
}

fn wait_for_partitions(bootstrap: &str, topic: &str, partitions: i32) -> Result<(), Error> {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::from("not listed");
    while Instant::now() < deadline {
        match client.fetch_metadata(Some(topic), Duration::from_secs(2)) {
            Ok(metadata) => {
                let ready = metadata
                    .topics()
                    .iter()
                    .find(|t| t.name() == topic)
                    .map(|t| {
                        t.error().is_none()
                            && t.partitions().len() == partitions as usize
                            && t.partitions().iter().all(|p| p.leader() >= 0)
                    });
                if ready == Some(true) {
                    return Ok(());
                }
                last = format!("{ready:?}");
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(Error::Topic {
        topic: topic.into(),
        why: format!("partitions not ready within 10 s ({last})"),
    })
}

/// Starts a `peregrine server` command (its stdout is taken over) and
/// returns it with the address it says it listens on (`http://…`), once it
/// has printed it.
pub fn spawn_server(mut command: Command) -> (Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("the server does not start: {e}"));
    let Some(stdout) = child.stdout.take() else {
        panic!("the server's stdout is not piped");
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = rx
        .recv_timeout(START_TIMEOUT)
        .unwrap_or_else(|_| panic!("the server did not print its address"));
    let Some(addr) = line.strip_prefix("peregrine listening on ") else {
        panic!("unexpected first line from the server: {line}");
    };
    let addr = addr.to_owned();
    (child, addr)
}
