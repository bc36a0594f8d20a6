//! Brook's default partitioner against librdkafka's murmur2 partitioner, at run time: kcat
//! (librdkafka) produces keyed records to a real broker, and every key must sit on the partition
//! Brook's partitioner computes.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use brook_client::admin::NewTopic;
use brook_client::partitioner::partition_for_key;
use common::TestBroker;

fn kcat(bootstrap: &str, args: &[&str], input: Option<&[u8]>) -> String {
    let mut child = Command::new("kcat")
        .arg("-b")
        .arg(bootstrap)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed by .ci/run (apt-get install kcat)");
    if let Some(data) = input {
        child.stdin.take().unwrap().write_all(data).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_where_librdkafkas_murmur2_partitioner_puts_them() {
    let b = TestBroker::start().await;
    let admin = b.admin();
    let keys: Vec<String> = (0..300)
        .map(|i| format!("key-{i}-{}", "x".repeat(i % 7)))
        .chain(["", "a", "ab", "abc", "21", "foobar"].map(String::from))
        .collect();
    for partitions in [1, 3, 7, 16] {
        let topic = format!("murmur-{partitions}");
        admin
            .create_topics(&[NewTopic::new(&topic, partitions, 1)], false)
            .await
            .unwrap();
        let input: String = keys.iter().map(|k| format!("{k}:v\n")).collect();
        let bootstrap = b.bootstrap.clone();
        let t = topic.clone();
        tokio::task::spawn_blocking(move || {
            kcat(
                &bootstrap,
                &[
                    "-P",
                    "-t",
                    &t,
                    "-K:",
                    "-X",
                    "topic.partitioner=murmur2_random",
                ],
                Some(input.as_bytes()),
            )
        })
        .await
        .unwrap();
        let bootstrap = b.bootstrap.clone();
        let t = topic.clone();
        let out = tokio::task::spawn_blocking(move || {
            kcat(
                &bootstrap,
                &["-C", "-t", &t, "-e", "-q", "-f", "%k\t%p\n"],
                None,
            )
        })
        .await
        .unwrap();
        let mut seen = 0;
        for line in out.lines() {
            let (key, partition) = line.split_once('\t').unwrap();
            // librdkafka's murmur2_random sends empty keys to a random partition, like null keys.
            if key.is_empty() {
                continue;
            }
            assert_eq!(
                partition.parse::<i32>().unwrap(),
                partition_for_key(key.as_bytes(), partitions),
                "key {key:?} with {partitions} partitions"
            );
            seen += 1;
        }
        assert_eq!(seen, keys.len() - 1);
    }
    b.stop().await;
}
