//! TOML text → JSON Schema check → serde types, with every problem placed at its key or value.
//!
//! The order matters for the messages users see: the schema runs first because it reports every
//! structural problem at once with a path; serde runs after, on a document the schema accepted, so
//! its (single, less helpful) error only shows if schema and types drift apart — which the drift
//! test forbids.

use std::collections::HashMap;
use std::ops::Range;

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::diagnostic::Diagnostic;

/// The schema text of `schemas/function.schema.json`, embedded so the binary needs no files.
pub const FUNCTION_SCHEMA: &str = include_str!("../../schemas/function.schema.json");
/// The schema text of `schemas/functiond.schema.json`.
pub const RUNNER_SCHEMA: &str = include_str!("../../schemas/functiond.schema.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaKind {
    Function,
    Runner,
}

/// The compiled schemas. Compile once, share by reference.
#[derive(Debug, Clone)]
pub struct Schemas {
    function: (Value, Validator),
    runner: (Value, Validator),
}

impl Schemas {
    /// Compiles the embedded schemas. They are part of the binary and covered by tests, so a
    /// failure here is a build defect, not a user error.
    pub fn embedded() -> Self {
        fn compile(text: &str) -> (Value, Validator) {
            let json: Value = serde_json::from_str(text).expect("embedded schema is valid JSON");
            let validator = jsonschema::validator_for(&json).expect("embedded schema compiles");
            (json, validator)
        }
        Schemas {
            function: compile(FUNCTION_SCHEMA),
            runner: compile(RUNNER_SCHEMA),
        }
    }

    fn get(&self, kind: SchemaKind) -> &(Value, Validator) {
        match kind {
            SchemaKind::Function => &self.function,
            SchemaKind::Runner => &self.runner,
        }
    }
}

/// Where each key and value of a document sits in its text, by JSON pointer (`/webhook/auth/kind`).
#[derive(Debug, Clone, Default)]
pub struct SpanIndex {
    entries: HashMap<String, (Option<Range<usize>>, Range<usize>)>,
}

impl SpanIndex {
    fn build(root: &Spanned<DeTable<'_>>) -> Self {
        let mut index = SpanIndex::default();
        index.entries.insert(String::new(), (None, root.span()));
        index.add_table(String::new(), root.get_ref());
        index
    }

    fn add_table(&mut self, prefix: String, table: &DeTable<'_>) {
        for (key, value) in table {
            let path = format!("{prefix}/{}", escape(key.get_ref()));
            self.add_value(path, Some(key.span()), value);
        }
    }

    fn add_value(&mut self, path: String, key: Option<Range<usize>>, value: &Spanned<DeValue<'_>>) {
        match value.get_ref() {
            DeValue::Table(t) => self.add_table(path.clone(), t),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    self.add_value(format!("{path}/{i}"), None, item);
                }
            }
            _ => {}
        }
        self.entries.insert(path, (key, value.span()));
    }

    /// The span of the value at `pointer`, or of its nearest ancestor that exists.
    pub fn value(&self, pointer: &str) -> Range<usize> {
        self.nearest(pointer).1.clone()
    }

    /// The span of the key at `pointer` (falling back to its value, then to ancestors).
    pub fn key(&self, pointer: &str) -> Range<usize> {
        let (key, value) = self.nearest(pointer);
        key.clone().unwrap_or_else(|| value.clone())
    }

    fn nearest(&self, pointer: &str) -> &(Option<Range<usize>>, Range<usize>) {
        let mut p = pointer;
        loop {
            if let Some(e) = self.entries.get(p) {
                return e;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.entries.get("").unwrap_or(&(None, 0..0)),
            }
        }
    }
}

/// `/webhook/methods/1` → `webhook.methods[1]`, the way users write keys.
pub fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for seg in pointer.split('/').skip(1) {
        let seg = seg.replace("~1", "/").replace("~0", "~");
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{seg}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&seg);
        }
    }
    out
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Parses `text`, checks it against the schema of `kind`, and deserializes it into `T`.
/// Returns every problem found, each placed at the offending key or value.
pub fn validate_document<T: DeserializeOwned>(
    schemas: &Schemas,
    kind: SchemaKind,
    path: &str,
    text: &str,
) -> Result<(T, SpanIndex), Vec<Diagnostic>> {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        return Err(syntax_errors
            .iter()
            .map(|e| {
                let msg = format!("invalid TOML: {}", e.message().trim_end());
                Diagnostic::at(path, text, e.span().unwrap_or(0..0), msg)
            })
            .collect());
    }
    let index = SpanIndex::build(&root);
    let json = table_to_json(root.get_ref());
    let (schema, validator) = schemas.get(kind);
    let mut unused = Vec::new();
    unused_value_types(root.get_ref(), String::new(), &mut unused);
    let mut diags: Vec<Diagnostic> = unused
        .iter()
        .map(|(ptr, what)| {
            let msg = format!("`{}`: {what}", dotted(ptr));
            Diagnostic::at(path, text, index.value(ptr), msg)
        })
        .collect();
    diags.extend(
        validator
            .iter_errors(&json)
            .filter(|e| !unused.iter().any(|(p, _)| p == e.instance_path().as_str()))
            .flat_map(|e| schema_diagnostics(schema, &index, path, text, &e)),
    );
    if diags.is_empty() {
        match toml::from_str::<T>(text) {
            Ok(value) => return Ok((value, index)),
            Err(e) => diags.push(Diagnostic::at(
                path,
                text,
                e.span().unwrap_or(0..0),
                e.message().trim_end().to_owned(),
            )),
        }
    }
    diags.sort();
    diags.dedup();
    Err(diags)
}

