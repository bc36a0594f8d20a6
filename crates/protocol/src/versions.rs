//! The API keys and versions Brook speaks, as advertised in the ApiVersions response.
//!
//! Ranges follow Apache Kafka 4.x. One deliberate quirk is copied from Kafka: Produce v0-v2 are
//! advertised although requests at those versions are refused (KIP-896), because librdkafka turns
//! compression off against a broker whose lowest advertised Produce version is above 2.

use kafka_protocol::messages::ApiKey;

/// One advertised API: its key and the inclusive range of versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    pub key: ApiKey,
    pub min: i16,
    pub max: i16,
}

const fn r(key: ApiKey, min: i16, max: i16) -> ApiRange {
    ApiRange { key, min, max }
}

/// Every API Brook serves, in API-key order.
pub const SUPPORTED: &[ApiRange] = &[
    r(ApiKey::Produce, 0, 12),
    r(ApiKey::Fetch, 4, 17),
    r(ApiKey::ListOffsets, 1, 10),
    r(ApiKey::Metadata, 0, 13),
    r(ApiKey::OffsetCommit, 2, 9),
    r(ApiKey::OffsetFetch, 1, 9),
    r(ApiKey::FindCoordinator, 0, 6),
    r(ApiKey::JoinGroup, 0, 9),
    r(ApiKey::Heartbeat, 0, 4),
    r(ApiKey::LeaveGroup, 0, 5),
    r(ApiKey::SyncGroup, 0, 5),
    r(ApiKey::DescribeGroups, 0, 6),
    r(ApiKey::ListGroups, 0, 5),
    r(ApiKey::ApiVersions, 0, 4),
    r(ApiKey::CreateTopics, 2, 7),
    r(ApiKey::DeleteTopics, 1, 6),
    r(ApiKey::DeleteRecords, 0, 2),
    r(ApiKey::InitProducerId, 0, 5),
    r(ApiKey::OffsetForLeaderEpoch, 2, 4),
    r(ApiKey::DescribeConfigs, 1, 4),
    r(ApiKey::AlterConfigs, 0, 2),
    r(ApiKey::CreatePartitions, 0, 3),
    r(ApiKey::DeleteGroups, 0, 2),
    r(ApiKey::ElectLeaders, 0, 2),
    r(ApiKey::AlterPartitionReassignments, 0, 0),
    r(ApiKey::ListPartitionReassignments, 0, 0),
    r(ApiKey::IncrementalAlterConfigs, 0, 1),
    r(ApiKey::OffsetDelete, 0, 0),
    r(ApiKey::DescribeCluster, 0, 2),
    r(ApiKey::DescribeQuorum, 0, 2),
    r(ApiKey::ConsumerGroupHeartbeat, 0, 1),
    r(ApiKey::ConsumerGroupDescribe, 0, 1),
    r(ApiKey::DescribeTopicPartitions, 0, 0),
];

/// Produce versions that are advertised (see the module doc) but refused when used.
pub const PRODUCE_MIN_ACCEPTED: i16 = 3;

/// The advertised range for an API key, if Brook serves it.
pub fn supported(key: ApiKey) -> Option<ApiRange> {
    SUPPORTED.iter().copied().find(|r| r.key == key)
}

/// Whether a request at this key and version is decoded and served.
pub fn accepts(key: ApiKey, version: i16) -> bool {
    match supported(key) {
        Some(r) if key == ApiKey::Produce => (PRODUCE_MIN_ACCEPTED..=r.max).contains(&version),
        Some(r) => (r.min..=r.max).contains(&version),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_version_is_decodable_by_the_codec() {
        for r in SUPPORTED {
            let valid = r.key.valid_versions();
            let min = if r.key == ApiKey::Produce {
                PRODUCE_MIN_ACCEPTED
            } else {
                r.min
            };
            assert!(
                valid.min <= min && r.max <= valid.max,
                "{:?} advertises {}..={} but the codec knows {}..={}",
                r.key,
                r.min,
                r.max,
                valid.min,
                valid.max
            );
        }
    }

    #[test]
    fn produce_v0_to_v2_are_advertised_but_refused() {
        assert_eq!(supported(ApiKey::Produce).unwrap().min, 0);
        assert!(!accepts(ApiKey::Produce, 2));
        assert!(accepts(ApiKey::Produce, 3));
    }
}
