//! Per-function concurrency caps for webhooks: a run takes a permit or the request gets 503 at
//! once (never an unbounded queue). The global cap is the flow pool's slot count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A function's cap and the semaphore counting its runs.
type Counter = (usize, Arc<Semaphore>);

#[derive(Clone, Default)]
pub struct Limits {
    per_function: Arc<Mutex<HashMap<String, Counter>>>,
}

impl Limits {
    /// A permit for one run of `function` with at most `cap` at once; `None` when all are taken.
    /// A changed cap (after a reload) starts a new count.
    pub fn acquire(&self, function: &str, cap: usize) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let mut map = self.per_function.lock().unwrap_or_else(|e| e.into_inner());
            match map.get(function) {
                Some((c, s)) if *c == cap => s.clone(),
                _ => {
                    let s = Arc::new(Semaphore::new(cap));
                    map.insert(function.to_owned(), (cap, s.clone()));
                    s
                }
            }
        };
        sem.try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_function() {
        let l = Limits::default();
        let a = l.acquire("a", 2);
        let b = l.acquire("a", 2);
        assert!(a.is_some() && b.is_some());
        assert!(l.acquire("a", 2).is_none());
        assert!(l.acquire("b", 2).is_some());
        drop(a);
        assert!(l.acquire("a", 2).is_some());
    }
}
