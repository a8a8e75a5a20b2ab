//! Schedules of `[schedule]` (SPEC §2.3): a crontab line, an English phrase or the five fields,
//! each compiled to one validated, normalized 5-field cron expression ([`CronExpr`]); its English
//! description; its next run times in a time zone; time-zone names.
//!
//! - Cron text is checked field by field with croner, so errors name the field and its range.
//!   Names (`jan`, `mon-fri`) become numbers, `?` becomes `*`, macros are expanded.
//! - English goes through english-to-cron, which is silently wrong on some phrases (it drops
//!   "weekday" and "first day of the month", reads "maybe" as May and "1st of the month" as
//!   January, accepts "25:00"). So the phrase is also read here, with a small strict vocabulary:
//!   every word must be known, and the five fields follow from the words (times, "every N
//!   minutes/hours", weekday and month names, "weekday(s)", "weekend(s)", ordinals such as "1st"
//!   or "first"; days without a time mean 00:00, as `@daily` does). english-to-cron must agree:
//!   every field it restricts must match the words; a field it leaves open while the words
//!   restrict it (its known failure) is taken from the words. Anything else is an error that says
//!   what was not understood, never a guessed schedule.
//! - Descriptions come from cron-descriptor (24-hour; the locale is passed on every call, as it is
//!   global state there), except where it misreads an expression (it drops the day of the week
//!   when a day of the month is set, garbles steps in day fields, leaves `{0}` in `15W`): there
//!   croner's own description is used.
//! - Daylight saving (croner, as SPEC §2.3 wants): a local time that does not exist that day runs
//!   at the first valid instant after it; a fixed time (one minute of one hour) that occurs twice
//!   runs once, at the first occurrence; other schedules run in both folds of the repeated hour.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use cron_descriptor::cronparser::{cron_expression_descriptor, Options};
use croner::{errors::CronError, Cron};
use serde::Deserialize;

/// One field of the five-field form: `"every"` (or `"*"`), `{ every = N }`, a value, or a list of
/// values. A value is an integer or a name (`"jan"`..`"dec"`, `"sun"`..`"sat"`, full names too, any
/// case); a text value may also be a range such as `"mon-fri"`, `"1-5"` or `"sat-sun"` (ranges of
/// names may wrap around). Days of the week are 0-6 from Sunday; 7 is Sunday too.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum FieldValue {
    Step { every: u32 },
    Number(i64),
    Text(String),
    List(Vec<FieldItem>),
}

/// One item of a [`FieldValue::List`]: a number, a name or a range.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum FieldItem {
    Number(i64),
    Text(String),
}

/// The five fields as written; `None` means every.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    pub minutes: Option<FieldValue>,
    pub hours: Option<FieldValue>,
    pub days_of_month: Option<FieldValue>,
    pub months: Option<FieldValue>,
    pub days_of_week: Option<FieldValue>,
}

/// Error in one field of the five-field form: the field's TOML key and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// A validated cron expression: always 5 fields separated by single spaces, numbers instead of
/// names, macros expanded (`@daily` is `0 0 * * *`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr(String);

impl CronExpr {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one cron field allows.
struct Spec {
    key: &'static str,
    label: &'static str,
    min: u8,
    max: u8,
    /// Names of the values from `min` on, space-separated.
    names: &'static str,
}

const fn spec(
    key: &'static str,
    label: &'static str,
    min: u8,
    max: u8,
    names: &'static str,
) -> Spec {
    Spec {
        key,
        label,
        min,
        max,
        names,
    }
}

const MONTH_NAMES: &str =
    "january february march april may june july august september october november december";
const DAY_NAMES: &str = "sunday monday tuesday wednesday thursday friday saturday";
const SPECS: [Spec; 5] = [
    spec("minutes", "minute", 0, 59, ""),
    spec("hours", "hour", 0, 23, ""),
    spec("days_of_month", "day-of-month", 1, 31, ""),
    spec("months", "month", 1, 12, MONTH_NAMES),
    spec("days_of_week", "day-of-week", 0, 7, DAY_NAMES),
];
const HOURS: usize = 1;
const DOM: usize = 2;
const MONTHS: usize = 3;
const DOW: usize = 4;

impl Spec {
    fn is_dom(&self) -> bool {
        self.key == "days_of_month"
    }

    fn is_dow(&self) -> bool {
        self.key == "days_of_week"
    }

    fn allowed(&self) -> String {
        match self.names {
            DAY_NAMES => "0-7 or sun-sat".to_string(),
            MONTH_NAMES => "1-12 or jan-dec".to_string(),
            _ => format!("{}-{}", self.min, self.max),
        }
    }

    /// A full name or its first three or more letters, any case.
    fn name(&self, word: &str) -> Option<u8> {
        let word = word.to_ascii_lowercase();
        let index = self
            .names
            .split(' ')
            .position(|n| word.len() >= 3 && n.starts_with(&word))?;
        u8::try_from(index).ok().map(|i| i + self.min)
    }

    fn number(&self, n: i64) -> Result<u8, String> {
        u8::try_from(n)
            .ok()
            .filter(|v| (self.min..=self.max).contains(v))
            .ok_or_else(|| format!("{n} is out of range (allowed {})", self.allowed()))
    }

    fn value(&self, text: &str) -> Result<u8, String> {
        let text = text.trim();
        match text.parse::<i64>() {
            Ok(n) => self.number(n),
            Err(_) => self.name(text).ok_or_else(|| {
                format!(
                    "\"{text}\" is not a valid {} (allowed {})",
                    self.label,
                    self.allowed()
                )
            }),
        }
    }

