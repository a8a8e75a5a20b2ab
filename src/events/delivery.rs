//! Delivering events: URL subscribers get a POST, flow subscribers run with `EVENT`.
//!
//! The worker takes deliveries as the outbox writer hands them over, and claims due ones from the
//! outbox (with a lease, so a crashed worker's claims come back); it runs up to [`CONCURRENCY`]
//! at once, and every attempt is recorded by the outbox writer (`writer.rs`). A 2xx within the
//! timeout (URL) or a flow that completes is success; anything else is retried after
//! `backoff_ms[n]` (n = retries so far, the last entry repeating) with ±20 % jitter, until
//! `max_attempts`, then dead-lettered. A slow or dead subscriber only occupies its own slots:
//! ingest and other subscribers go on.

use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::Events;
use crate::config::compile::standard_webhooks_key;
use crate::config::model::{Delivery, EventFunction, FunctionKind};
use crate::exec::host::{error_chain, flow_env, FlowHost};
use crate::exec::js::{FlowError, FlowJob, JsPool};
use crate::http::auth::standard_webhooks_sign;
use crate::shutdown::Shutdown;
use crate::snapshot::Snapshot;
use crate::store::outbox::{Attempt, Due, Finished, Next};
use crate::store::Store;
use crate::telemetry::Metrics;

/// Deliveries in flight at once.
pub const CONCURRENCY: usize = 64;
/// How much of a subscriber's response is kept in the attempt log.
const RESPONSE_EXCERPT: usize = 1024;
/// The shortest time between two claims.
const CLAIM_GAP: Duration = Duration::from_millis(10);
/// How often the worker looks for due retries when nothing wakes it.
const POLL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Deliverer {
    pub store: Store,
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub js: JsPool,
    pub host: FlowHost,
    pub http: reqwest::Client,
    pub metrics: Metrics,
    pub events: Events,
}

