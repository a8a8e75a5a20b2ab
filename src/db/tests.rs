//! Tests against real databases: SQLite files in temporary folders, and PostgreSQL when
//! `FUNCTIOND_TEST_PG_URL` names one (the tests say so and pass trivially otherwise).

use chrono::{NaiveDate, NaiveTime};
use futures::StreamExt as _;
use serde_json::{json, Value};

use super::*;

async fn sqlite_file() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/dir/app.db", dir.path().display());
    let db = Database::connect(&url).await.unwrap();
    (dir, db)
}

/// A PostgreSQL database and a schema private to this test, or None (with a note) when
/// `FUNCTIOND_TEST_PG_URL` is not set.
async fn pg(test: &str) -> Option<Database> {
    let url = test_schema_url(test).await?;
    Some(Database::connect(&url).await.unwrap())
}

fn row(rows: &[serde_json::Map<String, Value>], i: usize) -> Value {
    Value::Object(rows[i].clone())
}

#[tokio::test]
async fn sqlite_connect_creates_folder_and_file() {
    let (dir, db) = sqlite_file().await;
    assert!(dir.path().join("nested/dir/app.db").is_file());
    assert_eq!(db.kind(), "sqlite");
    let mode = db.query_json("PRAGMA journal_mode", &[]).await.unwrap();
    assert_eq!(row(&mode, 0), json!({"journal_mode": "wal"}));
}

#[tokio::test]
async fn futures_are_send_and_sqlite_paths_are_relative_to_the_working_directory() {
    fn send<T: Send>(_: &T) {}
    let db = Database::Sqlite(sqlx::SqlitePool::connect_lazy("sqlite::memory:").unwrap());
    send(&db.query_json("", &[]));
    send(&db.execute("", &[]));
    send(&db.execute_script(""));
    send(&db.stream(""));
    send(&Database::connect(""));
    for (url, path) in [
        ("sqlite://data/app.db", "data/app.db"),
        ("sqlite:data/app.db", "data/app.db"),
        ("sqlite:///var/lib/app.db", "/var/lib/app.db"),
    ] {
        let options = SqliteConnectOptions::from_str(url).unwrap();
        assert_eq!(options.get_filename(), std::path::Path::new(path), "{url}");
    }
    assert!(is_sqlite_memory("sqlite::memory:"));
    assert!(is_sqlite_memory("sqlite://file.db?mode=memory"));
    assert!(!is_sqlite_memory("sqlite://memory.db"));
}

#[tokio::test]
async fn sqlite_memory_is_one_database() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    db.execute_script("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1), (2);")
        .await
        .unwrap();
    assert_eq!(count_rows(&db, "t").await, 2);
}

#[tokio::test]
async fn bad_urls_are_named_without_password() {
    let err = Database::connect("mysql://u:pw@h/db").await.unwrap_err();
    assert!(matches!(err, DbError::Url { .. }), "{err}");
    assert!(err.to_string().contains("mysql://u:***@h/db"), "{err}");

    let err = Database::connect("postgres://app:hunter2@127.0.0.1:1/app")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot open database postgres://app:***@127.0.0.1:1/app"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    let err = Database::connect("sqlite:///proc/no/such/place.db")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("sqlite:///proc/no/such/place.db"),
        "{err}"
    );
}

