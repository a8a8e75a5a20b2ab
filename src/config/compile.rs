//! One function file → a validated [`Function`], collecting every problem with its position.
//!
//! The checks here are the ones a schema cannot express: referenced scripts and SQL files exist
//! (and stay inside the functions directory), schedules parse and mean what they say, timezones
//! exist, secrets are available, templates and addresses are well formed. Cross-file rules (unique
//! names) belong to `snapshot.rs`, which sees every file.
//!
//! Pure apart from the [`Inputs`] the caller provides, so tests run on in-memory files.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::diagnostic::Diagnostic;
use super::model::*;
use super::raw::*;
use super::schedule;
use super::validate::{validate_document, SchemaKind, Schemas, SpanIndex};

/// What compiling may read besides the function file itself.
pub trait Inputs {
    /// Reads a file; `path` is the function file's folder joined with the referenced path.
    fn read_file(&self, path: &Path) -> io::Result<String>;
    fn env(&self, name: &str) -> Option<String>;
}

/// The real file system and process environment.
pub struct SystemInputs;

impl Inputs for SystemInputs {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

/// A function file to compile.
pub struct SourceFile<'a> {
    /// The path shown in diagnostics.
    pub display: &'a str,
    /// The file's path relative to the functions directory (for paths it references).
    pub relative: &'a Path,
    /// The functions directory on disk.
    pub root: &'a Path,
    pub text: &'a str,
}

/// The outcome for one file: a function, or the problems that keep it from loading.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The declared name, when it could be read (also for invalid files, for reporting).
    pub name: Option<String>,
    /// Where `name` is written, as (line, column), for cross-file messages.
    pub name_position: (usize, usize),
    /// `sha256:` over the file and every file it references.
    pub hash: String,
    pub result: Result<Function, Vec<Diagnostic>>,
}

const MAX_FLOW_MEMORY_MB: u32 = 4096;
const MAX_BODY_BYTES: u64 = 256 * 1024 * 1024;

pub fn compile_file(schemas: &Schemas, src: &SourceFile<'_>, inputs: &dyn Inputs) -> Compiled {
    let mut hasher = Sha256::new();
    hasher.update(src.text.as_bytes());
    let mut cx = Cx {
        src,
        inputs,
        index: SpanIndex::default(),
        diags: Vec::new(),
        hasher,
    };
    let (raw, index) = match validate_document::<RawFunction>(
        schemas,
        SchemaKind::Function,
        src.display,
        src.text,
    ) {
        Ok(v) => v,
        Err(diags) => {
            return Compiled {
                name: name_of_invalid(src.text),
                name_position: (1, 1),
                hash: cx.finish_hash(),
                result: Err(diags),
            }
        }
    };
    cx.index = index;
    let name_span = cx.index.value("/name");
    let name_position = super::diagnostic::line_col(src.text, name_span.start);
    let function = cx.function(raw);
    let diags = std::mem::take(&mut cx.diags);
    let hash = cx.finish_hash();
    let result = if diags.is_empty() {
        Ok(function)
    } else {
        Err(diags)
    };
    Compiled {
        name: Some(function_name(&result, src.text)),
        name_position,
        hash,
        result,
    }
}

fn function_name(result: &Result<Function, Vec<Diagnostic>>, text: &str) -> String {
    match result {
        Ok(f) => f.name.clone(),
        Err(_) => name_of_invalid(text).unwrap_or_default(),
    }
}

/// Best-effort name of a file that failed to load, so lists can say which function is broken.
fn name_of_invalid(text: &str) -> Option<String> {
    let table: toml::Table = text.parse().ok()?;
    let name = table.get("name")?.as_str()?;
    FunctionName::parse(name).ok().map(|n| n.to_string())
}

struct Cx<'a> {
    src: &'a SourceFile<'a>,
    inputs: &'a dyn Inputs,
    index: SpanIndex,
    diags: Vec<Diagnostic>,
    hasher: Sha256,
}

