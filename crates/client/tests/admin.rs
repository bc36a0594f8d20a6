//! The admin client against a real Brook broker (started in-process on a free port).

mod common;

use std::time::Duration;

use brook_client::admin::{AlterConfigOp, ConfigResource, ConfigSource, NewTopic, OffsetSpec};
use brook_client::cluster::ClientConfig;
use brook_client::Admin;
use common::TestBroker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_listed_described_grown_and_deleted() {
    let b = TestBroker::start().await;
    let admin = b.admin();
    let created = admin
        .create_topics(
            &[NewTopic::new("orders", 3, 1).config("retention.ms", "172800000")],
            false,
        )
        .await
        .unwrap();
    assert!(created[0].1.is_ok());
    let again = admin
        .create_topics(&[NewTopic::new("orders", 3, 1)], false)
        .await
        .unwrap();
    assert_eq!(again[0].1.as_ref().unwrap_err().code(), Some(36)); // TOPIC_ALREADY_EXISTS
    assert_eq!(
        admin.list_topics(false).await.unwrap(),
        vec!["orders".to_string()]
    );
    let described = admin.describe_topics(&["orders".into()]).await.unwrap();
    assert_eq!(described[0].partitions.len(), 3);
    assert!(described[0]
        .partitions
        .iter()
        .all(|p| p.leader == 1 && p.isr == vec![1]));
    let err = admin
        .create_partitions("orders", 2, false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(37)); // INVALID_PARTITIONS
    admin.create_partitions("orders", 4, false).await.unwrap();
    assert_eq!(
        admin.describe_topics(&["orders".into()]).await.unwrap()[0]
            .partitions
            .len(),
        4
    );
    let missing = admin.describe_topics(&["nope".into()]).await.unwrap_err();
    assert_eq!(missing.code(), Some(3));
    let deleted = admin.delete_topics(&["orders".into()]).await.unwrap();
    assert!(deleted[0].1.is_ok());
    assert!(admin.list_topics(false).await.unwrap().is_empty());
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configs_are_described_and_altered_incrementally() {
    let b = TestBroker::start().await;
    let admin = b.admin();
    admin
        .create_topics(&[NewTopic::new("c", 1, 1)], false)
        .await
        .unwrap();
    let topic = ConfigResource::Topic("c".into());
    admin
        .incremental_alter_configs(
            &topic,
            &[AlterConfigOp::Set("retention.ms".into(), "1000".into())],
            false,
        )
        .await
        .unwrap();
    let configs = admin.describe_configs(&topic).await.unwrap();
    let retention = configs.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("1000"));
    assert_eq!(retention.source, ConfigSource::DynamicTopic);
    let bad = admin
        .incremental_alter_configs(
            &topic,
            &[AlterConfigOp::Set("no.such".into(), "1".into())],
            false,
        )
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some(40)); // INVALID_CONFIG
    let broker = admin
        .describe_configs(&ConfigResource::Broker("1".into()))
        .await
        .unwrap();
    assert!(broker
        .iter()
        .any(|c| c.name == "node.id" && c.value.as_deref() == Some("1")));
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_records_and_cluster() {
    let b = TestBroker::start().await;
    let admin = b.admin();
    admin
        .create_topics(&[NewTopic::new("r", 1, 1)], false)
        .await
        .unwrap();
    let tp = vec![("r".to_string(), 0)];
    let latest = admin.list_offsets(&tp, OffsetSpec::Latest).await.unwrap();
    assert_eq!(latest[&("r".to_string(), 0)].as_ref().unwrap().offset, 0);
    // Deleting beyond the high watermark is OFFSET_OUT_OF_RANGE.
    let r = admin.delete_records(&[("r".into(), 0, 5)]).await.unwrap();
    assert_eq!(r[0].1.as_ref().unwrap_err().code(), Some(1));
    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(cluster.controller_id, 1);
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(
        format!("{}:{}", cluster.brokers[0].host, cluster.brokers[0].port),
        b.bootstrap
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_bootstrap_server_is_a_clear_error() {
    let mut c = ClientConfig::new("127.0.0.1:1");
    c.request_timeout = Duration::from_secs(2);
    let admin = Admin::new(c).unwrap();
    let err = admin.list_topics(false).await.unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}
