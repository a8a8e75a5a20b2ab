//! The `export` task: one query streamed into a CSV or XLSX file.
//!
//! Promises (SPEC §7): the file at `dest` appears only when complete. Rows are written to a
//! hidden temporary file in the same folder (`.NAME.tmp-XXXX`), which is flushed to disk and then
//! renamed over `dest`; on any error, or if the export future is dropped (timeout, shutdown), the
//! temporary file is removed and `dest` is left as it was.
//!
//! Memory stays flat whatever the result size: rows are read one at a time from the database,
//! handed in batches through a small bounded channel to a blocking thread that encodes them
//! (XLSX in rust_xlsxwriter's constant-memory mode, whose row data goes to unnamed temporary
//! files in the destination folder rather than RAM), so at most a few thousand rows are in flight.
//!
//! Formats (values per the table in [`crate::db::value`]):
//! - **CSV**: UTF-8 without BOM, a header row of column names, fields separated by `,`, quoted
//!   only when needed with `"` doubled (RFC 4180), records ended by CRLF (RFC 4180; every
//!   spreadsheet and CSV library reads it), NULL as an empty field.
//! - **XLSX**: one sheet, bold header row, numbers, booleans, dates and date-times as real Excel
//!   values with `yyyy-mm-dd` / `yyyy-mm-dd hh:mm:ss` / `hh:mm:ss` formats, NULL as an empty cell;
//!   date and date-time columns are widened so Excel does not show `####`. Text is stored inline
//!   (constant-memory mode has no shared-string table) and the zip uses deflate level 4.
//!   Excel's limits: more than 1,048,575 data rows (1,048,576 with the header) is an error —
//!   better no report than a silently cut one; text longer than 32,767 characters is cut to
//!   32,767 (counted as Excel does, in UTF-16 units) and a warning is logged with the count of
//!   cut cells; more than 16,384 columns is an error.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{NaiveDate, NaiveDateTime, Timelike};
use futures::StreamExt as _;
use rust_xlsxwriter::{Format, Workbook, XlsxError};
use tokio::sync::mpsc;

use crate::config::model::ExportFormat;
use crate::db::value::{decimal_as_f64, MAX_SAFE_INTEGER};
use crate::db::{Cell, Column, Database, DbError};

/// `progress` is called after every this many rows, and once at the end.
pub const PROGRESS_EVERY: u64 = 10_000;
/// Data rows an XLSX sheet holds below its header row.
pub const XLSX_MAX_ROWS: u64 = 1_048_575;
pub const XLSX_MAX_COLUMNS: usize = 16_384;
/// Excel's cell text limit, in UTF-16 units.
pub const XLSX_MAX_CELL_CHARS: usize = 32_767;
/// Deflate level for the XLSX zip. Compression is most of an XLSX export's time: on the 1M-row
/// benchmark level 6 (the default) took 7.0 s, level 4 4.8 s for a file 0.5 % larger, level 2
/// 3.4 s for 12 % larger.
const XLSX_ZIP_LEVEL: u8 = 4;
/// Rows per message to the writer thread; with the channel depth this bounds rows in flight.
const BATCH_ROWS: usize = 1_000;
const CHANNEL_BATCHES: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportOutcome {
    pub rows: u64,
    /// Size of the finished file.
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("export query: {0}")]
    Query(#[from] DbError),
    #[error("the export query returns no columns; it must be a query such as SELECT")]
    NoColumns,
    #[error("the result has more than {max} rows, the most an Excel sheet holds; export CSV or narrow the query")]
    TooManyRows { max: u64 },
    #[error("the result has {columns} columns, more than the {max} an Excel sheet holds")]
    TooManyColumns { columns: usize, max: usize },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("writing CSV: {0}")]
    Csv(String),
    #[error("writing XLSX: {0}")]
    Xlsx(String),
    #[error("export writer failed: {0}")]
    Internal(String),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> ExportError + 'a {
    move |source| ExportError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Runs `sql` and writes its result to `dest` as `format`; see the module docs. `progress`
