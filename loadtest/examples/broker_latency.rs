//! The broker alone: how long a message takes from a producer's send to a
//! consumer's poll, with the producer settings of `peregrine-loadtest
//! --mode kafka` and the consumer settings of `peregrine server`'s Kafka
//! trigger (`fetch.wait.max.ms` as given, `fetch.min.bytes` 1). What the
//! kafka mode measures beyond this is the server.
//!
//! ```sh
//! cargo run --release -p peregrine-loadtest --example broker_latency -- \
//!     BROKERS [RATE=100] [MESSAGES=1000] [FETCH_WAIT_MS=10]
//! ```

use std::error::Error;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};

/// Sent until the consumer has its partitions; not measured.
const WARM: &[u8] = b"warm";
/// How long the consumer may take to get its partitions.
const ASSIGN_TIMEOUT: Duration = Duration::from_secs(30);

/// Microseconds since the epoch: sender and receiver share this clock.
fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn quantile_ms(sorted: &[u64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).map_or(f64::NAN, |us| *us as f64 / 1000.0)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let brokers = args
        .first()
        .ok_or("usage: broker_latency BROKERS [RATE] [MESSAGES] [FETCH_WAIT_MS]")?;
    let rate: f64 = args.get(1).map_or(Ok(100.0), |a| a.parse())?;
    let messages: u64 = args.get(2).map_or(Ok(1000), |a| a.parse())?;
    let fetch_wait_ms: u64 = args.get(3).map_or(Ok(10), |a| a.parse())?;
    if !(rate.is_finite() && rate > 0.0) || messages == 0 {
        return Err("RATE and MESSAGES must be positive".into());
    }

    let topic = format!("broker-latency-{}", now_us());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let new = NewTopic::new(&topic, 4, TopicReplication::Fixed(1));
    for result in runtime.block_on(admin.create_topics([&new], &AdminOptions::new()))? {
        result.map_err(|(name, code)| format!("creating {name}: {code}"))?;
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &topic)
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .set("fetch.min.bytes", "1")
        .set("auto.offset.reset", "earliest")
        .set("socket.nagle.disable", "true")
        .set("enable.auto.commit", "false")
        .create()?;
    consumer.subscribe(&[&topic])?;
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "0")
        .set("acks", "all")
        .set("socket.nagle.disable", "true")
        .create()?;

    let began = Instant::now();
    loop {
        if began.elapsed() > ASSIGN_TIMEOUT {
            return Err("the consumer got no message within 30 s".into());
        }
        producer
            .send(BaseRecord::<[u8], [u8]>::to(&topic).payload(WARM))
            .map_err(|(e, _)| e)?;
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(200)) {
            break;
        }
    }
    while let Some(Ok(_)) = consumer.poll(Duration::from_millis(200)) {}

    let span = Duration::from_secs_f64(messages as f64 / rate);
    let (latencies, sent) = std::thread::scope(|scope| {
        let receiver = scope.spawn(|| {
            let mut latencies = Vec::new();
            let deadline = Instant::now() + span + Duration::from_secs(10);
            while (latencies.len() as u64) < messages && Instant::now() < deadline {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                    let sent = message
                        .payload()
                        .filter(|p| *p != WARM)
                        .and_then(|p| std::str::from_utf8(p).ok())
                        .and_then(|p| p.parse::<u64>().ok());
                    if let Some(sent) = sent {
                        latencies.push(now_us().saturating_sub(sent));
                    }
                }
            }
            latencies
        });
        let start = Instant::now();
        let mut sent = 0u64;
        for n in 0..messages {
            let due = start + Duration::from_secs_f64(n as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            let payload = now_us().to_string();
            let key = n.to_string();
            let record = BaseRecord::to(&topic)
                .payload(payload.as_bytes())
                .key(key.as_bytes());
            if producer.send(record).is_ok() {
                sent += 1;
            }
        }
        let flushed = producer.flush(Duration::from_secs(10));
        (receiver.join(), flushed.map(|()| sent))
    });
    let mut latencies = latencies.map_err(|_| "the receiver panicked")?;
    let sent = sent?;
    latencies.sort_unstable();
    println!(
        "broker {brokers}, {rate}/s, fetch.wait.max.ms {fetch_wait_ms}: {} of {sent} received; \
         send to poll p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        latencies.len(),
        quantile_ms(&latencies, 0.5),
        quantile_ms(&latencies, 0.9),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 1.0),
    );
    Ok(())
}
