//! SQLite specifics: reading a row into [`Cell`]s and binding JSON parameters.
//!
//! SQLite is dynamically typed: a column declared `DATE` may hold text, a number or NULL, and an
//! expression has no declared type at all. So each value is read by its own storage class, and the
//! declared type only upgrades values that fit it (see [`super::value`]).

use sqlx::sqlite::{SqliteArguments, SqliteRow, SqliteValueRef};
use sqlx::{Arguments, Column as _, Decode, Row, Sqlite, TypeInfo, ValueRef};

use super::value::{parse_date, parse_datetime, parse_time, Cell};
use super::DbError;

/// The declared type, reduced to what changes decoding. Accepts both sqlx's normalized names
/// and the raw declared type, with sqlx's rules (exact names only: `DATE`, not `DATE(10)`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Declared {
    Other,
    Bool,
    Date,
    Time,
    DateTime,
}

pub(crate) fn declared(name: &str) -> Declared {
    let is = |s: &str| name.eq_ignore_ascii_case(s);
    if is("boolean") || is("bool") {
        Declared::Bool
    } else if is("date") {
        Declared::Date
    } else if is("time") {
        Declared::Time
    } else if is("datetime") || is("timestamp") {
        Declared::DateTime
    } else {
        Declared::Other
    }
}

/// One SQLite value by storage class, borrowed from whichever driver read it.
pub(crate) enum Raw<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// The typing rules of [`super::value`]: storage class first, refined by the declared type.
pub(crate) fn to_cell(raw: Raw<'_>, decl: Declared) -> Result<Cell, String> {
    Ok(match raw {
        Raw::Null => Cell::Null,
        Raw::Integer(n) => match (decl, n) {
            (Declared::Bool, 0 | 1) => Cell::Bool(n == 1),
            _ => Cell::Int(n),
        },
        Raw::Real(f) => Cell::Float(f),
        Raw::Blob(b) => Cell::Bytes(b.to_vec()),
        Raw::Text(bytes) => {
            let s = std::str::from_utf8(bytes).map_err(|e| format!("text is not UTF-8: {e}"))?;
            let typed = match decl {
                Declared::Other => None,
                Declared::Bool => match s {
                    "true" | "TRUE" | "True" => Some(Cell::Bool(true)),
                    "false" | "FALSE" | "False" => Some(Cell::Bool(false)),
                    _ => None,
                },
                Declared::Date => parse_date(s).map(Cell::Date).or_else(|| parse_datetime(s)),
                Declared::Time => parse_time(s).map(Cell::Time),
                Declared::DateTime => parse_datetime(s).or_else(|| parse_date(s).map(Cell::Date)),
            };
            typed.unwrap_or_else(|| Cell::Text(s.to_owned()))
        }
    })
}

/// Decodes every value of `row` (read through sqlx), appending to `out`.
pub(crate) fn decode_row(row: &SqliteRow, out: &mut Vec<Cell>) -> Result<(), DbError> {
    for (i, column) in row.columns().iter().enumerate() {
        let value = row.try_get_raw(i).map_err(|e| DbError::from_sqlx(e, ""))?;
        let decl = declared(column.type_info().name());
        out.push(
            raw_of(value)
                .and_then(|raw| to_cell(raw, decl))
                .map_err(|message| DbError::Decode {
                    column: column.name().to_owned(),
                    message,
                })?,
        );
    }
    Ok(())
}

fn raw_of(value: SqliteValueRef<'_>) -> Result<Raw<'_>, String> {
    if value.is_null() {
        return Ok(Raw::Null);
    }
    let e = |e: sqlx::error::BoxDynError| e.to_string();
    // Not null, so this is the value's storage class, not the declared type.
    let class = match value.type_info().name() {
        "INTEGER" => 0,
        "REAL" => 1,
        "BLOB" => 2,
        _ => 3,
    };
    Ok(match class {
        0 => Raw::Integer(<i64 as Decode<Sqlite>>::decode(value).map_err(e)?),
        1 => Raw::Real(<f64 as Decode<Sqlite>>::decode(value).map_err(e)?),
        2 => Raw::Blob(<&[u8] as Decode<Sqlite>>::decode(value).map_err(e)?),
        _ => Raw::Text(
            <&str as Decode<Sqlite>>::decode(value)
                .map_err(e)?
                .as_bytes(),
        ),
    })
}

/// Binds JSON values for `?` placeholders: null, booleans (as 0/1), integers, other numbers as
/// doubles, strings as text, arrays and objects as JSON text.
pub(crate) fn bind(params: &[serde_json::Value]) -> Result<SqliteArguments, DbError> {
    use serde_json::Value;
    let mut args = SqliteArguments::default();
    for (i, param) in params.iter().enumerate() {
        let added = match param {
            Value::Null => args.add(None::<i64>),
            Value::Bool(b) => args.add(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => args.add(i),
                None => args.add(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => args.add(s.clone()),
            other => args.add(other.to_string()),
        };
        added.map_err(|e| DbError::Param {
            index: i + 1,
            message: e.to_string(),
        })?;
    }
    Ok(args)
}