#[tokio::test]
async fn sqlite_values_map_by_storage_class_and_declared_type() {
    let (_dir, db) = sqlite_file().await;
    db.execute_script(
        "CREATE TABLE v (i INTEGER, r REAL, t TEXT, b BLOB, flag BOOLEAN, d DATE, dt DATETIME,
                         ts TIMESTAMP, tm TIME, n NUMERIC, anything);
         INSERT INTO v VALUES (42, 1.5, 'héllo \"x\"', x'00ff', 1, '2024-02-29',
                               '2024-02-29 13:45:00.250', '2024-02-29T13:45:00+02:00',
                               '07:08:09', 12.5, 'free');
         INSERT INTO v VALUES (NULL, NULL, NULL, NULL, 'false', 'not a date', 1700000000,
                               '2024-02-29', 'noon', 'abc', 9007199254740993);",
    )
    .await
    .unwrap();
    let rows = db
        .query_json(
            "SELECT *, date('2024-01-02') AS expr FROM v ORDER BY rowid",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        row(&rows, 0),
        json!({
            "i": 42, "r": 1.5, "t": "héllo \"x\"", "b": "AP8=", "flag": true, "d": "2024-02-29",
            "dt": "2024-02-29T13:45:00.250", "ts": "2024-02-29T13:45:00+02:00", "tm": "07:08:09",
            "n": 12.5, "anything": "free", "expr": "2024-01-02"
        })
    );
    assert_eq!(
        row(&rows, 1),
        json!({
            "i": null, "r": null, "t": null, "b": null, "flag": false, "d": "not a date",
            "dt": 1700000000, "ts": "2024-02-29", "tm": "noon", "n": "abc",
            "anything": "9007199254740993", "expr": "2024-01-02"
        })
    );

    // The stream sees the typed cells behind that JSON.
    let mut stream = db
        .stream("SELECT d, dt, tm, flag FROM v ORDER BY rowid")
        .await
        .unwrap();
    let types: Vec<&str> = stream
        .columns()
        .iter()
        .map(|c| c.type_name.as_str())
        .collect();
    assert_eq!(types, ["DATE", "DATETIME", "TIME", "BOOLEAN"]);
    let first = stream.next().await.unwrap().unwrap();
    let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
    assert_eq!(first[0], Cell::Date(d));
    assert_eq!(
        first[1],
        Cell::DateTime(d.and_hms_milli_opt(13, 45, 0, 250).unwrap())
    );
    assert_eq!(
        first[2],
        Cell::Time(NaiveTime::from_hms_opt(7, 8, 9).unwrap())
    );
    assert_eq!(first[3], Cell::Bool(true));
}

#[tokio::test]
async fn sqlite_binds_json_parameters() {
    let (_dir, db) = sqlite_file().await;
    db.execute_script("CREATE TABLE p (a, b, c, d, e, f)")
        .await
        .unwrap();
    let n = db
        .execute(
            "INSERT INTO p VALUES (?, ?, ?, ?, ?, ?)",
            &[
                json!(null),
                json!(true),
                json!(7),
                json!(2.5),
                json!("x'y"),
                json!({"k": [1]}),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let rows = db
        .query_json(
            "SELECT a, b, c, d, e, f, typeof(f) AS tf FROM p WHERE c = ? AND e = ?",
            &[json!(7), json!("x'y")],
        )
        .await
        .unwrap();
    assert_eq!(
        row(&rows, 0),
        json!({"a": null, "b": 1, "c": 7, "d": 2.5, "e": "x'y", "f": "{\"k\":[1]}", "tf": "text"})
    );
    let err = db.query_json("SELECT nope FROM p", &[]).await.unwrap_err();
    assert!(err.to_string().contains("no such column: nope"), "{err}");
}

#[tokio::test]
async fn sqlite_scripts_are_atomic_unless_they_manage_transactions() {
    let (_dir, db) = sqlite_file().await;
    let n = db
        .execute_script(
            "CREATE TABLE s (x INTEGER PRIMARY KEY);
             INSERT INTO s VALUES (1), (2), (3);
             SELECT * FROM s;
             UPDATE s SET x = x + 10 WHERE x > 1;",
        )
        .await
        .unwrap();
    assert_eq!(n, 5);
    let err = db
        .execute_script("DELETE FROM s; INSERT INTO s VALUES (1), (1);")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("UNIQUE constraint failed"),
        "{err}"
    );
    assert_eq!(count_rows(&db, "s").await, 3, "the DELETE was rolled back");

    // A script with its own transaction runs as written, and a failure inside it does not leave
    // the pooled connection in a transaction.
    let n = db
        .execute_script("BEGIN; INSERT INTO s VALUES (100); COMMIT;")
        .await
        .unwrap();
    assert_eq!(n, 1);
    db.execute_script("BEGIN; INSERT INTO s VALUES (100); COMMIT;")
        .await
        .unwrap_err();
    for _ in 0..8 {
        db.execute("INSERT INTO s VALUES (NULL)", &[])
            .await
            .unwrap();
    }
    assert_eq!(count_rows(&db, "s").await, 12);
}

#[tokio::test]
async fn a_dropped_script_leaves_no_transaction_behind() {
    let (_dir, db) = sqlite_file().await;
    db.execute_script("CREATE TABLE big (x INTEGER)")
        .await
        .unwrap();
    let slow = db.execute_script(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000)
         INSERT INTO big SELECT x FROM n",
    );
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(100), slow).await;
    assert!(timed_out.is_err());
    // The abandoned connection is closed (rolling back), not reused mid-transaction.
    for _ in 0..6 {
        db.execute_script("INSERT INTO big VALUES (-1)")
            .await
            .unwrap();
    }
    assert_eq!(count_rows(&db, "big").await, 6);
}