    /// `a..=b`; ranges of names may wrap around (`fri-mon`, `nov-feb`); 7 becomes 0 (sunday).
    fn span(&self, a: u8, b: u8) -> Result<BTreeSet<u8>, String> {
        let mut set: BTreeSet<u8> = if a <= b {
            (a..=b).collect()
        } else if !self.names.is_empty() {
            (a..=self.max).chain(self.min..=b).collect()
        } else {
            return Err(format!("range {a}-{b} goes backwards"));
        };
        if self.is_dow() && set.remove(&7) {
            set.insert(0);
        }
        Ok(set)
    }

    /// Values of a value or a range `a-b`.
    fn items(&self, text: &str) -> Result<BTreeSet<u8>, String> {
        match text.split_once('-') {
            Some((a, b)) => self.span(self.value(a)?, self.value(b)?),
            None => {
                let v = self.value(text)?;
                self.span(v, v)
            }
        }
    }

    /// Every value a plain cron field selects (`*`, lists, ranges, steps, names), if readable.
    fn expand(&self, field: &str) -> Option<BTreeSet<u8>> {
        let top = if self.is_dow() { 6 } else { self.max };
        let mut set = BTreeSet::new();
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, s.parse::<usize>().ok().filter(|s| *s > 0)?),
                None => (item, 1),
            };
            let (lo, hi) = match range.split_once('-') {
                _ if range == "*" || range == "?" => (self.min, top),
                Some((a, b)) => (self.value(a).ok()?, self.value(b).ok()?),
                None => {
                    let v = self.value(range).ok()?;
                    (v, if step > 1 { top } else { v })
                }
            };
            match (lo <= hi, step) {
                (true, _) => set.extend((lo..=hi).step_by(step)),
                (false, 1) => set.extend(self.span(lo, hi).ok()?),
                (false, _) => return None,
            }
        }
        if self.is_dow() && set.remove(&7) {
            set.insert(0);
        }
        Some(set)
    }
}

/// Sorted values, runs of three or more as ranges: `{1,2,3,4,5}` is `1-5`, `{0,5,6}` is `0,5,6`.
fn render(values: &BTreeSet<u8>) -> String {
    let values: Vec<u8> = values.iter().copied().collect();
    let mut parts = Vec::new();
    for run in values.chunk_by(|a, b| a + 1 == *b) {
        match run {
            [first, .., last] if run.len() >= 3 => parts.push(format!("{first}-{last}")),
            _ => parts.extend(run.iter().map(u8::to_string)),
        }
    }
    parts.join(",")
}

fn croner_message(e: &CronError) -> String {
    let text = match e {
        CronError::ComponentError(m) | CronError::InvalidPattern(m) => m.clone(),
        CronError::IllegalCharacters(_) => "illegal character".to_string(),
        other => other.to_string(),
    };
    let text = text.trim_end_matches('.');
    let mut chars = text.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_lowercase().chain(chars).collect())
}

/// Validates five normalized fields with croner (one field at a time, so errors name it), and
/// checks that the expression ever runs (`0 0 31 2 *` does not).
fn check(parts: &[String]) -> Result<CronExpr, String> {
    for (i, (spec, part)) in SPECS.iter().zip(parts).enumerate() {
        let mut probe = ["*"; 5];
        probe[i] = part;
        if let Err(e) = probe.join(" ").parse::<Cron>() {
            let (label, allowed) = (spec.label, spec.allowed());
            return Err(format!(
                "{label} field \"{part}\": {} (allowed {allowed})",
                croner_message(&e)
            ));
        }
    }
    let text = parts.join(" ");
    let cron = text
        .parse::<Cron>()
        .map_err(|e| format!("\"{text}\": {}", croner_message(&e)))?;
    cron.find_next_occurrence(&DateTime::<Utc>::UNIX_EPOCH, false)
        .map_err(|_| format!("\"{text}\" never runs: none of its months has that day"))?;
    Ok(CronExpr(text))
}

const MACROS: [(&str, &str); 7] = [
    ("hourly", "0 * * * *"),
    ("daily", "0 0 * * *"),
    ("midnight", "0 0 * * *"),
    ("weekly", "0 0 * * 0"),
    ("monthly", "0 0 1 * *"),
    ("yearly", "0 0 1 1 *"),
    ("annually", "0 0 1 1 *"),
];

/// A standard 5-field crontab line (`minute hour day-of-month month day-of-week`, names allowed in
/// the month and day-of-week fields, `L`/`W`/`#` as croner knows them) or one of `@hourly`,
/// `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly`, `@annually`.
pub fn parse_cron(expr: &str) -> Result<CronExpr, String> {
    let expr = expr.trim();
    let body = match expr.strip_prefix('@') {
        Some(name) => MACROS
            .iter()
            .find(|(m, _)| m.eq_ignore_ascii_case(name))
            .map(|(_, e)| *e)
            .ok_or_else(|| {
                let known = "@hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually";
                format!("unknown macro \"{expr}\" (use one of {known})")
            })?,
        None => expr,
    };
    let raw: Vec<&str> = body.split_whitespace().collect();
    if raw.len() != 5 {
        let extra = if raw.len() > 5 {
            "; seconds and years are not supported"
        } else {
            ""
        };
        let fields = "minute hour day-of-month month day-of-week";
        let n = raw.len();
        return Err(format!(
            "\"{expr}\" has {n} fields, a cron expression has 5: {fields}{extra}"
        ));
    }
    let parts = SPECS
        .iter()
        .zip(raw)
        .map(|(spec, field)| normalize_field(spec, field))
        .collect::<Result<Vec<_>, _>>()?;
    check(&parts)
}

