//! The subcommands. Each prints its own results; `main` only dispatches.

pub mod check;
pub mod cron;
pub mod emit;
pub mod invoke;
pub mod run;
pub mod serve;

/// A multi-threaded async runtime, or `None` after printing why it could not start.
pub fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            None
        }
    }
}
