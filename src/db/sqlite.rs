//! SQLite specifics: reading a row into [`Cell`]s and binding JSON parameters.
//!
//! SQLite is dynamically typed: a column declared `DATE` may hold text, a number or NULL, and an
//! expression has no declared type at all. So each value is read by its own storage class, and the
//! declared type only upgrades values that fit it (see [`super::value`]).

use sqlx::sqlite::{SqliteArguments, SqliteRow, SqliteValueRef};
use sqlx::{Arguments, Column as _, Decode, Row, Sqlite, TypeInfo, ValueRef};

use super::value::{parse_date, parse_datetime, parse_time, Cell};
use super::DbError;

/// The declared type as sqlx reports it, reduced to what changes decoding.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Declared {
    Other,
    Bool,
    Date,
    Time,
    DateTime,
}

fn declared(name: &str) -> Declared {
    match name {
        "BOOLEAN" => Declared::Bool,
        "DATE" => Declared::Date,
        "TIME" => Declared::Time,
        "DATETIME" => Declared::DateTime,
        _ => Declared::Other,
    }
}

/// Decodes every value of `row`, appending to `out`.
pub(crate) fn decode_row(row: &SqliteRow, out: &mut Vec<Cell>) -> Result<(), DbError> {
    for (i, column) in row.columns().iter().enumerate() {
        let value = row.try_get_raw(i).map_err(|e| DbError::from_sqlx(e, ""))?;
        let decl = declared(column.type_info().name());
        out.push(
            decode_value(value, decl).map_err(|message| DbError::Decode {
                column: column.name().to_owned(),
                message,
            })?,
        );
    }
    Ok(())
}

enum Class {
    Integer,
    Real,
    Text,
    Blob,
}

fn decode_value(value: SqliteValueRef<'_>, decl: Declared) -> Result<Cell, String> {
    if value.is_null() {
        return Ok(Cell::Null);
    }
    // Not null, so this is the value's storage class, not the declared type.
    let class = match value.type_info().name() {
        "INTEGER" => Class::Integer,
        "REAL" => Class::Real,
        "BLOB" => Class::Blob,
        _ => Class::Text,
    };
    let cell = match class {
        Class::Integer => {
            let n = <i64 as Decode<Sqlite>>::decode(value).map_err(|e| e.to_string())?;
            match (decl, n) {
                (Declared::Bool, 0 | 1) => Cell::Bool(n == 1),
                _ => Cell::Int(n),
            }
        }
        Class::Real => {
            Cell::Float(<f64 as Decode<Sqlite>>::decode(value).map_err(|e| e.to_string())?)
        }
        Class::Blob => Cell::Bytes(
            <&[u8] as Decode<Sqlite>>::decode(value)
                .map_err(|e| e.to_string())?
                .to_vec(),
        ),
        Class::Text => {
            let s = <&str as Decode<Sqlite>>::decode(value).map_err(|e| e.to_string())?;
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
    };
    Ok(cell)
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