/// receives the number of rows read so far, every [`PROGRESS_EVERY`] rows and at the end.
pub async fn export_to_file(
    db: &Database,
    sql: &str,
    format: ExportFormat,
    dest: &Path,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<ExportOutcome, ExportError> {
    // Query first: a failing query creates no file at all.
    let mut rows = db.stream(sql).await?;
    let columns = rows.columns().to_vec();
    if columns.is_empty() {
        return Err(ExportError::NoColumns);
    }
    if format == ExportFormat::Xlsx && columns.len() > XLSX_MAX_COLUMNS {
        return Err(ExportError::TooManyColumns {
            columns: columns.len(),
            max: XLSX_MAX_COLUMNS,
        });
    }

    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(io_err("create folder", &dir))?;
    let (tmp_path, file) = create_temp(&dir, dest).await?;
    let mut guard = TempGuard(Some(tmp_path.clone()));

    let (tx, rx) = mpsc::channel::<Msg>(CHANNEL_BATCHES);
    let writer = {
        let dir = dir.clone();
        let tmp = tmp_path.clone();
        tokio::task::spawn_blocking(move || write_all(format, file, &tmp, &dir, &columns, rx))
    };

    let mut count: u64 = 0;
    let mut batch = Vec::with_capacity(BATCH_ROWS);
    let mut failure = None;
    while let Some(row) = rows.next().await {
        match row {
            Ok(cells) => batch.push(cells),
            Err(e) => {
                failure = Some(ExportError::Query(e));
                break;
            }
        }
        count += 1;
        if count.is_multiple_of(PROGRESS_EVERY) {
            progress(count);
        }
        if batch.len() == BATCH_ROWS {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ROWS));
            if tx.send(Msg::Rows(full)).await.is_err() {
                break; // the writer stopped: its own error is reported below
            }
        }
    }
    drop(rows); // give the connection back before the (possibly slow) finishing
    if failure.is_none() {
        let _ = tx.send(Msg::Rows(batch)).await;
        let _ = tx.send(Msg::Finish).await;
    }
    drop(tx);
    let written = writer
        .await
        .map_err(|e| ExportError::Internal(e.to_string()))
        .and_then(|r| r);
    let bytes = match (failure, written) {
        (Some(e), _) | (None, Err(e)) => return Err(e), // the guard removes the file
        (None, Ok(bytes)) => bytes,
    };

    tokio::fs::rename(&tmp_path, dest)
        .await
        .map_err(io_err("rename the finished export to", dest))?;
    guard.0 = None;
    // Make the rename itself durable.
    let _ = tokio::task::spawn_blocking(move || File::open(&dir).and_then(|d| d.sync_all())).await;
    progress(count);
    Ok(ExportOutcome { rows: count, bytes })
}

enum Msg {
    Rows(Vec<Vec<Cell>>),
    Finish,
}

/// Removes the temporary file unless the export completed (also when the future is dropped).
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

async fn create_temp(dir: &Path, dest: &Path) -> Result<(PathBuf, File), ExportError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tag = u64::from(std::process::id()) << 32
            ^ u64::from(nanos)
            ^ SEQ.fetch_add(1, Ordering::Relaxed).rotate_left(17);
        let path = dir.join(format!(".{name}.tmp-{tag:016x}"));
        match tokio::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .open(&path)
            .await
        {
            Ok(file) => return Ok((path, file.into_std().await)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_err("create", &path)(e)),
        }
    }
}