impl Deliverer {
    /// Delivers until shutdown: deliveries handed over by the outbox writer as they are
    /// accepted, and claims from the database at start (what a previous run left), when the
    /// writer reports a backlog or a delivery is put back, and every [`POLL`] (retries that came
    /// due). Claims are spaced at least [`CLAIM_GAP`] apart so each takes a batch.
    pub async fn run(self, mut shutdown: Shutdown, drain: Duration) {
        let link = self.events.link.clone();
        let Some((mut handed, results)) = link.attach() else {
            warn!("the delivery worker did not start: another one is running, or the event outbox has stopped");
            return;
        };
        // Attempts in flight; at most CONCURRENCY.
        let mut tasks = JoinSet::new();
        let mut claim = true;
        let mut handed_open = true;
        let mut last_claim = Instant::now() - CLAIM_GAP;
        let mut next_poll = Instant::now() + POLL;
        loop {
            while tasks.try_join_next().is_some() {}
            let free = CONCURRENCY.saturating_sub(tasks.len());
            if claim && free > 0 && last_claim.elapsed() >= CLAIM_GAP {
                last_claim = Instant::now();
                match self.store.claim_due(free as i64, link.lease_ms).await {
                    Ok(due) => {
                        // Fewer than asked: nothing else is due, hand-off can take over.
                        claim = due.len() == free;
                        if !claim {
                            link.backlog_cleared();
                        }
                        for d in due {
                            self.spawn(&mut tasks, &results, d);
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot read due deliveries");
                        claim = false;
                    }
                }
            }
            let timer = tokio::time::Instant::from_std(match claim {
                true => last_claim + CLAIM_GAP,
                false => next_poll,
            });
            let has_slot = tasks.len() < CONCURRENCY;
            tokio::select! {
                biased;
                _ = shutdown.recv() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                due = handed.recv(), if handed_open && has_slot => match due {
                    Some(d) => self.spawn(&mut tasks, &results, d),
                    None => handed_open = false,
                },
                _ = link.wake.notified() => claim = true,
                _ = tokio::time::sleep_until(timer), if !claim || has_slot => {
                    if !claim {
                        claim = true;
                        next_poll = Instant::now() + POLL;
                    }
                }
            }
        }
        // Deliveries handed over but not started go back to the database for the next run.
        link.detach();
        handed.close();
        let mut unstarted = Vec::new();
        while let Ok(d) = handed.try_recv() {
            unstarted.push(d.id);
        }
        if let Err(e) = self.store.release_claims(&unstarted).await {
            warn!(error = %e, deliveries = unstarted.len(), "cannot release unstarted deliveries; they will be attempted when their claims expire");
        }
        // Attempts in flight get the drain deadline; unfinished ones are retried after restart
        // (their lease expires).
        let _ =
            tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
        // Abandoned attempts drop their senders; the outbox writer records what finished, then
        // stops.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }

    /// Starts one attempt; its result goes to the outbox writer.
    fn spawn(&self, tasks: &mut JoinSet<()>, results: &mpsc::UnboundedSender<Finished>, due: Due) {
        let this = self.clone();
        let results = results.clone();
        tasks.spawn(async move {
            let result = this.deliver(due).await;
            // The claim's lease keeps the delivery from being taken again until the writer has
            // recorded this.
            let _ = results.send(result);
        });
    }

    /// Makes one attempt.
    async fn deliver(&self, due: Due) -> Finished {
        let snap = self.snapshots.borrow().clone();
        let subscriber = snap
            .functions
            .get(&due.function)
            .and_then(|f| match &f.function.kind {
                FunctionKind::Event(e) if f.function.enabled => Some((f.clone(), e.clone())),
                _ => None,
            });
        drop(snap);
        let started = Instant::now();
        let (attempt, delivery) = match subscriber {
            None => (
                Attempt {
                    ok: false,
                    status_code: None,
                    latency_ms: 0.0,
                    error: Some(format!(
                        "subscriber {} no longer exists or is disabled",
                        due.function
                    )),
                    response: None,
                },
                None,
            ),
            Some((f, e)) => {
                let attempt = match due.target.as_str() {
                    "url" => self.post(&due, &e).await,
                    _ => self.run_flow(&due, &f.function.name, &f.hash, &e).await,
                };
                (attempt, Some(e.delivery.clone()))
            }
        };
        let attempt = Attempt {
            latency_ms: started.elapsed().as_secs_f64() * 1000.0,
            ..attempt
        };
        let done = due.attempts + 1;
        let next = match (&delivery, attempt.ok) {
            (_, true) => Next::Delivered,
            (None, false) => Next::Dead,
            (Some(d), false) if done >= i64::from(d.max_attempts) => Next::Dead,
            (Some(d), false) => Next::RetryAt(Utc::now() + retry_delay(d, done)),
        };
        match next {
            Next::Delivered => {
                let latency = (Utc::now() - due.created_at).to_std().unwrap_or_default();
                self.metrics
                    .observe_delivery("delivered", latency.as_secs_f64());
                debug!(delivery = %due.id, function = %due.function, target = %due.target, attempt = done, "delivered");
            }
            Next::RetryAt(at) => {
                self.metrics.observe_delivery("retried", 0.0);
                info!(delivery = %due.id, function = %due.function, target = %due.target, attempt = done, retry_at = %at, error = attempt.error, "delivery failed; will retry");
            }
            Next::Dead => {
                self.metrics.observe_delivery("dead", 0.0);
                warn!(delivery = %due.id, function = %due.function, target = %due.target, attempts = done, error = attempt.error, "delivery dead-lettered");
            }
        }
        (due, attempt, next)
    }

    /// POSTs the event as JSON, signed per Standard Webhooks when the subscriber has a secret.
    async fn post(&self, due: &Due, e: &EventFunction) -> Attempt {
        let Some(url) = &e.url else {
            return failed("the subscriber has no url".into());
        };
        let body = serde_json::to_string(&due.event).unwrap_or_default();
        let timestamp = Utc::now().timestamp();
        let mut req = self
            .http
            .post(url)
            .timeout(e.delivery.timeout)
            .header("content-type", "application/json")
            .header("webhook-id", &due.event_id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(secret) = &e.delivery.secret {
            match standard_webhooks_key(secret) {
                Ok(key) => {
                    let sig =
                        standard_webhooks_sign(&key, &due.event_id, timestamp, body.as_bytes());
                    req = req.header("webhook-signature", sig);
                }
                Err(m) => return failed(m),
            }
        }
        match req.body(body).send().await {
            Err(err) => failed(format!("POST {url}: {}", error_chain(&err))),
            Ok(res) => {
                let status = res.status();
                let text = res.text().await.unwrap_or_default();
                let excerpt: String = text.chars().take(RESPONSE_EXCERPT).collect();
                Attempt {
                    ok: status.is_success(),
                    status_code: Some(i64::from(status.as_u16())),
                    latency_ms: 0.0,
                    error: (!status.is_success()).then(|| format!("POST {url}: HTTP {status}")),
                    response: Some(excerpt),
                }
            }
        }
    }

    async fn run_flow(&self, due: &Due, name: &str, hash: &str, e: &EventFunction) -> Attempt {
        let Some(flow) = &e.flow else {
            return failed("the subscriber has no flow".into());
        };
        let mut host = self.host.clone();
        host.source = format!("event:{name}");
        host.events = Arc::new(self.events.clone());
        let env = flow_env(flow);
        let job = FlowJob {
            name: Arc::from(name),
            script_id: Arc::from(hash),
            source: flow.source.clone(),
            globals: vec![("EVENT".to_owned(), Value::Object(due.event.clone()))],
            env,
            timeout: flow.timeout,
            memory_limit_bytes: flow.memory_limit_bytes,
            host: Arc::new(host),
        };
        let outcome = self.js.run(job).await;
        for line in &outcome.console {
            info!(function = %name, event = %due.event_id, level = ?line.level, "console: {}", line.text);
        }
        let console: Vec<String> = outcome.console.iter().map(|l| l.text.clone()).collect();
        let response = (!console.is_empty())
            .then(|| console.join("\n").chars().take(RESPONSE_EXCERPT).collect());
        match outcome.result {
            Ok(()) => Attempt {
                ok: true,
                status_code: None,
                latency_ms: 0.0,
                error: None,
                response,
            },
            Err(err) => Attempt {
                response,
                ..failed(match err {
                    FlowError::Thrown { message, .. } => format!("the flow threw: {message}"),
                    FlowError::Timeout => "the flow ran past its timeout".into(),
                    FlowError::MemoryLimit => "the flow went over its memory limit".into(),
                    FlowError::Compile { message } => {
                        format!("the script does not compile: {message}")
                    }
                    FlowError::Internal(m) => format!("internal error: {m}"),
                })
            },
        }
    }
}

fn failed(error: String) -> Attempt {
    Attempt {
        ok: false,
        status_code: None,
        latency_ms: 0.0,
        error: Some(error),
        response: None,
    }
}

/// The delay before retry number `retry` (1 for the first retry): `backoff[retry]`, the last
/// entry repeating, ±20 % jitter.
pub fn retry_delay(d: &Delivery, retry: i64) -> chrono::Duration {
    let i = usize::try_from(retry)
        .unwrap_or(usize::MAX)
        .min(d.backoff.len().saturating_sub(1));
    let base = d.backoff.get(i).copied().unwrap_or_default();
    let jitter = 0.8 + 0.4 * random_unit();
    chrono::Duration::from_std(base.mul_f64(jitter)).unwrap_or_default()
}

/// A number in [0, 1) from the process's hash seed (jitter needs no strong randomness).
fn random_unit() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_follow_the_schedule_with_jitter() {
        let d = Delivery {
            timeout: Duration::from_secs(1),
            max_attempts: 8,
            backoff: vec![
                Duration::ZERO,
                Duration::from_secs(5),
                Duration::from_secs(300),
            ],
            secret: None,
        };
        for (retry, base) in [(1, 5.0), (2, 300.0), (3, 300.0), (10, 300.0)] {
            let s = retry_delay(&d, retry).num_milliseconds() as f64 / 1000.0;
            assert!(s >= base * 0.8 && s <= base * 1.2, "retry {retry}: {s}");
        }
    }
}