/// Lower-cases a cron field and turns names into numbers (`sun` after `-` is 7, as croner does).
fn normalize_field(spec: &Spec, field: &str) -> Result<String, String> {
    let field = field.to_ascii_lowercase();
    let label = spec.label;
    if field.split(',').any(str::is_empty) {
        return Err(format!("{label} field \"{field}\" has an empty list item"));
    }
    if field == "?" && (spec.is_dom() || spec.is_dow()) {
        return Ok("*".to_string());
    }
    let mut out = String::new();
    let mut word = String::new();
    for c in field.chars().chain([' ']) {
        if c.is_ascii_alphabetic() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            match (spec.name(&word), word.as_str()) {
                (Some(0), _) if spec.is_dow() && out.ends_with('-') => out.push('7'),
                (Some(v), _) => out.push_str(&v.to_string()),
                (None, "l") if spec.is_dom() || spec.is_dow() => out.push('L'),
                (None, "w" | "lw") if spec.is_dom() => out.push_str(&word.to_uppercase()),
                _ => {
                    return Err(format!(
                        "{label} field \"{field}\": unknown name \"{word}\""
                    ))
                }
            }
            word.clear();
        }
        if c != ' ' {
            out.push(c);
        }
    }
    Ok(out)
}

fn compile_field(spec: &Spec, value: Option<&FieldValue>) -> Result<String, String> {
    let items = match value {
        None => return Ok("*".to_string()),
        Some(FieldValue::Step { every }) => {
            return match every {
                0 => Err("every = 0: the step must be at least 1".to_string()),
                1 => Ok("*".to_string()),
                n if *n <= u32::from(spec.max) => Ok(format!("*/{n}")),
                n => Err(format!("every = {n} is more than {}", spec.max)),
            };
        }
        Some(FieldValue::Text(t)) if t.trim() == "*" || t.trim().eq_ignore_ascii_case("every") => {
            return Ok("*".to_string());
        }
        Some(FieldValue::List(items)) if items.is_empty() => {
            return Err("empty list: leave the field out or write \"every\"".to_string());
        }
        Some(FieldValue::Text(t)) => vec![FieldItem::Text(t.clone())],
        Some(FieldValue::Number(n)) => vec![FieldItem::Number(*n)],
        Some(FieldValue::List(items)) => items.clone(),
    };
    let mut set = BTreeSet::new();
    for item in items {
        set.extend(match item {
            FieldItem::Number(n) => spec.number(n).and_then(|v| spec.span(v, v))?,
            FieldItem::Text(t) => spec.items(&t)?,
        });
    }
    Ok(render(&set))
}

/// Compiles the five-field form to one expression. Note that, as in every cron, a day of the month
/// together with a day of the week means either of them.
pub fn from_fields(fields: &Fields) -> Result<CronExpr, FieldError> {
    let values = [
        &fields.minutes,
        &fields.hours,
        &fields.days_of_month,
        &fields.months,
        &fields.days_of_week,
    ];
    let mut parts = Vec::with_capacity(5);
    for (spec, value) in SPECS.iter().zip(values) {
        let part = compile_field(spec, value.as_ref()).map_err(|message| FieldError {
            field: spec.key,
            message,
        })?;
        parts.push(part);
    }
    // Every field is in range by now: the one failure left is a day that no chosen month has.
    check(&parts).map_err(|message| FieldError {
        field: SPECS[DOM].key,
        message,
    })
}

/// What the words of an English phrase say.
#[derive(Default)]
struct Reading {
    times: Vec<(u8, u8)>,
    every_minutes: Option<u32>,
    every_hours: Option<u32>,
    /// Indexed like [`SPECS`]; only the day fields are used.
    days: [BTreeSet<u8>; 5],
    daily: bool,
    /// Where times (`HOURS`) and days (their field) were named, in order.
    order: Vec<usize>,
}

impl Reading {
    /// "monday at 9am and friday at 5pm" pairs times with days, which one cron expression cannot.
    fn note(&mut self, kind: usize) -> Result<(), String> {
        if self.order.last() != Some(&kind) && self.order.contains(&kind) {
            return Err("it pairs different times with different days".to_string());
        }
        self.order.push(kind);
        Ok(())
    }

    fn add_time(&mut self, time: (u8, u8)) -> Result<(), String> {
        self.note(HOURS)?;
        self.times.push(time);
        Ok(())
    }

    fn add_days(&mut self, field: usize, values: BTreeSet<u8>) -> Result<(), String> {
        self.note(field)?;
        self.days[field].extend(values);
        Ok(())
    }
}

fn tokens(text: &str) -> Vec<String> {
    let lower = text
        .to_lowercase()
        .replace('-', " to ")
        .replace(',', " and ");
    let mut out: Vec<String> = Vec::new();
    for t in lower
        .split(|c: char| c.is_whitespace() || c == '.')
        .filter(|t| !t.is_empty())
    {
        match out.last_mut() {
            Some(prev)
                if (t == "am" || t == "pm")
                    && prev.bytes().all(|b| b.is_ascii_digit() || b == b':') =>
            {
                prev.push_str(t);
            }
            _ => out.push(t.to_string()),
        }
    }
    out
}