/// The writer thread: encodes batches until `Finish`, then flushes and syncs. Returns the file
/// size. If the channel closes without `Finish` the export was abandoned and nothing is finished.
fn write_all(
    format: ExportFormat,
    file: File,
    tmp: &Path,
    dir: &Path,
    columns: &[Column],
    mut rx: mpsc::Receiver<Msg>,
) -> Result<u64, ExportError> {
    let mut sink = match format {
        ExportFormat::Csv => Sink::Csv(Box::new(CsvSink::new(file, columns)?)),
        ExportFormat::Xlsx => Sink::Xlsx(Box::new(XlsxSink::new(file, columns, dir)?)),
    };
    while let Some(msg) = rx.blocking_recv() {
        match msg {
            Msg::Rows(rows) => {
                for row in &rows {
                    sink.row(row)?;
                }
            }
            Msg::Finish => {
                let file = sink.finish()?;
                file.sync_all().map_err(io_err("flush", tmp))?;
                let len = file.metadata().map_err(io_err("inspect", tmp))?.len();
                return Ok(len);
            }
        }
    }
    Err(ExportError::Internal("export abandoned".into()))
}

enum Sink {
    Csv(Box<CsvSink>),
    Xlsx(Box<XlsxSink>),
}

impl Sink {
    fn row(&mut self, cells: &[Cell]) -> Result<(), ExportError> {
        match self {
            Sink::Csv(s) => s.row(cells),
            Sink::Xlsx(s) => s.row(cells),
        }
    }

    fn finish(self) -> Result<File, ExportError> {
        match self {
            Sink::Csv(s) => s.finish(),
            Sink::Xlsx(s) => s.finish(),
        }
    }
}

struct CsvSink {
    out: csv::Writer<File>,
    buf: String,
}

fn csv_err(e: csv::Error) -> ExportError {
    ExportError::Csv(e.to_string())
}

impl CsvSink {
    fn new(file: File, columns: &[Column]) -> Result<CsvSink, ExportError> {
        let mut out = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .buffer_capacity(256 * 1024)
            .from_writer(file);
        out.write_record(columns.iter().map(|c| c.name.as_bytes()))
            .map_err(csv_err)?;
        Ok(CsvSink {
            out,
            buf: String::with_capacity(64),
        })
    }

    fn row(&mut self, cells: &[Cell]) -> Result<(), ExportError> {
        for cell in cells {
            let field = match cell {
                Cell::Text(s) | Cell::Decimal(s) => s.as_bytes(),
                other => {
                    self.buf.clear();
                    other.write_text(&mut self.buf);
                    self.buf.as_bytes()
                }
            };
            self.out.write_field(field).map_err(csv_err)?;
        }
        self.out.write_record(None::<&[u8]>).map_err(csv_err)
    }

    fn finish(self) -> Result<File, ExportError> {
        self.out
            .into_inner()
            .map_err(|e| ExportError::Csv(e.error().to_string()))
    }
}

struct XlsxSink {
    workbook: Workbook,
    file: File,
    row: u32,
    date: Format,
    datetime: Format,
    time: Format,
    widths_set: bool,
    truncated: u64,
    text: String,
}

fn xlsx_err(e: XlsxError) -> ExportError {
    ExportError::Xlsx(e.to_string())
}

impl XlsxSink {
    fn new(file: File, columns: &[Column], tempdir: &Path) -> Result<XlsxSink, ExportError> {
        let mut workbook = Workbook::new();
        workbook.set_tempdir(tempdir).map_err(xlsx_err)?;
        workbook.set_zip_compression_level(XLSX_ZIP_LEVEL);
        let sheet = workbook
            .add_worksheet_with_constant_memory()
            .map_err(xlsx_err)?;
        let bold = Format::new().set_bold();
        for (col, column) in (0u16..).zip(columns) {
            let name = truncate_utf16(&column.name, XLSX_MAX_CELL_CHARS);
            sheet
                .write_string_with_format(0, col, name, &bold)
                .map_err(xlsx_err)?;
        }
        Ok(XlsxSink {
            workbook,
            file,
            row: 0,
            date: Format::new().set_num_format("yyyy-mm-dd"),
            datetime: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
            time: Format::new().set_num_format("hh:mm:ss"),
            widths_set: false,
            truncated: 0,
            text: String::new(),
        })
    }

