//! Three-node quorums in one process, on 127.0.0.1 with ports the OS picks.

use std::collections::BTreeMap;
use std::path::Path;

use brook_metadata::MetadataRecord;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use super::*;

const WAIT: Duration = Duration::from_secs(20);

fn settings() -> QuorumSettings {
    QuorumSettings {
        election_timeout_ms: 500,
        heartbeat_interval_ms: 100,
    }
}

/// The forward callback of node `id`: answers "node <id>: <payload>".
fn echo(id: i32) -> ForwardFn {
    Arc::new(move |payload: Vec<u8>| {
        Box::pin(async move {
            let mut out = format!("node {id}: ").into_bytes();
            out.extend_from_slice(&payload);
            out
        }) as BoxFuture<'static, Vec<u8>>
    })
}

fn topic(name: &str) -> MetadataRecord {
    MetadataRecord::Topic {
        name: name.into(),
        topic_id: Uuid::new_v4(),
    }
}

/// Polls `cond` until it holds; panics after [`WAIT`].
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `quorum`'s published image satisfies `cond`.
async fn image_where(quorum: &Quorum, what: &str, cond: impl FnMut(&Arc<MetadataImage>) -> bool) {
    let mut rx = quorum.subscribe();
    tokio::time::timeout(WAIT, rx.wait_for(cond))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "timed out waiting for node {} to see {what}",
                quorum.node_id()
            )
        })
        .expect("state machine gone");
}

struct Cluster {
    dirs: BTreeMap<i32, TempDir>,
    voters: Vec<(i32, String, u16)>,
    nodes: BTreeMap<i32, Quorum>,
}

impl Cluster {
    async fn start(n: i32) -> Cluster {
        let mut listeners = BTreeMap::new();
        let mut voters = Vec::new();
        for id in 1..=n {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            voters.push((id, "127.0.0.1".to_string(), l.local_addr().unwrap().port()));
            listeners.insert(id, l);
        }
        let mut cluster = Cluster {
            dirs: (1..=n)
                .map(|id| (id, tempfile::tempdir().unwrap()))
                .collect(),
            voters,
            nodes: BTreeMap::new(),
        };
        for (id, l) in listeners {
            cluster.start_node(id, l).await;
        }
        cluster
    }

    async fn start_node(&mut self, id: i32, listener: TcpListener) {
        let dir: &Path = self.dirs[&id].path();
        let (_tx, rx) = watch::channel(false);
        let q = Quorum::start(
            id,
            self.voters.clone(),
            dir,
            listener,
            settings(),
            echo(id),
            rx,
        )
        .await
        .unwrap();
        self.nodes.insert(id, q);
    }

    /// Restarts a stopped node from its directory on its old port.
    async fn restart(&mut self, id: i32) {
        let port = self.voters.iter().find(|v| v.0 == id).unwrap().2;
        let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        self.start_node(id, l).await;
    }

    async fn stop(&mut self, id: i32) {
        let q = self.nodes.remove(&id).unwrap();
        tokio::time::timeout(WAIT, q.shutdown())
            .await
            .expect("shutdown hangs");
    }

    /// Waits until one running node leads and every running node agrees on it.
    async fn leader(&self) -> i32 {
        let mut leader = None;
        eventually("a leader all nodes agree on", || {
            let leaders: Vec<i32> = self
                .nodes
                .values()
                .filter(|q| q.is_leader())
                .map(|q| q.node_id())
                .collect();
            let [l] = leaders[..] else { return false };
            leader = Some(l);
            self.nodes.values().all(|q| q.leader_id() == Some(l))
        })
        .await;
        leader.unwrap()
    }

    async fn shutdown(mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }
}