#[tokio::test]
async fn sqlite_stream_has_columns_without_rows_and_reports_errors() {
    let (_dir, db) = sqlite_file().await;
    db.execute_script("CREATE TABLE e (id INTEGER, name TEXT)")
        .await
        .unwrap();
    let mut stream = db.stream("SELECT id, name AS who FROM e").await.unwrap();
    let names: Vec<&str> = stream.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "who"]);
    assert!(stream.next().await.is_none());

    let err = db.stream("SELEC 1").await.err().unwrap();
    assert!(err.to_string().contains("syntax error"), "{err}");

    // A runtime error part-way through arrives as a stream item.
    let sql = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10)
               SELECT CASE WHEN x > 5 THEN abs(-9223372036854775807 - 1) ELSE x END FROM n";
    let items: Vec<_> = db.stream(sql).await.unwrap().collect().await;
    assert_eq!(items.iter().filter(|i| i.is_ok()).count(), 5);
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert!(err.to_string().contains("integer overflow"), "{err}");
}

#[tokio::test]
async fn postgres_values_map_by_type() {
    let Some(db) = pg("t_pg_values").await else {
        return;
    };
    db.execute_script(
        "CREATE TYPE mood AS ENUM ('happy', 'sad');
         CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
         CREATE TABLE v (
           i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric(12,2), nbig numeric,
           t text, vc varchar(10), c char(3), nm name, b bool, d date, tm time, ts timestamp,
           tz timestamptz, j json, jb jsonb, u uuid, by bytea, iv interval, arr int4[],
           tarr text[], m mood, p posint, nn numeric, ns numeric);
         INSERT INTO v VALUES (
           -2, 4, 9007199254740993, 1.5, 0.1, 12.5, 123456789012345678901234.5,
           'é\",x', 'vc', 'ab', 'nm', true, '2024-02-29', '13:45:00.25', '2024-02-29 13:45:00',
           '2024-02-29 13:45:00+02', '{\"a\": [1, 2]}', '{\"b\": null}',
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff', '1 year 2 mons 3 days 04:05:06.5',
           '{1,NULL,3}', '{x,\"y z\"}', 'sad', 7, 'NaN', '0.000012');
         INSERT INTO v (i4) VALUES (NULL);",
    )
    .await
    .unwrap();
    let rows = db
        .query_json("SELECT * FROM v ORDER BY i4", &[])
        .await
        .unwrap();
    assert_eq!(
        row(&rows, 0),
        json!({
            "i2": -2, "i4": 4, "i8": "9007199254740993", "f4": 1.5, "f8": 0.1, "n": 12.5,
            "nbig": "123456789012345678901234.5", "t": "é\",x", "vc": "vc", "c": "ab ", "nm": "nm",
            "b": true, "d": "2024-02-29", "tm": "13:45:00.250", "ts": "2024-02-29T13:45:00",
            "tz": "2024-02-29T11:45:00Z", "j": {"a": [1, 2]}, "jb": {"b": null},
            "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "by": "AP8=", "iv": "P1Y2M3DT4H5M6.5S",
            "arr": [1, null, 3], "tarr": ["x", "y z"], "m": "sad", "p": 7, "nn": "NaN",
            "ns": 0.000012
        })
    );
    assert!(rows[1].values().all(Value::is_null));

    let mut stream = db.stream("SELECT n, tz FROM v WHERE false").await.unwrap();
    let types: Vec<&str> = stream
        .columns()
        .iter()
        .map(|c| c.type_name.as_str())
        .collect();
    assert_eq!(types, ["NUMERIC", "TIMESTAMPTZ"]);
    assert!(stream.next().await.is_none());
    let mut stream = db
        .stream("SELECT n, ns, nbig FROM v WHERE n IS NOT NULL")
        .await
        .unwrap();
    let cells = stream.next().await.unwrap().unwrap();
    let want = ["12.50", "0.000012", "123456789012345678901234.5"];
    assert_eq!(cells, want.map(|s| Cell::Decimal(s.into())));

    let err = db
        .query_json("SELECT point(1, 2) AS pt", &[])
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("\"pt\"") && text.contains("POINT"), "{text}");
}

