//! Wall-clock time for the scheduler, behind a trait so tests drive time by hand.
//!
//! Schedules are wall-clock (09:00 in Europe/Berlin), so the engine cannot use tokio's monotonic
//! clock alone: [`SystemClock`] sleeps in slices of at most [`MAX_SLEEP`] and the engine re-reads the
//! wall clock after each, so a clock step (NTP, a suspended VM) is noticed within that slice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use tokio::sync::Notify;

/// The longest the engine sleeps before looking at the wall clock again.
pub const MAX_SLEEP: Duration = Duration::from_secs(30);

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
    /// Resolves at `t` or earlier (callers re-check `now`).
    fn sleep_until(&self, t: DateTime<Utc>) -> BoxFuture<'static, ()>;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let wait = (t - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_SLEEP);
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
    moved: Arc<Notify>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
            moved: Arc::new(Notify::new()),
        }
    }

    /// Moves the clock to `t` and wakes every sleeper.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
        self.moved.notify_waiters();
    }

    /// Moves the clock without waking sleepers: time passed while the engine was busy.
    pub fn set_without_waking(&self, t: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sleep_until(&self, t: DateTime<Utc>) -> BoxFuture<'static, ()> {
        let this = self.clone();
        Box::pin(async move {
            loop {
                let notified = this.moved.notified();
                tokio::pin!(notified);
                // Register before checking, so a `set` in between is not missed.
                notified.as_mut().enable();
                if this.now() >= t {
                    return;
                }
                notified.await;
            }
        })
    }
}
