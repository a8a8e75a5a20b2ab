//! The runner's own configuration (SPEC §3): an optional `functiond.toml`, then `FUNCTIOND_*`
//! variables on top, then defaults. Pure: the caller hands in the file text and an environment
//! lookup, so tests need neither files nor process-wide variables.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::diagnostic::Diagnostic;
use super::raw::RawSecret;
use super::validate::{validate_document, SchemaKind, Schemas};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRunnerConfig {
    pub listen: Option<String>,
    pub functions_dir: Option<String>,
    pub drain_timeout_ms: Option<u64>,
    pub database: Option<RawUrlSection>,
    pub state: Option<RawUrlSection>,
    pub exports: Option<RawExports>,
    pub smtp: Option<RawSmtp>,
    pub api: Option<RawApi>,
    pub log: Option<RawLog>,
    pub reload: Option<RawReload>,
    pub events: Option<RawEvents>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvents {
    pub schemas_dir: Option<String>,
    pub lease_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrlSection {
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExports {
    pub dir: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub url: Option<String>,
    pub from: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub token: Option<RawSecret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    pub format: Option<LogFormat>,
    pub level: Option<String>,
}

/// How changes in the functions directory are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReloadMode {
    /// File-system notifications; falls back to polling if they cannot start or fail.
    #[default]
    Watch,
    /// Poll modification times; for mounts that deliver no notifications (some network and
    /// container file systems).
    Poll,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    pub mode: Option<ReloadMode>,
    pub debounce_ms: Option<u64>,
    pub poll_interval_ms: Option<u64>,
}

/// The validated runner configuration with every default filled in.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    pub listen: SocketAddr,
    pub functions_dir: PathBuf,
    pub drain_timeout: Duration,
    pub database_url: String,
    pub state_url: String,
    pub exports_dir: PathBuf,
    pub smtp_url: String,
    pub smtp_from: String,
    /// Where the API token comes from; `None` leaves the API open (loopback default).
    pub api_token: Option<TokenSource>,
    pub log_format: LogFormat,
    pub log_level: String,
    pub reload_mode: ReloadMode,
    pub debounce: Duration,
    pub poll_interval: Duration,
    /// Event JSON Schemas (`<type>.schema.json`) on top of the built-in ones.
    pub event_schemas_dir: PathBuf,
    /// How long a delivery worker holds a claimed delivery; after a crash, claims come back
    /// after this long.
    pub event_lease: Duration,
}

/// The API token: a literal from `FUNCTIOND_API_TOKEN`, or a secret reference from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Literal(String),
    Env(String),
    File(PathBuf),
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            functions_dir: PathBuf::from("functions.d"),
            drain_timeout: Duration::from_secs(30),
            database_url: "sqlite://data/app.db".into(),
            state_url: "sqlite://data/functiond.db".into(),
            exports_dir: PathBuf::from("data/exports"),
            smtp_url: "smtp://127.0.0.1:25".into(),
            smtp_from: "functiond@localhost".into(),
            api_token: None,
            log_format: LogFormat::Text,
            log_level: "info".into(),
            reload_mode: ReloadMode::Watch,
            debounce: Duration::from_millis(100),
            poll_interval: Duration::from_millis(1000),
            event_schemas_dir: PathBuf::from("schemas/events"),
            event_lease: Duration::from_secs(60),
        }
    }
}

/// Every `FUNCTIOND_*` variable the runner reads, with the key it overrides.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("FUNCTIOND_LISTEN", "listen"),
    ("FUNCTIOND_FUNCTIONS_DIR", "functions_dir"),
    ("FUNCTIOND_DRAIN_TIMEOUT_MS", "drain_timeout_ms"),
    ("FUNCTIOND_DATABASE_URL", "database.url"),
    ("FUNCTIOND_STATE_URL", "state.url"),
    ("FUNCTIOND_EXPORTS_DIR", "exports.dir"),
    ("FUNCTIOND_SMTP_URL", "smtp.url"),
    ("FUNCTIOND_SMTP_FROM", "smtp.from"),
    ("FUNCTIOND_API_TOKEN", "api.token (the token itself)"),
    ("FUNCTIOND_LOG_FORMAT", "log.format"),
    ("FUNCTIOND_LOG_LEVEL", "log.level"),
    ("FUNCTIOND_RELOAD_MODE", "reload.mode"),
    ("FUNCTIOND_RELOAD_DEBOUNCE_MS", "reload.debounce_ms"),
    (
        "FUNCTIOND_RELOAD_POLL_INTERVAL_MS",
        "reload.poll_interval_ms",
    ),
];