#[tokio::test]
async fn postgres_binds_parameters_as_inferred_types() {
    let Some(db) = pg("t_pg_params").await else {
        return;
    };
    db.execute_script(
        "CREATE TABLE p (id int4, big int8, amount numeric(10,2), at timestamptz, day date,
                         doc jsonb, u uuid, name varchar(20), ok bool, raw bytea, x float8)",
    )
    .await
    .unwrap();
    let n = db
        .execute(
            "INSERT INTO p VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                json!(1),
                json!("9007199254740993"),
                json!(19.99),
                json!("2024-03-01T10:00:00.000Z"),
                json!("2024-03-01"),
                json!({"tags": ["a", "b"], "n": 1}),
                json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
                json!("Zoë"),
                json!(true),
                json!("AP8="),
                json!(2),
            ],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    db.execute(
        "INSERT INTO p (id, name) VALUES ($1, $2)",
        &[json!("2"), json!(null)],
    )
    .await
    .unwrap();
    let rows = db
        .query_json(
            "SELECT id, big, amount, at, day, doc, u, name, ok, raw, x FROM p
             WHERE id = ANY($1) AND at >= $2 AND doc @> $3",
            &[
                json!([1, 2]),
                json!("2024-03-01 09:00:00+00"),
                json!({"tags": ["b"]}),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        row(&rows, 0),
        json!({
            "id": 1, "big": "9007199254740993", "amount": 19.99, "at": "2024-03-01T10:00:00Z",
            "day": "2024-03-01", "doc": {"tags": ["a", "b"], "n": 1},
            "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "name": "Zoë", "ok": true,
            "raw": "AP8=", "x": 2.0
        })
    );
    assert_eq!(rows.len(), 1);
    let echo = db
        .query_json("SELECT $1 AS v", &[json!("plain")])
        .await
        .unwrap();
    assert_eq!(row(&echo, 0), json!({"v": "plain"}));

    let err = db
        .execute("UPDATE p SET id = $1", &[json!("one")])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("parameter 1: expected an integer"),
        "{err}"
    );
    let err = db.execute("UPDATE p SET id = $1", &[]).await.unwrap_err();
    assert!(err.to_string().contains("has 1 parameter(s)"), "{err}");
}

#[tokio::test]
async fn postgres_errors_point_into_the_users_sql() {
    let Some(db) = pg("t_pg_errors").await else {
        return;
    };
    let err = db
        .query_json("SELECT 1,\n  nope FROM (SELECT 1) AS t", &[])
        .await
        .unwrap_err();
    match &err {
        DbError::Query { code, position, .. } => {
            assert_eq!(code.as_deref(), Some("42703"));
            assert_eq!(*position, Some(SqlPosition { line: 2, column: 3 }));
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("column \"nope\" does not exist"), "{text}");
    assert!(text.contains("line 2, column 3"), "{text}");
    assert!(!text.contains(" at line "), "no server source line: {text}");

    db.execute_script("CREATE TABLE k (id int PRIMARY KEY)")
        .await
        .unwrap();
    let err = db
        .execute_script("INSERT INTO k VALUES (1); INSERT INTO k VALUES (1);")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("Key (id)=(1) already exists"),
        "{err}"
    );
    assert_eq!(
        count_rows(&db, "k").await,
        0,
        "the script is one transaction"
    );

    db.execute_script("BEGIN; INSERT INTO k VALUES (2); SELECT 1/0; COMMIT;")
        .await
        .unwrap_err();
    for _ in 0..12 {
        db.execute(
            "INSERT INTO k VALUES ((SELECT coalesce(max(id), 0) + 1 FROM k))",
            &[],
        )
        .await
        .unwrap();
    }
    assert_eq!(count_rows(&db, "k").await, 12);
}