/// `9am`, `9:15pm`, `18:30`, `09:00`; `None` if the token is not shaped like a time.
fn clock_time(t: &str) -> Result<Option<(u8, u8)>, String> {
    let (body, pm) = match (t.strip_suffix("am"), t.strip_suffix("pm")) {
        (Some(b), _) => (b, Some(false)),
        (_, Some(b)) => (b, Some(true)),
        _ => (t, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (h, m) = match body.split_once(':') {
        Some((h, m)) if digits(h) && digits(m) && m.len() == 2 => (h, m),
        None if digits(body) && pm.is_some() => (body, "0"),
        _ => return Ok(None),
    };
    let bad = || format!("\"{t}\" is not a time of day (00:00-23:59, or 1-12 with am/pm)");
    let (h, m) = (
        h.parse::<u8>().map_err(|_| bad())?,
        m.parse::<u8>().map_err(|_| bad())?,
    );
    let h = match pm {
        None if h <= 23 => h,
        Some(pm) if (1..=12).contains(&h) => h % 12 + if pm { 12 } else { 0 },
        _ => return Err(bad()),
    };
    if m > 59 {
        return Err(bad());
    }
    Ok(Some((h, m)))
}

/// `1st`..`31st` or `first`; `None` if the token is not an ordinal.
fn ordinal(t: &str) -> Result<Option<u8>, String> {
    if t == "first" {
        return Ok(Some(1));
    }
    let number = ["st", "nd", "rd", "th"]
        .iter()
        .find_map(|s| t.strip_suffix(s));
    match number {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => SPECS[DOM]
            .number(n.parse().unwrap_or(0))
            .map(Some)
            .map_err(|_| format!("\"{t}\" is not a day of the month (1st-31st)")),
        _ => Ok(None),
    }
}

fn set_step(slot: &mut Option<u32>, n: u32) -> Result<(), String> {
    match slot.replace(n) {
        Some(_) => Err("it repeats twice".to_string()),
        None => Ok(()),
    }
}

/// A weekday (`monday`, `mon`, `mondays`) or a month name.
fn day_or_month(t: &str) -> Option<(usize, u8)> {
    let weekday = SPECS[DOW]
        .name(t)
        .or_else(|| t.strip_suffix('s').and_then(|s| SPECS[DOW].name(s)));
    weekday
        .map(|v| (DOW, v))
        .or_else(|| SPECS[MONTHS].name(t).map(|v| (MONTHS, v)))
}

fn read(tokens: &[String]) -> Result<Reading, String> {
    const SECONDS: &str = "seconds are not supported, the smallest step is a minute";
    let mut r = Reading::default();
    let mut i = 0;
    while let Some(t) = tokens.get(i).map(String::as_str) {
        let next = tokens.get(i + 1).map(String::as_str);
        i += 1;
        match t {
            "every" | "each" | "at" | "on" | "in" | "the" | "of" | "and" | "run" | "only"
            | "month" => {}
            "day" | "days" | "daily" => r.daily = true,
            "minute" | "min" => set_step(&mut r.every_minutes, 1)?,
            "hour" | "hourly" => set_step(&mut r.every_hours, 1)?,
            "noon" => r.add_time((12, 0))?,
            "midnight" => r.add_time((0, 0))?,
            "weekday" | "weekdays" => r.add_days(DOW, (1..=5).collect())?,
            "weekend" | "weekends" => r.add_days(DOW, [0, 6].into())?,
            "second" | "seconds" | "sec" | "secs" => return Err(SECONDS.to_string()),
            "to" | "through" | "thru" => {
                return Err(format!("\"{t}\" is only understood between days or months"))
            }
            _ if t.bytes().all(|b| b.is_ascii_digit()) => {
                i += 1;
                let n = t
                    .parse::<u32>()
                    .map_err(|_| format!("\"{t}\" is too large"))?;
                match next {
                    Some("minutes" | "minute" | "mins" | "min") => {
                        set_step(&mut r.every_minutes, n)?
                    }
                    Some("hours" | "hour" | "hrs") => set_step(&mut r.every_hours, n)?,
                    Some("seconds" | "second" | "secs" | "sec") => return Err(SECONDS.to_string()),
                    Some(unit @ ("days" | "weeks" | "months" | "years")) => {
                        return Err(format!("\"{t} {unit}\": only minutes and hours repeat"))
                    }
                    _ => {
                        return Err(format!(
                            "\"{t}\" alone is not a time or a day (9am, 09:00, 9th)"
                        ))
                    }
                }
            }
            _ => {
                if let Some(time) = clock_time(t)? {
                    r.add_time(time)?;
                } else if let Some(day) = ordinal(t)? {
                    if let Some((DOW, _)) = next.and_then(day_or_month) {
                        return Err(format!(
                            "\"{t} {}\": n-th weekdays are not supported",
                            next.unwrap_or("")
                        ));
                    }
                    r.add_days(DOM, [day].into())?;
                } else if let Some((field, a)) = day_or_month(t) {
                    let to = matches!(next, Some("to" | "through" | "thru"));
                    let (b, skip) = match tokens.get(i + 1).and_then(|w| day_or_month(w)) {
                        Some((f, b)) if to && f == field => (b, 2),
                        _ => (a, 0),
                    };
                    r.add_days(field, SPECS[field].span(a, b)?)?;
                    i += skip;
                } else {
                    return Err(format!("\"{t}\" is not a word it knows"));
                }
            }
        }
    }
    Ok(r)
}

/// The five fields the words say.
fn compile_reading(r: &Reading) -> Result<Vec<String>, String> {
    let has_days = r.daily || r.days.iter().any(|d| !d.is_empty());
    let step = |n: u32| {
        if n == 1 {
            "*".to_string()
        } else {
            format!("*/{n}")
        }
    };
    let (minute, hour) = match (r.times.as_slice(), r.every_minutes, r.every_hours) {
        ([], None, None) if has_days => ("0".to_string(), "0".to_string()),
        ([], None, None) => return Err("it names no time, repetition or day".to_string()),
        ([], Some(n), None) if n > 0 && n < 60 && 60 % n == 0 => (step(n), "*".to_string()),
        ([], None, Some(n)) if n > 0 && n < 24 && 24 % n == 0 => ("0".to_string(), step(n)),
        ([], Some(n), None) => {
            return Err(format!(
            "every {n} minutes: use 1, 2, 3, 4, 5, 6, 10, 12, 15, 20 or 30, which divide the hour"
        ))
        }
        ([], None, Some(n)) => {
            return Err(format!(
                "every {n} hours: use 1, 2, 3, 4, 6, 8 or 12, which divide the day"
            ))
        }
        (times, None, None) => {
            let hours: BTreeSet<u8> = times.iter().map(|t| t.0).collect();
            let minutes: BTreeSet<u8> = times.iter().map(|t| t.1).collect();
            let distinct: BTreeSet<&(u8, u8)> = times.iter().collect();
            if hours.len() * minutes.len() != distinct.len() {
                return Err("those times cannot be one cron expression".to_string());
            }
            (render(&minutes), render(&hours))
        }
        _ => return Err("it mixes repetitions and times of day".to_string()),
    };
    if !r.days[DOM].is_empty() && !r.days[DOW].is_empty() {
        return Err("days of the month and of the week together would run on either".to_string());
    }
    let day = |set: &BTreeSet<u8>| {
        if set.is_empty() {
            "*".to_string()
        } else {
            render(set)
        }
    };
    Ok(vec![
        minute,
        hour,
        day(&r.days[DOM]),
        day(&r.days[MONTHS]),
        day(&r.days[DOW]),
    ])
}

/// english-to-cron's 7-field Quartz output must agree with the words in every field it restricts.
fn agree(words: &[String], quartz: &str) -> Result<(), String> {
    let parts: Vec<&str> = quartz.split_whitespace().collect();
    let fields = match parts.as_slice() {
        ["0", rest @ .., "*"] if rest.len() == 5 => rest,
        _ => {
            return Err(format!(
                "english-to-cron read it as \"{quartz}\" (seconds or years)"
            ))
        }
    };
    for (i, (spec, (mine, theirs))) in SPECS.iter().zip(words.iter().zip(fields)).enumerate() {
        // Quartz numbers weekdays from 1 = Sunday; english-to-cron writes names, digits are odd.
        let their_set = match i {
            DOW if theirs.bytes().any(|b| b.is_ascii_digit()) => None,
            _ => spec.expand(theirs),
        };
        if their_set != spec.expand(mine) && their_set != spec.expand("*") {
            let label = spec.label;
            return Err(format!(
                "english-to-cron reads the {label} as \"{theirs}\", the words as \"{mine}\""
            ));
        }
    }
    Ok(())
}

/// An English phrase such as "every weekday at 18:30"; see the module notes for how it is checked.
pub fn from_english(text: &str) -> Result<CronExpr, String> {
    let fail = |why: String| {
        let hint = "try e.g. \"every day at 9am\" or use cron = \"...\"";
        format!(
            "could not understand \"{}\" as a schedule ({why}); {hint}",
            text.trim()
        )
    };
    let tokens = tokens(text);
    let words = read(&tokens)
        .and_then(|r| compile_reading(&r))
        .map_err(fail)?;
    let phrase = tokens.join(" ").replace("daily", "every day");
    let quartz = english_to_cron::str_cron_syntax(&phrase)
        .map_err(|_| fail("english-to-cron could not read it".to_string()))?;
    agree(&words, &quartz).map_err(fail)?;
    check(&words).map_err(fail)
}

/// English description, 24-hour clock ("At 00:00, every day", "Every hour, only on Monday").
pub fn describe(expr: &CronExpr) -> String {
    let fields: Vec<&str> = expr.0.split(' ').collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or("*");
    let (hour, dom, dow) = (field(HOURS), field(DOM), field(DOW));
    let misread = (dom != "*" && dow != "*") || dom.contains('/') || dow.contains('/');
    let options = Options::twenty_four_hour();
    let described =
        cron_expression_descriptor::get_description_cron_options_locale(&expr.0, &options, "en")
            .ok()
            .filter(|d| !misread && !d.contains('{') && !d.contains("en."));
    match described {
        Some(d) if !hour.contains('*') && [dom, field(MONTHS), dow] == ["*"; 3] => {
            format!("{d}, every day")
        }
        Some(d) => d,
        None => expr.0.parse::<Cron>().map_or_else(
            |_| expr.0.clone(),
            |c| c.describe().trim_end_matches('.').to_string(),
        ),
    }
}

/// The next `count` runs strictly after `after`, in `tz` (daylight saving as in the module notes).
pub fn next_runs(expr: &CronExpr, tz: Tz, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Tz>> {
    match expr.0.parse::<Cron>() {
        Ok(cron) => cron
            .iter_after(after.with_timezone(&tz))
            .take(count)
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// An IANA time-zone name such as "America/Montevideo"; the error suggests close names.
pub fn parse_timezone(name: &str) -> Result<Tz, String> {
    let name = name.trim();
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    let wanted = name.to_lowercase().replace(' ', "_");
    let mut close: Vec<(usize, &str)> = chrono_tz::TZ_VARIANTS
        .iter()
        .map(|tz| {
            let full = tz.name().to_lowercase();
            let city = full.rsplit('/').next().unwrap_or_default();
            (
                edit_distance(&wanted, &full).min(edit_distance(&wanted, city)),
                tz.name(),
            )
        })
        .filter(|(d, _)| *d < wanted.len() && *d <= 2.max(wanted.len() / 4))
        .collect();
    close.sort();
    let names: Vec<String> = close
        .iter()
        .take(3)
        .map(|(_, n)| format!("\"{n}\""))
        .collect();
    match names.as_slice() {
        [] => Err(format!(
            "unknown time zone \"{name}\" (use an IANA name such as \"Europe/Berlin\" or \"UTC\")"
        )),
        _ => Err(format!(
            "unknown time zone \"{name}\"; did you mean {}?",
            names.join(" or ")
        )),
    }
}

/// The five-field form from command-line pairs such as `minutes=0 hours=9 days_of_week=mon,fri
/// months=*/3`: `every` or `*`, `*/N` for `{ every = N }`, a comma list, or one value.
pub fn fields_from_pairs(pairs: &[String]) -> Result<Fields, String> {
    let mut fields = Fields::default();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: expected KEY=VALUE, e.g. hours=9"))?;
        let slot = match key.trim() {
            "minutes" => &mut fields.minutes,
            "hours" => &mut fields.hours,
            "days_of_month" => &mut fields.days_of_month,
            "months" => &mut fields.months,
            "days_of_week" => &mut fields.days_of_week,
            other => {
                return Err(format!(
                    "unknown field {other:?}: use minutes, hours, days_of_month, months or days_of_week"
                ))
            }
        };
        *slot = Some(parse_field_arg(value.trim())?);
    }
    Ok(fields)
}

fn parse_field_arg(value: &str) -> Result<FieldValue, String> {
    let item = |v: &str| match v.parse::<i64>() {
        Ok(n) => FieldItem::Number(n),
        Err(_) => FieldItem::Text(v.to_owned()),
    };
    if let Some(step) = value.strip_prefix("*/") {
        let every = step
            .parse::<u32>()
            .map_err(|_| format!("{value:?}: the step after */ must be a whole number"))?;
        return Ok(FieldValue::Step { every });
    }
    if value.contains(',') {
        return Ok(FieldValue::List(
            value.split(',').map(|v| item(v.trim())).collect(),
        ));
    }
    Ok(match item(value) {
        FieldItem::Number(n) => FieldValue::Number(n),
        FieldItem::Text(t) => FieldValue::Text(t),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America::New_York, Europe::Berlin};

    /// One case a line, `input => expected`: the expression, or `error: ` and part of the message.
    fn check<E: fmt::Display>(table: &str, f: impl Fn(&str) -> Result<CronExpr, E>) {
        for line in table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
        {
            let (input, expected) = line
                .split_once(" => ")
                .unwrap_or((line, "(no expectation)"));
            let input = input.trim().trim_matches('|');
            match (
                f(input).map_err(|e| e.to_string()),
                expected.strip_prefix("error: "),
            ) {
                (Ok(got), None) => assert_eq!(got.as_str(), expected, "{input}"),
                (Err(got), Some(want)) => {
                    assert!(got.contains(want), "{input}: {got:?} lacks {want:?}")
                }
                (got, _) => panic!("{input}: got {got:?}, want {expected:?}"),
            }
        }
    }

    #[test]
    fn english() {
        check(
            r#"
            every day at 9am                        => 0 9 * * *
            Every day at 4:00 PM                    => 0 16 * * *
            at 10:00 am                             => 0 10 * * *
            daily at 9am                            => 0 9 * * *
            every day                               => 0 0 * * *
            daily                                   => 0 0 * * *
            at midnight                             => 0 0 * * *
            every day at noon                       => 0 12 * * *
            every day at 12am                       => 0 0 * * *
            at 12:30am                              => 30 0 * * *
            every day at 23:59                      => 59 23 * * *
            every minute                            => * * * * *
            every 5 minutes                         => */5 * * * *
            every 15 minutes                        => */15 * * * *
            every hour                              => 0 * * * *
            hourly                                  => 0 * * * *
            every 2 hours                           => 0 */2 * * *
            every 12 hours                          => 0 */12 * * *
            every monday at 9am                     => 0 9 * * 1
            on Sunday at 12:00                      => 0 12 * * 0
            7pm every Thursday                      => 0 19 * * 4
            midnight on Tuesdays                    => 0 0 * * 2
            every tuesday                           => 0 0 * * 2
            every monday and friday at 9am and 5pm  => 0 9,17 * * 1,5
            monday to friday at 9am                 => 0 9 * * 1-5
            mon-fri at 9am                          => 0 9 * * 1-5
            every friday to monday at 8am           => 0 8 * * 0,1,5,6
            every weekday at 18:30                  => 30 18 * * 1-5
            at 5pm on weekdays                      => 0 17 * * 1-5
            every weekend at 10am                   => 0 10 * * 0,6
            every minute on mondays                 => * * * * 1
            every 2 hours on monday                 => 0 */2 * * 1
            on the first day of the month at 9:00   => 0 9 1 * *
            on the 15th at noon                     => 0 12 15 * *
            on the 1st and 15th at 9:00             => 0 9 1,15 * *
            at midnight on the 1st and 15th of the month => 0 0 1,15 * *
            the 31st of december at 23:59           => 59 23 31 12 *
            every day at 9am in january and july    => 0 9 * 1,7 *
            every day at 9am january to march       => 0 9 * 1-3 *
            every 30 minutes in december            => */30 * * 12 *
            at 9am, 12pm and 3pm                    => 0 9,12,15 * * *
            // Not schedules, or english-to-cron reads them wrong.
            sometimes maybe                         => error: ("sometimes" is not a word it knows)
            tomorrow                                => error: "tomorrow" is not a word it knows
            hello world                             => error: "hello" is not a word it knows
            at 25:00                                => error: "25:00" is not a time of day
            at 9:60                                 => error: "9:60" is not a time of day
            at 13pm                                 => error: "13pm" is not a time of day
            at 9                                    => error: "9" alone is not a time or a day
            on december 25 at 8am                   => error: "25" alone
            on the 32nd at 9am                      => error: "32nd" is not a day of the month
            on the 1st of the month at 9:00         => error: reads the month as "1", the words
            every hour on weekdays                  => error: reads the hour as "0", the words
            every weekday and saturday at 7am       => error: day-of-week as "?-SAT"
            at 8:00 and 8:30                        => error: reads the minute as "0"
            at 9am, 1:30pm                          => error: those times cannot be one cron
            monday at 9am and friday at 5pm         => error: pairs different times with
            every 7 minutes                         => error: every 7 minutes: use 1, 2, 3
            every 0 minutes                         => error: every 0 minutes
            every 90 minutes                        => error: every 90 minutes
            every 5 hours                           => error: every 5 hours: use 1, 2, 3, 4, 6, 8
            every 3 days                            => error: "3 days": only minutes and hours
            every 2 months at 9am                   => error: "2 months"
            every 15 seconds                        => error: seconds are not supported
            every second                            => error: seconds are not supported
            every month                             => error: it names no time, repetition or day
            ||                                      => error: it names no time, repetition or day
            every hour at 9am                       => error: mixes repetitions and times of day
            first monday of the month               => error: n-th weekdays are not supported
            every monday on the 1st at 9am          => error: would run on either
            at 9am every day except sunday          => error: "except" is not a word it knows
            every 10 minutes between 9am and 5pm    => error: "between" is not a word
            at 9am to 5pm                           => error: "to" is only understood between days
            at 9am on the 30th of february          => error: never runs
            "#,
            from_english,
        );
        assert_eq!(
            from_english(" sometimes maybe "),
            Err(
                "could not understand \"sometimes maybe\" as a schedule (\"sometimes\" is not a \
                 word it knows); try e.g. \"every day at 9am\" or use cron = \"...\""
                    .to_string()
            )
        );
    }

    #[test]
    fn cron_text() {
        check(
            r#"
            0 9 * * *               => 0 9 * * *
            |  0   9 *  * *  |      => 0 9 * * *
            */15 9-17 * * 1-5       => */15 9-17 * * 1-5
            0 9 * * MON-FRI         => 0 9 * * 1-5
            0 9 * jan,Jul *         => 0 9 * 1,7 *
            0 0 * * sat-sun         => 0 0 * * 6-7
            0 9 ? * mon             => 0 9 * * 1
            0 9 L * *               => 0 9 L * *
            0 9 * * 5l              => 0 9 * * 5L
            0 9 * * 1#2             => 0 9 * * 1#2
            0 0 29 2 *              => 0 0 29 2 *
            @hourly                 => 0 * * * *
            @DAILY                  => 0 0 * * *
            @midnight               => 0 0 * * *
            @weekly                 => 0 0 * * 0
            @monthly                => 0 0 1 * *
            @yearly                 => 0 0 1 1 *
            @annually               => 0 0 1 1 *
            @reboot                 => error: unknown macro "@reboot"
            61 * * * *              => error: minute field "61": number out of bounds (allowed 0-59)
            0 24 * * *              => error: hour field "24": number out of bounds (allowed 0-23)
            0 0 32 * *              => error: day-of-month field "32": number out of bounds
            0 0 0 * *               => error: day-of-month field "0"
            0 0 * 13 *              => error: month field "13": number out of bounds (allowed 1-12
            0 0 * * 8               => error: day-of-week field "8": number out of bounds (allowed
            0 0 * mon *             => error: month field "mon": unknown name "mon"
            5-1 * * * *             => error: minute field "5-1"
            */0 * * * *             => error: step cannot be zero
            0/15 * * * *            => error: Use "*/15" for wildcard steps
            1,,2 * * * *            => error: empty list item
            0 0 * * %               => error: day-of-week field "%": illegal character (allowed 0-7
            0 0 31 2 *              => error: "0 0 31 2 *" never runs
            * * * *                 => error: has 4 fields, a cron expression has 5
            0 0 0 * * *             => error: seconds and years are not supported
            ||                      => error: has 0 fields
            a b c d e               => error: minute field "a": unknown name "a"
            "#,
            parse_cron,
        );
    }

    #[derive(Deserialize)]
    struct Form {
        minutes: Option<FieldValue>,
        hours: Option<FieldValue>,
        days_of_month: Option<FieldValue>,
        months: Option<FieldValue>,
        days_of_week: Option<FieldValue>,
    }

    /// The five fields as TOML keys and values, e.g. `minutes = 0, hours = { every = 2 }`.
    fn from_toml(keys: &str) -> Result<CronExpr, FieldError> {
        #[derive(Deserialize)]
        struct Schedule {
            s: Form,
        }
        let form = toml::from_str::<Schedule>(&format!("s = {{ {keys} }}"))
            .expect("test TOML")
            .s;
        from_fields(&Fields {
            minutes: form.minutes,
            hours: form.hours,
            days_of_month: form.days_of_month,
            months: form.months,
            days_of_week: form.days_of_week,
        })
    }

    #[test]
    fn five_fields() {
        check(
            r#"
            minutes = 0, hours = 0                          => 0 0 * * *
            minutes = 0, days_of_week = ["mon"]             => 0 * * * 1
            minutes = 0, days_of_week = "Monday"            => 0 * * * 1
            minutes = 0, hours = 9, days_of_month = 1       => 0 9 1 * *
            ||                                              => * * * * *
            minutes = "every", hours = "*"                  => * * * * *
            minutes = 30, hours = { every = 2 }             => 30 */2 * * *
            minutes = { every = 1 }                         => * * * * *
            minutes = [0, 15, 30, 45]                       => 0,15,30,45 * * * *
            minutes = ["1-3", 10, "5"]                      => 1-3,5,10 * * * *
            hours = "9-17"                                  => * 9-17 * * *
            months = ["jan", "JUL"]                         => * * * 1,7 *
            months = ["december", 1]                        => * * * 1,12 *
            months = "nov-feb"                              => * * * 1,2,11,12 *
            days_of_week = "mon-fri"                        => * * * * 1-5
            days_of_week = [5, 6, 7]                        => * * * * 0,5,6
            days_of_week = 7                                => * * * * 0
            days_of_week = "sat-sun"                        => * * * * 0,6
            days_of_month = [1, 15], days_of_week = "fri"   => * * 1,15 * 5
            minutes = 60                                    => error: minutes: 60 is out of range
            hours = -1                                      => error: hours: -1 is out of range
            hours = "*/3"                                   => error: hours: "*/3" is not a valid
            hours = "17-9"                                  => error: hours: range 17-9 goes
            days_of_month = 0                               => error: days_of_month: 0 is out of
            months = 13                                     => error: months: 13 is out of range
            months = "janvier"                              => error: months: "janvier" is not a
            days_of_week = 8                                => error: days_of_week: 8 is out of
            days_of_week = ["mon", "funday"]                => error: days_of_week: "funday" is not
            days_of_week = []                               => error: days_of_week: empty list
            hours = { every = 0 }                           => error: hours: every = 0
            minutes = { every = 61 }                        => error: minutes: every = 61 is more
            days_of_month = 31, months = "feb"              => error: days_of_month: "* * 31 2 *"
            "#,
            from_toml,
        );
    }

    #[test]
    fn descriptions() {
        // The locale is global in cron-descriptor: a Spanish call elsewhere must not leak in.
        let spanish = cron_expression_descriptor::get_description_cron_locale("0 0 * * *", "es");
        assert!(spanish.is_ok_and(|d| d.starts_with("En")));
        let table = r#"
            0 0 * * *       => At 00:00, every day
            0 * * * 1       => Every hour, only on Monday
            0 9 1 * *       => At 09:00, on day 1 of the month
            */15 * * * *    => Every 15 minutes
            0 8,17 * * *    => At 08:00 and 17:00, every day
            30 18 * * 1-5   => At 18:30, Monday through Friday
            0 9 * 7 *       => At 09:00, only in July
            0 9 LW * *      => At 09:00, on the last weekday of the month
            // cron-descriptor drops the weekday, garbles day steps, leaves {0}: croner's words.
            0 9 1 * 1       => At 09:00, on day 1 or Monday
            0 12 */10 * *   => At 12:00, on day 1, 11, 21, and 31
            0 9 15W * *     => At 09:00, on the weekday nearest day 15
        "#;
        for line in table
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
        {
            let (expr, want) = line.split_once(" => ").unwrap_or((line, ""));
            let expr = parse_cron(expr.trim()).expect("test expression");
            assert_eq!(describe(&expr), want, "{expr}");
        }
    }

    #[test]
    fn daylight_saving() {
        // New York: 2026-03-08 02:00 -> 03:00, 2026-11-01 02:00 -> 01:00.
        // Berlin: 2026-03-29 02:00 -> 03:00, 2026-10-25 03:00 -> 02:00.
        let table = [
            (
                New_York,
                "30 2 * * *",
                "2026-03-07T12:00:00Z",
                "03-08 03:00-04:00, 03-09 02:30-04:00",
            ),
            (
                New_York,
                "0 * * * *",
                "2026-03-08T05:30:00Z",
                "03-08 01:00-05:00, 03-08 03:00-04:00",
            ),
            (
                New_York,
                "30 1 * * *",
                "2026-10-31T12:00:00Z",
                "11-01 01:30-04:00, 11-02 01:30-05:00",
            ),
            (
                New_York,
                "0 * * * *",
                "2026-11-01T04:30:00Z",
                "11-01 01:00-04:00, 11-01 01:00-05:00",
            ),
            (
                New_York,
                "*/30 * * * *",
                "2026-11-01T05:45:00Z",
                "11-01 01:00-05:00, 11-01 01:30-05:00",
            ),
            (
                Berlin,
                "30 2 * * *",
                "2026-03-28T12:00:00Z",
                "03-29 03:00+02:00, 03-30 02:30+02:00",
            ),
            (
                Berlin,
                "0 * * * *",
                "2026-03-29T00:30:00Z",
                "03-29 03:00+02:00, 03-29 04:00+02:00",
            ),
            (
                Berlin,
                "30 2 * * *",
                "2026-10-24T12:00:00Z",
                "10-25 02:30+02:00, 10-26 02:30+01:00",
            ),
            (
                Berlin,
                "0 */2 * * *",
                "2026-10-24T23:30:00Z",
                "10-25 02:00+02:00, 10-25 02:00+01:00",
            ),
            (
                chrono_tz::UTC,
                "0 9 * * 1",
                "2026-01-05T09:00:00Z",
                "01-12 09:00+00:00",
            ),
        ];
        for (tz, expr, after, want) in table {
            let expr = parse_cron(expr).expect("test expression");
            let after: DateTime<Utc> = after.parse().expect("test instant");
            let runs: Vec<String> = next_runs(&expr, tz, after, want.split(", ").count())
                .iter()
                .map(|t| t.format("%m-%d %H:%M%:z").to_string())
                .collect();
            assert_eq!(runs.join(", "), want, "{expr} in {tz} after {after}");
        }
    }

    #[test]
    fn timezones() {
        assert_eq!(
            parse_timezone("America/Montevideo"),
            Ok(chrono_tz::America::Montevideo)
        );
        assert_eq!(parse_timezone(" UTC "), Ok(chrono_tz::UTC));
        let table = [
            ("Europe/Berln", "did you mean \"Europe/Berlin\""),
            ("New York", "did you mean \"America/New_York\""),
            ("america/new_york", "did you mean \"America/New_York\""),
            (
                "Mars/Olympus",
                "unknown time zone \"Mars/Olympus\" (use an IANA",
            ),
            ("", "unknown time zone \"\" (use an IANA name"),
            ("UTX", "did you mean \"Etc/UTC\" or \"UTC\""),
        ];
        for (name, want) in table {
            let got = parse_timezone(name);
            assert!(
                got.as_ref().is_err_and(|e| e.contains(want)),
                "{name}: {got:?}"
            );
        }
    }

    #[test]
    fn command_line_pairs() {
        let pairs = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = fields_from_pairs(&pairs(&[
            "minutes=0",
            "hours=9",
            "days_of_week=mon,fri",
            "months=*/3",
        ]))
        .expect("valid pairs");
        let cron = from_fields(&f).expect("valid fields");
        assert_eq!(cron.as_str(), "0 9 * */3 1,5");
        assert!(fields_from_pairs(&pairs(&["hour=9"])).is_err());
        assert!(fields_from_pairs(&pairs(&["hours"])).is_err());
        assert!(fields_from_pairs(&pairs(&["months=*/x"])).is_err());
    }
}
