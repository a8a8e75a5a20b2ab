//! Runs one export the way a scheduler task does, for `bench/export/run.sh`.
//!
//! Usage: `export_bench <database path or URL> <sql> <csv|xlsx> <output path>`
//! Prints one line: `rows=N bytes=N seconds=S rows_per_sec=R`.

use std::path::Path;
use std::time::Instant;

use functiond::config::model::ExportFormat;
use functiond::db::Database;
use functiond::exec::export::export_to_file;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [db, sql, format, out] = args.as_slice() else {
        eprintln!("usage: export_bench <database path or URL> <sql> <csv|xlsx> <output path>");
        std::process::exit(2);
    };
    let format = match format.as_str() {
        "csv" => ExportFormat::Csv,
        "xlsx" => ExportFormat::Xlsx,
        other => {
            eprintln!("unknown format {other:?}: expected csv or xlsx");
            std::process::exit(2);
        }
    };
    let url = if db.contains(':') {
        db.clone()
    } else {
        format!("sqlite://{db}")
    };
    let started = Instant::now();
    let result = async {
        let db = Database::connect(&url).await.map_err(|e| e.to_string())?;
        let mut progress = |_rows: u64| {};
        export_to_file(&db, sql, format, Path::new(out), &mut progress)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(outcome) => {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "rows={} bytes={} seconds={secs:.3} rows_per_sec={:.0}",
                outcome.rows,
                outcome.bytes,
                outcome.rows as f64 / secs
            );
        }
        Err(e) => {
            eprintln!("export failed: {e}");
            std::process::exit(1);
        }
    }
}
