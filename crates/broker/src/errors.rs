//! Every internal error mapped to a Kafka error code, in one place.

use brook_coordinator::consumer_group::ConsumerGroupError;
use brook_coordinator::GroupError;
use brook_metadata::controller::ControllerError;
use brook_protocol::batch::BatchError;
use brook_protocol::ResponseError;
use brook_storage::StorageError;

/// The Kafka error code for a storage error.
pub fn storage_code(e: &StorageError) -> ResponseError {
    match e {
        StorageError::Io(_) => ResponseError::KafkaStorageError,
        StorageError::CorruptBatch(b) => batch_code(b),
        StorageError::InvalidRecord(_) => ResponseError::InvalidRecord,
        StorageError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
        StorageError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        StorageError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        StorageError::Undecodable(_) => ResponseError::CorruptMessage,
        StorageError::Inconsistent(_) => ResponseError::KafkaStorageError,
        // Only a follower's append can hit this; it never answers a client.
        StorageError::UnexpectedAppendOffset { .. } => ResponseError::UnknownServerError,
    }
}

/// The Kafka error code for a malformed record batch.
pub fn batch_code(e: &BatchError) -> ResponseError {
    match e {
        BatchError::Truncated { .. } | BatchError::CrcMismatch { .. } => {
            ResponseError::CorruptMessage
        }
        BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
        BatchError::Invalid(_) => ResponseError::InvalidRecord,
    }
}

/// The Kafka error code for a refused metadata change.
pub fn controller_code(e: &ControllerError) -> ResponseError {
    match e {
        ControllerError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists,
        ControllerError::InvalidTopic(_) => ResponseError::InvalidTopicException,
        ControllerError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        ControllerError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
        ControllerError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
        ControllerError::InvalidConfig(_) => ResponseError::InvalidConfig,
        ControllerError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        ControllerError::UnknownTopicId => ResponseError::UnknownTopicId,
        ControllerError::InvalidRequest(_) => ResponseError::InvalidRequest,
        ControllerError::AlterPartition(e) => {
            ResponseError::try_from_code(e.code()).unwrap_or(ResponseError::UnknownServerError)
        }
    }
}

/// The Kafka error code for a group coordinator refusal.
pub fn group_code(e: GroupError) -> ResponseError {
    match e {
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
    }
}

/// The Kafka error code for a refused ConsumerGroupHeartbeat.
pub fn consumer_group_code(e: ConsumerGroupError) -> ResponseError {
    match e {
        ConsumerGroupError::InvalidRequest => ResponseError::InvalidRequest,
        ConsumerGroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        ConsumerGroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        ConsumerGroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        ConsumerGroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
        ConsumerGroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        ConsumerGroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
        ConsumerGroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        ConsumerGroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
    }
}
