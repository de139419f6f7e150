//! The MQTT source: subscribes to the topics' filters on a broker and feeds
//! the pipeline through the source's journal (see [`crate::journal`]).
//!
//! Delivery guarantees, with QoS 1 or 2 (the default is 1):
//! - the session is persistent (clean session off, a fixed client id), so the
//!   broker keeps messages for the agent while it is away;
//! - a message is acknowledged only after it is durably in the journal, so a
//!   crash never loses one the broker considers delivered;
//! - a redelivery (`DUP` set) of a message already in the journal (same packet
//!   id, same topic and payload digest, among the last 4096) is acknowledged
//!   and dropped, so a crash between the journal write and the acknowledgement
//!   does not duplicate it. A publisher that sends byte-identical payloads on
//!   the same topic can in that window lose one of the copies.
//!
//! Connection losses are retried forever with backoff (1 s up to 30 s);
//! subscriptions are renewed whenever the broker has no session for the agent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{Client, Connection, Event, MqttOptions, Packet, QoS};

use crate::config::MqttSource;
use crate::journal::{Journal, Record};
use crate::pipeline::{Input, SourceEvent};
use crate::queue::SourceSender;

/// How many messages are journaled together before one `fsync` and their acknowledgements.
const GROUP: usize = 512;

fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

/// Turn a journal record into a pipeline input.
pub fn record_input(r: &Record) -> Input {
    let fields = match &r.payload {
        Err(why) => Err(why.clone()),
        Ok(text) => match sealstream_core::json::parse(text.as_bytes()) {
            Ok(sealstream_core::json::Value::Object(o)) => Ok(o),
            Ok(_) => Err("payload: expected a JSON object".to_string()),
            Err(e) => Err(format!("payload: invalid JSON: {e}")),
        },
    };
    Input {
        position: r.position,
        topic: r.topic.clone(),
        captured_at: r.received_at.clone(),
        fields,
        route: None,
        origin: None,
    }
}

/// Everything the MQTT thread needs.
pub struct MqttRun {
    /// The source's name in the Data Event Map.
    pub name: String,
    /// Broker and session settings.
    pub source: MqttSource,
    /// The topic filters to subscribe to.
    pub filters: Vec<String>,
    /// The source's journal.
    pub journal: Journal,
    /// Journal records after this position are replayed first (`None`: all).
    pub replay_after: Option<u64>,
    /// Where inputs go.
    pub tx: SourceSender,
    /// Set when the agent stops.
    pub stop: Arc<AtomicBool>,
    /// Log lines.
    pub log: Arc<dyn Fn(&str) + Send + Sync>,
}

fn now_millis() -> String {
    sealstream_core::utc::format_nanos(
        sealstream_core::utc::now_unix_nanos(),
        sealstream_core::utc::Fraction::Millis,
    )
}

impl MqttRun {
    /// Run until `stop` is set or the pipeline is gone.
    pub fn run(mut self) {
        let name = self.name.clone();
        match crate::journal::read_after(&self.journal_dir(), self.replay_after) {
            Ok(records) => {
                for r in &records {
                    if self
                        .tx
                        .send(SourceEvent::Message {
                            source: name.clone(),
                            input: record_input(r),
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = self.tx.send(SourceEvent::Failed {
                    source: name,
                    message: e.to_string(),
                });
                return;
            }
        }
        let mut options = MqttOptions::new(
            self.source.client_id.clone(),
            self.source.host.clone(),
            self.source.port,
        );
        options
            .set_clean_session(false)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(15))
            .set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024)
            .set_inflight(100);
        if self.source.tls {
            options.set_transport(rumqttc::Transport::tls_with_default_config());
        }
        let (client, mut connection) = Client::new(options, 1024);
        let mut backoff = Duration::from_secs(1);
        while !self.stop.load(Ordering::Relaxed) {
            match self.pump(&client, &mut connection) {
                Ok(true) => backoff = Duration::from_secs(1),
                Ok(false) => {}
                Err(Fatal(message)) => {
                    let _ = self.tx.send(SourceEvent::Failed {
                        source: name.clone(),
                        message,
                    });
                    return;
                }
                Err(Retry(message)) => {
                    (self.log)(&format!(
                        "source {name}: {message}; reconnecting in {} s",
                        backoff.as_secs()
                    ));
                    let until = std::time::Instant::now() + backoff;
                    while std::time::Instant::now() < until && !self.stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        let _ = client.disconnect();
    }

    fn journal_dir(&self) -> std::path::PathBuf {
        self.journal.dir().to_path_buf()
    }

    /// Handle what the connection has: one event (waiting up to 200 ms), then
    /// whatever else is ready, up to [`GROUP`]; journal, sync, acknowledge,
    /// forward. `Ok(true)` when connected.
    fn pump(&mut self, client: &Client, connection: &mut Connection) -> Result<bool, Error> {
        let mut publishes = Vec::new();
        let mut connected = false;
        let first = match connection.recv_timeout(Duration::from_millis(200)) {
            Ok(event) => event,
            Err(_) => return Ok(false), // nothing within the timeout
        };
        let mut next = Some(first);
        while let Some(event) = next.take() {
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    connected = true;
                    (self.log)(&format!(
                        "source {}: connected to {} (session {})",
                        self.name,
                        self.source.url,
                        if ack.session_present {
                            "resumed"
                        } else {
                            "new"
                        }
                    ));
                    if !ack.session_present {
                        // One SUBSCRIBE for all filters: one SUBACK, one log line.
                        let filters = self.filters.iter().map(|f| {
                            rumqttc::SubscribeFilter::new(f.clone(), qos(self.source.qos))
                        });
                        client
                            .subscribe_many(filters)
                            .map_err(|e| Fatal(format!("subscribe: {e}")))?;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => publishes.push(p),
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                    if refused {
                        return Err(Fatal(format!(
                            "the broker at {} refused a subscription of {}",
                            self.source.url,
                            self.filters.join(", ")
                        )));
                    }
                    (self.log)(&format!(
                        "source {}: subscribed to {}",
                        self.name,
                        self.filters.join(", ")
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    self.flush(client, std::mem::take(&mut publishes))?;
                    return Err(Retry(format!("connection to {}: {e}", self.source.url)));
                }
            }
            if publishes.len() < GROUP {
                next = connection.try_recv().ok();
            }
        }
        self.flush(client, publishes)?;
        Ok(connected)
    }

    fn flush(&mut self, client: &Client, publishes: Vec<rumqttc::Publish>) -> Result<(), Error> {
        if publishes.is_empty() {
            return Ok(());
        }
        let mut records = Vec::with_capacity(publishes.len());
        for p in &publishes {
            let digest = crate::journal::digest(&p.topic, &p.payload);
            if p.dup && self.journal.seen(p.pkid, &digest) {
                continue; // a redelivery of what is journaled already
            }
            let r = self
                .journal
                .append(&p.topic, now_millis(), &p.payload, p.pkid)
                .map_err(|e| Fatal(e.to_string()))?;
            records.push(r);
        }
        self.journal.sync().map_err(|e| Fatal(e.to_string()))?;
        for p in &publishes {
            if p.qos != QoS::AtMostOnce {
                // Lost acknowledgements are redelivered by the broker and recognised above.
                let _ = client.ack(p);
            }
        }
        for r in &records {
            self.tx
                .send(SourceEvent::Message {
                    source: self.name.clone(),
                    input: record_input(r),
                })
                .map_err(|_| Fatal("the pipeline stopped".into()))?;
        }
        Ok(())
    }
}

enum Error {
    Retry(String),
    Fatal(String),
}
use Error::{Fatal, Retry};