impl Cx<'_> {
    fn error(&mut self, pointer: &str, message: impl Into<String>) {
        let span = self.index.value(pointer);
        self.diags.push(Diagnostic::at(
            self.src.display,
            self.src.text,
            span,
            message,
        ));
    }

    fn finish_hash(self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.finalize()))
    }

    fn function(&mut self, raw: RawFunction) -> Function {
        match raw {
            RawFunction::Webhook(f) => {
                let flow = f.flow.map(|fl| self.flow(fl));
                let webhook = self.webhook(f.webhook, flow);
                Function {
                    name: f.name.to_string(),
                    description: f.description,
                    enabled: f.enabled.unwrap_or(true),
                    kind: FunctionKind::Webhook(webhook),
                }
            }
            RawFunction::Event(f) => {
                let flow = f.flow.map(|fl| self.flow(fl));
                let event = self.event(f.event, flow);
                Function {
                    name: f.name.to_string(),
                    description: f.description,
                    enabled: f.enabled.unwrap_or(true),
                    kind: FunctionKind::Event(event),
                }
            }
            RawFunction::Scheduler(f) => {
                let schedule = self.schedule(f.schedule);
                let task = self.task(f.task);
                Function {
                    name: f.name.to_string(),
                    description: f.description,
                    enabled: f.enabled.unwrap_or(true),
                    kind: FunctionKind::Scheduler(Scheduler { schedule, task }),
                }
            }
        }
    }

    /// Reads a file referenced by the key at `pointer`; the path is relative to the function file
    /// and must stay inside the functions directory, so that it is watched and versioned with it.
    fn referenced_file(
        &mut self,
        pointer: &str,
        what: &str,
        rel: &str,
    ) -> Option<(PathBuf, String)> {
        let base = self.src.relative.parent().unwrap_or(Path::new(""));
        let Some(inside) = normalize(&base.join(rel)) else {
            self.error(
                pointer,
                format!("{what} `{rel}` must be a relative path inside the functions directory"),
            );
            return None;
        };
        match self.inputs.read_file(&self.src.root.join(&inside)) {
            Ok(text) => {
                self.hasher.update(inside.to_string_lossy().as_bytes());
                self.hasher.update(text.as_bytes());
                Some((inside, text))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let shown = Path::new(self.src.display).with_file_name(rel);
                self.error(
                    pointer,
                    format!("{what} `{rel}` not found (looked for {})", shown.display()),
                );
                None
            }
            Err(e) => {
                self.error(pointer, format!("cannot read {what} `{rel}`: {e}"));
                None
            }
        }
    }

    fn flow(&mut self, raw: RawFlow) -> Flow {
        let (source, script_path) = match &raw.source {
            FlowSource::Inline(code) => (Arc::<str>::from(code.as_str()), None),
            FlowSource::Script(rel) => match self.referenced_file("/flow/script", "script", rel) {
                Some((path, text)) => (Arc::from(text), Some(path)),
                None => (Arc::from(""), None),
            },
        };
        let memory_mb = raw.memory_mb.map_or(DEFAULT_FLOW_MEMORY_MB, |m| m.get());
        if memory_mb > MAX_FLOW_MEMORY_MB {
            self.error(
                "/flow/memory_mb",
                format!("memory_mb = {memory_mb} is over the maximum of {MAX_FLOW_MEMORY_MB}"),
            );
        }
        let env = raw.env.unwrap_or_default();
        for (i, name) in env.iter().enumerate() {
            if !is_env_name(name) {
                self.error(&format!("/flow/env/{i}"), format!("{name:?} is not an environment variable name (letters, digits and `_`, not starting with a digit)"));
            }
        }
        Flow {
            source,
            script_path,
            timeout: raw
                .timeout_ms
                .map_or(DEFAULT_FLOW_TIMEOUT, |t| Duration::from_millis(t.get())),
            memory_limit_bytes: memory_mb as usize * 1024 * 1024,
            env,
        }
    }

    fn webhook(&mut self, raw: Option<RawWebhook>, flow: Option<Flow>) -> Webhook {
        let raw = raw.unwrap_or(RawWebhook {
            methods: None,
            max_body_bytes: None,
            max_concurrency: None,
            auth: None,
        });
        let mut methods = raw.methods.unwrap_or_else(|| HttpMethod::ALL.to_vec());
        methods.sort();
        methods.dedup();
        if methods.is_empty() {
            self.error("/webhook/methods", "`webhook.methods` is empty: list at least one of GET, POST, PUT, DELETE, or leave it out to allow all four");
        }
        let max_body_bytes = raw
            .max_body_bytes
            .map_or(DEFAULT_MAX_BODY_BYTES, |m| m.get());
        if max_body_bytes > MAX_BODY_BYTES {
            self.error(
                "/webhook/max_body_bytes",
                format!(
                    "max_body_bytes = {max_body_bytes} is over the maximum of {MAX_BODY_BYTES}"
                ),
            );
        }
        let auth = raw.auth.and_then(|a| self.auth(a));
        Webhook {
            flow,
            methods,
            max_body_bytes,
            max_concurrency: raw
                .max_concurrency
                .map_or(DEFAULT_MAX_CONCURRENCY, |m| m.get()) as usize,
            auth,
        }
    }

    fn auth(&mut self, raw: RawAuth) -> Option<Auth> {
        let ptr = "/webhook/auth/secret";
        let secret = self.secret(ptr, &raw.secret)?;
        match raw.kind {
            AuthKind::Basic if !secret.expose().contains(&b':') => {
                self.error(
                    ptr,
                    "a basic-auth secret is `user:password`; the value has no `:`",
                );
            }
            AuthKind::StandardWebhooks => {
                if let Err(e) = standard_webhooks_key(&secret) {
                    self.error(ptr, e);
                }
            }
            _ => {}
        }
        Some(Auth {
            kind: raw.kind,
            secret,
            header: raw.header.unwrap_or_else(|| "X-Signature".into()),
            algorithm: raw.algorithm.unwrap_or(HmacAlgorithm::Sha256),
            prefix: raw.prefix.unwrap_or_default(),
            encoding: raw.encoding.unwrap_or(SignatureEncoding::Hex),
        })
    }

    fn secret(&mut self, pointer: &str, raw: &RawSecret) -> Option<Secret> {
        let value = match raw {
            RawSecret::Env(SecretFromEnv { env }) => match self.inputs.env(env) {
                Some(v) => v,
                None => {
                    self.error(
                        pointer,
                        format!("secret: environment variable `{env}` is not set"),
                    );
                    return None;
                }
            },
            RawSecret::File(SecretFromFile { file }) => {
                match self.inputs.read_file(Path::new(file)) {
                    Ok(v) => v.trim_end_matches(['\r', '\n']).to_owned(),
                    Err(e) => {
                        self.error(pointer, format!("secret: cannot read file `{file}`: {e}"));
                        return None;
                    }
                }
            }
        };
        if value.is_empty() {
            self.error(pointer, "secret: the value is empty");
            return None;
        }
        Some(Secret::new(value.into_bytes()))
    }

    fn event(&mut self, raw: RawEvent, flow: Option<Flow>) -> EventFunction {
        for (i, t) in raw.types.iter().enumerate() {
            if !is_event_type(t) {
                self.error(&format!("/event/types/{i}"), format!("{t:?} is not an event type: use 1-128 letters, digits, `_`, `.`, `-` or `:`"));
            }
        }
        if let Some(url) = &raw.url {
            if let Err(e) = check_http_url(url) {
                self.error("/event/url", e);
            }
        }
        let d = raw.delivery.unwrap_or(RawDelivery {
            timeout_ms: None,
            max_attempts: None,
            backoff_ms: None,
            secret: None,
        });
        let backoff_ms = d.backoff_ms.unwrap_or_else(|| DEFAULT_BACKOFF_MS.to_vec());
        if backoff_ms.is_empty() {
            self.error(
                "/event/delivery/backoff_ms",
                "`backoff_ms` is empty: give at least one delay, e.g. [0, 5000, 300000]",
            );
        }
        let secret = d
            .secret
            .as_ref()
            .and_then(|s| self.secret("/event/delivery/secret", s));
        EventFunction {
            types: raw.types,
            url: raw.url,
            flow,
            delivery: Delivery {
                timeout: d
                    .timeout_ms
                    .map_or(DEFAULT_DELIVERY_TIMEOUT, |t| Duration::from_millis(t.get())),
                max_attempts: d.max_attempts.map_or(DEFAULT_MAX_ATTEMPTS, |m| m.get()),
                backoff: backoff_ms.into_iter().map(Duration::from_millis).collect(),
                secret,
            },
        }
    }

    fn schedule(&mut self, raw: RawSchedule) -> Schedule {
        let cron = match &raw.when {
            ScheduleForm::Cron(c) => {
                schedule::parse_cron(c).map_err(|e| self.error("/schedule/cron", e))
            }
            ScheduleForm::English(e) => {
                schedule::from_english(e).map_err(|m| self.error("/schedule/english", m))
            }
            ScheduleForm::Fields(f) => schedule::from_fields(f)
                .map_err(|e| self.error(&format!("/schedule/{}", e.field), e.to_string())),
        };
        let timezone = match &raw.timezone {
            None => chrono_tz::UTC,
            Some(tz) => schedule::parse_timezone(tz).unwrap_or_else(|e| {
                self.error("/schedule/timezone", e);
                chrono_tz::UTC
            }),
        };
        let cron = cron
            .unwrap_or_else(|()| schedule::parse_cron("* * * * *").expect("a valid placeholder"));
        Schedule {
            description: schedule::describe(&cron),
            cron,
            timezone,
            overlap: raw.overlap.unwrap_or_default(),
            catch_up: raw.catch_up.unwrap_or_default(),
        }
    }

    fn sql(&mut self, source: &SqlSource) -> Arc<str> {
        let (text, ptr) = match source {
            SqlSource::Inline(s) => (Some(s.clone()), "/task/sql"),
            SqlSource::File(f) => (
                self.referenced_file("/task/sql_file", "SQL file", f)
                    .map(|(_, t)| t),
                "/task/sql_file",
            ),
        };
        let Some(text) = text else {
            return Arc::from("");
        };
        if text.trim().is_empty() {
            self.error(ptr, "the SQL is empty");
        }
        Arc::from(text)
    }

    fn task(&mut self, raw: RawTask) -> Task {
        let action = match raw.action {
            RawAction::Sql(src) => Action::Sql {
                sql: self.sql(&src),
            },
            RawAction::Shell { command, env, cwd } => {
                if command.trim().is_empty() {
                    self.error("/task/command", "the command is empty");
                }
                for name in env.keys() {
                    if !is_env_name(name) {
                        self.error(
                            &format!("/task/env/{name}"),
                            format!("{name:?} is not an environment variable name"),
                        );
                    }
                }
                let base = self
                    .src
                    .root
                    .join(self.src.relative.parent().unwrap_or(Path::new("")));
                Action::Shell {
                    command,
                    env,
                    cwd: cwd.map(|c| base.join(c)),
                }
            }
            RawAction::Export(src, export) => {
                let sql = self.sql(&src);
                let export = self.export(export);
                Action::Export { sql, export }
            }
        };
        Task {
            action,
            timeout: raw
                .timeout_ms
                .map_or(DEFAULT_TASK_TIMEOUT, |t| Duration::from_millis(t.get())),
        }
    }

    fn export(&mut self, raw: RawExport) -> Export {
        let ext = match raw.format {
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
        };
        let filename = raw
            .filename
            .unwrap_or_else(|| format!("{{name}}-{{datetime}}.{ext}"));
        if let Err(e) = check_filename_template(&filename) {
            self.error("/task/export/filename", e);
        }
        let email = raw.email.map(|e| {
            if e.to.is_empty() {
                self.error(
                    "/task/export/email/to",
                    "`email.to` is empty: give at least one address",
                );
            }
            for (i, addr) in e.to.iter().enumerate() {
                if !looks_like_address(addr) {
                    self.error(
                        &format!("/task/export/email/to/{i}"),
                        format!("{addr:?} is not an e-mail address"),
                    );
                }
            }
            Email {
                to: e.to,
                subject: e.subject.unwrap_or_else(|| "{name}: {file}".into()),
                body: e
                    .body
                    .unwrap_or_else(|| "The export {file} of {name} is attached.".into()),
            }
        });
        Export {
            format: raw.format,
            filename,
            keep: raw.keep.map(|k| k.get()),
            email,
        }
    }
}