/// `n` from a `SELECT count(*) AS n …`.
async fn count(db: &Database, sql: &str, params: &[Value]) -> i64 {
    let rows = db.query_json(sql, params).await.unwrap();
    rows[0]["n"].as_i64().unwrap()
}

/// The number of rows in `table`.
async fn count_rows(db: &Database, table: &str) -> i64 {
    count(db, &format!("SELECT count(*) AS n FROM {table}"), &[]).await
}

/// Asserts that a call failed for leaving a transaction open.
fn assert_left_open<T: std::fmt::Debug>(result: Result<T, DbError>) {
    let e = result.unwrap_err().to_string();
    assert!(e.contains("began a transaction and did not end it"), "{e}");
}

/// A call that begins a transaction and does not end it is rolled back and fails, so the pooled
/// connection does not carry the transaction into whatever runs on it next.
#[tokio::test]
async fn sqlite_a_transaction_left_open_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("app.db").display());
    // One connection, so the next call surely gets the same one.
    let one = SqliteTuning {
        connections: 1,
        background_checkpoints: false,
    };
    let db = Database::connect_with(&url, one).await.unwrap();
    let other = Database::connect(&url).await.unwrap();
    db.execute("CREATE TABLE t (x INTEGER)", &[]).await.unwrap();

    assert_left_open(db.execute("BEGIN", &[]).await);
    db.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    // Committed: another connection sees it.
    assert_eq!(count_rows(&other, "t").await, 1);

    // Begun and ended in one call is fine.
    db.execute("BEGIN; INSERT INTO t VALUES (2); COMMIT", &[])
        .await
        .unwrap();
    // A script (a `sql` task) likewise: left open, nothing of it stays.
    assert_left_open(db.execute_script("BEGIN; INSERT INTO t VALUES (3)").await);
    // A statement that fails inside its own transaction reports its own error.
    let e = db
        .execute("BEGIN; INSERT INTO nope VALUES (1)", &[])
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("no such table"), "{e}");
    assert_left_open(db.query_json("SAVEPOINT s; SELECT 1", &[]).await);
    // Words that only look like it.
    let rows = db.query_json("SELECT 'start' AS begin", &[]).await.unwrap();
    assert_eq!(row(&rows, 0), json!({"begin": "start"}));
    db.execute("INSERT INTO t VALUES (4)", &[]).await.unwrap();
    assert_eq!(
        other
            .query_json("SELECT x FROM t ORDER BY x", &[])
            .await
            .unwrap(),
        [1, 2, 4]
            .iter()
            .map(|x| json!({"x": x}).as_object().unwrap().clone())
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn postgres_a_transaction_left_open_is_rolled_back() {
    let Some(db) = pg("open_tx").await else {
        return;
    };
    db.execute("CREATE TABLE t (x int)", &[]).await.unwrap();
    let idle_in_tx = "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = $1 AND state LIKE 'idle in transaction%'";
    let app = [json!("functiond_test_open_tx")];

    assert_left_open(db.execute("BEGIN", &[]).await);
    assert_eq!(count(&db, idle_in_tx, &app).await, 0);

    assert_left_open(db.execute_script("BEGIN; INSERT INTO t VALUES (3)").await);
    assert_eq!(count(&db, idle_in_tx, &app).await, 0);
    assert_eq!(count_rows(&db, "t").await, 0);

    db.execute_script("BEGIN; INSERT INTO t VALUES (4); COMMIT")
        .await
        .unwrap();
    let rows = db.query_json("SELECT 'start' AS begin", &[]).await.unwrap();
    assert_eq!(row(&rows, 0), json!({"begin": "start"}));
    assert_eq!(count_rows(&db, "t").await, 1);
}
