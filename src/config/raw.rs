//! Serde types exactly as users write them in function files (SPEC §2).
//!
//! These mirror `schemas/function.schema.json` one to one: every struct denies unknown keys, enums
//! accept exactly the schema's strings, and constrained strings (the function name) are newtypes that
//! check their pattern while deserializing. The drift test (`tests/schema_drift.rs`) runs every fixture
//! through both and demands the same verdict. Nothing here is trusted by executors: `compile.rs` turns
//! these into the validated types of `model.rs`.

use std::collections::BTreeMap;
use std::num::{NonZeroU32, NonZeroU64};

use serde::{Deserialize, Deserializer};

use super::schedule::{FieldValue, Fields};

/// A whole function file. The `type` key selects the variant, and each variant only admits the
/// sections that make sense for it, so a scheduler with a `[webhook]` table is an unknown-key error.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RawFunction {
    Webhook(RawWebhookFunction),
    Event(RawEventFunction),
    Scheduler(RawSchedulerFunction),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhookFunction {
    pub name: FunctionName,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub flow: Option<RawFlow>,
    pub webhook: Option<RawWebhook>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawEventFunctionKeys")]
pub struct RawEventFunction {
    pub name: FunctionName,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub flow: Option<RawFlow>,
    pub event: RawEvent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEventFunctionKeys {
    name: FunctionName,
    description: Option<String>,
    enabled: Option<bool>,
    flow: Option<RawFlow>,
    event: RawEvent,
}

impl TryFrom<RawEventFunctionKeys> for RawEventFunction {
    type Error = &'static str;
    fn try_from(k: RawEventFunctionKeys) -> Result<Self, Self::Error> {
        if k.event.types.is_empty() {
            return Err("`event.types` needs at least one event type");
        }
        if k.flow.is_none() && k.event.url.is_none() {
            return Err("an event function needs `event.url`, a [flow], or both");
        }
        Ok(RawEventFunction {
            name: k.name,
            description: k.description,
            enabled: k.enabled,
            flow: k.flow,
            event: k.event,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedulerFunction {
    pub name: FunctionName,
    pub description: Option<String>,
    pub enabled: Option<bool>,
    pub schedule: RawSchedule,
    pub task: RawTask,
}

impl RawFunction {
    pub fn name(&self) -> &FunctionName {
        match self {
            RawFunction::Webhook(f) => &f.name,
            RawFunction::Event(f) => &f.name,
            RawFunction::Scheduler(f) => &f.name,
        }
    }
}

/// `^[a-z0-9][a-z0-9_-]{0,63}$`: safe in a URL path, a file name and a metric label.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FunctionName(String);

impl FunctionName {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bytes = s.as_bytes();
        let first_ok = bytes
            .first()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        let rest_ok = bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-');
        if first_ok && rest_ok && bytes.len() <= 64 {
            Ok(FunctionName(s.to_owned()))
        } else {
            Err(format!(
                "invalid name {s:?}: expected 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for FunctionName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        FunctionName::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for FunctionName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[flow]`: the JavaScript that webhook and event functions run; exactly one of `script` and
/// `inline`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawFlowKeys")]
pub struct RawFlow {
    pub source: FlowSource,
    pub timeout_ms: Option<NonZeroU64>,
    pub memory_mb: Option<NonZeroU32>,
    pub env: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowSource {
    /// A path relative to the function file.
    Script(String),
    Inline(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlowKeys {
    script: Option<String>,
    inline: Option<String>,
    timeout_ms: Option<NonZeroU64>,
    memory_mb: Option<NonZeroU32>,
    env: Option<Vec<String>>,
}

impl TryFrom<RawFlowKeys> for RawFlow {
    type Error = &'static str;
    fn try_from(k: RawFlowKeys) -> Result<Self, Self::Error> {
        let source = match (k.script, k.inline) {
            (Some(s), None) => FlowSource::Script(s),
            (None, Some(i)) => FlowSource::Inline(i),
            _ => return Err("[flow] needs exactly one of `script` and `inline`"),
        };
        Ok(RawFlow {
            source,
            timeout_ms: k.timeout_ms,
            memory_mb: k.memory_mb,
            env: k.env,
        })
    }
}

/// Where a secret comes from: `{ env = "NAME" }` or `{ file = "/path" }`. Never a literal:
/// function files live in git.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RawSecret {
    Env(SecretFromEnv),
    File(SecretFromFile),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretFromEnv {
    pub env: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretFromFile {
    pub file: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Delete,
}

impl HttpMethod {
    pub const ALL: [HttpMethod; 4] = [
        HttpMethod::Get,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Delete,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    pub methods: Option<Vec<HttpMethod>>,
    pub max_body_bytes: Option<NonZeroU64>,
    pub max_concurrency: Option<NonZeroU32>,
    pub auth: Option<RawAuth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    Bearer,
    Basic,
    Hmac,
    StandardWebhooks,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// `[webhook.auth]`; `header`, `algorithm`, `prefix` and `encoding` are for `kind = "hmac"` only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawAuthKeys")]
pub struct RawAuth {
    pub kind: AuthKind,
    pub secret: RawSecret,
    pub header: Option<String>,
    pub algorithm: Option<HmacAlgorithm>,
    pub prefix: Option<String>,
    pub encoding: Option<SignatureEncoding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthKeys {
    kind: AuthKind,
    secret: RawSecret,
    header: Option<String>,
    algorithm: Option<HmacAlgorithm>,
    prefix: Option<String>,
    encoding: Option<SignatureEncoding>,
}

impl TryFrom<RawAuthKeys> for RawAuth {
    type Error = &'static str;
    fn try_from(k: RawAuthKeys) -> Result<Self, Self::Error> {
        let hmac_only = k.header.is_some()
            || k.algorithm.is_some()
            || k.prefix.is_some()
            || k.encoding.is_some();
        if hmac_only && k.kind != AuthKind::Hmac {
            return Err(
                "`header`, `algorithm`, `prefix` and `encoding` apply to kind = \"hmac\" only",
            );
        }
        Ok(RawAuth {
            kind: k.kind,
            secret: k.secret,
            header: k.header,
            algorithm: k.algorithm,
            prefix: k.prefix,
            encoding: k.encoding,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvent {
    pub types: Vec<String>,
    pub url: Option<String>,
    pub delivery: Option<RawDelivery>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub timeout_ms: Option<NonZeroU64>,
    pub max_attempts: Option<NonZeroU32>,
    pub backoff_ms: Option<Vec<u64>>,
    pub secret: Option<RawSecret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Overlap {
    #[default]
    Skip,
    Allow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    #[default]
    None,
    Last,
}

/// `[schedule]`: exactly one of `cron`, `english`, or the five fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawScheduleKeys")]
pub struct RawSchedule {
    pub when: ScheduleForm,
    pub timezone: Option<String>,
    pub overlap: Option<Overlap>,
    pub catch_up: Option<CatchUp>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleForm {
    Cron(String),
    English(String),
    Fields(Fields),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduleKeys {
    cron: Option<String>,
    english: Option<String>,
    minutes: Option<FieldValue>,
    hours: Option<FieldValue>,
    days_of_month: Option<FieldValue>,
    months: Option<FieldValue>,
    days_of_week: Option<FieldValue>,
    timezone: Option<String>,
    overlap: Option<Overlap>,
    catch_up: Option<CatchUp>,
}

impl TryFrom<RawScheduleKeys> for RawSchedule {
    type Error = &'static str;
    fn try_from(k: RawScheduleKeys) -> Result<Self, Self::Error> {
        let fields = Fields {
            minutes: k.minutes,
            hours: k.hours,
            days_of_month: k.days_of_month,
            months: k.months,
            days_of_week: k.days_of_week,
        };
        let any_field = fields != Fields::default();
        let when = match (k.cron, k.english, any_field) {
            (Some(c), None, false) => ScheduleForm::Cron(c),
            (None, Some(e), false) => ScheduleForm::English(e),
            (None, None, true) => ScheduleForm::Fields(fields),
            _ => return Err("[schedule] needs exactly one of `cron`, `english`, or the fields `minutes`/`hours`/`days_of_month`/`months`/`days_of_week`"),
        };
        Ok(RawSchedule {
            when,
            timezone: k.timezone,
            overlap: k.overlap,
            catch_up: k.catch_up,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Sql,
    Shell,
    Export,
}

/// `[task]`. Which keys are allowed depends on `kind`: `sql` takes `sql` or `sql_file`; `shell`
/// takes `command`, `env` and `cwd`; `export` takes `sql` or `sql_file` and `[task.export]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawTaskKeys")]
pub struct RawTask {
    pub action: RawAction,
    pub timeout_ms: Option<NonZeroU64>,
}

#[derive(Debug, Clone)]
pub enum RawAction {
    Sql(SqlSource),
    Shell {
        command: String,
        env: BTreeMap<String, String>,
        cwd: Option<String>,
    },
    Export(SqlSource, RawExport),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlSource {
    Inline(String),
    /// A path relative to the function file.
    File(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaskKeys {
    kind: TaskKind,
    sql: Option<String>,
    sql_file: Option<String>,
    command: Option<String>,
    timeout_ms: Option<NonZeroU64>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<String>,
    export: Option<RawExport>,
}

impl TryFrom<RawTaskKeys> for RawTask {
    type Error = &'static str;
    fn try_from(k: RawTaskKeys) -> Result<Self, Self::Error> {
        let sql = match (k.sql, k.sql_file) {
            (Some(s), None) => Some(SqlSource::Inline(s)),
            (None, Some(f)) => Some(SqlSource::File(f)),
            (None, None) => None,
            (Some(_), Some(_)) => return Err("[task] takes `sql` or `sql_file`, not both"),
        };
        let shell_keys = k.command.is_some() || k.env.is_some() || k.cwd.is_some();
        let action = match k.kind {
            TaskKind::Sql => match (sql, shell_keys, k.export) {
                (Some(sql), false, None) => RawAction::Sql(sql),
                _ => return Err("kind = \"sql\" needs `sql` or `sql_file`, and takes no `command`, `env`, `cwd` or [task.export]"),
            },
            TaskKind::Shell => match (sql, k.command, k.export) {
                (None, Some(command), None) => RawAction::Shell {
                    command,
                    env: k.env.unwrap_or_default(),
                    cwd: k.cwd,
                },
                _ => return Err("kind = \"shell\" needs `command`, and takes no `sql`, `sql_file` or [task.export]"),
            },
            TaskKind::Export => match (sql, shell_keys, k.export) {
                (Some(sql), false, Some(export)) => RawAction::Export(sql, export),
                _ => return Err("kind = \"export\" needs `sql` or `sql_file` and [task.export], and takes no `command`, `env` or `cwd`"),
            },
        };
        Ok(RawTask {
            action,
            timeout_ms: k.timeout_ms,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Csv,
    Xlsx,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExport {
    pub format: ExportFormat,
    pub filename: Option<String>,
    pub keep: Option<NonZeroU32>,
    pub email: Option<RawEmail>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    pub to: Vec<String>,
    pub subject: Option<String>,
    pub body: Option<String>,
}
