//! Pure configuration: function files and the runner's own settings, from text to validated types.
//! No tokio and no I/O besides what callers hand in through [`compile::Inputs`].

pub mod compile;
pub mod diagnostic;
pub mod model;
pub mod raw;
pub mod runner;
pub mod schedule;
pub mod validate;

pub use diagnostic::Diagnostic;
pub use model::{Function, FunctionKind};
pub use runner::RunnerConfig;
pub use validate::Schemas;
