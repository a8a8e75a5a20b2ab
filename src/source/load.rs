//! The only reader of the functions directory.
//!
//! Rules, chosen so the same directory works from a git checkout, a container bind mount and a
//! Kubernetes ConfigMap: every `*.toml` file below the root is a function file; names starting with
//! `.` are skipped (hidden files, `.git`, and the ConfigMap's `..data` / `..2024_…` folders, whose
//! files are reached once through the top-level symlinks); editor leftovers (`*~`, `*.swp`, `#…#`)
//! are skipped; symlinks are followed, with a depth limit and a visited set against loops.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::config::compile::{compile_file, Compiled, Inputs, SourceFile};
use crate::config::validate::Schemas;
use crate::config::Diagnostic;

const MAX_DEPTH: usize = 16;

/// A function file found in the directory, compiled.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    /// Relative to the functions directory.
    pub relative: PathBuf,
    /// The path as diagnostics show it (the directory as the user named it, joined).
    pub display: String,
    pub compiled: Compiled,
}

/// Lists every function file (relative paths, sorted). Fails only when the root itself cannot be
/// read; unreadable entries below it are skipped here and reported by [`load_dir`].
pub fn function_files(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    walk(root, root, 0, &mut HashSet::new(), &mut |rel, _meta| {
        if rel.extension().is_some_and(|e| e == "toml") {
            out.push(rel.to_path_buf());
        }
    })?;
    out.sort();
    Ok(out)
}

/// Reads and compiles every function file under `root`. `display_root` is how diagnostics name
/// the directory (usually as the user wrote it).
pub fn load_dir(
    schemas: &Schemas,
    root: &Path,
    display_root: &Path,
    inputs: &dyn Inputs,
) -> io::Result<Vec<LoadedFile>> {
    let files = function_files(root)?;
    Ok(files
        .into_iter()
        .map(|relative| {
            let display = display_root.join(&relative).display().to_string();
            let compiled = match std::fs::read_to_string(root.join(&relative)) {
                Ok(text) => compile_file(
                    schemas,
                    &SourceFile {
                        display: &display,
                        relative: &relative,
                        root,
                        text: &text,
                    },
                    inputs,
                ),
                Err(e) => Compiled {
                    name: None,
                    name_position: (1, 1),
                    hash: String::new(),
                    result: Err(vec![Diagnostic::file(
                        &display,
                        format!("cannot read file: {e}"),
                    )]),
                },
            };
            LoadedFile {
                relative,
                display,
                compiled,
            }
        })
        .collect())
}

/// A cheap summary of the directory (every visible file's path, size and modification time),
/// compared between polls to notice changes without notifications.
pub fn fingerprint(root: &Path) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    walk(root, root, 0, &mut HashSet::new(), &mut |rel, meta| {
        hasher.update(rel.to_string_lossy().as_bytes());
        hasher.update(meta.len().to_le_bytes());
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        hasher.update(mtime.to_le_bytes());
    })?;
    Ok(hasher.finalize().into())
}

fn skipped(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || (name.starts_with('#') && name.ends_with('#'))
}

/// Calls `visit` for every visible regular file (following symlinks) with its path relative to
/// `root` and its metadata.
fn walk(
    root: &Path,
    dir: &Path,
    depth: usize,
    visited: &mut HashSet<PathBuf>,
    visit: &mut dyn FnMut(&Path, &std::fs::Metadata),
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Ok(());
    }
    if let Ok(real) = dir.canonicalize() {
        if !visited.insert(real) {
            return Ok(());
        }
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if depth == 0 => return Err(e),
        Err(_) => return Ok(()),
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if skipped(name) {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks; a dangling link is skipped.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(root, &path, depth + 1, visited, visit)?;
        } else if meta.is_file() {
            if let Ok(rel) = path.strip_prefix(root) {
                visit(rel, &meta);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_hidden_editor_and_configmap_entries() {
        for name in [
            ".leads.toml",
            "..data",
            "leads.toml~",
            ".leads.toml.swp",
            "#leads.toml#",
        ] {
            assert!(skipped(name), "{name}");
        }
        for name in ["leads.toml", "a.js", "data"] {
            assert!(!skipped(name), "{name}");
        }
    }
}
