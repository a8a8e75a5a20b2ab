//! Every folder under `tests/fixtures/functions/` is a functions directory; its `expected.txt`
//! holds exactly the diagnostics `functiond check` must report for it (empty for good cases).
//! `UPDATE_EXPECT=1 cargo test --test check_fixtures` rewrites the files; review the diff.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use functiond::config::compile::Inputs;
use functiond::config::Schemas;
use functiond::snapshot::{self, Trigger};
use functiond::source::load::load_dir;

/// Reads referenced files from disk, and the environment from a fixed table (never the process's).
struct FixtureInputs(BTreeMap<&'static str, &'static str>);

impl Inputs for FixtureInputs {
    fn read_file(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn env(&self, name: &str) -> Option<String> {
        self.0.get(name).map(|v| v.to_string())
    }
}

fn fixture_inputs() -> FixtureInputs {
    FixtureInputs(BTreeMap::from([
        ("FIXTURE_SECRET", "s3cret-value!"),
        ("FIXTURE_WHSEC", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    ]))
}

/// The diagnostics for one fixture directory, one per line, paths shown relative to the fixture.
fn diagnostics(schemas: &Schemas, dir: &Path) -> String {
    let name = dir.file_name().map(PathBuf::from).unwrap_or_default();
    let scan = load_dir(schemas, dir, &name, &fixture_inputs()).expect("fixture dir readable");
    let snap = snapshot::next(
        &Default::default(),
        scan,
        Trigger::Start,
        chrono::Utc::now(),
        0.0,
    );
    let mut diags: Vec<_> = snap.files.values().flat_map(|f| f.errors.iter()).collect();
    diags.sort();
    diags.iter().map(|d| format!("{d}\n")).collect()
}

/// Compares one directory's diagnostics with its `expected.txt`; returns a report on mismatch.
fn check(schemas: &Schemas, dir: &Path) -> Option<String> {
    let actual = diagnostics(schemas, dir);
    let expected_path = dir.join("expected.txt");
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    if actual == expected {
        return None;
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&expected_path, &actual).expect("write expected.txt");
        return None;
    }
    Some(format!(
        "{}:\n--- expected\n{expected}--- actual\n{actual}",
        dir.display()
    ))
}

fn fixture_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/functions");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("fixtures folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_fixture_reports_exactly_its_expected_diagnostics() {
    let schemas = Schemas::embedded();
    let dirs = fixture_dirs();
    assert!(dirs.len() >= 20, "fixtures missing: {}", dirs.len());
    let failures: Vec<String> = dirs.iter().filter_map(|d| check(&schemas, d)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_fixtures_are_clean_and_bad_ones_are_not() {
    let schemas = Schemas::embedded();
    for dir in fixture_dirs() {
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let diags = diagnostics(&schemas, &dir);
        if name.starts_with("good-") {
            assert!(diags.is_empty(), "{name} should be clean:\n{diags}");
        } else {
            assert!(!diags.is_empty(), "{name} should report problems");
        }
    }
}
