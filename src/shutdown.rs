//! The shutdown signal every worker receives: a cheap-to-clone handle that resolves once the
//! application starts shutting down.

use tokio::sync::watch;

/// The sending side: dropping it or calling [`ShutdownTrigger::trigger`] starts the shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// The receiving side, handed to every worker.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    /// Resolves once shutdown has started (immediately if it already has).
    pub async fn recv(&mut self) {
        // An error means the trigger is gone, which also means shutdown.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
