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