/// Checks only the schema verdict of a document (for the drift test and tools).
pub fn schema_accepts(schemas: &Schemas, kind: SchemaKind, text: &str) -> Option<bool> {
    let root = DeTable::parse(text).ok()?;
    let mut unused = Vec::new();
    unused_value_types(root.get_ref(), String::new(), &mut unused);
    Some(unused.is_empty() && schemas.get(kind).1.is_valid(&table_to_json(root.get_ref())))
}

/// No key of either file takes a float or a TOML date/time, and JSON cannot tell `5.0` from `5`
/// nor a date from a string; so these are rejected here, by pointer, before the schema looks.
fn unused_value_types(table: &DeTable<'_>, prefix: String, out: &mut Vec<(String, &'static str)>) {
    for (k, v) in table {
        walk_value(
            v.get_ref(),
            format!("{prefix}/{}", escape(k.get_ref())),
            out,
        );
    }
}

fn walk_value(v: &DeValue<'_>, ptr: String, out: &mut Vec<(String, &'static str)>) {
    match v {
        DeValue::Float(_) => out.push((
            ptr,
            "floating-point numbers are not used here; write a whole number",
        )),
        DeValue::Datetime(_) => out.push((
            ptr,
            "TOML dates and times are not used here; quote the value if it is text",
        )),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                walk_value(item.get_ref(), format!("{ptr}/{i}"), out);
            }
        }
        DeValue::Table(t) => unused_value_types(t, ptr, out),
        _ => {}
    }
}

fn schema_diagnostics(
    schema: &Value,
    index: &SpanIndex,
    path: &str,
    text: &str,
    err: &jsonschema::ValidationError<'_>,
) -> Vec<Diagnostic> {
    let pointer = err.instance_path().as_str();
    let here = if pointer.is_empty() {
        "the file".to_owned()
    } else {
        format!("`{}`", dotted(pointer))
    };
    match err.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed = allowed_keys(schema, err.schema_path().as_str());
            unexpected
                .iter()
                .map(|key| {
                    let key_ptr = format!("{pointer}/{}", escape(key));
                    let mut msg = format!("unknown key `{}`", dotted(&key_ptr));
                    if !allowed.is_empty() {
                        msg.push_str(&format!("; {here} takes {}", allowed.join(", ")));
                    }
                    Diagnostic::at(path, text, index.key(&key_ptr), msg)
                })
                .collect()
        }
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            let full = dotted(&format!("{pointer}/{}", escape(key)));
            let msg = format!("missing required key `{full}`");
            vec![Diagnostic::at(path, text, index.value(pointer), msg)]
        }
        ValidationErrorKind::Enum { options } => {
            let choices: Vec<String> = options
                .as_array()
                .map(|a| a.iter().map(Value::to_string).collect())
                .unwrap_or_default();
            let msg = format!(
                "{}: {} is not one of {}",
                dotted(pointer),
                err.instance(),
                choices.join(", ")
            );
            vec![Diagnostic::at(path, text, index.value(pointer), msg)]
        }
        ValidationErrorKind::Pattern { .. } if pointer == "/name" => {
            let name = err.instance().as_str().unwrap_or_default();
            let msg = match crate::config::raw::FunctionName::parse(name) {
                Err(m) => format!("name: {m}"),
                Ok(_) => format!("name: {err}"),
            };
            vec![Diagnostic::at(path, text, index.value(pointer), msg)]
        }
        _ => {
            let msg = format!("{}: {}", dotted(pointer), err);
            let msg = msg.trim_start_matches(": ").to_owned();
            vec![Diagnostic::at(path, text, index.value(pointer), msg)]
        }
    }
}

/// The keys the schema object owning an `additionalProperties` keyword declares, for the message.
fn allowed_keys(schema: &Value, keyword_path: &str) -> Vec<String> {
    let Some(parent) = keyword_path.strip_suffix("/additionalProperties") else {
        return Vec::new();
    };
    let props = schema
        .pointer(parent)
        .and_then(|o| o.get("properties"))
        .and_then(Value::as_object);
    props
        .map(|p| p.keys().map(|k| format!("`{k}`")).collect())
        .unwrap_or_default()
}

fn table_to_json(table: &DeTable<'_>) -> Value {
    let mut map = Map::new();
    for (k, v) in table {
        map.insert(k.get_ref().to_string(), value_to_json(v.get_ref()));
    }
    Value::Object(map)
}

/// Floats and datetimes become null: `unused_value_types` reports them with a better message.
/// Integers too large for i64/u64 become strings so that a numeric schema rejects them.
fn value_to_json(v: &DeValue<'_>) -> Value {
    match v {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(Value::from)
            .or_else(|_| u64::from_str_radix(i.as_str(), i.radix()).map(Value::from))
            .unwrap_or_else(|_| Value::String(i.to_string())),
        DeValue::Float(_) | DeValue::Datetime(_) => Value::Null,
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Array(a) => Value::Array(a.iter().map(|x| value_to_json(x.get_ref())).collect()),
        DeValue::Table(t) => table_to_json(t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_read_like_toml_keys() {
        assert_eq!(dotted("/webhook/methods/1"), "webhook.methods[1]");
        assert_eq!(dotted(""), "");
        assert_eq!(dotted("/a~1b"), "a/b");
    }

    #[test]
    fn span_index_finds_keys_values_and_ancestors() {
        let text = "name = \"x\"\n[webhook]\nmethods = [\"GET\", \"PATCH\"]\n";
        let root = DeTable::parse(text).expect("valid toml");
        let index = SpanIndex::build(&root);
        let patch = index.value("/webhook/methods/1");
        assert_eq!(&text[patch], "\"PATCH\"");
        assert_eq!(&text[index.key("/webhook/methods")], "methods");
        // A missing key falls back to its nearest existing ancestor.
        assert_eq!(&text[index.key("/webhook/nope")], "webhook");
    }
}
