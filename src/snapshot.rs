//! The immutable set of loaded functions, and how a directory scan turns into the next one.
//!
//! A [`Snapshot`] is never changed after it is built: a reload builds a new one from the previous
//! snapshot and a fresh scan, then swaps it in (`tokio::sync::watch` of an `Arc`). Work that
//! started on the old `Arc` finishes on it. The rules of [`next`] are the per-file isolation
//! promises of SPEC §7:
//! - an invalid file is reported, and its last good version stays live (status `stale`);
//! - a file whose function name is already used by another file is rejected; the file that held
//!   the name before keeps it (at a cold start, the first path in sorted order does);
//! - a deleted file removes its function.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Diagnostic, Function};
use crate::source::load::LoadedFile;

/// How many reload records a snapshot carries.
pub const RELOAD_HISTORY: usize = 20;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// 0 before the first load; +1 per reload.
    pub generation: u64,
    /// Live functions by name.
    pub functions: BTreeMap<String, Arc<LoadedFunction>>,
    /// Every function file seen by the last scan, with its status.
    pub files: BTreeMap<PathBuf, FileState>,
    /// The most recent reloads, newest last.
    pub reloads: VecDeque<ReloadRecord>,
}

impl Snapshot {
    pub fn is_loaded(&self) -> bool {
        self.generation > 0
    }
}

/// A function that is live, with where it came from.
#[derive(Debug, Clone)]
pub struct LoadedFunction {
    pub function: Function,
    /// Relative to the functions directory.
    pub file: PathBuf,
    pub hash: String,
    /// When this version (this hash) was first loaded.
    pub loaded_at: DateTime<Utc>,
    /// Problems of a newer version of its file that was rejected; empty when the file is current.
    pub errors: Vec<Diagnostic>,
}

