//! The writer's grouping, holding and checkpoint policy, against a real SQLite file.

use super::*;

fn writer() -> (WriterHandle, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let mut conn = Connection::open(&path).unwrap();
    super::super::schema::migrate(&mut conn).unwrap();
    conn.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")
        .unwrap();
    (spawn(conn, EventBus::default(), &path).unwrap(), dir)
}

#[tokio::test]
async fn everything_waiting_is_committed_in_one_group() {
    let (w, _dir) = writer();
    // Hold the writer busy until all 50 are queued behind it.
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let first = w.change(move |_, _| {
        let _ = gate_rx.recv();
        Ok(())
    });
    let rest: Vec<_> = (0..50)
        .map(|i| {
            w.change(move |c, _| {
                c.execute("INSERT INTO t (v) VALUES (?1)", [i])?;
                Ok(i)
            })
        })
        .collect();
    gate_tx.send(()).unwrap();
    first.await.unwrap();
    for (i, r) in rest.into_iter().enumerate() {
        assert_eq!(r.await.unwrap(), i as i32);
    }
    // The 50 queued behind the holder: they share one commit (the holder's own, if they
    // were queued before the writer woke for it).
    let commits = w.stats.commits.load(Ordering::Relaxed);
    assert!(
        (1..=2).contains(&commits),
        "{commits} commits for 51 changes"
    );
    assert_eq!(w.stats.changes.load(Ordering::Relaxed), 51);
    w.close().await;
}

#[tokio::test]
async fn a_failing_change_does_not_undo_its_group() {
    let (w, dir) = writer();
    let results = one_group(&w, || {
        vec![
            queued(w.change(|c, _| {
                c.execute("INSERT INTO t (v) VALUES (1)", [])?;
                Ok(())
            })),
            // The unique constraint refuses the same value again, after the insert of its own.
            queued(w.change(|c, _| {
                c.execute("INSERT INTO t (v) VALUES (2)", [])?;
                c.execute("INSERT INTO t (v) VALUES (1)", [])?;
                Ok(())
            })),
        ]
    })
    .await;
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(StoreError::Sqlite(_))));
    w.close().await;
    let conn = Connection::open(dir.path().join("w.db")).unwrap();
    let values: Vec<i64> = conn
        .prepare("SELECT v FROM t ORDER BY v")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(values, [1], "the failed change was rolled back whole");
}

#[tokio::test]
async fn the_writer_checkpoints_between_commits_so_the_wal_stops_growing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let conn = Connection::open(&path).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    // Off here too: only the writer's own checkpoints can keep the WAL short. No syncs,
    // to keep the test fast: what is measured is the WAL's length, not durability.
    conn.execute_batch(
        "PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = OFF;
         CREATE TABLE big (v BLOB)",
    )
    .unwrap();
    let w = spawn(conn, EventBus::default(), &path).unwrap();
    // About a page per change, one change per commit: 3 × the threshold in all.
    let changes = 3 * CHECKPOINT_PAGES as usize;
    let mut longest = 0;
    for _ in 0..changes {
        w.change(|c, _| Ok(c.execute("INSERT INTO big (v) VALUES (zeroblob(3000))", [])?))
            .await
            .unwrap();
        longest = longest.max(
            std::fs::metadata(dir.path().join("w.db-wal"))
                .unwrap()
                .len(),
        );
    }
    let frame = 4096 + 24;
    assert!(
        longest < 2 * CHECKPOINT_PAGES as u64 * frame,
        "the WAL reached {longest} bytes for {changes} one-page commits"
    );
    w.close().await;
    let conn = Connection::open(&path).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM big", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, changes as i64, "every commit is in the store");
}

#[tokio::test]
async fn a_closed_writer_answers_writer_gone() {
    let (w, _dir) = writer();
    w.close().await;
    assert!(matches!(
        w.change(|_, _| Ok(())).await,
        Err(StoreError::WriterGone)
    ));
}

/// A writer holding a change that may wait for `hold`, instead of about one commit's
/// time, and a second connection to look at what it committed.
fn holding_writer(hold: Duration, bus: EventBus) -> (WriterHandle, Connection, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let conn = Connection::open(&path).unwrap();
    conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
        .unwrap();
    conn.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")
        .unwrap();
    let w = spawn_holding(conn, bus, &path, Some(hold)).unwrap();
    (w, Connection::open(&path).unwrap(), dir)
}

