//! The consumer against a real Brook broker, reading what kcat (librdkafka) wrote.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use brook_client::admin::NewTopic;
use brook_client::consumer::OffsetReset;
use brook_client::partitioner::partition_for_key;
use brook_client::{Consumer, ConsumerConfig, ConsumerRecord};
use common::TestBroker;

fn kcat_produce(bootstrap: &str, topic: &str, lines: &str) {
    let mut child = Command::new("kcat")
        .args([
            "-b",
            bootstrap,
            "-P",
            "-t",
            topic,
            "-K:",
            "-X",
            "topic.partitioner=murmur2_random",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("kcat is installed by .ci/run");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

async fn poll_until(c: &mut Consumer, want: usize, out: &mut Vec<ConsumerRecord>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < want && Instant::now() < deadline {
        out.extend(c.poll(Duration::from_millis(200)).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_assignment_reads_what_librdkafka_wrote_and_seeks() {
    let b = TestBroker::start().await;
    b.admin()
        .create_topics(&[NewTopic::new("m", 3, 1)], false)
        .await
        .unwrap();
    let lines: String = (0..300).map(|i| format!("k{i}:v{i}\n")).collect();
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || kcat_produce(&bootstrap, "m", &lines))
        .await
        .unwrap();
    let mut config = ConsumerConfig::new(&b.bootstrap, None);
    config.auto_offset_reset = OffsetReset::Earliest;
    let mut c = Consumer::new(config).unwrap();
    c.assign((0..3).map(|p| ("m".to_string(), p)).collect());
    let mut got = Vec::new();
    poll_until(&mut c, 300, &mut got).await;
    assert_eq!(got.len(), 300);
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &got {
        let key = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
        assert_eq!(
            r.value.as_deref().unwrap(),
            format!("v{}", &key[1..]).as_bytes()
        );
        assert_eq!(r.partition, partition_for_key(key.as_bytes(), 3));
        // Offsets increase by one within a partition.
        assert_eq!(r.offset, last.get(&r.partition).map_or(0, |o| o + 1));
        last.insert(r.partition, r.offset);
    }
    // Seek back: the same records come again.
    c.seek(("m".into(), 0), 0);
    let mut again = Vec::new();
    poll_until(&mut c, 1, &mut again).await;
    assert_eq!(again[0].offset, 0);
    assert_eq!(again[0].partition, 0);
    b.stop().await;
}

fn group_member(bootstrap: &str) -> Consumer {
    let mut config = ConsumerConfig::new(bootstrap, Some("rust-group"));
    config.auto_offset_reset = OffsetReset::Earliest;
    config.enable_auto_commit = false;
    config.heartbeat_interval = Duration::from_millis(300);
    config.session_timeout = Duration::from_secs(10);
    let mut c = Consumer::new(config).unwrap();
    c.subscribe(vec!["g".into()]).unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_share_partitions_and_resume_from_commits() {
    let b = TestBroker::start_with(&["group.initial.rebalance.delay.ms=0"]).await;
    b.admin()
        .create_topics(&[NewTopic::new("g", 4, 1)], false)
        .await
        .unwrap();
    let lines: String = (0..400).map(|i| format!("k{i}:v{i}\n")).collect();
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || kcat_produce(&bootstrap, "g", &lines))
        .await
        .unwrap();

    // Alone in the group, the first member gets every partition; it reads some and commits.
    let mut first = group_member(&b.bootstrap);
    let mut read = Vec::new();
    poll_until(&mut first, 100, &mut read).await;
    assert_eq!(first.assignment().len(), 4);
    first.commit_sync().await.unwrap();
    let tp = first.assignment()[0].clone();
    assert_eq!(first.committed(&tp).await.unwrap(), first.position(&tp));
    first.close().await.unwrap();

    // Two members, each in its own task (a rebalance needs both to rejoin concurrently), split
    // the partitions and read exactly what was not committed.
    let both_assigned = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let total = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(read.len()));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (bootstrap, both, total) = (b.bootstrap.clone(), both_assigned.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering::SeqCst;
            let mut c = group_member(&bootstrap);
            let mut mine = Vec::new();
            let mut counted = false;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline
                && !(both.load(SeqCst) == 2 && total.load(SeqCst) >= 400)
            {
                let got = c.poll(Duration::from_millis(100)).await.unwrap();
                total.fetch_add(got.len(), SeqCst);
                mine.extend(got);
                if !counted && c.assignment().len() == 2 {
                    counted = true;
                    both.fetch_add(1, SeqCst);
                }
            }
            let assignment = c.assignment();
            c.commit_sync().await.unwrap();
            c.close().await.unwrap();
            (assignment, mine)
        }));
    }
    let mut partitions = Vec::new();
    for t in tasks {
        let (assignment, mine) = t.await.unwrap();
        assert_eq!(assignment.len(), 2);
        partitions.extend(assignment);
        read.extend(mine);
    }
    partitions.sort();
    assert_eq!(
        partitions,
        (0..4).map(|p| ("g".to_string(), p)).collect::<Vec<_>>()
    );
    let mut keys: Vec<_> = read.iter().map(|r| r.key.clone().unwrap()).collect();
    assert_eq!(keys.len(), 400, "no record read twice across the hand-over");
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 400, "every record read");
    b.stop().await;
}

