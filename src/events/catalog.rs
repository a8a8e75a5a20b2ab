//! The event schema catalog: one compiled JSON Schema per event type, used to validate an event
//! when it comes in (SPEC §2.2).
//!
//! The schemas of the contact-centre events (`schemas/events/<type>.schema.json`) are embedded in
//! the binary; [`Catalog::load`] adds, or overrides, schemas from a directory of
//! `<type>.schema.json` files. An event whose type has no schema is accepted as it is.
//!
//! Validation sees the event as received, before the runner adds `id` and `timestamp`, so the
//! shipped schemas make both optional. Formats (`"format": "date-time"`) are documentation only:
//! the validator does not assert them.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ValidationError, Validator};
use serde_json::Value;

/// The suffix that marks a schema file; what comes before it is the event type.
const SUFFIX: &str = ".schema.json";

/// The schemas shipped with the binary: (event type, schema text).
const EMBEDDED: &[(&str, &str)] = &[
    (
        "agent_logged_in",
        include_str!("../../schemas/events/agent_logged_in.schema.json"),
    ),
    (
        "agent_logged_out",
        include_str!("../../schemas/events/agent_logged_out.schema.json"),
    ),
    (
        "agent_break_on",
        include_str!("../../schemas/events/agent_break_on.schema.json"),
    ),
    (
        "agent_break_off",
        include_str!("../../schemas/events/agent_break_off.schema.json"),
    ),
    (
        "ring_no_answer",
        include_str!("../../schemas/events/ring_no_answer.schema.json"),
    ),
    (
        "interaction_finished",
        include_str!("../../schemas/events/interaction_finished.schema.json"),
    ),
    (
        "interaction_disposition",
        include_str!("../../schemas/events/interaction_disposition.schema.json"),
    ),
];

/// Compiled event schemas by type. Cheap to share (wrap in Arc at the call site).
#[derive(Debug, Clone)]
pub struct Catalog {
    validators: BTreeMap<String, Validator>,
}

/// One problem with an event: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", shown(.path))]
pub struct EventInvalid {
    /// JSON pointer to the offending value (`/agent`); `""` for the event itself, shown as `/`.
    pub path: String,
    /// What is wrong, for people.
    pub reason: String,
}

fn shown(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// Whether `name` may name an event type's schema file: `^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`.
/// No separators, no leading dot: a type name can never reach outside the schema directory.
fn is_type_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match bytes.split_first() {
        Some((first, rest)) => {
            first.is_ascii_alphanumeric()
                && rest.len() <= 127
                && rest
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        }
        None => false,
    }
}