    fn row(&mut self, cells: &[Cell]) -> Result<(), ExportError> {
        if u64::from(self.row) >= XLSX_MAX_ROWS {
            return Err(ExportError::TooManyRows { max: XLSX_MAX_ROWS });
        }
        self.row += 1;
        let row = self.row;
        let sheet = self.workbook.worksheet_from_index(0).map_err(xlsx_err)?;
        if !self.widths_set {
            // Date-times are wider than Excel's default column and would show as ####.
            self.widths_set = true;
            for (col, cell) in (0u16..).zip(cells) {
                let width = match cell {
                    Cell::DateTime(_) | Cell::DateTimeTz(_) => 19.0,
                    Cell::Date(_) => 11.0,
                    _ => continue,
                };
                sheet.set_column_width(col, width).map_err(xlsx_err)?;
            }
        }
        for (col, cell) in (0u16..).zip(cells) {
            let serial = |dt: NaiveDateTime| excel_serial(dt);
            let written = match cell {
                Cell::Null => continue,
                Cell::Bool(b) => sheet.write_boolean(row, col, *b),
                Cell::Int(n) if n.unsigned_abs() <= MAX_SAFE_INTEGER as u64 => {
                    sheet.write_number(row, col, *n as f64)
                }
                Cell::Float(f) if f.is_finite() => sheet.write_number(row, col, *f),
                Cell::Decimal(s) => match decimal_as_f64(s) {
                    Some(f) => sheet.write_number(row, col, f),
                    None => sheet.write_string(row, col, s),
                },
                Cell::Date(d) => match serial(d.and_time(chrono::NaiveTime::MIN)) {
                    Some(x) => sheet.write_number_with_format(row, col, x, &self.date),
                    None => write_text(sheet, row, col, cell, &mut self.text, &mut self.truncated),
                },
                Cell::DateTime(dt) => match serial(*dt) {
                    Some(x) => sheet.write_number_with_format(row, col, x, &self.datetime),
                    None => write_text(sheet, row, col, cell, &mut self.text, &mut self.truncated),
                },
                Cell::DateTimeTz(dt) => match serial(dt.naive_utc()) {
                    Some(x) => sheet.write_number_with_format(row, col, x, &self.datetime),
                    None => write_text(sheet, row, col, cell, &mut self.text, &mut self.truncated),
                },
                Cell::Time(t) => {
                    let secs =
                        f64::from(t.num_seconds_from_midnight()) + f64::from(t.nanosecond()) / 1e9;
                    sheet.write_number_with_format(row, col, secs / 86_400.0, &self.time)
                }
                _ => write_text(sheet, row, col, cell, &mut self.text, &mut self.truncated),
            };
            written.map_err(xlsx_err)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<File, ExportError> {
        if self.truncated > 0 {
            tracing::warn!(
                cells = self.truncated,
                "XLSX export: {} cell(s) longer than {XLSX_MAX_CELL_CHARS} characters were cut",
                self.truncated
            );
        }
        self.workbook
            .save_to_writer(&mut self.file)
            .map_err(xlsx_err)?;
        Ok(self.file)
    }
}

/// Writes a cell as text (CSV representation), cut to Excel's limit.
fn write_text<'a>(
    sheet: &'a mut rust_xlsxwriter::Worksheet,
    row: u32,
    col: u16,
    cell: &Cell,
    buf: &mut String,
    truncated: &mut u64,
) -> Result<&'a mut rust_xlsxwriter::Worksheet, XlsxError> {
    let text = match cell {
        Cell::Text(s) | Cell::Decimal(s) => s.as_str(),
        other => {
            buf.clear();
            other.write_text(buf);
            buf.as_str()
        }
    };
    let cut = truncate_utf16(text, XLSX_MAX_CELL_CHARS);
    if cut.len() < text.len() {
        *truncated += 1;
    }
    sheet.write_string(row, col, cut)
}