/// What the test listener saw: the callback, its partitions, the consumer's assignment at that
/// moment, and (for revokes) whether the commit made inside the callback succeeded.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Revoked {
        partitions: Vec<(String, i32)>,
        assignment_then: Vec<(String, i32)>,
        committed: bool,
    },
    Assigned {
        partitions: Vec<(String, i32)>,
        positions_then: Vec<Option<i64>>,
    },
    Lost {
        partitions: Vec<(String, i32)>,
    },
}

struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<Seen>>>);

impl brook_client::consumer::RebalanceListener for Recorder {
    fn on_partitions_revoked<'a>(
        &'a mut self,
        consumer: &'a mut Consumer,
        partitions: &'a [(String, i32)],
    ) -> brook_client::consumer::ListenerFuture<'a> {
        Box::pin(async move {
            let assignment_then = consumer.assignment();
            let committed = consumer.commit_sync().await.is_ok();
            self.0.lock().unwrap().push(Seen::Revoked {
                partitions: partitions.to_vec(),
                assignment_then,
                committed,
            });
        })
    }

    fn on_partitions_assigned<'a>(
        &'a mut self,
        consumer: &'a mut Consumer,
        partitions: &'a [(String, i32)],
    ) -> brook_client::consumer::ListenerFuture<'a> {
        Box::pin(async move {
            let positions_then = partitions.iter().map(|tp| consumer.position(tp)).collect();
            self.0.lock().unwrap().push(Seen::Assigned {
                partitions: partitions.to_vec(),
                positions_then,
            });
        })
    }

    fn on_partitions_lost<'a>(
        &'a mut self,
        _consumer: &'a mut Consumer,
        partitions: &'a [(String, i32)],
    ) -> brook_client::consumer::ListenerFuture<'a> {
        Box::pin(async move {
            self.0.lock().unwrap().push(Seen::Lost {
                partitions: partitions.to_vec(),
            });
        })
    }
}

