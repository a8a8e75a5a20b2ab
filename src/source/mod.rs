//! The functions directory: reading it, noticing changes, and turning changes into snapshots.

pub mod load;
pub mod reload;
pub mod watch;
