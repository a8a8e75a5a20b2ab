//! One value type, [`Cell`], for everything a query can return, whichever database produced it.
//!
//! Why one enum: flows (JSON for JavaScript), CSV and XLSX exports all need the same question
//! answered — "what kind of value is this?" — and answering it once, while decoding, keeps the
//! three outputs consistent and lets each writer pick its own best representation (a real Excel
//! date, an ISO string for JavaScript, exact text for a NUMERIC).
//!
//! # Decoding
//!
//! - **SQLite** values are read by each value's own storage class (INTEGER, REAL, TEXT, BLOB,
//!   NULL); the declared column type only refines it: in a column declared `BOOLEAN`, 0 and 1 (and
//!   the text `true`/`false`) become booleans; in a column declared `DATE`, `DATETIME`,
//!   `TIMESTAMP` or `TIME`, text that parses as such becomes a date, date-time or time. Anything
//!   else keeps its storage class, so an expression such as `date('now')` (no declared type) stays
//!   text.
//! - **PostgreSQL** values are read by their type: `int2/int4/int8`, `float4/float8`, `numeric`
//!   (exact text), `text/varchar/char/name/citext`, enums, `bool`, `date`, `time`, `timestamp`,
//!   `timestamptz`, `interval` (ISO 8601 duration text), `json/jsonb`, `uuid` (text), `bytea`, and
//!   one-dimensional arrays of these (a JSON array). Domains are read as their base type. Any other
//!   type is an error naming the column and the type; cast it in SQL (`col::text`).
//!
//! # Mapping
//!
//! | value | JSON (flows: `db.query`) | CSV | XLSX |
//! |---|---|---|---|
//! | NULL | `null` | empty field | empty cell |
//! | boolean | `true` / `false` | `true` / `false` | boolean |
//! | integer | number if \|n\| ≤ 2^53−1, else string (exact digits) | digits | number if \|n\| ≤ 2^53−1, else text |
//! | float | number; NaN / ±infinity as `"NaN"`, `"Infinity"`, `"-Infinity"` | shortest text that reads back to the same double (`0.1`, `1e300`); `NaN`, `Infinity`, `-Infinity` | number; NaN / ±infinity as text |
//! | NUMERIC / DECIMAL | number if the value converts to a double and back unchanged (`12.50` → `12.5`), else string with the exact digits | exact digits as the database prints them (`12.50`) | number under the same rule as JSON, else text |
//! | text, UUID, enum | string | text | text (longer than 32,767 characters: cut to 32,767; an empty string is an empty cell) |
//! | bytes (BLOB, bytea) | string, base64 (standard alphabet, padded) | base64 | base64 text |
//! | date | `"2024-03-01"` | `2024-03-01` | Excel date, format `yyyy-mm-dd` |
//! | time | `"13:45:00"` (fraction only when non-zero: `13:45:00.250`) | same | Excel time, format `hh:mm:ss` |
//! | date-time without zone | `"2024-03-01T13:45:00"` (fraction only when non-zero) | `2024-03-01 13:45:00` | Excel date-time, format `yyyy-mm-dd hh:mm:ss` |
//! | date-time with zone (`timestamptz`) | `"2024-03-01T13:45:00Z"`; other offsets as `+02:00` | `2024-03-01 13:45:00+00:00` | Excel date-time of the UTC instant (Excel has no zones) |
//! | interval | ISO 8601 duration string `"P1Y2M3DT4H5M6S"` | same | text |
//! | JSON / JSONB, arrays | the JSON value itself | compact JSON text | compact JSON text |
//!
//! Dates outside what Excel can show (before 1900-01-01) are written to XLSX as ISO text.

use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{
    DateTime, Datelike, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset, SecondsFormat,
    Timelike,
};
use serde_json::Value;

/// The largest integer a double (and so JavaScript and Excel) holds exactly: 2^53 − 1.
pub const MAX_SAFE_INTEGER: i64 = 9_007_199_254_740_991;

/// One value of one row, decoded from SQLite or PostgreSQL. See the module docs for the mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Exact decimal text as the database prints it (`"12.50"`, `"-0.001"`, `"NaN"`).
    Decimal(String),
    /// Text; also UUIDs, enum labels and intervals, already rendered.
    Text(String),
    Bytes(Vec<u8>),
    Date(NaiveDate),
    Time(NaiveTime),
    DateTime(NaiveDateTime),
    DateTimeTz(DateTime<FixedOffset>),
    Json(Value),
}