fn listening_member(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> (Consumer, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    let mut config = ConsumerConfig::new(bootstrap, Some(group));
    config.auto_offset_reset = OffsetReset::Earliest;
    config.enable_auto_commit = false;
    config.heartbeat_interval = Duration::from_millis(200);
    config.session_timeout = Duration::from_secs(10);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut c = Consumer::new(config).unwrap();
    c.subscribe_with_listener(vec![topic.into()], Recorder(seen.clone()))
        .unwrap();
    (c, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_listener_revokes_before_rejoin_with_a_valid_commit_then_assigns() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    let b = TestBroker::start_with(&["group.initial.rebalance.delay.ms=0"]).await;
    b.admin()
        .create_topics(&[NewTopic::new("rb", 2, 1)], false)
        .await
        .unwrap();
    let lines: String = (0..100).map(|i| format!("k{i}:v{i}\n")).collect();
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || kcat_produce(&bootstrap, "rb", &lines))
        .await
        .unwrap();
    let both: Vec<(String, i32)> = vec![("rb".into(), 0), ("rb".into(), 1)];

    // The first member, alone, is assigned both partitions before it reads anything.
    let (mut first, first_seen) = listening_member(&b.bootstrap, "rb-group", "rb");
    let mut read = Vec::new();
    poll_until(&mut first, 100, &mut read).await;
    assert_eq!(read.len(), 100);
    assert_eq!(
        first_seen.lock().unwrap().clone(),
        vec![Seen::Assigned {
            partitions: both.clone(),
            positions_then: vec![None, None]
        }]
    );
    let positions: Vec<Option<i64>> = both.iter().map(|tp| first.position(tp)).collect();

    // A second member joins; the first keeps polling in its own task until it holds one partition.
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let first_task = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stop2.load(SeqCst) && Instant::now() < deadline {
            first.poll(Duration::from_millis(100)).await.unwrap();
        }
        first
    });
    let (mut second, second_seen) = listening_member(&b.bootstrap, "rb-group", "rb");
    let deadline = Instant::now() + Duration::from_secs(30);
    while second.assignment().len() != 1 && Instant::now() < deadline {
        second.poll(Duration::from_millis(100)).await.unwrap();
    }
    stop.store(true, SeqCst);
    let first = first_task.await.unwrap();
    assert_eq!(second.assignment().len(), 1);
    let kept = first.assignment();
    assert_eq!(kept.len(), 1);
    assert_ne!(kept, second.assignment());

    // The revoke came first, while both partitions were still held, and its commit went through
    // (the generation was still valid); then the new, smaller assignment.
    let seen = first_seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen[1],
        Seen::Revoked {
            partitions: both.clone(),
            assignment_then: both.clone(),
            committed: true
        }
    );
    let Seen::Assigned { partitions, .. } = &seen[2] else {
        panic!("{seen:?}")
    };
    assert_eq!(partitions, &kept);
    // What the revoke committed is where the first member had read to.
    let committed: Vec<Option<i64>> = second
        .committed_offsets(&both)
        .await
        .unwrap()
        .into_values()
        .collect();
    assert_eq!(committed, positions);
    // The second member was told only of its assignment (nothing to revoke yet).
    assert!(matches!(
        second_seen.lock().unwrap().as_slice(),
        [Seen::Assigned { .. }]
    ));

    // Closing revokes what is held.
    first.close().await.unwrap();
    let seen = first_seen.lock().unwrap().clone();
    assert_eq!(
        seen.last(),
        Some(&Seen::Revoked {
            partitions: kept.clone(),
            assignment_then: kept,
            committed: true
        })
    );
    second.close().await.unwrap();
    b.stop().await;
}

async fn produce_at(b: &TestBroker, topic: &str, partition: i32, timestamps: &[i64]) {
    let producer =
        brook_client::Producer::new(brook_client::ProducerConfig::new(&b.bootstrap)).unwrap();
    for (i, ts) in timestamps.iter().enumerate() {
        let mut r =
            brook_client::ProducerRecord::new(topic, Some(format!("k{i}")), Some(format!("v{i}")));
        r.partition = Some(partition);
        r.timestamp = Some(*ts);
        producer.send(r).await.unwrap().await.unwrap();
    }
}

