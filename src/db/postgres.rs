//! PostgreSQL specifics: reading binary-format values into [`Cell`]s, and binding JSON
//! parameters as the types the server inferred for `$1, $2, …`.
//!
//! Why bind by inferred type: sqlx sends parameters in binary, and the server reads each one with
//! the type it inferred when preparing the statement. A JSON number bound as `int8` where the
//! server expects `int4` would be misread, and `'2024-01-01'` bound as text cannot be compared
//! with a `date` column. So the statement is prepared first and each JSON value is converted to
//! exactly the parameter's type (strings are accepted for every type, parsed like PostgreSQL's own
//! input syntax would, e.g. `"42"` for an `int4`, `"2024-03-01T10:00:00Z"` for a `timestamptz`).

use std::fmt::Write as _;
use std::str::FromStr;

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::{PgInterval, PgTimeTz};
use sqlx::postgres::{
    PgArguments, PgRow, PgTypeInfo, PgTypeKind, PgValueFormat, PgValueRef, Postgres,
};
use sqlx::types::{Json, Uuid};
use sqlx::{Arguments, Column as _, Decode, Row, Type, TypeInfo, ValueRef};

use super::value::{parse_date, parse_datetime, parse_time, push_time, Cell};
use super::DbError;

// Type OIDs from PostgreSQL's pg_type.dat; stable across versions.
const BOOL: u32 = 16;
const BYTEA: u32 = 17;
const CHAR: u32 = 18;
const NAME: u32 = 19;
const INT8: u32 = 20;
const INT2: u32 = 21;
const INT4: u32 = 23;
const TEXT: u32 = 25;
const OID: u32 = 26;
const JSON: u32 = 114;
const FLOAT4: u32 = 700;
const FLOAT8: u32 = 701;
const UNKNOWN: u32 = 705;
const BPCHAR: u32 = 1042;
const VARCHAR: u32 = 1043;
const DATE: u32 = 1082;
const TIME: u32 = 1083;
const TIMESTAMP: u32 = 1114;
const TIMESTAMPTZ: u32 = 1184;
const INTERVAL: u32 = 1186;
const TIMETZ: u32 = 1266;
const NUMERIC: u32 = 1700;
const UUID: u32 = 2950;
const JSONB: u32 = 3802;

/// Decodes every value of `row`, appending to `out`.
pub(crate) fn decode_row(row: &PgRow, out: &mut Vec<Cell>) -> Result<(), DbError> {
    for (i, column) in row.columns().iter().enumerate() {
        let value = row.try_get_raw(i).map_err(|e| DbError::from_sqlx(e, ""))?;
        out.push(decode_value(value).map_err(|message| DbError::Decode {
            column: column.name().to_owned(),
            message,
        })?);
    }
    Ok(())
}

fn decode_value(value: PgValueRef<'_>) -> Result<Cell, String> {
    if value.is_null() {
        return Ok(Cell::Null);
    }
    let ty = value.type_info().into_owned();
    decode_as(value, &ty)
}

fn dec<'r, T: Decode<'r, Postgres>>(value: PgValueRef<'r>) -> Result<T, String> {
    T::decode(value).map_err(|e| e.to_string())
}