impl Cell {
    /// The JSON value handed to flows (see the mapping table in the module docs).
    pub fn into_json(self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Bool(b) => Value::Bool(b),
            Cell::Int(n) if (-MAX_SAFE_INTEGER..=MAX_SAFE_INTEGER).contains(&n) => Value::from(n),
            Cell::Int(n) => Value::String(n.to_string()),
            Cell::Float(f) => float_json(f),
            Cell::Decimal(s) => match decimal_as_f64(&s) {
                Some(f) => float_json(f),
                None => Value::String(s),
            },
            Cell::Text(s) => Value::String(s),
            Cell::Json(v) => v,
            other => {
                let mut s = String::new();
                other.write_json_text(&mut s);
                Value::String(s)
            }
        }
    }

    /// Appends the CSV representation (see the mapping table); NULL appends nothing.
    pub fn write_text(&self, out: &mut String) {
        match self {
            Cell::Null => {}
            Cell::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Cell::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Cell::Float(f) => push_float(out, *f),
            Cell::Decimal(s) | Cell::Text(s) => out.push_str(s),
            Cell::Bytes(b) => base64::engine::general_purpose::STANDARD.encode_string(b, out),
            Cell::Date(d) => push_date(out, *d),
            Cell::Time(t) => push_time(out, *t),
            Cell::DateTime(dt) => push_datetime(out, *dt, ' '),
            Cell::DateTimeTz(dt) => {
                push_datetime(out, dt.naive_local(), ' ');
                push_offset(out, dt.offset().fix(), false);
            }
            Cell::Json(v) => {
                let _ = write!(out, "{v}");
            }
        }
    }

    /// The text used inside JSON for values JSON has no type for (dates, bytes).
    fn write_json_text(&self, out: &mut String) {
        match self {
            Cell::DateTime(dt) => push_datetime(out, *dt, 'T'),
            Cell::DateTimeTz(dt) => {
                let _ = write!(out, "{}", dt.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            }
            other => other.write_text(out),
        }
    }
}

impl From<Cell> for Value {
    fn from(cell: Cell) -> Value {
        cell.into_json()
    }
}

fn float_json(f: f64) -> Value {
    match serde_json::Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None => Value::String(non_finite_name(f).to_owned()),
    }
}

fn non_finite_name(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "Infinity"
    } else {
        "-Infinity"
    }
}

/// Shortest text that parses back to the same double; exponent form only when it is shorter
/// than writing the digits out (very large or very small magnitudes).
pub(crate) fn push_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        out.push_str(non_finite_name(f));
    } else if f == 0.0 || (1e-5..1e16).contains(&f.abs()) {
        let _ = write!(out, "{f}");
    } else {
        let _ = write!(out, "{f:e}");
    }
}

/// The double a decimal text stands for, if converting to a double and back gives the same
/// decimal value (`"12.50"` → 12.5; `"0.1"` → 0.1; `"12345678901234567890"` → None).
pub(crate) fn decimal_as_f64(s: &str) -> Option<f64> {
    let f: f64 = s.parse().ok()?;
    if !f.is_finite() {
        return None;
    }
    let mut back = String::new();
    let _ = write!(back, "{f}");
    (normalize_decimal(s)? == normalize_decimal(&back)?).then_some(f)
}

/// `-0012.500` → `-12.5`, `-0.0` → `0`; None for anything but `[+-]digits[.digits]`.
fn normalize_decimal(s: &str) -> Option<String> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let mut out = String::with_capacity(s.len() + 1);
    if neg && !(int.is_empty() && frac.is_empty()) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    Some(out)
}

