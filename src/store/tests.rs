//! The outbox's one transaction, on SQLite and (when `FUNCTIOND_TEST_PG_URL` names one)
//! PostgreSQL: which events are new, which deliveries are handed off, how attempts are numbered.

use chrono::Utc;
use serde_json::{json, Map, Value};

use super::outbox::{chunk_sizes, Accept, Attempt, Due, Finished, Next, OutboxWrite};
use super::Store;

async fn sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("state.db").display());
    (dir, Store::open(&url).await.unwrap())
}

/// A store in a fresh schema of the test database, or `None` when there is none.
async fn postgres(test: &str) -> Option<Store> {
    let url = crate::db::test_schema_url(test).await?;
    Some(Store::open(&url).await.unwrap())
}

fn event(id: &str) -> Map<String, Value> {
    let Value::Object(m) = json!({"type": "t", "id": id, "n": 1}) else {
        unreachable!()
    };
    m
}

fn accept(id: &str, subscribers: &[&str]) -> Accept {
    Accept {
        event: event(id),
        source: "test".into(),
        deliveries: subscribers.iter().map(|s| (s.to_string(), "url")).collect(),
    }
}

fn attempt(ok: bool) -> Attempt {
    Attempt {
        ok,
        status_code: Some(if ok { 200 } else { 500 }),
        latency_ms: 1.5,
        error: (!ok).then(|| "HTTP 500".to_owned()),
        response: Some("{}".into()),
    }
}

fn write<'a>(accept: &'a [Accept], hand_off: usize, finished: &'a [Finished]) -> OutboxWrite<'a> {
    OutboxWrite {
        accept,
        hand_off,
        lease_ms: 60_000,
        finished,
    }
}

/// (status, attempts, seqs of the attempt log) of each delivery of `event`, by function.
async fn states(store: &Store, event: &str) -> Vec<(String, String, i64, usize)> {
    let views = store.deliveries_of(event).await.unwrap();
    views
        .into_iter()
        .map(|v| (v.function, v.status, v.attempts, v.attempt_log.len()))
        .collect()
}

async fn check_outbox(store: Store) {
    // New, repeated in the same batch, and a batch big enough for several statement sizes.
    let mut batch = vec![accept("a", &["f1", "f2"]), accept("a", &["f1", "f2"])];
    batch.extend((0..100).map(|i| accept(&format!("bulk-{i}"), &["f1"])));
    let out = store.write_outbox(&write(&batch, 3, &[])).await.unwrap();
    assert_eq!(out.fresh[..3], [true, false, true]);
    assert_eq!(out.fresh.iter().filter(|f| **f).count(), 101);
    // 2 + 100 deliveries: 3 claimed for the caller, the rest left in the database.
    assert_eq!(out.handed.len(), 3);
    assert_eq!(out.left, 99);
    assert_eq!(out.handed[0].event_id, "a");
    assert_eq!(out.handed[0].event.get("n"), Some(&json!(1)));
    let first_handed = out.handed;

    // The same id again later: not new, nothing added.
    let again = [accept("a", &["f1", "f2", "f3"])];
    let out = store.write_outbox(&write(&again, 10, &[])).await.unwrap();
    assert_eq!((out.fresh, out.handed.len(), out.left), (vec![false], 0, 0));
    assert_eq!(states(&store, "a").await.len(), 2);

    // A claim takes only what was not handed off.
    let claimed = store.claim_due(1000, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 99);

    // Results: delivered, retried, dead, and one delivery twice in a batch (its lease ran out
    // mid-attempt): its attempts are numbered 1 and 2.
    let handed = store
        .write_outbox(&write(
            &[accept("b", &["f1", "f2", "f3"]), accept("c", &["f1"])],
            4,
            &[],
        ))
        .await
        .unwrap()
        .handed;
    let due = |event: &str, f: &str| -> Due {
        handed
            .iter()
            .find(|d| d.event_id == event && d.function == f)
            .unwrap()
            .clone()
    };
    let later = Utc::now() + chrono::Duration::minutes(5);
    let finished: Vec<Finished> = vec![
        (due("b", "f1"), attempt(true), Next::Delivered),
        (due("b", "f2"), attempt(false), Next::RetryAt(later)),
        (due("b", "f3"), attempt(false), Next::Dead),
        (due("c", "f1"), attempt(false), Next::RetryAt(later)),
        (due("c", "f1"), attempt(true), Next::Delivered),
    ];
    let out = store.write_outbox(&write(&[], 0, &finished)).await.unwrap();
    assert!(out.fresh.is_empty());
    assert_eq!(
        states(&store, "b").await,
        [
            ("f1".into(), "delivered".into(), 1, 1),
            ("f2".into(), "pending".into(), 1, 1),
            ("f3".into(), "dead".into(), 1, 1),
        ]
    );
    assert_eq!(
        states(&store, "c").await,
        [("f1".into(), "delivered".into(), 2, 2)]
    );
    let views = store.deliveries_of("b").await.unwrap();
    assert_eq!(views[1].last_error.as_deref(), Some("HTTP 500"));
    assert!(views[1].next_attempt_at.is_some());
    assert_eq!(views[0].attempt_log[0].attempt.status_code, Some(200));

    // A retry comes due only later; the handed-off ones stay claimed.
    assert!(store.claim_due(1000, 60_000).await.unwrap().is_empty());
    // Releasing a claim (a worker stopping before the attempt) makes it due at once; a delivery
    // that is no longer pending is left alone.
    store
        .release_claims(&[first_handed[0].id.clone(), due("b", "f1").id])
        .await
        .unwrap();
    let claimed = store.claim_due(1000, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, first_handed[0].id);
}

#[tokio::test]
async fn outbox_write_sqlite() {
    let (_dir, store) = sqlite().await;
    check_outbox(store).await;
}

#[tokio::test]
async fn outbox_write_postgres() {
    if let Some(store) = postgres("outbox_write").await {
        check_outbox(store).await;
    }
}

#[test]
fn statement_sizes_are_chunks_then_powers_of_two() {
    let check = |n: usize, expected: &[usize]| {
        assert_eq!(chunk_sizes(n).collect::<Vec<_>>(), expected, "{n} rows");
    };
    check(0, &[]);
    check(1, &[1]);
    check(23, &[16, 4, 2, 1]);
    check(64, &[64]);
    check(200, &[64, 64, 64, 8]);
}