fn decode_as(value: PgValueRef<'_>, ty: &PgTypeInfo) -> Result<Cell, String> {
    let oid = ty.oid().map_or(0, |o| o.0);
    let cell = match oid {
        BOOL => Cell::Bool(dec(value)?),
        INT2 => Cell::Int(dec::<i16>(value)?.into()),
        INT4 => Cell::Int(dec::<i32>(value)?.into()),
        INT8 => Cell::Int(dec(value)?),
        OID => Cell::Int(dec::<sqlx::postgres::types::Oid>(value)?.0.into()),
        FLOAT4 => Cell::Float(f64::from(dec::<f32>(value)?)),
        FLOAT8 => Cell::Float(dec(value)?),
        NUMERIC => Cell::Decimal(match value.format() {
            PgValueFormat::Binary => numeric_text(value.as_bytes().map_err(|e| e.to_string())?)?,
            PgValueFormat::Text => dec::<&str>(value)?.to_owned(),
        }),
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN => Cell::Text(dec::<&str>(value)?.to_owned()),
        CHAR => Cell::Text(char::from(dec::<i8>(value)?.to_ne_bytes()[0]).to_string()),
        DATE => Cell::Date(dec(value)?),
        TIME => Cell::Time(dec(value)?),
        TIMETZ => {
            let t: PgTimeTz<NaiveTime, FixedOffset> = dec(value)?;
            let mut s = String::new();
            push_time(&mut s, t.time);
            let _ = write!(s, "{}", t.offset);
            Cell::Text(s)
        }
        TIMESTAMP => Cell::DateTime(dec(value)?),
        TIMESTAMPTZ => Cell::DateTimeTz(dec::<DateTime<Utc>>(value)?.fixed_offset()),
        INTERVAL => Cell::Text(interval_iso(&dec(value)?)),
        JSON | JSONB => Cell::Json(dec(value)?),
        UUID => Cell::Text(dec::<Uuid>(value)?.to_string()),
        BYTEA => Cell::Bytes(dec::<&[u8]>(value)?.to_vec()),
        _ => match ty.kind() {
            PgTypeKind::Array(_) => {
                let items: Vec<Elem> = dec(value)?;
                Cell::Json(Value::Array(
                    items.into_iter().map(|e| e.0.into_json()).collect(),
                ))
            }
            PgTypeKind::Domain(base) => decode_as(value, base)?,
            PgTypeKind::Enum(_) => Cell::Text(dec::<&str>(value)?.to_owned()),
            _ if ty.name().eq_ignore_ascii_case("citext") => {
                Cell::Text(dec::<&str>(value)?.to_owned())
            }
            _ if value.format() == PgValueFormat::Text => {
                Cell::Text(dec::<&str>(value)?.to_owned())
            }
            _ => {
                return Err(format!(
                    "PostgreSQL type {} cannot be read; cast it in the query, e.g. `column::text`",
                    ty.name()
                ))
            }
        },
    };
    Ok(cell)
}

/// An array element of any supported type; arrays become JSON arrays.
struct Elem(Cell);

impl Type<Postgres> for Elem {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }
}

impl<'r> Decode<'r, Postgres> for Elem {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        decode_value(value).map(Elem).map_err(Into::into)
    }
}

/// NUMERIC's binary form (base-10000 digits) as PostgreSQL would print it, scale included.
fn numeric_text(b: &[u8]) -> Result<String, String> {
    let word = |i: usize| -> Result<u16, String> {
        b.get(i..i + 2)
            .map(|w| u16::from_be_bytes([w[0], w[1]]))
            .ok_or_else(|| "truncated NUMERIC value".to_owned())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = i64::from(word(6)?);
    let digits = (0..ndigits)
        .map(|k| word(8 + 2 * k))
        .collect::<Result<Vec<u16>, _>>()?;
    let digit = |i: i64| -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut s = String::with_capacity(ndigits * 4 + 4);
    match sign {
        0x0000 => {}
        0x4000 => s.push('-'),
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        other => return Err(format!("unknown NUMERIC sign {other:#x}")),
    }
    if weight < 0 {
        s.push('0');
    } else {
        for i in 0..=weight {
            let _ = if i == 0 {
                write!(s, "{}", digit(i))
            } else {
                write!(s, "{:04}", digit(i))
            };
        }
    }
    if dscale > 0 {
        s.push('.');
        let mut left = dscale;
        let mut i = weight + 1;
        while left > 0 {
            let group = format!("{:04}", digit(i));
            let take = left.min(4) as usize;
            s.push_str(&group[..take]);
            left -= take as i64;
            i += 1;
        }
    }
    Ok(s)
}

/// `PgInterval` as an ISO 8601 duration, each part signed like PostgreSQL's `iso_8601` style.
fn interval_iso(iv: &PgInterval) -> String {
    let mut s = String::from("P");
    let (years, months) = (iv.months / 12, iv.months % 12);
    for (n, unit) in [(years, 'Y'), (months, 'M'), (iv.days, 'D')] {
        if n != 0 {
            let _ = write!(s, "{n}{unit}");
        }
    }
    let us = iv.microseconds;
    if us != 0 {
        s.push('T');
        let (h, m) = (us / 3_600_000_000, (us / 60_000_000) % 60);
        let (sec, frac) = ((us / 1_000_000) % 60, (us % 1_000_000).abs());
        for (n, unit) in [(h, 'H'), (m, 'M')] {
            if n != 0 {
                let _ = write!(s, "{n}{unit}");
            }
        }
        if sec != 0 || frac != 0 {
            if sec == 0 && us < 0 {
                s.push('-');
            }
            let _ = write!(s, "{sec}");
            if frac != 0 {
                let f = format!("{frac:06}");
                s.push('.');
                s.push_str(f.trim_end_matches('0'));
            }
            s.push('S');
        }
    }
    if s == "P" {
        s.push_str("T0S");
    }
    s
}

/// Binds `params` as the parameter types the server inferred (`types`).
pub(crate) fn bind(params: &[Value], types: &[PgTypeInfo]) -> Result<PgArguments, DbError> {
    if params.len() != types.len() {
        return Err(DbError::Param {
            index: params.len().min(types.len()) + 1,
            message: format!(
                "the SQL has {} parameter(s) ($1, $2, …) but {} value(s) were given",
                types.len(),
                params.len()
            ),
        });
    }
    let mut args = PgArguments::default();
    for (i, (value, ty)) in params.iter().zip(types).enumerate() {
        add(&mut args, value, ty).map_err(|message| DbError::Param {
            index: i + 1,
            message,
        })?;
    }
    Ok(args)
}

fn opt<T>(v: &Value, f: impl Fn(&Value) -> Result<T, String>) -> Result<Option<T>, String> {
    if v.is_null() {
        Ok(None)
    } else {
        f(v).map(Some)
    }
}

fn list<T>(
    v: &Value,
    f: impl Fn(&Value) -> Result<T, String>,
) -> Result<Option<Vec<Option<T>>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Array(items) => items
            .iter()
            .map(|i| opt(i, &f))
            .collect::<Result<_, _>>()
            .map(Some),
        other => Err(format!("expected an array, got {other}")),
    }
}