impl LoadedFunction {
    pub fn status(&self) -> FileStatus {
        if self.errors.is_empty() {
            FileStatus::Ok
        } else {
            FileStatus::Stale
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Loaded as it is on disk.
    Ok,
    /// The file on disk is invalid; its last good version is live.
    Stale,
    /// The file is invalid and nothing from it is live.
    Rejected,
}

#[derive(Debug, Clone)]
pub struct FileState {
    pub name: Option<String>,
    pub hash: String,
    pub status: FileStatus,
    pub errors: Vec<Diagnostic>,
}

/// What caused a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Start,
    Watch,
    Poll,
    Signal,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Watch => "watch",
            Trigger::Poll => "poll",
            Trigger::Signal => "signal",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every file loaded.
    Ok,
    /// Some files were rejected; the rest applied.
    Partial,
    /// The directory could not be read; nothing changed.
    Failed,
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ReloadRecord {
    pub generation: u64,
    pub at: DateTime<Utc>,
    pub trigger: Trigger,
    pub duration_ms: f64,
    pub outcome: Outcome,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Files with problems (rejected, or stale with their last good version live).
    pub rejected: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Builds the snapshot that follows `prev` from a fresh scan.
pub fn next(
    prev: &Snapshot,
    scan: Vec<LoadedFile>,
    trigger: Trigger,
    now: DateTime<Utc>,
    duration_ms: f64,
) -> Snapshot {
    let prev_owner = |name: &str| prev.functions.get(name).map(|f| f.file.clone());

    // Good files, grouped by the name they claim.
    let mut claims: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, f) in scan.iter().enumerate() {
        if let Ok(func) = &f.compiled.result {
            claims.entry(func.name.clone()).or_default().push(i);
        }
    }
    // Per file: Ok(function) if it is live as on disk, Err(problems) otherwise.
    let mut verdict: Vec<Result<(), Vec<Diagnostic>>> = scan
        .iter()
        .map(|f| f.compiled.result.as_ref().map(|_| ()).map_err(Clone::clone))
        .collect();
    for (name, files) in &claims {
        if files.len() < 2 {
            continue;
        }
        let holder = prev_owner(name);
        let winner = files
            .iter()
            .copied()
            .find(|&i| Some(&scan[i].relative) == holder.as_ref())
            .unwrap_or(files[0]);
        let w = &scan[winner];
        for &i in files.iter().filter(|&&i| i != winner) {
            let (line, col) = scan[i].compiled.name_position;
            let display = scan[i].display.clone();
            verdict[i] = Err(vec![Diagnostic {
                file: Some(display),
                line,
                column: col,
                message: format!(
                    "name `{name}` is already used by {}:{}:{}",
                    w.display, w.compiled.name_position.0, w.compiled.name_position.1
                ),
            }]);
        }
    }

    let mut functions = BTreeMap::new();
    let mut files = BTreeMap::new();
    let mut problem_files = Vec::new();
    for (i, f) in scan.iter().enumerate() {
        match (&verdict[i], &f.compiled.result) {
            (Ok(()), Ok(func)) => {
                let loaded_at = prev
                    .functions
                    .get(&func.name)
                    .filter(|p| p.file == f.relative && p.hash == f.compiled.hash)
                    .map_or(now, |p| p.loaded_at);
                functions.insert(
                    func.name.clone(),
                    Arc::new(LoadedFunction {
                        function: func.clone(),
                        file: f.relative.clone(),
                        hash: f.compiled.hash.clone(),
                        loaded_at,
                        errors: Vec::new(),
                    }),
                );
                files.insert(
                    f.relative.clone(),
                    FileState {
                        name: Some(func.name.clone()),
                        hash: f.compiled.hash.clone(),
                        status: FileStatus::Ok,
                        errors: Vec::new(),
                    },
                );
            }
            (Err(errors), _) | (Ok(()), Err(errors)) => {
                problem_files.push((i, errors.clone()));
            }
        }
    }
    // Invalid files keep their last good version, unless its name now belongs to another file.
    for (i, errors) in problem_files {
        let f = &scan[i];
        let last_good = prev
            .functions
            .values()
            .find(|p| p.file == f.relative)
            .filter(|p| !functions.contains_key(&p.function.name));
        let status = match last_good {
            Some(p) => {
                let mut kept = LoadedFunction::clone(p);
                kept.errors = errors.clone();
                functions.insert(p.function.name.clone(), Arc::new(kept));
                FileStatus::Stale
            }
            None => FileStatus::Rejected,
        };
        files.insert(
            f.relative.clone(),
            FileState {
                name: f.compiled.name.clone(),
                hash: f.compiled.hash.clone(),
                status,
                errors,
            },
        );
    }

    let added: Vec<String> = functions
        .keys()
        .filter(|n| !prev.functions.contains_key(*n))
        .cloned()
        .collect();
    let removed: Vec<String> = prev
        .functions
        .keys()
        .filter(|n| !functions.contains_key(*n))
        .cloned()
        .collect();
    let changed: Vec<String> = functions
        .iter()
        .filter_map(|(n, f)| {
            let p = prev.functions.get(n)?;
            (p.hash != f.hash || p.file != f.file).then(|| n.clone())
        })
        .collect();
    let rejected: Vec<String> = files
        .iter()
        .filter(|(_, s)| s.status != FileStatus::Ok)
        .map(|(p, _)| p.display().to_string())
        .collect();
    let generation = prev.generation + 1;
    let record = ReloadRecord {
        generation,
        at: now,
        trigger,
        duration_ms,
        outcome: if rejected.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Partial
        },
        added,
        changed,
        removed,
        rejected,
        error: None,
    };
    let mut reloads = prev.reloads.clone();
    push_record(&mut reloads, record);
    Snapshot {
        generation,
        functions,
        files,
        reloads,
    }
}

/// Reads and compiles `dir` once, for commands that need the function set without a server
/// (`check`, `run`): the same rules as a reload, as if starting from nothing.
pub fn load_once(
    schemas: &crate::config::Schemas,
    dir: &std::path::Path,
) -> std::io::Result<Snapshot> {
    let scan =
        crate::source::load::load_dir(schemas, dir, dir, &crate::config::compile::SystemInputs)?;
    Ok(next(
        &Snapshot::default(),
        scan,
        Trigger::Start,
        Utc::now(),
        0.0,
    ))
}

/// The snapshot after a reload that could not read the directory: everything stays as it was.
pub fn failed(prev: &Snapshot, trigger: Trigger, now: DateTime<Utc>, error: String) -> Snapshot {
    let mut s = prev.clone();
    s.generation = prev.generation + 1;
    push_record(
        &mut s.reloads,
        ReloadRecord {
            generation: s.generation,
            at: now,
            trigger,
            duration_ms: 0.0,
            outcome: Outcome::Failed,
            added: Vec::new(),
            changed: Vec::new(),
            removed: Vec::new(),
            rejected: Vec::new(),
            error: Some(error),
        },
    );
    s
}

fn push_record(reloads: &mut VecDeque<ReloadRecord>, record: ReloadRecord) {
    reloads.push_back(record);
    while reloads.len() > RELOAD_HISTORY {
        reloads.pop_front();
    }
}