fn push_digits(out: &mut String, n: u32, width: usize) {
    let mut buf = [b'0'; 10];
    let mut i = buf.len();
    let mut n = n;
    while n > 0 || buf.len() - i < width {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// `YYYY-MM-DD` (years outside 0000–9999 as chrono prints them, e.g. `+10000-01-01`).
pub(crate) fn push_date(out: &mut String, d: NaiveDate) {
    match u32::try_from(d.year()) {
        Ok(y) if y <= 9999 => {
            push_digits(out, y, 4);
            out.push('-');
            push_digits(out, d.month(), 2);
            out.push('-');
            push_digits(out, d.day(), 2);
        }
        _ => {
            let _ = write!(out, "{}", d.format("%Y-%m-%d"));
        }
    }
}

/// `HH:MM:SS`, then `.fff`, `.ffffff` or `.fffffffff` only when the fraction is not zero.
pub(crate) fn push_time(out: &mut String, t: NaiveTime) {
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        // A leap second: rare enough for chrono's general formatter.
        let _ = write!(out, "{}", t.format("%H:%M:%S%.f"));
        return;
    }
    push_digits(out, t.hour(), 2);
    out.push(':');
    push_digits(out, t.minute(), 2);
    out.push(':');
    push_digits(out, t.second(), 2);
    if nanos != 0 {
        out.push('.');
        if nanos.is_multiple_of(1_000_000) {
            push_digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            push_digits(out, nanos / 1_000, 6);
        } else {
            push_digits(out, nanos, 9);
        }
    }
}

pub(crate) fn push_datetime(out: &mut String, dt: NaiveDateTime, sep: char) {
    push_date(out, dt.date());
    out.push(sep);
    push_time(out, dt.time());
}

/// `+HH:MM`; with `z`, UTC is written `Z`.
fn push_offset(out: &mut String, offset: FixedOffset, z: bool) {
    let secs = offset.local_minus_utc();
    if z && secs == 0 {
        out.push('Z');
        return;
    }
    out.push(if secs < 0 { '-' } else { '+' });
    let mins = secs.unsigned_abs() / 60;
    push_digits(out, mins / 60, 2);
    out.push(':');
    push_digits(out, mins % 60, 2);
}

// ---- parsing SQLite's date texts -------------------------------------------------------------

fn num(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
}

/// Exactly `YYYY-MM-DD`.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(
        i32::try_from(num(&b[..4])?).ok()?,
        num(&b[5..7])?,
        num(&b[8..])?,
    )
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.f` (1 to 9 fraction digits).
pub(crate) fn parse_time(s: &str) -> Option<NaiveTime> {
    let b = s.as_bytes();
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let (h, m) = (num(&b[..2])?, num(&b[3..5])?);
    if b.len() == 5 {
        return NaiveTime::from_hms_opt(h, m, 0);
    }
    if b.len() < 8 || b[5] != b':' {
        return None;
    }
    let sec = num(&b[6..8])?;
    let nanos = match &b[8..] {
        [] => 0,
        [b'.', frac @ ..] if !frac.is_empty() && frac.len() <= 9 => {
            num(frac)? * 10u32.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    NaiveTime::from_hms_nano_opt(h, m, sec, nanos)
}

/// A date-time as SQLite's date functions and common tools write it: `YYYY-MM-DD HH:MM[:SS[.f]]`,
/// with `T` or a space, optionally followed by `Z`, `±HH:MM`, `±HHMM` or `±HH`. With a zone it
/// becomes [`Cell::DateTimeTz`], without one [`Cell::DateTime`].
pub(crate) fn parse_datetime(s: &str) -> Option<Cell> {
    let b = s.as_bytes();
    if b.len() < 16 || !matches!(b[10], b' ' | b'T' | b't') {
        return None;
    }
    let date = parse_date(&s[..10])?;
    let rest = &s[11..];
    let zone_at = rest
        .bytes()
        .position(|c| matches!(c, b'Z' | b'z' | b'+' | b'-'))
        .unwrap_or(rest.len());
    let time = parse_time(&rest[..zone_at])?;
    let naive = date.and_time(time);
    let zone = &rest.as_bytes()[zone_at..];
    if zone.is_empty() {
        return Some(Cell::DateTime(naive));
    }
    let offset_secs = match zone {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), hm @ ..] => {
            let (h, m) = match hm {
                [h1, h2] => (num(&[*h1, *h2])?, 0),
                [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => (num(&[*h1, *h2])?, num(&[*m1, *m2])?),
                _ => return None,
            };
            let secs = i32::try_from(h * 3600 + m * 60).ok()?;
            if *sign == b'-' {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    let offset = FixedOffset::east_opt(offset_secs)?;
    naive
        .and_local_timezone(offset)
        .single()
        .map(Cell::DateTimeTz)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(c: &Cell) -> String {
        let mut s = String::new();
        c.write_text(&mut s);
        s
    }

    #[test]
    fn json_mapping() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let t = NaiveTime::from_hms_milli_opt(13, 45, 0, 250).unwrap();
        let utc = FixedOffset::east_opt(0).unwrap();
        let plus2 = FixedOffset::east_opt(7200).unwrap();
        let cases = [
            (Cell::Null, json!(null)),
            (Cell::Bool(true), json!(true)),
            (Cell::Int(42), json!(42)),
            (Cell::Int(MAX_SAFE_INTEGER), json!(MAX_SAFE_INTEGER)),
            (Cell::Int(MAX_SAFE_INTEGER + 1), json!("9007199254740992")),
            (Cell::Int(i64::MIN), json!("-9223372036854775808")),
            (Cell::Float(0.1), json!(0.1)),
            (Cell::Float(f64::NAN), json!("NaN")),
            (Cell::Float(f64::NEG_INFINITY), json!("-Infinity")),
            (Cell::Decimal("12.50".into()), json!(12.5)),
            (Cell::Decimal("-0.001".into()), json!(-0.001)),
            (
                Cell::Decimal("12345678901234567890.5".into()),
                json!("12345678901234567890.5"),
            ),
            (
                Cell::Decimal("0.1000000000000000000001".into()),
                json!("0.1000000000000000000001"),
            ),
            (Cell::Decimal("NaN".into()), json!("NaN")),
            (Cell::Text("é\"x".into()), json!("é\"x")),
            (Cell::Bytes(vec![0, 1, 2, 255]), json!("AAEC/w==")),
            (Cell::Date(d), json!("2024-03-01")),
            (Cell::Time(t), json!("13:45:00.250")),
            (
                Cell::DateTime(d.and_hms_opt(1, 2, 3).unwrap()),
                json!("2024-03-01T01:02:03"),
            ),
            (
                Cell::DateTimeTz(
                    d.and_hms_opt(1, 2, 3)
                        .unwrap()
                        .and_local_timezone(utc)
                        .unwrap(),
                ),
                json!("2024-03-01T01:02:03Z"),
            ),
            (
                Cell::DateTimeTz(d.and_time(t).and_local_timezone(plus2).unwrap()),
                json!("2024-03-01T13:45:00.250+02:00"),
            ),
            (Cell::Json(json!({"a": [1, "b"]})), json!({"a": [1, "b"]})),
        ];
        for (cell, want) in cases {
            assert_eq!(cell.clone().into_json(), want, "{cell:?}");
        }
    }

    #[test]
    fn csv_text() {
        let d = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let dt = d.and_hms_micro_opt(1, 2, 3, 4).unwrap();
        let minus3 = FixedOffset::west_opt(3 * 3600 + 30 * 60).unwrap();
        assert_eq!(text(&Cell::Null), "");
        assert_eq!(text(&Cell::Bool(false)), "false");
        assert_eq!(text(&Cell::Int(-7)), "-7");
        assert_eq!(text(&Cell::Float(0.1)), "0.1");
        assert_eq!(text(&Cell::Float(1.0)), "1");
        assert_eq!(text(&Cell::Float(1e300)), "1e300");
        assert_eq!(text(&Cell::Float(-2.5e-8)), "-2.5e-8");
        assert_eq!(text(&Cell::Float(123456.789)), "123456.789");
        assert_eq!(text(&Cell::Decimal("12.50".into())), "12.50");
        assert_eq!(text(&Cell::DateTime(dt)), "2024-03-01 01:02:03.000004");
        assert_eq!(
            text(&Cell::DateTimeTz(dt.and_local_timezone(minus3).unwrap())),
            "2024-03-01 01:02:03.000004-03:30"
        );
        assert_eq!(text(&Cell::Json(json!([1, "a,b"]))), r#"[1,"a,b"]"#);
        for f in [0.1, 1e300, 5e-324, f64::MAX, -1.0 / 3.0, 1e16, 123e-7] {
            assert_eq!(text(&Cell::Float(f)).parse::<f64>().unwrap(), f);
        }
    }

    #[test]
    fn parses_sqlite_date_texts() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(parse_date("2024-02-29"), Some(d));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2024-2-29"), None);
        assert_eq!(parse_time("07:08"), NaiveTime::from_hms_opt(7, 8, 0));
        assert_eq!(
            parse_time("07:08:09.5"),
            NaiveTime::from_hms_milli_opt(7, 8, 9, 500)
        );
        assert_eq!(parse_time("07:08:09."), None);
        let naive = d.and_hms_milli_opt(10, 11, 12, 345).unwrap();
        assert_eq!(
            parse_datetime("2024-02-29 10:11:12.345"),
            Some(Cell::DateTime(naive))
        );
        assert_eq!(
            parse_datetime("2024-02-29T10:11:12.345"),
            Some(Cell::DateTime(naive))
        );
        let tz = |secs| {
            Some(Cell::DateTimeTz(
                naive
                    .and_local_timezone(FixedOffset::east_opt(secs).unwrap())
                    .unwrap(),
            ))
        };
        assert_eq!(parse_datetime("2024-02-29T10:11:12.345Z"), tz(0));
        assert_eq!(parse_datetime("2024-02-29 10:11:12.345+05:30"), tz(19800));
        assert_eq!(parse_datetime("2024-02-29 10:11:12.345-0300"), tz(-10800));
        assert_eq!(parse_datetime("2024-02-29 10:11:12.345+01"), tz(3600));
        assert_eq!(parse_datetime("2024-02-29 10:11:12.345+1"), None);
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(
            parse_datetime("2024-02-29 10:11"),
            Some(Cell::DateTime(d.and_hms_opt(10, 11, 0).unwrap()))
        );
    }

    #[test]
    fn decimal_round_trip_rule() {
        assert_eq!(decimal_as_f64("0"), Some(0.0));
        assert_eq!(decimal_as_f64("-0.00"), Some(0.0));
        assert_eq!(decimal_as_f64("100"), Some(100.0));
        assert_eq!(decimal_as_f64("9007199254740993"), None);
        assert_eq!(decimal_as_f64("1e5"), None);
        assert_eq!(decimal_as_f64("Infinity"), None);
    }
}