impl Catalog {
    /// The schemas shipped with the binary (the files above, embedded with include_str!).
    ///
    /// They are part of the binary and covered by tests, so a failure to compile one is a build
    /// defect, not a user error.
    pub fn embedded() -> Catalog {
        let validators = EMBEDDED
            .iter()
            .map(|(event_type, text)| {
                let json: Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("embedded schema {event_type}: invalid JSON: {e}"));
                let validator = jsonschema::validator_for(&json)
                    .unwrap_or_else(|e| panic!("embedded schema {event_type}: {e}"));
                ((*event_type).to_owned(), validator)
            })
            .collect();
        Catalog { validators }
    }

    /// Embedded schemas plus every `<type>.schema.json` in `dir` (a file overrides the embedded
    /// schema of the same type). A missing dir is fine (just the embedded ones); an unreadable or
    /// invalid schema file is an error naming the file and why (the server reports it at start).
    ///
    /// Files whose type part is not a valid type name, and entries that are not files, are
    /// skipped with a warning. A relative `$ref` in a file resolves against the file itself, so
    /// schemas may share definitions kept in sibling files (named other than `*.schema.json`).
    /// Every bad file is reported, one after another, separated by `; `.
    pub fn load(dir: &Path) -> Result<Catalog, String> {
        let mut catalog = Catalog::embedded();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::debug!(dir = %dir.display(), "no event schema directory; using the embedded schemas");
                return Ok(catalog);
            }
            Err(e) => {
                return Err(format!(
                    "{}: cannot read the event schema directory: {e}",
                    dir.display()
                ))
            }
        };
        let mut files = Vec::new();
        let mut problems = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => files.push(entry.path()),
                Err(e) => problems.push(format!(
                    "{}: cannot read the event schema directory: {e}",
                    dir.display()
                )),
            }
        }
        files.sort();
        for path in files {
            let Some(event_type) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(SUFFIX))
            else {
                continue;
            };
            if !is_type_name(event_type) {
                tracing::warn!(file = %path.display(), "skipping event schema: `{event_type}` is not a valid event type name");
                continue;
            }
            if !path.is_file() {
                tracing::warn!(file = %path.display(), "skipping event schema: not a file");
                continue;
            }
            match compile_file(&path) {
                Ok(validator) => {
                    let replaced = catalog
                        .validators
                        .insert(event_type.to_owned(), validator)
                        .is_some();
                    tracing::debug!(file = %path.display(), event_type, replaced, "loaded event schema");
                }
                Err(why) => problems.push(format!("{}: {why}", path.display())),
            }
        }
        if problems.is_empty() {
            Ok(catalog)
        } else {
            Err(problems.join("; "))
        }
    }

    /// The event types that have a schema, sorted.
    pub fn types(&self) -> Vec<&str> {
        self.validators.keys().map(String::as_str).collect()
    }

    /// Whether `event_type` has a schema.
    pub fn has(&self, event_type: &str) -> bool {
        self.validators.contains_key(event_type)
    }

    /// Validates an event (the whole JSON object) against its type's schema; Ok when the type has
    /// no schema. All problems, in instance-path order.
    pub fn validate(&self, event_type: &str, event: &Value) -> Result<(), Vec<EventInvalid>> {
        let Some(validator) = self.validators.get(event_type) else {
            return Ok(());
        };
        let mut problems: Vec<EventInvalid> = validator
            .iter_errors(event)
            .map(|e| EventInvalid {
                path: e.instance_path().as_str().to_owned(),
                reason: reason(&e),
            })
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        // Stable: problems at the same path keep the schema's order.
        problems.sort_by(|a, b| compare_pointers(&a.path, &b.path));
        problems.dedup();
        Err(problems)
    }
}

/// Reads and compiles one schema file; the error says why, without the file name.
fn compile_file(path: &Path) -> Result<Validator, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut options = jsonschema::options().with_retriever(FileRetriever);
    if let Ok(absolute) = std::fs::canonicalize(path) {
        if let Some(uri) = file_uri(&absolute) {
            options = options.with_base_uri(uri);
        }
    }
    options.build(&json).map_err(|e| {
        let at = e.instance_path().as_str();
        if at.is_empty() {
            format!("not a valid JSON Schema: {e}")
        } else {
            format!("not a valid JSON Schema: at {at}: {e}")
        }
    })
}

/// Resolves `file:` references (percent-decoding the path, which the crate's own file retriever
/// does not, so a directory with a space in its name works); refuses every other scheme: the
/// runner never fetches schemas over the network.
struct FileRetriever;

impl jsonschema::Retrieve for FileRetriever {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        if uri.scheme().as_str() != "file" {
            return Err(format!("only file references are resolved, not {}", uri.as_str()).into());
        }
        let bytes = uri.path().decode().to_bytes();
        #[cfg(unix)]
        let path = {
            use std::os::unix::ffi::OsStrExt;
            std::path::PathBuf::from(std::ffi::OsStr::from_bytes(&bytes))
        };
        #[cfg(not(unix))]
        let path = std::path::PathBuf::from(String::from_utf8_lossy(&bytes).into_owned());
        let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?)
    }
}

/// `file://` URI of an absolute path, percent-encoding all but unreserved characters and `/`.
fn file_uri(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    if !text.starts_with('/') {
        return None;
    }
    let mut uri = String::from("file://");
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'.' | b'_' | b'~') {
            uri.push(char::from(b));
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    Some(uri)
}

