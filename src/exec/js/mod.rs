//! The flow runtime: JavaScript "flow" scripts of webhook and event functions, run in QuickJS.
//!
//! # Shape
//!
//! [`JsPool`] is a cheap handle (an `Arc`) to a fixed set of worker threads. A caller builds a
//! [`FlowJob`] (script, per-run globals, allowed environment, limits, the [`Host`] that performs
//! the activities) and awaits [`JsPool::run`] or [`JsPool::try_run`]; it gets a [`FlowOutcome`]:
//! the response set with `setWebhookResponse`, the captured console lines, and whether the run
//! completed, threw, ran out of time or hit its memory limit.
//!
//! # Threads and slots (why)
//!
//! QuickJS is single-threaded and its runtimes are not `Send`, and running JavaScript on the
//! async runtime's threads would block them. So each worker is a dedicated OS thread with a
//! current-thread tokio runtime and a `LocalSet`. A worker owns up to `slots_per_worker`
//! **slots**; a slot is one QuickJS runtime with one hardened context, and runs one flow at a
//! time. A run that awaits an activity (`db.query`, `http.request`, `emit`) keeps its slot
//! while the worker drives other runs on other slots, so a slow query never holds up other
//! requests. Each slot has its own runtime because the memory limit and the interrupt (timeout)
//! are per runtime, and a runtime that hit a limit must be thrown away: with one runtime per
//! run in flight, a limit hit destroys only the run that caused it. Idle slots are reused LIFO,
//! so under load that needs no awaiting each worker keeps reusing one hot slot.
//!
//! Activities run as futures on the caller's tokio runtime (captured at `run`), so database
//! pools and HTTP clients stay on the server's runtime; the worker only awaits their results.
//!
//! Concurrency is bounded by a semaphore of `workers * slots_per_worker` permits held for the
//! whole run: [`JsPool::try_run`] answers [`Busy`] at once when none is free (the server answers
//! 503); [`JsPool::run`] waits for one. A job goes to the least-loaded worker.
//!
//! # Isolation (why a reused, frozen context)
//!
//! A fresh context per run would isolate runs trivially but costs ~100 µs; a reused one costs a
//! few µs. We reuse the context and make it unable to carry state from one run to the next:
//! the prelude (`prelude.js`) defines the flow globals, removes `WeakRef` and
//! `FinalizationRegistry` (their callbacks could fire during a later run), then freezes every
//! object reachable from `globalThis` and from the hidden intrinsics, and `globalThis` itself.
//! Flow code runs in strict mode, so every attempt to write shared state (`globalThis.x = 1`,
//! `x = 1` for an undeclared `x`, `Array.prototype.x = 1`, `JSON.parse = f`, ...) throws
//! instead of persisting. Per-run values are arguments of the compiled flow function, and
//! per-run native state (console, response, pending activities) lives in Rust and is reset for
//! every run. A run ends only when no JavaScript job and no activity is pending, so nothing of
//! a run executes during the next one. Common "override mistake" assignments (`this.name = ..`
//! in an Error subclass, `X.prototype.constructor = X`, `obj.toString = ..`) keep working:
//! those prototype properties are accessors that define an own property on the receiver.
//!
//! # Compilation and caching
//!
//! A script is compiled once per slot into an async function whose parameters are the global
//! names and whose strict-mode body is the script (so top-level `await` and `return` work),
//! with a strict indirect `eval` (see `script.rs`), and the function is cached per slot by
//! function name, checked against `script_id` and the global names: a new `script_id` (an edited file) replaces the old version, and a slot keeps at most
//! `scripts_per_slot` functions (least recently used evicted). A syntax error is cached the
//! same way, so a broken version is not recompiled on every request; [`check_syntax`] lets
//! the loader reject it up front. Compiled functions are per slot (a QuickJS function belongs
//! to its runtime); slots are reused LIFO, so steady traffic compiles once per worker.
//!
//! # Known limits of the isolation
//!
//! - `Symbol.for` keys live in one registry per runtime: a run can tell whether an earlier run
//!   on the slot registered a given key (it cannot read values through it).
//! - The boundary is between runs, not against the script's author: a crafted source that
//!   breaks out of the wrapper can share state between runs of *its own* function (as it
//!   could through the database). It cannot reach other functions' runs or the intrinsics.
//!
//! # Limits
//!
//! - Time: an interrupt handler stops JavaScript past the run's deadline (also inside promise
//!   jobs); awaiting activities is bounded by the same deadline. → [`FlowError::Timeout`].
//! - Memory: each slot's runtime allocates through a counting allocator; a run may allocate
//!   `memory_limit_bytes` above what the slot held when it started. A refused allocation is
//!   noticed even if the script catches the error. → [`FlowError::MemoryLimit`].
//! - Stack: `max_stack_bytes` (a `RangeError` in JavaScript).
//! - After a timeout, a memory-limit hit or an internal error the slot is discarded and a fresh
//!   one is built for the next run, so a limit hit never poisons a later run.
//!
//! JSON crosses the boundary as text: globals are serialized on the caller's thread and parsed
//! with QuickJS's JSON parser; activity results likewise.