/// Builds the configuration from an optional file (path and text) and an environment lookup.
/// Every problem is collected: file problems as `path:line:col: message`, variable problems
/// naming the variable.
pub fn load_runner_config(
    schemas: &Schemas,
    file: Option<(&str, &str)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunnerConfig, Vec<Diagnostic>> {
    let mut raw = RawRunnerConfig::default();
    let mut diags = Vec::new();
    if let Some((path, text)) = file {
        match validate_document::<RawRunnerConfig>(schemas, SchemaKind::Runner, path, text) {
            Ok((parsed, _)) => raw = parsed,
            Err(d) => diags.extend(d),
        }
    }
    let mut cfg = RunnerConfig::default();
    let set_str = |var: &str, dst: &mut String, from_file: Option<String>| {
        if let Some(v) = env(var).or(from_file) {
            *dst = v;
        }
    };
    let mut listen = cfg.listen.to_string();
    set_str("FUNCTIOND_LISTEN", &mut listen, raw.listen.clone());
    let mut functions_dir = cfg.functions_dir.display().to_string();
    set_str(
        "FUNCTIOND_FUNCTIONS_DIR",
        &mut functions_dir,
        raw.functions_dir.clone(),
    );
    let database = raw.database.clone().unwrap_or_default();
    set_str(
        "FUNCTIOND_DATABASE_URL",
        &mut cfg.database_url,
        database.url,
    );
    let state = raw.state.clone().unwrap_or_default();
    set_str("FUNCTIOND_STATE_URL", &mut cfg.state_url, state.url);
    let mut exports_dir = cfg.exports_dir.display().to_string();
    let exports = raw.exports.clone().unwrap_or_default();
    set_str("FUNCTIOND_EXPORTS_DIR", &mut exports_dir, exports.dir);
    let smtp = raw.smtp.clone().unwrap_or_default();
    set_str("FUNCTIOND_SMTP_URL", &mut cfg.smtp_url, smtp.url);
    set_str("FUNCTIOND_SMTP_FROM", &mut cfg.smtp_from, smtp.from);
    let log = raw.log.clone().unwrap_or_default();
    set_str("FUNCTIOND_LOG_LEVEL", &mut cfg.log_level, log.level);

    match listen.parse() {
        Ok(addr) => cfg.listen = addr,
        Err(_) => diags.push(Diagnostic::general(format!(
            "listen: {listen:?} is not a socket address (expected host:port, e.g. 127.0.0.1:8080)"
        ))),
    }
    cfg.functions_dir = PathBuf::from(functions_dir);
    let mut schemas_dir = cfg.event_schemas_dir.display().to_string();
    let events = raw.events.clone().unwrap_or_default();
    set_str(
        "FUNCTIOND_EVENTS_SCHEMAS_DIR",
        &mut schemas_dir,
        events.schemas_dir.clone(),
    );
    cfg.event_schemas_dir = PathBuf::from(schemas_dir);
    cfg.exports_dir = PathBuf::from(exports_dir);

    cfg.api_token = match env("FUNCTIOND_API_TOKEN") {
        Some(t) if !t.is_empty() => Some(TokenSource::Literal(t)),
        _ => raw.api.and_then(|a| a.token).map(|s| match s {
            RawSecret::Env(e) => TokenSource::Env(e.env),
            RawSecret::File(f) => TokenSource::File(PathBuf::from(f.file)),
        }),
    };

    let reload = raw.reload.unwrap_or_default();
    cfg.log_format =
        env_enum(env, "FUNCTIOND_LOG_FORMAT", &mut diags).unwrap_or(log.format.unwrap_or_default());
    cfg.reload_mode = env_enum(env, "FUNCTIOND_RELOAD_MODE", &mut diags)
        .unwrap_or(reload.mode.unwrap_or_default());
    let ms =
        |var: &str, file: Option<u64>, default: Duration, diags: &mut Vec<Diagnostic>| match env(
            var,
        ) {
            Some(v) => match v.parse::<u64>() {
                Ok(n) => Duration::from_millis(n),
                Err(_) => {
                    diags.push(Diagnostic::general(format!(
                        "{var}: {v:?} is not a whole number of milliseconds"
                    )));
                    default
                }
            },
            None => file.map(Duration::from_millis).unwrap_or(default),
        };
    cfg.drain_timeout = ms(
        "FUNCTIOND_DRAIN_TIMEOUT_MS",
        raw.drain_timeout_ms,
        cfg.drain_timeout,
        &mut diags,
    );
    cfg.debounce = ms(
        "FUNCTIOND_RELOAD_DEBOUNCE_MS",
        reload.debounce_ms,
        cfg.debounce,
        &mut diags,
    );
    cfg.poll_interval = ms(
        "FUNCTIOND_RELOAD_POLL_INTERVAL_MS",
        reload.poll_interval_ms,
        cfg.poll_interval,
        &mut diags,
    );
    cfg.event_lease = ms(
        "FUNCTIOND_EVENTS_LEASE_MS",
        events.lease_ms,
        cfg.event_lease,
        &mut diags,
    );
    if diags.is_empty() {
        Ok(cfg)
    } else {
        Err(diags)
    }
}

/// Reads an enum-valued variable through serde so it accepts exactly the file's spellings.
fn env_enum<T: for<'de> Deserialize<'de>>(
    env: &dyn Fn(&str) -> Option<String>,
    var: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    let v = env(var)?;
    match T::deserialize(
        serde::de::value::StrDeserializer::<serde::de::value::Error>::new(v.as_str()),
    ) {
        Ok(t) => Some(t),
        Err(e) => {
            diags.push(Diagnostic::general(format!("{var}: {e}")));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(file: Option<&str>, vars: &[(&str, &str)]) -> Result<RunnerConfig, Vec<String>> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load_runner_config(
            &Schemas::embedded(),
            file.map(|t| ("functiond.toml", t)),
            &|k| vars.get(k).cloned(),
        )
        .map_err(|d| d.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn defaults_need_no_file() {
        let cfg = load(None, &[]).expect("defaults");
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(cfg.functions_dir, PathBuf::from("functions.d"));
        assert_eq!(cfg.database_url, "sqlite://data/app.db");
        assert_eq!(cfg.state_url, "sqlite://data/functiond.db");
        assert_eq!(cfg.api_token, None);
        assert_eq!(cfg.reload_mode, ReloadMode::Watch);
    }

    #[test]
    fn file_then_env_override() {
        let file = "listen = \"0.0.0.0:9000\"\n[database]\nurl = \"postgres://x\"\n[api]\ntoken = { env = \"TOK\" }\n";
        let cfg = load(Some(file), &[("FUNCTIOND_LISTEN", "127.0.0.1:0")]).expect("valid");
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:0");
        assert_eq!(cfg.database_url, "postgres://x");
        assert_eq!(cfg.api_token, Some(TokenSource::Env("TOK".into())));
        let cfg = load(Some(file), &[("FUNCTIOND_API_TOKEN", "s3cret")]).expect("valid");
        assert_eq!(cfg.api_token, Some(TokenSource::Literal("s3cret".into())));
    }

    #[test]
    fn all_problems_reported_together() {
        let errs = load(
            Some("listen = \"nope\"\nbogus = 1\n"),
            &[
                ("FUNCTIOND_LOG_FORMAT", "yaml"),
                ("FUNCTIOND_RELOAD_DEBOUNCE_MS", "soon"),
            ],
        )
        .expect_err("invalid");
        let all = errs.join("\n");
        assert!(all.contains("functiond.toml:2:1:"), "{all}");
        assert!(all.contains("bogus"), "{all}");
        assert!(all.contains("FUNCTIOND_LOG_FORMAT"), "{all}");
        assert!(all.contains("FUNCTIOND_RELOAD_DEBOUNCE_MS"), "{all}");
    }
}
