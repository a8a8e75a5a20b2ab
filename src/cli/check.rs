//! `functiond check [DIR]`: every problem as `path:line:col: message`, a summary, exit 1 on any.

use std::path::Path;
use std::process::ExitCode;

use functiond::config::{Diagnostic, FunctionKind, Schemas};
use functiond::snapshot::{self, FileStatus};

pub fn check(schemas: &Schemas, dir: &Path) -> ExitCode {
    if !dir.is_dir() {
        eprintln!(
            "functiond check: functions directory {} not found or not a directory",
            dir.display()
        );
        return ExitCode::FAILURE;
    }
    let snap = match snapshot::load_once(schemas, dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("functiond check: cannot read {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
    };
    let mut problems: Vec<&Diagnostic> =
        snap.files.values().flat_map(|f| f.errors.iter()).collect();
    problems.sort();
    for d in &problems {
        println!("{d}");
    }
    let count = |t: &str| {
        snap.functions
            .values()
            .filter(|f| f.function.kind.type_name() == t)
            .count()
    };
    let bad_files = snap
        .files
        .values()
        .filter(|f| f.status != FileStatus::Ok)
        .count();
    println!(
        "{}: {}, {}, {}; {}",
        plural(snap.functions.len(), "function"),
        plural(count("webhook"), "webhook"),
        plural(count("event"), "event"),
        plural(count("scheduler"), "scheduler"),
        if problems.is_empty() {
            "no problems".to_owned()
        } else {
            format!(
                "{} in {}",
                plural(problems.len(), "problem"),
                plural(bad_files, "file")
            )
        }
    );
    for f in snap.functions.values() {
        if let FunctionKind::Scheduler(s) = &f.function.kind {
            let sch = &s.schedule;
            println!(
                "  {}: {}  ({}, {})",
                f.function.name, sch.cron, sch.description, sch.timezone
            );
        }
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