fn kcat_offset_for_time(bootstrap: &str, topic: &str, partition: i32, ts: i64) -> i64 {
    let out = Command::new("kcat")
        .args([
            "-b",
            bootstrap,
            "-Q",
            "-t",
            &format!("{topic}:{partition}:{ts}"),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    // "topic [p] offset N"
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().last().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_beginning_end_and_committed_agree_with_librdkafka() {
    let b = TestBroker::start().await;
    b.admin()
        .create_topics(&[NewTopic::new("ts", 2, 1)], false)
        .await
        .unwrap();
    produce_at(&b, "ts", 0, &[1000, 2000, 3000, 4000]).await;
    produce_at(&b, "ts", 1, &[500, 5000]).await;
    b.admin()
        .delete_records(&[("ts".into(), 0, 1)])
        .await
        .unwrap();
    let c = Consumer::new(ConsumerConfig::new(&b.bootstrap, Some("ts-group"))).unwrap();
    let (p0, p1) = (("ts".to_string(), 0), ("ts".to_string(), 1));
    let query: BTreeMap<_, _> = [(p0.clone(), 2500), (p1.clone(), 6000)]
        .into_iter()
        .collect();
    let found = c.offsets_for_times(&query).await.unwrap();
    let at = found[&p0].unwrap();
    assert_eq!((at.offset, at.timestamp), (2, 3000));
    assert_eq!(found[&p1], None, "no record at or after 6000");
    // librdkafka's answer for the same query.
    let bootstrap = b.bootstrap.clone();
    let theirs =
        tokio::task::spawn_blocking(move || kcat_offset_for_time(&bootstrap, "ts", 0, 2500))
            .await
            .unwrap();
    assert_eq!(theirs, at.offset);
    let early = [(p0.clone(), 0)].into_iter().collect();
    assert_eq!(
        c.offsets_for_times(&early).await.unwrap()[&p0]
            .unwrap()
            .offset,
        1
    );

    let parts = vec![p0.clone(), p1.clone()];
    let begin = c.beginning_offsets(&parts).await.unwrap();
    assert_eq!((begin[&p0], begin[&p1]), (1, 0));
    let end = c.end_offsets(&parts).await.unwrap();
    assert_eq!((end[&p0], end[&p1]), (4, 2));

    // Nothing committed yet; then one partition committed, both asked in one call.
    let none = c.committed_offsets(&parts).await.unwrap();
    assert_eq!(none.values().collect::<Vec<_>>(), vec![&None, &None]);
    let mut c = c;
    c.commit_offsets(&[(p1.clone(), 2)].into_iter().collect())
        .await
        .unwrap();
    let some = c.committed_offsets(&parts).await.unwrap();
    assert_eq!((some[&p0], some[&p1]), (None, Some(2)));
    let e = c
        .beginning_offsets(&[("no-such-topic".into(), 0)])
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no-such-topic"), "{e}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_sessions_go_incremental_and_recover_from_a_bad_epoch() {
    let b = TestBroker::start().await;
    b.admin()
        .create_topics(&[NewTopic::new("fs", 3, 1)], false)
        .await
        .unwrap();
    let lines: String = (0..90).map(|i| format!("k{i}:v{i}\n")).collect();
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || kcat_produce(&bootstrap, "fs", &lines))
        .await
        .unwrap();
    let mut config = ConsumerConfig::new(&b.bootstrap, None);
    config.auto_offset_reset = OffsetReset::Earliest;
    config.fetch_max_wait = Duration::from_millis(50);
    let mut c = Consumer::new(config).unwrap();
    c.assign((0..3).map(|p| ("fs".to_string(), p)).collect());
    let mut got = Vec::new();
    poll_until(&mut c, 90, &mut got).await;
    assert_eq!(got.len(), 90);
    // The broker opened a session; with everything read, positions stop changing and the
    // incremental requests list no partition at all.
    c.poll(Duration::from_millis(100)).await.unwrap();
    c.poll(Duration::from_millis(100)).await.unwrap();
    let s = c.fetch_sessions()[0];
    assert_ne!(s.session_id, 0, "{s:?}");
    assert!(s.epoch >= 2, "{s:?}");
    assert_eq!(s.last_request_partitions, 0, "{s:?}");

    // New records in one partition come through the session, which then lists only that one.
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || kcat_produce(&bootstrap, "fs", "k1:again\n"))
        .await
        .unwrap();
    let mut more = Vec::new();
    poll_until(&mut c, 1, &mut more).await;
    assert_eq!(more.len(), 1);
    assert_eq!(more[0].value.as_deref(), Some(&b"again"[..]));
    // The next request, sent ahead while that record is handed out, lists only the partition
    // whose position moved.
    assert_eq!(c.fetch_sessions()[0].last_request_partitions, 1);

    // An epoch the broker does not expect: INVALID_FETCH_SESSION_EPOCH, then a fresh full
    // session, and reading goes on from the same positions.
    let before = c.fetch_sessions()[0];
    c.desynchronize_fetch_sessions_for_testing();
    c.poll(Duration::from_millis(100)).await.unwrap();
    c.poll(Duration::from_millis(100)).await.unwrap();
    let after = c.fetch_sessions()[0];
    assert_ne!(after.session_id, 0, "{after:?}");
    assert_ne!(
        after.session_id, before.session_id,
        "the old session was closed and a new one opened"
    );
    c.seek(("fs".into(), 0), 0);
    let mut again = Vec::new();
    poll_until(&mut c, 1, &mut again).await;
    assert_eq!(again[0].offset, 0);
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_broker_sessions_every_fetch_is_full() {
    let b = TestBroker::start_with(&["max.incremental.fetch.session.cache.slots=0"]).await;
    b.admin()
        .create_topics(&[NewTopic::new("nf", 2, 1)], false)
        .await
        .unwrap();
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || kcat_produce(&bootstrap, "nf", "a:1\nb:2\nc:3\n"))
        .await
        .unwrap();
    let mut config = ConsumerConfig::new(&b.bootstrap, None);
    config.auto_offset_reset = OffsetReset::Earliest;
    config.fetch_max_wait = Duration::from_millis(50);
    let mut c = Consumer::new(config).unwrap();
    c.assign(vec![("nf".into(), 0), ("nf".into(), 1)]);
    let mut got = Vec::new();
    poll_until(&mut c, 3, &mut got).await;
    assert_eq!(got.len(), 3);
    c.poll(Duration::from_millis(100)).await.unwrap();
    let s = c.fetch_sessions()[0];
    assert_eq!((s.session_id, s.last_request_partitions), (0, 2), "{s:?}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pattern_subscription_picks_up_new_matching_topics() {
    let b = TestBroker::start_with(&["group.initial.rebalance.delay.ms=0"]).await;
    b.admin()
        .create_topics(
            &[
                NewTopic::new("orders-eu", 1, 1),
                NewTopic::new("other", 1, 1),
            ],
            false,
        )
        .await
        .unwrap();
    let mut config = ConsumerConfig::new(&b.bootstrap, Some("pattern-group"));
    config.auto_offset_reset = OffsetReset::Earliest;
    config.metadata_max_age = Duration::from_millis(300);
    let mut c = Consumer::new(config).unwrap();
    assert!(c.subscribe_pattern("orders-(").is_err());
    c.subscribe_pattern("orders-.*").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.assignment().is_empty() && Instant::now() < deadline {
        c.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(c.subscription(), vec!["orders-eu".to_string()]);
    assert_eq!(c.assignment(), vec![("orders-eu".to_string(), 0)]);

    // A topic created later that matches is joined at the next metadata refresh.
    b.admin()
        .create_topics(&[NewTopic::new("orders-us", 1, 1)], false)
        .await
        .unwrap();
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || kcat_produce(&bootstrap, "orders-us", "k:us\n"))
        .await
        .unwrap();
    let mut got = Vec::new();
    poll_until(&mut c, 1, &mut got).await;
    assert_eq!(got[0].topic, "orders-us");
    assert_eq!(c.assignment().len(), 2);
    c.close().await.unwrap();
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_members_share_partitions_acknowledge_and_leave() {
    use brook_client::consumer::GroupProtocol;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let b = TestBroker::start_with(&["group.consumer.heartbeat.interval.ms=200"]).await;
    b.admin()
        .create_topics(&[NewTopic::new("k848", 4, 1)], false)
        .await
        .unwrap();
    let lines: String = (0..400).map(|i| format!("k{i}:v{i}\n")).collect();
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || kcat_produce(&bootstrap, "k848", &lines))
        .await
        .unwrap();
    let member = |bootstrap: &str| {
        let mut config = ConsumerConfig::new(bootstrap, Some("k848-group"));
        config.group_protocol = GroupProtocol::Consumer;
        config.auto_offset_reset = OffsetReset::Earliest;
        config.enable_auto_commit = false;
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut c = Consumer::new(config).unwrap();
        c.subscribe_with_listener(vec!["k848".into()], Recorder(seen.clone()))
            .unwrap();
        (c, seen)
    };
    // Two members, each polling in its own task, until both hold two partitions and all 400
    // records are read; each commits what it read before stopping.
    let both = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (mut c, seen) = member(&b.bootstrap);
        let (both, total) = (both.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut counted = false;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline
                && !(both.load(SeqCst) == 2 && total.load(SeqCst) >= 400)
            {
                let got = c.poll(Duration::from_millis(100)).await.unwrap();
                if !got.is_empty() {
                    // A commit may meet a stale epoch mid-reconciliation; the next one catches up.
                    let _ = c.commit_sync().await;
                }
                total.fetch_add(got.len(), SeqCst);
                mine.extend(got);
                if !counted && c.assignment().len() == 2 {
                    counted = true;
                    both.fetch_add(1, SeqCst);
                }
            }
            let (member_id, epoch) = c.group_member().unwrap();
            (c, seen, mine, member_id, epoch)
        }));
    }
    let mut members = Vec::new();
    let mut read = Vec::new();
    for t in tasks {
        let (c, seen, mine, member_id, epoch) = t.await.unwrap();
        assert!(!member_id.is_empty() && epoch > 0, "{member_id} {epoch}");
        read.extend(mine.iter().map(|r| (r.partition, r.offset)));
        members.push((c, seen));
    }
    let mut partitions: Vec<_> = members.iter().flat_map(|(c, _)| c.assignment()).collect();
    partitions.sort();
    assert_eq!(
        partitions,
        (0..4).map(|p| ("k848".to_string(), p)).collect::<Vec<_>>()
    );
    read.sort();
    let n = read.len();
    read.dedup();
    assert_eq!(read.len(), 400, "every record read");
    assert!(n >= 400);

    // The coordinator sees both members with two partitions each (their acknowledged assignment).
    // One leaves (epoch -1): the other is given all four partitions and is told only of the two new ones.
    let (leaver, _) = members.pop().unwrap();
    let left: Vec<_> = leaver.assignment();
    leaver.close().await.unwrap();
    let (mut stayer, seen) = members.pop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stayer.assignment().len() != 4 && Instant::now() < deadline {
        stayer.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(stayer.assignment().len(), 4);
    let last = seen.lock().unwrap().last().cloned();
    let Some(Seen::Assigned { partitions, .. }) = last else {
        panic!("{last:?}")
    };
    assert_eq!(partitions, left);
    stayer.close().await.unwrap();
    b.stop().await;
}

#[test]
fn consumer_properties_select_the_group_protocol_and_metadata_age() {
    use brook_client::consumer::GroupProtocol;
    let props = |extra: &[(&str, &str)]| -> BTreeMap<String, String> {
        [("bootstrap.servers", "a:1")]
            .iter()
            .chain(extra)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let c = ConsumerConfig::from_properties(props(&[])).unwrap();
    assert_eq!(c.group_protocol, GroupProtocol::Classic);
    assert_eq!(c.metadata_max_age, Duration::from_secs(300));
    let c = ConsumerConfig::from_properties(props(&[
        ("group.protocol", "CONSUMER"),
        ("group.remote.assignor", "range"),
        ("metadata.max.age.ms", "1500"),
    ]))
    .unwrap();
    assert_eq!(c.group_protocol, GroupProtocol::Consumer);
    assert_eq!(c.group_remote_assignor.as_deref(), Some("range"));
    assert_eq!(c.metadata_max_age, Duration::from_millis(1500));
    let e = ConsumerConfig::from_properties(props(&[("group.protocol", "eager")]))
        .err()
        .unwrap();
    assert!(e.to_string().contains("group.protocol"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_holds_back_even_records_already_fetched_and_resume_loses_none() {
    let b = TestBroker::start().await;
    b.admin()
        .create_topics(&[NewTopic::new("pz", 1, 1)], false)
        .await
        .unwrap();
    let lines: String = (0..500).map(|i| format!("k{i}:v{i}\n")).collect();
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || kcat_produce(&bootstrap, "pz", &lines))
        .await
        .unwrap();
    let mut config = ConsumerConfig::new(&b.bootstrap, None);
    config.auto_offset_reset = OffsetReset::Earliest;
    config.max_poll_records = 50;
    let mut c = Consumer::new(config).unwrap();
    let tp = ("pz".to_string(), 0);
    c.assign(vec![tp.clone()]);
    let mut got = Vec::new();
    poll_until(&mut c, 1, &mut got).await;
    // More was fetched than returned (50 per poll): the position counts only what was returned.
    assert_eq!(got.len(), 50);
    assert_eq!(c.position(&tp), Some(50));
    c.pause(std::slice::from_ref(&tp));
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    c.resume(std::slice::from_ref(&tp));
    poll_until(&mut c, 500, &mut got).await;
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..500).collect::<Vec<_>>());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_static_member_is_told_its_partitions_are_lost_not_revoked() {
    let b = TestBroker::start_with(&["group.initial.rebalance.delay.ms=0"]).await;
    b.admin()
        .create_topics(&[NewTopic::new("fence", 2, 1)], false)
        .await
        .unwrap();
    let static_member = |bootstrap: &str| {
        let mut config = ConsumerConfig::new(bootstrap, Some("fence-group"));
        config.group_instance_id = Some("instance-1".into());
        config.enable_auto_commit = false;
        config.heartbeat_interval = Duration::from_millis(200);
        config.session_timeout = Duration::from_secs(10);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut c = Consumer::new(config).unwrap();
        c.subscribe_with_listener(vec!["fence".into()], Recorder(seen.clone()))
            .unwrap();
        (c, seen)
    };
    let (mut old, old_seen) = static_member(&b.bootstrap);
    let deadline = Instant::now() + Duration::from_secs(20);
    while old.assignment().len() != 2 && Instant::now() < deadline {
        old.poll(Duration::from_millis(100)).await.unwrap();
    }
    let held = old.assignment();
    assert_eq!(held.len(), 2);
    // A second process with the same group.instance.id takes the identity over.
    let (mut new, _) = static_member(&b.bootstrap);
    let deadline = Instant::now() + Duration::from_secs(20);
    while new.assignment().len() != 2 && Instant::now() < deadline {
        new.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(new.assignment(), held);
    // The old one's heartbeat is refused: its partitions are lost, with no revoke (a commit
    // would be refused), and its positions are forgotten.
    let lost = Seen::Lost {
        partitions: held.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !old_seen.lock().unwrap().contains(&lost) && Instant::now() < deadline {
        // Rejoining with the fenced identity may fail or may take the identity back: either way
        // the loss has been reported first.
        let _ = old.poll(Duration::from_millis(100)).await;
    }
    let seen = old_seen.lock().unwrap().clone();
    assert_eq!(seen.get(1), Some(&lost), "{seen:?}");
    assert!(
        !seen.iter().any(|s| matches!(s, Seen::Revoked { .. })),
        "{seen:?}"
    );
    if let Some(Seen::Assigned { positions_then, .. }) = seen.get(2) {
        assert_eq!(positions_then, &vec![None, None], "{seen:?}");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_async_commits_what_poll_returned_while_polling_goes_on() {
    let b = TestBroker::start_with(&["group.initial.rebalance.delay.ms=0"]).await;
    b.admin()
        .create_topics(&[NewTopic::new("ca", 1, 1)], false)
        .await
        .unwrap();
    let lines: String = (0..100).map(|i| format!("k{i}:v{i}\n")).collect();
    let bootstrap = b.bootstrap.clone();
    tokio::task::spawn_blocking(move || kcat_produce(&bootstrap, "ca", &lines))
        .await
        .unwrap();
    let mut config = ConsumerConfig::new(&b.bootstrap, Some("async-committer"));
    config.auto_offset_reset = OffsetReset::Earliest;
    config.enable_auto_commit = false;
    config.max_poll_records = 10;
    let mut c = Consumer::new(config).unwrap();
    c.subscribe(vec!["ca".into()]).unwrap();
    let mut got = Vec::new();
    poll_until(&mut c, 10, &mut got).await;
    let returned = got.last().unwrap().offset + 1;
    let pending = c.commit_async().await.unwrap();
    // Polling is not held up by the commit in flight.
    let more = c.poll(Duration::from_secs(5)).await.unwrap();
    assert!(!more.is_empty());
    pending.await.unwrap().unwrap();
    // What was committed is what poll had returned when commit_async was called.
    let committed = c.committed(&("ca".to_string(), 0)).await.unwrap();
    assert_eq!(committed, Some(returned));
    c.close().await.unwrap();
    b.stop().await;
}

async fn members(admin: &brook_client::Admin, group: &str) -> usize {
    admin.describe_groups(&[group.to_string()]).await.unwrap()[0]
        .members
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_dropped_without_close_stops_heartbeating_and_is_evicted() {
    let b = TestBroker::start_with(&[
        "group.initial.rebalance.delay.ms=0",
        "group.min.session.timeout.ms=500",
    ])
    .await;
    b.admin()
        .create_topics(&[NewTopic::new("dropped", 1, 1)], false)
        .await
        .unwrap();
    let mut config = ConsumerConfig::new(&b.bootstrap, Some("dropper"));
    config.session_timeout = Duration::from_millis(1000);
    config.heartbeat_interval = Duration::from_millis(100);
    let mut c = Consumer::new(config).unwrap();
    c.subscribe(vec!["dropped".into()]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.assignment().is_empty() && Instant::now() < deadline {
        c.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(c.assignment().len(), 1);
    let admin = b.admin();
    assert_eq!(members(&admin, "dropper").await, 1);
    drop(c);
    // Heartbeats stop with the consumer: the coordinator evicts it after the session timeout.
    let deadline = Instant::now() + Duration::from_secs(15);
    while members(&admin, "dropper").await > 0 {
        assert!(
            Instant::now() < deadline,
            "the dropped member was never evicted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.stop().await;
}