/// A short, readable reason. A missing key is named; otherwise the validator's message, with the
/// offending value shown only when it is a short scalar (the path already says where it is, and
/// an event may carry large objects).
fn reason(err: &ValidationError<'_>) -> String {
    let instance: &Value = err.instance();
    let shown = (!instance.is_object() && !instance.is_array())
        .then(|| instance.to_string())
        .filter(|text| text.chars().count() <= 64);
    match (err.kind(), shown) {
        (ValidationErrorKind::Required { property }, _) => match property.as_str() {
            Some(key) => format!("missing required key \"{key}\""),
            None => format!("missing required key {property}"),
        },
        (ValidationErrorKind::Constant { expected_value }, Some(value)) => {
            format!("must be {expected_value}, not {value}")
        }
        (ValidationErrorKind::Constant { expected_value }, None) => {
            format!("must be {expected_value}")
        }
        (_, Some(_)) => err.to_string(),
        (_, None) => err.masked().to_string(),
    }
}

/// Orders JSON pointers segment by segment, array indexes numerically (`/a/2` before `/a/10`).
fn compare_pointers(a: &str, b: &str) -> Ordering {
    let mut a_segments = a.split('/').skip(1);
    let mut b_segments = b.split('/').skip(1);
    loop {
        match (a_segments.next(), b_segments.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let order = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(i), Ok(j)) => i.cmp(&j).then_with(|| x.cmp(y)),
                    _ => x.cmp(y),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHIPPED: [&str; 7] = [
        "agent_logged_in",
        "agent_logged_out",
        "agent_break_on",
        "agent_break_off",
        "ring_no_answer",
        "interaction_finished",
        "interaction_disposition",
    ];

    fn schema(event_type: &str) -> Value {
        let (_, text) = EMBEDDED
            .iter()
            .find(|(t, _)| *t == event_type)
            .expect("shipped type");
        serde_json::from_str(text).expect("valid JSON")
    }

    fn errors(catalog: &Catalog, event_type: &str, event: &Value) -> Vec<EventInvalid> {
        catalog
            .validate(event_type, event)
            .expect_err("event should be invalid")
    }

    fn invalid(path: &str, reason: &str) -> EventInvalid {
        EventInvalid {
            path: path.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write schema file");
    }

    #[test]
    fn spec_example_is_valid() {
        let event = json!({
            "type": "agent_logged_in",
            "timestamp": "2026-12-04T09:00:00Z",
            "agent": "ana",
            "campaign": "sales"
        });
        assert_eq!(
            Catalog::embedded().validate("agent_logged_in", &event),
            Ok(())
        );
    }

    #[test]
    fn embedded_catalog_has_every_shipped_type() {
        let catalog = Catalog::embedded();
        let mut expected = SHIPPED.to_vec();
        expected.sort_unstable();
        assert_eq!(catalog.types(), expected);
        assert!(SHIPPED.iter().all(|t| catalog.has(t)));
        assert!(!catalog.has("order_created"));
    }

    #[test]
    fn shipped_schemas_are_documented_and_named_after_their_type() {
        for event_type in SHIPPED {
            let s = schema(event_type);
            assert!(is_type_name(event_type));
            assert_eq!(
                s["$schema"], "https://json-schema.org/draft/2020-12/schema",
                "{event_type}"
            );
            assert_eq!(
                s["$id"],
                format!("https://functiond.example/schemas/events/{event_type}{SUFFIX}")
            );
            assert!(s["title"].is_string() && s["description"].is_string());
            assert_eq!(s["additionalProperties"], true, "{event_type}");
            assert_eq!(s["properties"]["type"]["const"], event_type);
            let required = s["required"].as_array().expect("required");
            assert!(required.contains(&json!("type")), "{event_type}");
            for optional in ["id", "timestamp"] {
                assert!(!required.contains(&json!(optional)), "{event_type}");
            }
            for (key, property) in s["properties"].as_object().expect("properties") {
                assert!(
                    property["description"].is_string(),
                    "{event_type}.{key}: description"
                );
                let examples = property["examples"].as_array();
                assert!(
                    examples.is_some_and(|e| !e.is_empty()),
                    "{event_type}.{key}: examples"
                );
            }
        }
    }

    #[test]
    fn each_schema_accepts_its_own_examples() {
        let catalog = Catalog::embedded();
        for event_type in SHIPPED {
            let s = schema(event_type);
            let examples = s["examples"].as_array().expect("examples");
            assert!(!examples.is_empty(), "{event_type}");
            for example in examples {
                assert_eq!(
                    catalog.validate(event_type, example),
                    Ok(()),
                    "{event_type}: {example}"
                );
            }
            // Property examples are valid values too: substitute each into the first example.
            for (key, property) in s["properties"].as_object().expect("properties") {
                for value in property["examples"].as_array().expect("examples") {
                    let mut event = examples[0].clone();
                    event[key] = value.clone();
                    assert_eq!(
                        catalog.validate(event_type, &event),
                        Ok(()),
                        "{event_type}.{key} = {value}"
                    );
                }
            }
        }
    }

    #[test]
    fn each_schema_rejects_a_missing_required_key_and_a_wrong_type() {
        let catalog = Catalog::embedded();
        for event_type in SHIPPED {
            let s = schema(event_type);
            let example = &s["examples"][0];
            for key in s["required"].as_array().expect("required") {
                let key = key.as_str().expect("key");
                let mut event = example.clone();
                event.as_object_mut().expect("object").remove(key);
                assert_eq!(
                    errors(&catalog, event_type, &event),
                    [invalid("", &format!("missing required key \"{key}\""))],
                    "{event_type} without {key}"
                );
            }
            let mut event = example.clone();
            event["agent"] = json!(5);
            assert_eq!(
                errors(&catalog, event_type, &event),
                [invalid("/agent", "5 is not of type \"string\"")],
                "{event_type} with a numeric agent"
            );
        }
    }

    #[test]
    fn problems_come_all_at_once_in_path_order() {
        let event = json!({
            "type": "interaction_finished",
            "timestamp": 1_733_302_800,
            "interaction_id": "c-1",
            "campaign": ["sales"],
            "duration_seconds": -3,
            "direction": "sideways"
        });
        let problems = errors(&Catalog::embedded(), "interaction_finished", &event);
        assert_eq!(
            problems,
            [
                invalid("", "missing required key \"agent\""),
                invalid("/campaign", "value is not of type \"string\""),
                invalid(
                    "/direction",
                    "\"sideways\" is not one of \"inbound\" or \"outbound\""
                ),
                invalid("/duration_seconds", "-3 is less than the minimum of 0"),
                invalid("/timestamp", "1733302800 is not of type \"string\""),
            ]
        );
        assert_eq!(problems[0].to_string(), "/: missing required key \"agent\"");
        assert_eq!(
            problems[3].to_string(),
            "/duration_seconds: -3 is less than the minimum of 0"
        );
    }

    #[test]
    fn type_must_match_the_schema_and_payload_keys_are_open() {
        let catalog = Catalog::embedded();
        let event = json!({"type": "agent_logged_out", "agent": "ana", "campaign": "sales"});
        let problems = errors(&catalog, "agent_logged_in", &event);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].path, "/type");
        assert_eq!(
            problems[0].reason,
            "must be \"agent_logged_in\", not \"agent_logged_out\""
        );

        let event = json!({
            "type": "ring_no_answer", "agent": "ana", "campaign": "sales",
            "interaction_id": "c-1", "ring_seconds": 12.5, "queue": "vip", "extra": {"a": [1]}
        });
        assert_eq!(catalog.validate("ring_no_answer", &event), Ok(()));
        let bad = json!({
            "type": "ring_no_answer", "agent": "ana", "campaign": "sales",
            "interaction_id": "c-1", "ring_seconds": -1
        });
        assert_eq!(
            errors(&catalog, "ring_no_answer", &bad),
            [invalid("/ring_seconds", "-1 is less than the minimum of 0")]
        );
    }

    #[test]
    fn a_non_object_event_is_invalid_at_the_root() {
        let catalog = Catalog::embedded();
        let problems = errors(&catalog, "agent_break_on", &json!("ana"));
        assert_eq!(problems, [invalid("", "\"ana\" is not of type \"object\"")]);
        // Large values are not echoed back: the path says where the problem is.
        let event = json!({
            "type": {"nested": [1, 2, 3]}, "agent": "ana", "campaign": "sales",
            "interaction_id": "c-1", "ring_seconds": "9".repeat(100)
        });
        assert_eq!(
            errors(&catalog, "ring_no_answer", &event),
            [
                invalid("/ring_seconds", "value is not of type \"number\""),
                invalid("/type", "must be \"ring_no_answer\""),
            ]
        );
    }

    #[test]
    fn formats_are_documentation_only() {
        let event = json!({"type": "agent_break_off", "agent": "ana", "timestamp": "yesterday"});
        assert_eq!(
            Catalog::embedded().validate("agent_break_off", &event),
            Ok(())
        );
    }

    #[test]
    fn unknown_type_is_ok() {
        let catalog = Catalog::embedded();
        assert!(!catalog.has("order_created"));
        assert_eq!(
            catalog.validate("order_created", &json!({"anything": 1})),
            Ok(())
        );
        assert_eq!(catalog.validate("", &json!(null)), Ok(()));
    }

    #[test]
    fn missing_directory_gives_the_embedded_schemas() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let catalog = Catalog::load(&tmp.path().join("nope")).expect("missing dir is fine");
        assert_eq!(catalog.types(), Catalog::embedded().types());
    }

    #[test]
    fn directory_adds_and_overrides_schemas() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(
            tmp.path(),
            "order_created.schema.json",
            r#"{"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "string"}}}"#,
        );
        // Overrides the shipped schema: campaign is no longer required, but `site` is.
        write(
            tmp.path(),
            "agent_logged_in.schema.json",
            r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "required": ["agent", "site"]}"#,
        );
        write(tmp.path(), "README.md", "not a schema");
        write(tmp.path(), "notes.json", "{ not json");
        let catalog = Catalog::load(tmp.path()).expect("loads");
        assert!(catalog.has("order_created"));
        assert_eq!(catalog.types().len(), SHIPPED.len() + 1);
        assert_eq!(
            catalog.validate("order_created", &json!({"type": "order_created"})),
            Err(vec![invalid("", "missing required key \"order_id\"")])
        );
        assert_eq!(
            catalog.validate(
                "order_created",
                &json!({"type": "order_created", "order_id": "o-1"})
            ),
            Ok(())
        );
        let spec_example = json!({"type": "agent_logged_in", "agent": "ana", "campaign": "sales"});
        assert_eq!(
            catalog.validate("agent_logged_in", &spec_example),
            Err(vec![invalid("", "missing required key \"site\"")])
        );
        assert_eq!(
            catalog.validate(
                "agent_logged_in",
                &json!({"agent": "ana", "site": "lisbon"})
            ),
            Ok(())
        );
        // Other shipped schemas are untouched.
        assert!(catalog
            .validate("agent_logged_out", &json!({"type": "agent_logged_out"}))
            .is_err());
    }

    #[test]
    fn relative_refs_resolve_against_the_schema_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("with space");
        std::fs::create_dir(&dir).expect("mkdir");
        write(
            &dir,
            "common.json",
            r#"{"$defs": {"money": {"type": "number", "minimum": 0}}}"#,
        );
        write(
            &dir,
            "payment_received.schema.json",
            r#"{"properties": {"amount": {"$ref": "common.json#/$defs/money"}}}"#,
        );
        let catalog = Catalog::load(&dir).expect("loads");
        assert_eq!(
            catalog.validate("payment_received", &json!({"amount": 10})),
            Ok(())
        );
        assert_eq!(
            catalog.validate("payment_received", &json!({"amount": -1})),
            Err(vec![invalid("/amount", "-1 is less than the minimum of 0")])
        );
    }

    #[test]
    fn bad_schema_files_are_errors_naming_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(tmp.path(), "broken.schema.json", "{ \"type\": ");
        let err = Catalog::load(tmp.path()).expect_err("invalid JSON");
        let file = tmp.path().join("broken.schema.json");
        assert!(
            err.starts_with(&format!("{}: invalid JSON: ", file.display())),
            "{err}"
        );

        let tmp = tempfile::tempdir().expect("tempdir");
        write(
            tmp.path(),
            "order_created.schema.json",
            r#"{"properties": {"order_id": {"type": "strin"}}}"#,
        );
        write(tmp.path(), "fine.schema.json", "true");
        let err = Catalog::load(tmp.path()).expect_err("invalid schema");
        let file = tmp.path().join("order_created.schema.json");
        assert!(
            err.starts_with(&format!(
                "{}: not a valid JSON Schema: at /properties/order_id/type: ",
                file.display()
            )),
            "{err}"
        );
        assert!(!err.contains("fine.schema.json"), "{err}");
    }

    #[test]
    fn unresolvable_refs_are_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(
            tmp.path(),
            "a.schema.json",
            r#"{"properties": {"x": {"$ref": "missing.json"}}}"#,
        );
        write(
            tmp.path(),
            "b.schema.json",
            r#"{"properties": {"x": {"$ref": "https://example.com/x.json"}}}"#,
        );
        let err = Catalog::load(tmp.path()).expect_err("refs fail");
        let parts: Vec<&str> = err.split("; ").collect();
        assert_eq!(parts.len(), 2, "{err}");
        assert!(
            parts[0].contains("a.schema.json: not a valid JSON Schema")
                && parts[0].contains("missing.json"),
            "{err}"
        );
        assert!(
            parts[1].contains("only file references are resolved, not https://example.com/x.json"),
            "{err}"
        );
    }

    #[test]
    fn every_bad_file_is_reported() {
        let tmp = tempfile::tempdir().expect("tempdir");
        write(tmp.path(), "a.schema.json", "[");
        write(tmp.path(), "b.schema.json", r#"{"minimum": "zero"}"#);
        let err = Catalog::load(tmp.path()).expect_err("two bad files");
        let parts: Vec<&str> = err.split("; ").collect();
        assert_eq!(parts.len(), 2, "{err}");
        assert!(parts[0].contains("a.schema.json: invalid JSON"), "{err}");
        assert!(
            parts[1].contains("b.schema.json: not a valid JSON Schema"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn unreadable_directory_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("schemas");
        std::fs::write(&file, "").expect("write");
        let err = Catalog::load(&file).expect_err("a file is not a directory");
        assert!(
            err.starts_with(&format!("{}: cannot read", file.display())),
            "{err}"
        );
    }

    #[test]
    fn type_names_with_path_tricks_are_ignored() {
        for name in [
            "a/b",
            "../x",
            "..",
            ".hidden",
            "",
            "-x",
            "_x",
            "a b",
            "a\\b",
            "é",
            &"a".repeat(129),
        ] {
            assert!(!is_type_name(name), "{name:?}");
        }
        for name in [
            "a",
            "order.created",
            "crm:lead-new",
            "A_1",
            &"a".repeat(128),
        ] {
            assert!(is_type_name(name), "{name:?}");
        }

        let tmp = tempfile::tempdir().expect("tempdir");
        let bad = r#"{"not": {}}"#; // rejects everything, if it were loaded
        write(tmp.path(), ".hidden.schema.json", bad);
        write(tmp.path(), "-x.schema.json", bad);
        write(tmp.path(), "a b.schema.json", bad);
        write(tmp.path(), ".schema.json", bad);
        std::fs::create_dir(tmp.path().join("nested.schema.json")).expect("mkdir");
        write(
            &tmp.path().join("nested.schema.json"),
            "inner.schema.json",
            bad,
        );
        let catalog = Catalog::load(tmp.path()).expect("skips them");
        assert_eq!(catalog.types(), Catalog::embedded().types());
        for event_type in ["../x", ".hidden", "-x", "a b", "", "nested", "inner"] {
            assert!(!catalog.has(event_type), "{event_type:?}");
            assert_eq!(catalog.validate(event_type, &json!(1)), Ok(()));
        }
    }

    #[test]
    fn pointers_sort_by_segment_with_numeric_indexes() {
        let mut paths = vec!["/b", "/a/10", "", "/a/2", "/a", "/a/x"];
        paths.sort_by(|a, b| compare_pointers(a, b));
        assert_eq!(paths, ["", "/a", "/a/2", "/a/10", "/a/x", "/b"]);
    }

    #[test]
    fn root_path_displays_as_slash() {
        assert_eq!(invalid("", "x").to_string(), "/: x");
        assert_eq!(invalid("/agent", "y").to_string(), "/agent: y");
    }
}