/// Joins away `.` and `..`; `None` when the path is absolute or climbs above its root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_event_type(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':'))
}

fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} is not an http:// or https:// URL"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(char::is_whitespace) || url.contains(char::is_whitespace) {
        return Err(format!("{url:?} has no valid host"));
    }
    Ok(())
}

/// Placeholders allowed in export file names.
pub const FILENAME_PLACEHOLDERS: [&str; 4] = ["name", "date", "time", "datetime"];

fn check_filename_template(t: &str) -> Result<(), String> {
    if t.contains(['/', '\\']) || t.starts_with('.') || t.trim().is_empty() {
        return Err(format!(
            "filename {t:?} must be a plain file name: no `/`, `\\` or leading `.`"
        ));
    }
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("filename {t:?} has an unclosed `{{`"))?;
        let key = &after[..close];
        if !FILENAME_PLACEHOLDERS.contains(&key) {
            return Err(format!("filename {t:?}: unknown placeholder `{{{key}}}`; use {{name}}, {{date}}, {{time}} or {{datetime}}"));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

fn looks_like_address(a: &str) -> bool {
    match a.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !a.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Standard Webhooks keys are base64, optionally prefixed `whsec_`.
pub fn standard_webhooks_key(secret: &Secret) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(secret.expose()).map_err(|_| "secret: not UTF-8".to_owned())?;
    let b64 = text.strip_prefix("whsec_").unwrap_or(text);
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| {
            "secret: a standard-webhooks secret is base64, optionally prefixed `whsec_`".to_owned()
        })
}

/// Used by tests and tools that compile an in-memory set of files.
#[derive(Default)]
pub struct MemoryInputs {
    pub files: BTreeMap<PathBuf, String>,
    pub env: BTreeMap<String, String>,
}

impl Inputs for MemoryInputs {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not found"))
    }
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
}
