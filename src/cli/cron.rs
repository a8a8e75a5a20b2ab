//! `functiond cron`: a schedule's expression, description and next run times.

use std::process::ExitCode;

use functiond::config::schedule;

pub fn cron(text: &str, fields: &[String], tz: &str, count: usize, from: Option<&str>) -> ExitCode {
    // Five fields or a macro is cron; anything else is read as English.
    let looks_like_cron = text.starts_with('@') || text.split_whitespace().count() == 5;
    let expr = if !fields.is_empty() {
        schedule::fields_from_pairs(fields)
            .and_then(|f| schedule::from_fields(&f).map_err(|e| e.to_string()))
    } else if looks_like_cron {
        schedule::parse_cron(text)
    } else {
        schedule::from_english(text)
    };
    let expr = match expr {
        Ok(e) => e,
        Err(e) => {
            eprintln!("functiond cron: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tz = match schedule::parse_timezone(tz) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("functiond cron: {e}");
            return ExitCode::FAILURE;
        }
    };
    let after = match from {
        None => chrono::Utc::now(),
        Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&chrono::Utc),
            Err(e) => {
                eprintln!("functiond cron: --from {s:?}: {e} (expected RFC 3339, e.g. 2026-03-08T00:00:00Z)");
                return ExitCode::FAILURE;
            }
        },
    };
    println!("cron:        {expr}");
    println!("description: {}", schedule::describe(&expr));
    println!("timezone:    {tz}");
    println!("next runs:");
    for t in schedule::next_runs(&expr, tz, after, count) {
        println!("  {}", t.to_rfc3339());
    }
    ExitCode::SUCCESS
}