fn add(args: &mut PgArguments, v: &Value, ty: &PgTypeInfo) -> Result<(), String> {
    let oid = ty.oid().map_or(0, |o| o.0);
    let added = match oid {
        BOOL => args.add(opt(v, to_bool)?),
        INT2 => args.add(opt(v, |v| int::<i16>(v, "int2"))?),
        INT4 => args.add(opt(v, |v| int::<i32>(v, "int4"))?),
        INT8 => args.add(opt(v, |v| int::<i64>(v, "int8"))?),
        FLOAT4 => args.add(opt(v, |v| to_f64(v).map(|f| f as f32))?),
        FLOAT8 => args.add(opt(v, to_f64)?),
        NUMERIC => args.add(opt(v, to_decimal)?),
        TEXT | VARCHAR | BPCHAR | NAME | UNKNOWN => args.add(opt(v, to_text)?),
        JSON | JSONB => args.add(opt(v, |v| Ok(Json(v.clone())))?),
        UUID => args.add(opt(v, to_uuid)?),
        DATE => args.add(opt(v, to_date)?),
        TIME => args.add(opt(v, to_time)?),
        TIMESTAMP => args.add(opt(v, |v| to_datetime(v).map(|dt| dt.naive_utc()))?),
        TIMESTAMPTZ => args.add(opt(v, to_datetime)?),
        BYTEA => args.add(opt(v, to_bytes)?),
        1000 => args.add(list(v, to_bool)?),
        1005 => args.add(list(v, |v| int::<i16>(v, "int2"))?),
        1007 => args.add(list(v, |v| int::<i32>(v, "int4"))?),
        1016 => args.add(list(v, |v| int::<i64>(v, "int8"))?),
        1021 => args.add(list(v, |v| to_f64(v).map(|f| f as f32))?),
        1022 => args.add(list(v, to_f64)?),
        1231 => args.add(list(v, to_decimal)?),
        1009 => args.add(list(v, to_text)?),
        2951 => args.add(list(v, to_uuid)?),
        _ => match ty.kind() {
            PgTypeKind::Domain(base) => return add(args, v, base),
            PgTypeKind::Enum(_) => args.add(opt(v, to_text)?),
            _ if ty.name().eq_ignore_ascii_case("citext") => args.add(opt(v, to_text)?),
            _ => {
                return Err(format!(
                    "the SQL expects PostgreSQL type {}, which cannot be sent from a JSON value; \
                     cast the parameter in the SQL, e.g. `$1::text::{}`",
                    ty.name(),
                    ty.name().to_lowercase()
                ))
            }
        },
    };
    added.map_err(|e| e.to_string())
}