/// The longest prefix of `s` that is at most `max` UTF-16 units, cut at a character boundary.
fn truncate_utf16(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s; // UTF-16 never needs more units than UTF-8 has bytes
    }
    let mut units = 0;
    for (i, c) in s.char_indices() {
        units += c.len_utf16();
        if units > max {
            return &s[..i];
        }
    }
    s
}

/// Excel's serial date: days since 1899-12-30 plus the fraction of the day, counting Excel's
/// phantom 1900-02-29 (so dates before 1900-03-01 are one less). None before 1900-01-01.
fn excel_serial(dt: NaiveDateTime) -> Option<f64> {
    let date = dt.date();
    let first = NaiveDate::from_ymd_opt(1900, 1, 1)?;
    if date < first || date > NaiveDate::from_ymd_opt(9999, 12, 31)? {
        return None;
    }
    let mut days = (date - NaiveDate::from_ymd_opt(1899, 12, 30)?).num_days();
    if date < NaiveDate::from_ymd_opt(1900, 3, 1)? {
        days -= 1;
    }
    let t = dt.time();
    let secs = f64::from(t.num_seconds_from_midnight()) + f64::from(t.nanosecond()) / 1e9;
    Some(days as f64 + secs / 86_400.0)
}

#[cfg(test)]
mod tests {
    //! Exports read back cell by cell: CSV with the csv reader, XLSX with calamine.

    use super::*;
    use calamine::{open_workbook, Data, DataType as _, Reader, Xlsx};
    use chrono::NaiveTime;

    const TABLE: &str = r#"
        CREATE TABLE x (id INTEGER, name TEXT, amount REAL, ok BOOLEAN, day DATE, at DATETIME,
                        note TEXT, big INTEGER, blob BLOB, t TIME);
        INSERT INTO x VALUES
          (1, 'plain', 1.5, 1, '2024-02-29', '2024-02-29 13:45:30', NULL, 9007199254740993,
           x'00ff', '07:08:09'),
          (2, 'comma, "quote"', -0.1, 0, '1999-12-31', '2000-01-01T00:00:00.5', 'line1
line2', -3, NULL, NULL),
          (3, 'ünïcödé ✓ 😀', 1e300, NULL, NULL, NULL, '', 0, NULL, NULL),
          (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);"#;
    const QUERY: &str = "SELECT * FROM x ORDER BY id IS NULL, id";

    async fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/app.db", dir.path().display());
        let db = Database::connect(&url).await.unwrap();
        db.execute_script(TABLE).await.unwrap();
        (dir, db)
    }

