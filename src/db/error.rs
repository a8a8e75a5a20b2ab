//! Database errors as users should read them: the database's own message, where in *their* SQL
//! it went wrong (PostgreSQL reports a character position; we turn it into line and column), and
//! never a password from a URL.
//!
//! sqlx's `Display` for PostgreSQL errors appends the server's C source line ("at line 1234"),
//! which means nothing to a user, so the message is rebuilt from the error's fields instead.

use std::fmt;

use sqlx::error::DatabaseError;
use sqlx::postgres::{PgDatabaseError, PgErrorPosition};

/// Where in the user's SQL an error was reported (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlPosition {
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for SqlPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL itself is unusable (unknown scheme, bad option).
    #[error("invalid database URL {url}: {message}")]
    Url { url: String, message: String },
    /// The database could not be opened or reached. `url` has its password replaced by `***`.
    #[error("cannot open database {url}: {message}")]
    Connect { url: String, message: String },
    /// The database rejected the SQL or failed running it.
    #[error("{message}{}{}", code.as_ref().map(|c| format!(" [{c}]")).unwrap_or_default(),
        position.map(|p| format!(" (at {p} of the SQL)")).unwrap_or_default())]
    Query {
        message: String,
        /// SQLSTATE for PostgreSQL, the extended result code for SQLite.
        code: Option<String>,
        position: Option<SqlPosition>,
    },
    /// A parameter value cannot be sent as the type the SQL needs. `index` is 1-based.
    #[error("parameter {index}: {message}")]
    Param { index: usize, message: String },
    /// A result value cannot be read.
    #[error("column \"{column}\": {message}")]
    Decode { column: String, message: String },
    /// Anything else: pool exhausted, connection lost, I/O.
    #[error("database: {0}")]
    Other(String),
}

impl DbError {
    /// Converts a sqlx error raised while running `sql`.
    pub(crate) fn from_sqlx(err: sqlx::Error, sql: &str) -> DbError {
        match err {
            sqlx::Error::Database(db) => from_database_error(db.as_ref(), sql),
            sqlx::Error::PoolTimedOut => {
                DbError::Other("timed out waiting for a free database connection".into())
            }
            sqlx::Error::PoolClosed => DbError::Other("the database pool is closed".into()),
            sqlx::Error::ColumnDecode { index, source } => DbError::Decode {
                column: index,
                message: source.to_string(),
            },
            other => DbError::Other(other.to_string()),
        }
    }
}

fn from_database_error(db: &dyn DatabaseError, sql: &str) -> DbError {
    if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
        let mut message = pg.message().to_owned();
        if let Some(detail) = pg.detail() {
            message.push_str(": ");
            message.push_str(detail);
        }
        if let Some(hint) = pg.hint() {
            message.push_str(" (hint: ");
            message.push_str(hint);
            message.push(')');
        }
        let position = match pg.position() {
            Some(PgErrorPosition::Original(chars)) => position_in(sql, chars),
            _ => None,
        };
        return DbError::Query {
            message,
            code: Some(pg.code().to_owned()),
            position,
        };
    }
    DbError::Query {
        message: db.message().to_owned(),
        code: db.code().map(|c| c.into_owned()),
        position: None,
    }
}

/// PostgreSQL's 1-based character offset into the SQL, as line and column.
fn position_in(sql: &str, chars: usize) -> Option<SqlPosition> {
    let mut line = 1;
    let mut column = 1;
    for (i, c) in sql.chars().enumerate() {
        if i + 1 == chars {
            return Some(SqlPosition { line, column });
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (chars == sql.chars().count() + 1).then_some(SqlPosition { line, column })
}

/// The URL with any password (in the user-info part or a `password=` query option) replaced by
/// `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    match base.split_once("://") {
        Some((scheme, rest)) => {
            out.push_str(scheme);
            out.push_str("://");
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    match userinfo.split_once(':') {
                        Some((user, _password)) => {
                            out.push_str(user);
                            out.push_str(":***");
                        }
                        None => out.push_str(userinfo),
                    }
                    out.push('@');
                    out.push_str(host);
                }
                None => out.push_str(authority),
            }
            out.push_str(path);
        }
        None => out.push_str(base),
    }
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                    format!("{key}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cr@t@db.example:5432/app?sslmode=require"),
            "postgres://app:***@db.example:5432/app?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://db/app?user=x&password=hunter2"),
            "postgresql://db/app?user=x&password=***"
        );
        assert_eq!(redact_url("postgres://app@db/app"), "postgres://app@db/app");
        assert_eq!(redact_url("sqlite://data/app.db"), "sqlite://data/app.db");
    }

    #[test]
    fn positions() {
        let sql = "SELECT 1,\n  nope FROM t";
        assert_eq!(
            position_in(sql, 1),
            Some(SqlPosition { line: 1, column: 1 })
        );
        assert_eq!(
            position_in(sql, 13),
            Some(SqlPosition { line: 2, column: 3 })
        );
        assert_eq!(
            position_in("é x", 3),
            Some(SqlPosition { line: 1, column: 3 })
        );
        assert_eq!(
            position_in("ab", 3),
            Some(SqlPosition { line: 1, column: 3 })
        );
        assert_eq!(position_in("ab", 9), None);
    }
}
