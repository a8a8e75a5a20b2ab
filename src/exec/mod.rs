//! Executors: what runs a function's work. Each takes validated `config::model` types only.

pub mod export;
pub mod host;
pub mod js;
pub mod mail;
pub mod shell;
pub mod sql_split;
pub mod task;