    async fn export(
        db: &Database,
        sql: &str,
        format: ExportFormat,
        dest: &Path,
    ) -> (ExportOutcome, Vec<u64>) {
        let mut calls = Vec::new();
        let outcome = export_to_file(db, sql, format, dest, &mut |n| calls.push(n))
            .await
            .unwrap();
        (outcome, calls)
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("app.db"))
            .collect();
        names.sort();
        names
    }

    fn read_csv(path: &Path) -> Vec<Vec<String>> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_path(path)
            .unwrap();
        reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect()
    }

    #[tokio::test]
    async fn csv_reads_back_cell_by_cell() {
        let (dir, db) = db().await;
        let dest = dir.path().join("out/report.csv");
        let (outcome, calls) = export(&db, QUERY, ExportFormat::Csv, &dest).await;
        assert_eq!(outcome.rows, 4);
        assert_eq!(calls, [4]);
        let raw = std::fs::read(&dest).unwrap();
        assert_eq!(outcome.bytes, raw.len() as u64);
        assert!(raw.starts_with(b"id,name,amount,ok,day,at,note,big,blob,t\r\n"));
        let want: Vec<Vec<&str>> = vec![
            vec![
                "id", "name", "amount", "ok", "day", "at", "note", "big", "blob", "t",
            ],
            vec![
                "1",
                "plain",
                "1.5",
                "true",
                "2024-02-29",
                "2024-02-29 13:45:30",
                "",
                "9007199254740993",
                "AP8=",
                "07:08:09",
            ],
            vec![
                "2",
                "comma, \"quote\"",
                "-0.1",
                "false",
                "1999-12-31",
                "2000-01-01 00:00:00.500",
                "line1\nline2",
                "-3",
                "",
                "",
            ],
            vec!["3", "ünïcödé ✓ 😀", "1e300", "", "", "", "", "0", "", ""],
            vec![""; 10],
        ];
        assert_eq!(read_csv(&dest), want);
        assert!(String::from_utf8(raw)
            .unwrap()
            .contains("\"comma, \"\"quote\"\"\""));
        assert_eq!(files_in(dest.parent().unwrap()), ["report.csv"]);
    }

    #[tokio::test]
    async fn xlsx_reads_back_cell_by_cell() {
        let (dir, db) = db().await;
        let dest = dir.path().join("report.xlsx");
        let (outcome, _) = export(&db, QUERY, ExportFormat::Xlsx, &dest).await;
        assert_eq!(outcome.rows, 4);
        assert_eq!(outcome.bytes, std::fs::metadata(&dest).unwrap().len());
        let mut book: Xlsx<_> = open_workbook(&dest).unwrap();
        let range = book.worksheet_range("Sheet1").unwrap();
        let rows: Vec<&[Data]> = range.rows().collect();
        // The all-NULL last row has no cells, so the sheet ends before it.
        assert_eq!(rows.len(), 4);
        let s = |v: &str| Data::String(v.into());
        let header: Vec<Data> = [
            "id", "name", "amount", "ok", "day", "at", "note", "big", "blob", "t",
        ]
        .map(s)
        .to_vec();
        assert_eq!(rows[0], header.as_slice());
        let date = |d: &Data| d.as_datetime().unwrap();
        let ymd = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();

        let r = rows[1];
        assert_eq!(r[0], Data::Float(1.0));
        assert_eq!(r[1], s("plain"));
        assert_eq!(r[2], Data::Float(1.5));
        assert_eq!(r[3], Data::Bool(true));
        assert!(r[4].is_datetime());
        assert_eq!(date(&r[4]), ymd(2024, 2, 29).and_hms_opt(0, 0, 0).unwrap());
        assert_eq!(
            date(&r[5]),
            ymd(2024, 2, 29).and_hms_opt(13, 45, 30).unwrap()
        );
        assert_eq!(r[6], Data::Empty);
        assert_eq!(r[7], s("9007199254740993"), "beyond 2^53: exact text");
        assert_eq!(r[8], s("AP8="));
        assert_eq!(r[9].as_time(), NaiveTime::from_hms_opt(7, 8, 9));

        let r = rows[2];
        assert_eq!(r[1], s("comma, \"quote\""));
        assert_eq!(r[2], Data::Float(-0.1));
        assert_eq!(r[3], Data::Bool(false));
        assert_eq!(date(&r[4]), ymd(1999, 12, 31).and_hms_opt(0, 0, 0).unwrap());
        assert_eq!(
            date(&r[5]),
            ymd(2000, 1, 1).and_hms_milli_opt(0, 0, 0, 500).unwrap()
        );
        assert_eq!(r[6], s("line1\nline2"));
        assert_eq!(r[7], Data::Float(-3.0));

        let r = rows[3];
        assert_eq!(r[1], s("ünïcödé ✓ 😀"));
        assert_eq!(r[2], Data::Float(1e300));
        assert_eq!(r[3], Data::Empty);
        assert_eq!(
            r[6],
            Data::Empty,
            "an empty string is an empty cell in Excel"
        );
    }

    #[tokio::test]
    async fn zero_rows_give_the_header_only() {
        let (dir, db) = db().await;
        let sql = "SELECT id, name AS who FROM x WHERE 0";
        let csv_dest = dir.path().join("empty.csv");
        let (outcome, calls) = export(&db, sql, ExportFormat::Csv, &csv_dest).await;
        assert_eq!((outcome.rows, calls), (0, vec![0]));
        assert_eq!(std::fs::read_to_string(&csv_dest).unwrap(), "id,who\r\n");

        let xlsx_dest = dir.path().join("empty.xlsx");
        export(&db, sql, ExportFormat::Xlsx, &xlsx_dest).await;
        let mut book: Xlsx<_> = open_workbook(&xlsx_dest).unwrap();
        let range = book.worksheet_range("Sheet1").unwrap();
        let rows: Vec<&[Data]> = range.rows().collect();
        assert_eq!(
            rows,
            [[Data::String("id".into()), Data::String("who".into())].as_slice()]
        );
    }

    #[tokio::test]
    async fn failures_leave_no_file_and_keep_the_old_one() {
        let (dir, db) = db().await;
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let dest = out.join("daily.csv");
        let mut noop = |_| {};
        let err = export_to_file(
            &db,
            "SELECT nope FROM x",
            ExportFormat::Csv,
            &dest,
            &mut noop,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("no such column: nope"), "{err}");
        assert!(files_in(&out).is_empty());

        // Fails after 10,000+ rows have been written to the temporary file.
        std::fs::write(&dest, "old").unwrap();
        let sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 30000)
                   SELECT CASE WHEN x > 25000 THEN abs(-9223372036854775807 - 1) ELSE x END AS v
                   FROM n";
        for format in [ExportFormat::Csv, ExportFormat::Xlsx] {
            let mut seen = Vec::new();
            let err = export_to_file(&db, sql, format, &dest, &mut |n| seen.push(n))
                .await
                .unwrap_err();
            assert!(err.to_string().contains("integer overflow"), "{err}");
            assert_eq!(seen, [10_000, 20_000]);
            assert_eq!(files_in(&out), ["daily.csv"]);
            assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old");
        }

        let err = export_to_file(
            &db,
            "CREATE TABLE y (a)",
            ExportFormat::Csv,
            &dest,
            &mut noop,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, ExportError::NoColumns), "{err}");
    }

    #[tokio::test]
    async fn dropping_the_export_removes_the_temporary_file() {
        let (dir, db) = db().await;
        let dest = dir.path().join("slow.xlsx");
        let sql =
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 5000000)
                   SELECT x, 'row ' || x FROM n";
        let mut noop = |_| {};
        let run = export_to_file(&db, sql, ExportFormat::Xlsx, &dest, &mut noop);
        let timed_out = tokio::time::timeout(std::time::Duration::from_millis(300), run).await;
        assert!(timed_out.is_err());
        assert!(
            files_in(dir.path()).is_empty(),
            "{:?}",
            files_in(dir.path())
        );
    }

    #[tokio::test]
    async fn the_export_future_is_send() {
        fn send<T: Send>(_: &T) {}
        let (dir, db) = db().await;
        let mut noop = |_| {};
        let dest = dir.path().join("x.csv");
        send(&export_to_file(
            &db,
            QUERY,
            ExportFormat::Csv,
            &dest,
            &mut noop,
        ));
    }

    #[tokio::test]
    async fn progress_every_ten_thousand_rows_then_the_total() {
        let (dir, db) = db().await;
        let sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 25000)
                   SELECT x FROM n";
        let (outcome, calls) = export(&db, sql, ExportFormat::Csv, &dir.path().join("p.csv")).await;
        assert_eq!(outcome.rows, 25_000);
        assert_eq!(calls, [10_000, 20_000, 25_000]);
    }

    #[tokio::test]
    async fn xlsx_limits() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("l.xlsx")).unwrap();
        let columns = [Column {
            name: "c".into(),
            type_name: "TEXT".into(),
        }];
        let mut sink = XlsxSink::new(file, &columns, dir.path()).unwrap();
        sink.row = XLSX_MAX_ROWS as u32 - 1;
        sink.row(&[Cell::Text("é".repeat(40_000))]).unwrap();
        assert_eq!(sink.truncated, 1);
        let err = sink.row(&[Cell::Int(1)]).unwrap_err();
        assert!(err.to_string().contains("more than 1048575 rows"), "{err}");
        sink.finish().unwrap();
        let mut book: Xlsx<_> = open_workbook(dir.path().join("l.xlsx")).unwrap();
        let range = book.worksheet_range("Sheet1").unwrap();
        let last = range.get_value((XLSX_MAX_ROWS as u32, 0)).unwrap();
        assert_eq!(last, &Data::String("é".repeat(XLSX_MAX_CELL_CHARS)));

        assert_eq!(truncate_utf16("a😀b", 2), "a");
        assert_eq!(truncate_utf16("a😀b", 3), "a😀");
        assert_eq!(
            excel_serial(NaiveDate::from_ymd_opt(1900, 1, 1).unwrap().into()),
            Some(1.0)
        );
        assert_eq!(
            excel_serial(NaiveDate::from_ymd_opt(1900, 3, 1).unwrap().into()),
            Some(61.0)
        );
        assert_eq!(
            excel_serial(NaiveDate::from_ymd_opt(1899, 12, 31).unwrap().into()),
            None
        );
    }

    #[tokio::test]
    async fn postgres_export_types() {
        let Ok(url) = std::env::var("FUNCTIOND_TEST_PG_URL") else {
            eprintln!("note: FUNCTIOND_TEST_PG_URL not set; skipping postgres_export_types");
            return;
        };
        let db = Database::connect(&url).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sql = "SELECT 12.50::numeric(10,2) AS amount, 123456789012345678901.5::numeric AS huge,
                          timestamptz '2024-03-01 10:00:00-03' AS at, date '2024-03-01' AS day,
                          'a,\"b\"'::text AS t, NULL::int AS n, true AS ok,
                          '{\"a\": 1}'::jsonb AS doc, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u
                   UNION ALL
                   SELECT NULL, NULL, NULL, NULL, NULL, 7, false, NULL, NULL";
        let csv_dest = dir.path().join("pg.csv");
        let (outcome, _) = export(&db, sql, ExportFormat::Csv, &csv_dest).await;
        assert_eq!(outcome.rows, 2);
        assert_eq!(
            read_csv(&csv_dest),
            vec![
                vec!["amount", "huge", "at", "day", "t", "n", "ok", "doc", "u"],
                vec![
                    "12.50",
                    "123456789012345678901.5",
                    "2024-03-01 13:00:00+00:00",
                    "2024-03-01",
                    "a,\"b\"",
                    "",
                    "true",
                    "{\"a\":1}",
                    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
                ],
                vec!["", "", "", "", "", "7", "false", "", ""],
            ]
        );

        let xlsx_dest = dir.path().join("pg.xlsx");
        export(&db, sql, ExportFormat::Xlsx, &xlsx_dest).await;
        let mut book: Xlsx<_> = open_workbook(&xlsx_dest).unwrap();
        let range = book.worksheet_range("Sheet1").unwrap();
        let r = range.rows().nth(1).unwrap();
        assert_eq!(r[0], Data::Float(12.5));
        assert_eq!(r[1], Data::String("123456789012345678901.5".into()));
        assert_eq!(
            r[2].as_datetime(),
            NaiveDate::from_ymd_opt(2024, 3, 1)
                .unwrap()
                .and_hms_opt(13, 0, 0)
        );
        assert_eq!(r[5], Data::Empty);
        assert_eq!(r[7], Data::String("{\"a\":1}".into()));
    }
}