mod alloc;
mod natives;
mod pool;
mod script;
mod slot;
mod state;
mod worker;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

pub use futures::future::BoxFuture;
pub use pool::{JsPool, PoolConfig, PoolStats};
pub use script::check_syntax;

/// The activities a flow can perform; implemented by the server (database, HTTP client, events).
///
/// Methods return boxed `'static` futures so the trait is dyn-compatible; they are polled on the
/// caller's tokio runtime, not on the JavaScript thread. An `Err(message)` rejects the promise in
/// JavaScript with `new Error(message)`.
pub trait Host: Send + Sync {
    /// `db.query(sql, params)`: the rows as objects.
    fn db_query(
        &self,
        sql: String,
        params: Vec<serde_json::Value>,
    ) -> BoxFuture<'static, Result<Vec<serde_json::Map<String, serde_json::Value>>, String>>;
    /// `db.execute(sql, params)`: rows affected (JavaScript sees `{ rows_affected }`).
    fn db_execute(
        &self,
        sql: String,
        params: Vec<serde_json::Value>,
    ) -> BoxFuture<'static, Result<u64, String>>;
    /// `http.request({url, method, headers, body, timeout_ms})` → `{status, headers, body, json}`.
    fn http_request(
        &self,
        request: serde_json::Value,
    ) -> BoxFuture<'static, Result<serde_json::Value, String>>;
    /// `emit(type, data)`: publishes an event; resolves to its id.
    fn emit(
        &self,
        event_type: String,
        data: serde_json::Value,
    ) -> BoxFuture<'static, Result<String, String>>;
}

/// One run of a flow.
#[derive(Clone)]
pub struct FlowJob {
    /// The function's name: a slot keeps one compiled version per name.
    pub name: Arc<str>,
    /// Content hash of this script version: compiled once per slot and id.
    pub script_id: Arc<str>,
    pub source: Arc<str>,
    /// Per-run globals, e.g. `("METHOD", "POST")`, `("BODY", {...})`, or `("EVENT", {...})`.
    /// Names must be JavaScript identifiers; keep the order stable for a function (it is part
    /// of the compiled signature).
    pub globals: Vec<(String, serde_json::Value)>,
    /// The values `env(name)` may return (only the allowed variables, already read).
    pub env: Vec<(String, String)>,
    /// Wall-clock limit of the run, from when a worker starts it.
    pub timeout: Duration,
    /// What the run may allocate on top of what its slot already holds.
    pub memory_limit_bytes: usize,
    pub host: Arc<dyn Host>,
}

/// What a run produced.
#[derive(Debug)]
pub struct FlowOutcome {
    /// The last `setWebhookResponse(...)`, if any.
    pub response: Option<FlowResponse>,
    /// Console lines in call order, bounded by `PoolConfig::console_limit_bytes`.
    pub console: Vec<ConsoleLine>,
    pub result: Result<(), FlowError>,
    /// Time on the worker, compile included; queueing for a slot excluded.
    pub duration: Duration,
}

/// The response a flow asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowResponse {
    /// 100..=599.
    pub status: u16,
    /// Names are valid tokens and values printable ASCII (checked in JavaScript); in order.
    pub headers: Vec<(String, String)>,
    pub body: FlowBody,
}

/// The response body: a string is sent as is, any other value as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowBody {
    /// No `body` given.
    Empty,
    /// A string body: send as is.
    Text(String),
    /// Any other value, serialized with `JSON.stringify`: send with `content-type: application/json`.
    Json(String),
}

/// One `console.*` call: arguments joined with spaces, objects as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLine {
    pub level: ConsoleLevel,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsoleLevel {
    Debug,
    Log,
    Info,
    Warn,
    Error,
}

/// Why a run did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    /// The script is not valid JavaScript (strict mode, async function body).
    #[error("flow does not compile: {message}")]
    Compile { message: String },
    /// An uncaught exception (`throw` of anything, a rejected await), or a flow that awaits a
    /// promise nothing can settle. `stack` is for logs only, never for the client.
    #[error("flow threw: {message}")]
    Thrown {
        message: String,
        stack: Option<String>,
    },
    #[error("flow ran past its time limit")]
    Timeout,
    #[error("flow went over its memory limit")]
    MemoryLimit,
    #[error("flow runtime error: {0}")]
    Internal(String),
}

/// Every slot is busy: answer 503 (or 429).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all flow slots are busy")]
pub struct Busy;