/// Commits one `Topic` record on node `on` and returns the value the operation returned.
async fn commit_topic(q: &Quorum, name: &str) -> Result<Result<usize, String>, QuorumError> {
    let name = name.to_string();
    q.commit(move |image: &MetadataImage| {
        if image.topic(&name).is_some() {
            return Err(format!("{name} exists"));
        }
        Ok((vec![topic(&name)], image.topics.len()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_and_a_commit_reaches_every_image() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let lq = &cluster.nodes[&leader];
    assert_eq!(commit_topic(lq, "a").await.unwrap(), Ok(0));
    // The leader's image holds the record as soon as commit returns.
    assert!(lq.image().topic("a").is_some());
    for q in cluster.nodes.values() {
        image_where(q, "topic a", |i| i.topic("a").is_some()).await;
    }
    // The operation sees the committed image and can refuse without writing.
    assert_eq!(commit_topic(lq, "a").await.unwrap(), Err("a exists".into()));
    // A follower refuses and names the leader.
    let follower = cluster
        .nodes
        .values()
        .find(|q| q.node_id() != leader)
        .unwrap();
    match commit_topic(follower, "b").await {
        Err(QuorumError::NotLeader { leader: l }) => assert_eq!(l, Some(leader)),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_from_a_follower_reaches_the_leaders_callback() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    for q in cluster.nodes.values() {
        let answer = tokio::time::timeout(WAIT, q.forward(b"hello".to_vec()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, format!("node {leader}: hello").into_bytes());
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_follows_the_image_and_forwards_to_the_leader_across_a_failover() {
    let mut cluster = Cluster::start(3).await;
    let (_tx, rx) = watch::channel(false);
    let observer = Quorum::observe(4, cluster.voters.clone(), rx).unwrap();
    assert!(!observer.is_voter() && !observer.is_leader());
    let leader = cluster.leader().await;
    assert_eq!(
        commit_topic(&cluster.nodes[&leader], "a").await.unwrap(),
        Ok(0)
    );
    image_where(&observer, "topic a", |i| i.topic("a").is_some()).await;
    let index = cluster.nodes[&leader].applied_index();
    tokio::time::timeout(WAIT, observer.wait_applied(index, WAIT))
        .await
        .unwrap();
    assert!(observer.applied_index() >= index);
    let answer = tokio::time::timeout(WAIT, observer.forward(b"hi".to_vec()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, format!("node {leader}: hi").into_bytes());
    // An observer cannot commit; it names the leader it knows.
    match commit_topic(&observer, "b").await {
        Err(QuorumError::NotLeader { .. }) => {}
        other => panic!("expected NotLeader, got {other:?}"),
    }

    // The leader stops: the observer learns the new one's images and forwards to it.
    cluster.stop(leader).await;
    let new = cluster.leader().await;
    assert_ne!(new, leader);
    assert_eq!(
        commit_topic(&cluster.nodes[&new], "c").await.unwrap(),
        Ok(1)
    );
    image_where(&observer, "topic c", |i| i.topic("c").is_some()).await;
    eventually("the observer to name the new leader", || {
        observer.leader_id() == Some(new)
    })
    .await;
    let answer = tokio::time::timeout(WAIT, observer.forward(b"again".to_vec()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer, format!("node {new}: again").into_bytes());
    tokio::time::timeout(WAIT, observer.shutdown())
        .await
        .expect("observer shutdown hangs");
    cluster.shutdown().await;
}

#[test]
fn an_observer_refuses_to_be_a_voter() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let (_tx, rx) = watch::channel(false);
    let voters = vec![(1, "127.0.0.1".to_string(), 9093)];
    assert!(matches!(
        Quorum::observe(1, voters, rx),
        Err(QuorumError::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_and_a_restarted_node_catches_up() {
    let mut cluster = Cluster::start(3).await;
    let old = cluster.leader().await;
    commit_topic(&cluster.nodes[&old], "before")
        .await
        .unwrap()
        .unwrap();
    for q in cluster.nodes.values() {
        image_where(q, "topic before", |i| i.topic("before").is_some()).await;
    }

    let stopped_at = Instant::now();
    cluster.stop(old).await;
    let new = cluster.leader().await;
    assert_ne!(new, old);
    assert!(
        stopped_at.elapsed() < Duration::from_secs(10),
        "election took {:?}",
        stopped_at.elapsed()
    );
    commit_topic(&cluster.nodes[&new], "after")
        .await
        .unwrap()
        .unwrap();
    // Forwarding follows the new leader too.
    let follower = cluster.nodes.keys().copied().find(|id| *id != new).unwrap();
    let answer = cluster.nodes[&follower]
        .forward(b"x".to_vec())
        .await
        .unwrap();
    assert_eq!(answer, format!("node {new}: x").into_bytes());

    cluster.restart(old).await;
    let expected = cluster.nodes[&new].image();
    image_where(&cluster.nodes[&old], "the leader's image", |i| {
        **i == *expected
    })
    .await;
    assert!(cluster.nodes[&old].image().topic("after").is_some());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_alone_keeps_its_image_from_snapshot_and_log() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let lq = cluster.nodes[&leader].clone();
    commit_topic(&lq, "in-snapshot").await.unwrap().unwrap();
    // Snapshot one follower, then commit more so its log holds entries beyond the snapshot.
    let id = cluster
        .nodes
        .keys()
        .copied()
        .find(|id| *id != leader)
        .unwrap();
    let fq = cluster.nodes[&id].clone();
    image_where(&fq, "the first topic", |i| i.topic("in-snapshot").is_some()).await;
    fq.trigger_snapshot().await.unwrap();
    let snapshot = cluster.dirs[&id].path().join("raft-snapshot.json");
    eventually("the follower's snapshot file", || snapshot.exists()).await;
    commit_topic(&lq, "in-log").await.unwrap().unwrap();
    image_where(&fq, "the second topic", |i| i.topic("in-log").is_some()).await;
    let before = fq.image();
    drop((lq, fq));
    let ids: Vec<i32> = cluster.nodes.keys().copied().collect();
    for other in ids {
        cluster.stop(other).await;
    }
    // Alone, the node cannot elect a leader: its image comes from its own disk only.
    cluster.restart(id).await;
    let q = &cluster.nodes[&id];
    image_where(q, "the image it had", |i| **i == *before).await;
    assert!(!q.is_leader());
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_closes_only_that_connection() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let port = cluster.voters.iter().find(|v| v.0 == leader).unwrap().2;
    for garbage in [
        u32::MAX.to_be_bytes().to_vec(),
        [&5u32.to_be_bytes()[..], b"nope!"].concat(),
    ] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        s.write_all(&garbage).await.unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(WAIT, s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        assert_eq!(n, 0, "the connection should be closed without a reply");
    }
    commit_topic(&cluster.nodes[&leader], "still-fine")
        .await
        .unwrap()
        .unwrap();
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_purged_log_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let lagging = cluster
        .nodes
        .keys()
        .copied()
        .find(|id| *id != leader)
        .unwrap();
    cluster.stop(lagging).await;
    let lq = cluster.nodes[&leader].clone();
    for i in 0..5 {
        commit_topic(&lq, &format!("t{i}")).await.unwrap().unwrap();
    }
    // Snapshot the leader and purge its whole log: the lagging node can only get a snapshot.
    let applied = lq
        .voter()
        .unwrap()
        .raft
        .metrics()
        .borrow()
        .last_applied
        .map(|l| l.index);
    lq.trigger_snapshot().await.unwrap();
    eventually("the leader's snapshot", || {
        lq.voter()
            .unwrap()
            .raft
            .metrics()
            .borrow()
            .snapshot
            .map(|l| l.index)
            >= applied
    })
    .await;
    let upto = applied.unwrap();
    lq.voter()
        .unwrap()
        .raft
        .trigger()
        .purge_log(upto)
        .await
        .unwrap();
    eventually("the leader's purge", || {
        lq.voter()
            .unwrap()
            .raft
            .metrics()
            .borrow()
            .purged
            .map(|l| l.index)
            >= Some(upto)
    })
    .await;

    cluster.restart(lagging).await;
    let expected = lq.image();
    let q = cluster.nodes[&lagging].clone();
    image_where(&q, "the leader's image", |i| **i == *expected).await;
    // It never built a snapshot of its own (that takes 1000 entries): this one was installed.
    assert!(cluster.dirs[&lagging]
        .path()
        .join("raft-snapshot.json")
        .exists());
    eventually("the installed snapshot in the metrics", || {
        q.voter()
            .unwrap()
            .raft
            .metrics()
            .borrow()
            .snapshot
            .is_some()
    })
    .await;
    // And it keeps following the log after the snapshot.
    commit_topic(&lq, "after-snapshot").await.unwrap().unwrap();
    image_where(&q, "a topic after the snapshot", |i| {
        i.topic("after-snapshot").is_some()
    })
    .await;
    drop((lq, q));
    cluster.shutdown().await;
}