fn expected(what: &str, v: &Value) -> String {
    format!("expected {what}, got {v}")
}

fn to_bool(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "t" | "true" | "y" | "yes" | "on" | "1" => Ok(true),
            "f" | "false" | "n" | "no" | "off" | "0" => Ok(false),
            _ => Err(expected("a boolean", v)),
        },
        _ => Err(expected("a boolean", v)),
    }
}

fn int<T: TryFrom<i64>>(v: &Value, ty: &str) -> Result<T, String> {
    let n = match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    n.and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| expected(&format!("an integer that fits {ty}"), v))
}

fn to_f64(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| expected("a number", v))
}

fn to_decimal(v: &Value) -> Result<Decimal, String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_owned(),
        _ => return Err(expected("a number", v)),
    };
    Decimal::from_str_exact(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|e| format!("{}: {e}", expected("a decimal number", v)))
}

fn to_text(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn as_str<'a>(v: &'a Value, what: &str) -> Result<&'a str, String> {
    v.as_str().map(str::trim).ok_or_else(|| expected(what, v))
}

fn to_uuid(v: &Value) -> Result<Uuid, String> {
    Uuid::from_str(as_str(v, "a UUID string")?).map_err(|_| expected("a UUID", v))
}

fn to_date(v: &Value) -> Result<NaiveDate, String> {
    let s = as_str(v, "a date string (YYYY-MM-DD)")?;
    parse_date(s)
        .or_else(|| match parse_datetime(s) {
            Some(Cell::DateTime(dt)) => Some(dt.date()),
            Some(Cell::DateTimeTz(dt)) => Some(dt.date_naive()),
            _ => None,
        })
        .ok_or_else(|| expected("a date (YYYY-MM-DD)", v))
}

fn to_time(v: &Value) -> Result<NaiveTime, String> {
    parse_time(as_str(v, "a time string (HH:MM:SS)")?)
        .ok_or_else(|| expected("a time (HH:MM:SS)", v))
}

/// A date-time string; without an offset it is taken as UTC, a bare date as midnight UTC.
fn to_datetime(v: &Value) -> Result<DateTime<Utc>, String> {
    let s = as_str(v, "a date-time string (ISO 8601)")?;
    let naive_utc = |dt: NaiveDateTime| dt.and_utc();
    match parse_datetime(s) {
        Some(Cell::DateTimeTz(dt)) => Ok(dt.with_timezone(&Utc)),
        Some(Cell::DateTime(dt)) => Ok(naive_utc(dt)),
        _ => parse_date(s)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(naive_utc)
            .ok_or_else(|| expected("a date-time (ISO 8601)", v)),
    }
}

fn to_bytes(v: &Value) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(as_str(v, "a base64 string")?)
        .map_err(|e| format!("{}: {e}", expected("base64", v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> String {
        let mut b = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale].iter().chain(digits) {
            b.extend_from_slice(&w.to_be_bytes());
        }
        numeric_text(&b).unwrap()
    }

    #[test]
    fn numeric_binary_to_text() {
        assert_eq!(numeric(2, 0, 0, 2, &[12, 5000]), "12.50");
        assert_eq!(numeric(1, -1, 0x4000, 3, &[10]), "-0.001");
        assert_eq!(numeric(1, -2, 0, 6, &[1200]), "0.000012");
        assert_eq!(numeric(1, -2, 0, 8, &[12]), "0.00000012");
        assert_eq!(numeric(1, 1, 0, 0, &[1]), "10000");
        assert_eq!(numeric(0, 0, 0, 2, &[]), "0.00");
        assert_eq!(numeric(0, 0, 0xC000, 0, &[]), "NaN");
        assert_eq!(numeric(3, 1, 0, 4, &[1, 2345, 6789]), "12345.6789");
    }

    #[test]
    fn interval_text() {
        let iv = |months, days, microseconds| PgInterval {
            months,
            days,
            microseconds,
        };
        assert_eq!(interval_iso(&iv(14, 3, 3_723_500_000)), "P1Y2M3DT1H2M3.5S");
        assert_eq!(interval_iso(&iv(0, 0, 0)), "PT0S");
        assert_eq!(interval_iso(&iv(0, -1, -90_000_000)), "P-1DT-1M-30S");
        assert_eq!(interval_iso(&iv(0, 0, -500_000)), "PT-0.5S");
    }
}