fn stored(conn: &Connection) -> Vec<i64> {
    conn.prepare("SELECT v FROM t ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Waits (with a deadline) until the writer holds `n` changes.
fn wait_until_held(w: &WriterHandle, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.stats.held.load(Ordering::Relaxed) != n {
        assert!(
            Instant::now() < deadline,
            "the writer never held {n} changes"
        );
        std::thread::yield_now();
    }
}

fn insert(v: i64) -> impl FnMut(&Connection, &mut Emit) -> Result<(), StoreError> {
    move |c, emit| {
        c.execute("INSERT INTO t (v) VALUES (?1)", [v])?;
        emit.deleted(v, "k");
        Ok(())
    }
}

/// Polls once: whether the future has its answer now.
fn is_ready<F: Future>(f: std::pin::Pin<&mut F>) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    f.poll(&mut cx).is_ready()
}

const LONG: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn a_change_that_may_wait_joins_the_next_commit() {
    let bus = EventBus::default();
    let mut listener = bus.listen(crate::daemon::events::Route::All);
    let (w, reader, _dir) = holding_writer(LONG, bus);
    let mut held = std::pin::pin!(w.change_with(Durability::Soon, insert(1)));
    wait_until_held(&w, 1);
    // Held, not applied: not stored, not answered, not announced.
    assert!(stored(&reader).is_empty());
    assert!(!is_ready(held.as_mut()));
    assert!(listener.try_recv().is_none(), "announced before its commit");
    // A change that must be durable now brings it along: one commit for both, in order.
    w.change(insert(2)).await.unwrap();
    assert!(is_ready(held.as_mut()));
    assert_eq!(stored(&reader), [1, 2]);
    let sids: Vec<i64> = std::iter::from_fn(|| listener.try_recv())
        .map(|r| match r {
            crate::daemon::events::Received::Event(e) => e.sid(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sids, [1, 2], "both announced, in commit order");
    assert_eq!(w.stats.commits.load(Ordering::Relaxed), 1);
    assert_eq!(w.stats.held.load(Ordering::Relaxed), 0);
    w.close().await;
}

#[tokio::test]
async fn a_held_change_is_committed_on_its_own_when_nothing_follows() {
    let (w, reader, _dir) = holding_writer(Duration::from_millis(1), EventBus::default());
    w.change_with(Durability::Soon, insert(1)).await.unwrap();
    assert_eq!(stored(&reader), [1]);
    assert_eq!(w.stats.commits.load(Ordering::Relaxed), 1);
    w.close().await;
}

#[tokio::test]
async fn a_barrier_and_a_close_commit_what_is_held() {
    let (w, reader, _dir) = holding_writer(LONG, EventBus::default());
    let first = w.change_with(Durability::Soon, insert(1));
    wait_until_held(&w, 1);
    w.barrier().await;
    first.await.unwrap();
    assert_eq!(stored(&reader), [1]);
    // An unawaited change may wait too; closing commits it before the writer stops.
    w.change_unawaited("test insert", insert(2));
    wait_until_held(&w, 1);
    w.close().await;
    assert_eq!(stored(&reader), [1, 2]);
    assert_eq!(w.stats.commits.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn held_changes_that_fail_do_not_undo_the_group_they_join() {
    let (w, reader, _dir) = holding_writer(LONG, EventBus::default());
    w.change(insert(1)).await.unwrap();
    let dup = w.change_with(Durability::Soon, insert(1));
    let fine = w.change_with(Durability::Soon, insert(2));
    wait_until_held(&w, 2);
    w.change(insert(3)).await.unwrap();
    assert!(matches!(dup.await, Err(StoreError::Sqlite(_))));
    fine.await.unwrap();
    assert_eq!(stored(&reader), [1, 2, 3]);
    w.close().await;
}

/// An insert that counts how often it was applied.
fn counted_insert(
    v: i64,
    runs: &Arc<std::sync::atomic::AtomicUsize>,
) -> impl FnMut(&Connection, &mut Emit) -> Result<(), StoreError> + use<> {
    let runs = runs.clone();
    let mut insert = insert(v);
    move |c, emit| {
        runs.fetch_add(1, Ordering::Relaxed);
        insert(c, emit)
    }
}

type Queued = std::pin::Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send>>;

fn queued(f: impl Future<Output = Result<(), StoreError>> + Send + 'static) -> Queued {
    Box::pin(f)
}

/// Queues the changes `queue` makes behind a holder the writer is already applying, so
/// they form one group of their own; their answers, in order.
async fn one_group(
    w: &WriterHandle,
    queue: impl FnOnce() -> Vec<Queued>,
) -> Vec<Result<(), StoreError>> {
    let (gate_tx, gate_rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let hold = w.change(move |_, _| {
        let _ = started_tx.send(());
        let _ = gate_rx.recv();
        Ok(())
    });
    // Applied already, so it is a group of its own and the rest queue behind it.
    started_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the writer never applied the holder");
    let queued = queue();
    gate_tx.send(()).unwrap();
    hold.await.unwrap();
    let mut out = Vec::new();
    for f in queued {
        out.push(f.await);
    }
    out
}

fn sids(listener: &mut crate::daemon::events::Listener) -> Vec<i64> {
    std::iter::from_fn(|| listener.try_recv())
        .map(|r| match r {
            crate::daemon::events::Received::Event(e) => e.sid(),
            other => panic!("{other:?}"),
        })
        .collect()
}

/// Inserts 1, then `middle`, then 2, as one group; the three answers, how often the inserts
/// were applied, what the store kept and the sids announced.
async fn group_around(
    middle: impl FnMut(&Connection, &mut Emit) -> Result<(), StoreError> + Send + 'static,
) -> (Vec<Result<(), StoreError>>, usize, Vec<i64>, Vec<i64>) {
    let bus = EventBus::default();
    let mut listener = bus.listen(crate::daemon::events::Route::All);
    let (w, reader, _dir) = holding_writer(LONG, bus);
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let results = one_group(&w, || {
        vec![
            queued(w.change(counted_insert(1, &runs))),
            queued(w.change(middle)),
            queued(w.change(counted_insert(2, &runs))),
        ]
    })
    .await;
    w.close().await;
    let runs = runs.load(Ordering::Relaxed);
    (results, runs, stored(&reader), sids(&mut listener))
}

#[tokio::test]
async fn a_refusal_that_wrote_nothing_leaves_its_group_applied_once() {
    // Refused before writing anything, as a send to a missing session is.
    let (results, runs, stored, announced) = group_around(|_, emit| {
        emit.deleted(99, "k");
        Err(StoreError::SessionGone)
    })
    .await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(StoreError::SessionGone)));
    assert_eq!(stored, [1, 2]);
    assert_eq!(runs, 2, "the group was applied a second time");
    assert_eq!(announced, [1, 2], "only the kept changes are announced");
}

#[tokio::test]
async fn a_change_that_fails_after_writing_is_undone_alone_and_the_rest_stored_once() {
    // Writes 5, then breaks the unique constraint: 5 must not be kept.
    let (results, runs, stored, announced) = group_around(|c, emit| {
        c.execute("INSERT INTO t (v) VALUES (5)", [])?;
        emit.deleted(5, "k");
        c.execute("INSERT INTO t (v) VALUES (1)", [])?;
        Ok(())
    })
    .await;
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(
        matches!(results[1], Err(StoreError::Sqlite(_))),
        "{results:?}"
    );
    assert_eq!(stored, [1, 2], "the failed change was undone whole");
    // The first pass stops at the failure and is rolled back; the second applies each
    // change in a savepoint: the change before the failure ran twice, the one after once.
    assert_eq!(runs, 3);
    assert_eq!(announced, [1, 2], "each kept change announced once");
}

#[tokio::test]
async fn a_transaction_sqlite_gave_up_fails_the_whole_group_and_the_writer_goes_on() {
    // As SQLite may on a full disk or an I/O error: the transaction is gone when the
    // change's error comes back.
    let full = std::path::PathBuf::from("/full");
    let err = full.clone();
    let (results, _, kept, announced) = group_around(move |c, _| {
        c.execute_batch("ROLLBACK")?;
        Err(StoreError::DiskFull { path: err.clone() })
    })
    .await;
    for r in &results {
        assert!(matches!(r, Err(StoreError::DiskFull { .. })), "{results:?}");
    }
    assert!(kept.is_empty(), "stored outside the group: {kept:?}");
    assert!(announced.is_empty(), "announced: {announced:?}");

    // The same in the second pass, after a change that wrote and failed sent the group there.
    let (w, reader, _dir) = holding_writer(LONG, EventBus::default());
    let mut passes = 0;
    let results = one_group(&w, || {
        vec![
            queued(w.change(insert(1))),
            queued(w.change(move |c, _| {
                passes += 1;
                if passes == 1 {
                    c.execute("INSERT INTO t (v) VALUES (7)", [])?;
                    return Err(StoreError::SessionGone);
                }
                c.execute_batch("ROLLBACK")?;
                Err(StoreError::DiskFull { path: full.clone() })
            })),
            queued(w.change(insert(2))),
        ]
    })
    .await;
    for r in &results {
        assert!(matches!(r, Err(StoreError::DiskFull { .. })), "{results:?}");
    }
    assert!(stored(&reader).is_empty());
    w.change(insert(3)).await.unwrap();
    assert_eq!(stored(&reader), [3], "the writer took the next change");
    w.close().await;
}
