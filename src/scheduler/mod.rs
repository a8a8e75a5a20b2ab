//! Scheduler functions: when they fire (`engine.rs`, with an injectable `clock.rs`).

pub mod clock;
pub mod engine;
pub mod runner;
