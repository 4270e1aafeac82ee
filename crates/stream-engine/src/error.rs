//! Why a batch failed, as the engine branches on it.

use rdkafka::error::KafkaError;

/// Why a batch could not be committed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// This replica cannot use its transactional producer any more: another instance with its
    /// transactional id took over, or the broker reported another fatal error. The replica
    /// stops; its supervisor restarts it, and the uncommitted input is processed again.
    #[error(
        "fatal transactional error (fenced by another instance of {transactional_id}?): {source}"
    )]
    Fenced {
        /// The producer's transactional id.
        transactional_id: String,
        /// The error librdkafka reported.
        source: KafkaError,
    },
    /// A record of the batch was not acknowledged by the broker.
    #[error("a record to {topic} was not delivered: {source}")]
    NotDelivered {
        /// The record's topic: an output, the dead-letter topic or the changelog.
        topic: String,
        /// The delivery error.
        source: KafkaError,
    },
    /// A record could not even be enqueued.
    #[error("could not enqueue {what}: {source}")]
    NotEnqueued {
        /// What kind of record.
        what: &'static str,
        /// The error.
        source: KafkaError,
    },
    /// The consumer has no group metadata to commit offsets with (it left the group).
    #[error("the consumer has no group metadata")]
    NoGroupMetadata,
    /// The consumer's group membership is lost (its member id or generation was reset after
    /// the coordinator answered "unknown member" or "illegal generation"): its partitions may
    /// already be another replica's, and the coordinator takes transactional offsets with both
    /// reset without checking them. The batch is aborted; the revocation follows.
    #[error(
        "the consumer's group membership is lost (member id {member_id:?}, generation \
         {generation}): its partitions may be another replica's"
    )]
    MembershipLost {
        /// The member id the offsets would carry.
        member_id: String,
        /// The generation the offsets would carry.
        generation: i32,
    },
    /// A partition of the batch was revoked while the batch ran: its records' outputs may
    /// not commit (the partition's new owner processes them again). The batch is aborted and
    /// the partitions this replica keeps are rewound.
    #[error("partitions {partitions:?} of the batch were revoked while it ran")]
    Revoked {
        /// The revoked partitions the batch had records of.
        partitions: Vec<i32>,
    },
    /// A transactional call was still blocked inside librdkafka long after its own timeout
    /// (see `watchdog`): the producer is treated as lost and replaced.
    #[error("{what} was still blocked after {seconds} s, past its own timeout")]
    Stuck {
        /// The call.
        what: &'static str,
        /// How long it was waited for.
        seconds: u64,
    },
    /// Shutdown was asked for while a transactional call was blocked.
    #[error("shutdown while {what} was blocked")]
    Interrupted {
        /// The call.
        what: &'static str,
    },
    /// A Kafka call failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What was being done.
        context: &'static str,
        /// The error.
        source: KafkaError,
    },
}

impl BatchError {
    /// Whether the transactional producer cannot be used any more: it was fenced, or a call
    /// never returned. Every other error of an `exactly_once` batch aborts its transaction, and
    /// the batch is processed again.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            BatchError::Fenced { .. } | BatchError::Stuck { .. } | BatchError::Interrupted { .. }
        )
    }
}
