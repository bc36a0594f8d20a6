//! The shipped deployment (config/cluster/) loads: its three combined nodes describe one consistent
//! controller quorum, and its broker-only node observes that quorum.

use std::collections::BTreeSet;
use std::path::PathBuf;

use brook_broker::BrokerConfig;

fn load_file(name: &str) -> BrokerConfig {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../config/cluster")
        .join(name);
    BrokerConfig::load(Some(&path), &[]).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(i: u32) -> BrokerConfig {
    load_file(&format!("node-{i}.properties"))
}

#[test]
fn the_broker_only_file_observes_the_same_quorum() {
    let b = load_file("broker-4.properties");
    let first = load(1);
    assert!(b.cluster.enabled());
    assert!(b.cluster.process_roles.broker && !b.cluster.process_roles.controller);
    assert!(b.cluster.controller_listener.is_none());
    assert_eq!(b.cluster_id, first.cluster_id);
    assert_eq!(b.cluster.voters, first.cluster.voters);
    assert!(b.cluster.voters.iter().all(|v| v.id != b.node_id));
    assert_eq!(b.client_listener().name, "PLAINTEXT");
    assert_eq!(b.cluster.inter_broker_listener_name, "PLAINTEXT");
    assert_ne!(
        b.advertised_listeners[0].host,
        first.advertised_listeners[0].host
    );
}

#[test]
fn the_three_node_files_form_one_quorum() {
    let nodes: Vec<BrokerConfig> = (1..=3).map(load).collect();
    let ids: BTreeSet<i32> = nodes.iter().map(|c| c.node_id).collect();
    assert_eq!(ids, BTreeSet::from([1, 2, 3]), "node ids must be distinct");

    let first = &nodes[0];
    assert_eq!(first.cluster.voters.len(), 3);
    for c in &nodes {
        assert!(c.cluster.enabled());
        assert!(c.cluster.process_roles.broker && c.cluster.process_roles.controller);
        // The same cluster and the same voter set everywhere.
        assert!(c.cluster_id.is_some());
        assert_eq!(c.cluster_id, first.cluster_id, "node {}", c.node_id);
        assert_eq!(c.cluster.voters, first.cluster.voters, "node {}", c.node_id);
        // This node's voter entry is its own controller listener, on its own host.
        let me = c
            .cluster
            .voters
            .iter()
            .find(|v| v.id == c.node_id)
            .unwrap_or_else(|| panic!("node {} is not a voter", c.node_id));
        let controller = c.cluster.controller_listener.as_ref().expect("controller");
        assert_eq!(controller.port, me.port, "node {}", c.node_id);
        let advertised = &c.advertised_listeners[0];
        assert_eq!(advertised.name, c.cluster.inter_broker_listener_name);
        assert_eq!(
            advertised.host, me.host,
            "node {} advertises another host",
            c.node_id
        );
        assert_eq!(c.client_listener().name, "PLAINTEXT");
        // Replication settings agree, and acks=all survives one broker down.
        assert_eq!(c.default_replication_factor, 3);
        assert_eq!(c.properties["min.insync.replicas"], "2");
        assert_eq!(c.coordinator.offsets_replication_factor, 3);
        assert_eq!(
            c.cluster.replica_lag_time_max_ms,
            first.cluster.replica_lag_time_max_ms
        );
        assert_eq!(
            c.cluster.broker_session_timeout_ms,
            first.cluster.broker_session_timeout_ms
        );
    }
    let hosts: BTreeSet<&str> = first
        .cluster
        .voters
        .iter()
        .map(|v| v.host.as_str())
        .collect();
    assert_eq!(hosts.len(), 3, "one host per node");
}
