//! The JSON Schemas and the Rust serde types must never disagree on what a valid file is.
//!
//! Every fixture and example gets the same verdict from both. On top of the fixtures, every good
//! file is mutated key by key (removed, retyped, given an unknown sibling) and each mutant must
//! also get the same verdict from both, so a rule added on one side only fails here.

use std::path::{Path, PathBuf};

use functiond::config::raw::RawFunction;
use functiond::config::runner::RawRunnerConfig;
use functiond::config::validate::{schema_accepts, SchemaKind};
use functiond::config::Schemas;
use serde::de::DeserializeOwned;
use toml::{Table, Value};

fn toml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        let hidden = e.file_name().to_string_lossy().starts_with('.');
        if hidden {
            continue;
        }
        if p.is_dir() {
            toml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

fn verdicts<T: DeserializeOwned>(
    schemas: &Schemas,
    kind: SchemaKind,
    text: &str,
) -> Option<(bool, bool)> {
    let schema = schema_accepts(schemas, kind, text)?;
    let serde = toml::from_str::<T>(text).is_ok();
    Some((schema, serde))
}

/// Every variant of `table` with one change at one place.
fn mutants(table: &Table) -> Vec<Table> {
    let mut out = Vec::new();
    let replacements = [
        Value::String("x".into()),
        Value::String("every".into()),
        Value::Integer(0),
        Value::Integer(-1),
        Value::Integer(1),
        Value::Boolean(true),
        Value::Array(vec![]),
        Value::Array(vec![Value::Integer(1)]),
        Value::Table(Table::new()),
    ];
    let mut unknown = table.clone();
    unknown.insert("zz_unknown".into(), Value::Integer(1));
    out.push(unknown);
    for (key, value) in table {
        let mut removed = table.clone();
        removed.remove(key);
        out.push(removed);
        for r in &replacements {
            let mut t = table.clone();
            t.insert(key.clone(), r.clone());
            out.push(t);
        }
        if let Value::Table(inner) = value {
            for m in mutants(inner) {
                let mut t = table.clone();
                t.insert(key.clone(), Value::Table(m));
                out.push(t);
            }
        }
    }
    out
}

fn check_all<T: DeserializeOwned>(kind: SchemaKind, files: &[PathBuf]) -> usize {
    let schemas = Schemas::embedded();
    let mut disagreements = Vec::new();
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(file).expect("readable fixture");
        let mut docs = vec![text.clone()];
        if let Ok(table) = text.parse::<Table>() {
            if verdicts::<T>(&schemas, kind, &text) == Some((true, true)) {
                docs.extend(
                    mutants(&table)
                        .iter()
                        .filter_map(|t| toml::to_string(t).ok()),
                );
            }
        }
        for doc in docs {
            let Some((schema, serde)) = verdicts::<T>(&schemas, kind, &doc) else {
                continue;
            };
            checked += 1;
            if schema != serde {
                disagreements.push(format!(
                    "{}: schema says {schema}, serde says {serde} for:\n{doc}",
                    file.display()
                ));
            }
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    checked
}

#[test]
fn function_schema_and_types_agree_on_every_fixture_and_mutant() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    toml_files(&root.join("tests/fixtures/functions"), &mut files);
    toml_files(&root.join("functions.d"), &mut files);
    assert!(
        files.len() >= 30,
        "expected the fixtures, found {}",
        files.len()
    );
    let checked = check_all::<RawFunction>(SchemaKind::Function, &files);
    assert!(checked > 1000, "only {checked} documents checked");
}

#[test]
fn runner_schema_and_types_agree() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = vec![root.join("tests/fixtures/config/functiond.toml")];
    let checked = check_all::<RawRunnerConfig>(SchemaKind::Runner, &files);
    assert!(checked > 100, "only {checked} documents checked");
}
