//! Partition replication decisions, without I/O.
//!
//! This crate owns the rules that decide when a record is committed and who is in sync, following
//! Apache Kafka's `Partition`/`Replica` (leader side) and `AbstractFetcherThread` (follower side):
//! the leader's view of each follower ([`FollowerState`]: log end offset, last caught-up time),
//! the high watermark (min log end offset over the maximal ISR, never moving backwards), the ISR
//! shrink and expand proposals with Kafka's "pending ISR" (an expansion counts for the high
//! watermark while it is in flight), and the follower's truncation point after a leader change
//! (KIP-101/KIP-279, [`truncation_offset`]).
//!
//! It must not touch logs, sockets, Tokio or the clock: the broker feeds it offsets and the time
//! (milliseconds) and applies what it answers (stores the high watermark, sends the proposed ISR to
//! the controller, truncates the log). The controller, not this crate, decides the committed ISR;
//! a leader keeps using its current ISR until a new one arrives with the metadata image.

use std::collections::BTreeMap;

/// A log end offset not known yet (a follower that has not fetched since this leader took over).
pub const UNKNOWN_OFFSET: i64 = -1;

/// Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET in OffsetForLeaderEpoch answers.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// The leader's view of one follower (Kafka's `ReplicaState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerState {
    /// The follower's log end offset: the offset of its last fetch.
    pub log_end_offset: i64,
    /// The last time the follower was known to have caught up with the leader.
    pub last_caught_up_time_ms: i64,
    /// The leader's log end offset at the follower's previous fetch.
    pub last_fetch_leader_leo: i64,
    /// The time of the follower's previous fetch.
    pub last_fetch_time_ms: i64,
}

impl FollowerState {
    fn new(caught_up_ms: i64) -> FollowerState {
        FollowerState {
            log_end_offset: UNKNOWN_OFFSET,
            last_caught_up_time_ms: caught_up_ms,
            last_fetch_leader_leo: UNKNOWN_OFFSET,
            last_fetch_time_ms: caught_up_ms,
        }
    }

    /// Kafka's `isCaughtUp`: at the leader's end, or caught up within the allowed lag.
    pub fn is_caught_up(&self, leader_leo: i64, now_ms: i64, max_lag_ms: u64) -> bool {
        self.log_end_offset == leader_leo
            || now_ms.saturating_sub(self.last_caught_up_time_ms) <= max_lag_ms as i64
    }
}

/// An ISR change proposed to the controller and not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingIsr {
    pub new_isr: Vec<i32>,
    /// Whether it adds replicas (then they count for the high watermark already).
    pub expansion: bool,
    pub since_ms: i64,
}

/// A leader's replication state for one partition (one leader epoch).
#[derive(Debug, Clone)]
pub struct LeaderState {
    local: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    pending: Option<PendingIsr>,
    followers: BTreeMap<i32, FollowerState>,
    leo: i64,
    hw: i64,
    epoch_start_offset: i64,
}

impl LeaderState {
    /// Becoming leader: the high watermark stays, followers' offsets are unknown; ISR members
    /// count as caught up now (Kafka's `resetReplicaState`), the others never were. The leader
    /// epoch starts at the current log end offset.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        local: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        log_end_offset: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> LeaderState {
        let mut s = LeaderState {
            local,
            leader_epoch,
            partition_epoch,
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            pending: None,
            followers: BTreeMap::new(),
            leo: log_end_offset,
            hw: high_watermark.min(log_end_offset),
            epoch_start_offset: log_end_offset,
        };
        s.sync_followers(now_ms);
        s.maybe_advance_hw();
        s
    }

    fn sync_followers(&mut self, now_ms: i64) {
        let local = self.local;
        self.followers
            .retain(|id, _| *id != local && self_replicas(&self.replicas, *id));
        for r in &self.replicas {
            if *r != local && !self.followers.contains_key(r) {
                let caught_up = if self.isr.contains(r) { now_ms } else { 0 };
                self.followers.insert(*r, FollowerState::new(caught_up));
            }
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }
    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }
    pub fn high_watermark(&self) -> i64 {
        self.hw
    }
    pub fn log_end_offset(&self) -> i64 {
        self.leo
    }
    /// The offset at which this leader's epoch began.
    pub fn epoch_start_offset(&self) -> i64 {
        self.epoch_start_offset
    }
    /// The committed ISR (from the metadata image).
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }
    pub fn pending(&self) -> Option<&PendingIsr> {
        self.pending.as_ref()
    }
    pub fn follower(&self, id: i32) -> Option<&FollowerState> {
        self.followers.get(&id)
    }

    /// The ISR for high watermark purposes: the committed ISR plus replicas an in-flight
    /// expansion adds (Kafka's `maximalIsr`).
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut out = self.isr.clone();
        if let Some(p) = self.pending.as_ref().filter(|p| p.expansion) {
            for r in &p.new_isr {
                if !out.contains(r) {
                    out.push(*r);
                }
            }
        }
        out
    }

    /// A new image for the same leader epoch: replicas and ISR as the controller committed them.
    /// A new partition epoch answers any pending proposal. Returns the new high watermark if the
    /// change advanced it (a shrink may).
    pub fn update_assignment(
        &mut self,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        now_ms: i64,
    ) -> Option<i64> {
        if partition_epoch != self.partition_epoch {
            self.pending = None;
        }
        self.partition_epoch = partition_epoch;
        self.replicas = replicas.to_vec();
        self.isr = isr.to_vec();
        self.sync_followers(now_ms);
        self.maybe_advance_hw()
    }

    /// The leader appended: its log end offset moved. Returns the new high watermark, if any.
    pub fn on_leader_append(&mut self, log_end_offset: i64) -> Option<i64> {
        self.leo = self.leo.max(log_end_offset);
        self.maybe_advance_hw()
    }

    /// A follower fetched at `fetch_offset` (its log end offset) while the leader's log ended at
    /// `leader_leo`. Returns the new high watermark, if it moved. Fetches from brokers that are not
    /// replicas are ignored.
    pub fn on_follower_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        leader_leo: i64,
        now_ms: i64,
    ) -> Option<i64> {
        self.leo = self.leo.max(leader_leo);
        let f = self.followers.get_mut(&replica)?;
        // Kafka's updateFetchStateOrThrow.
        if fetch_offset >= leader_leo {
            f.last_caught_up_time_ms = f.last_caught_up_time_ms.max(now_ms);
        } else if fetch_offset >= f.last_fetch_leader_leo && f.last_fetch_leader_leo >= 0 {
            f.last_caught_up_time_ms = f.last_caught_up_time_ms.max(f.last_fetch_time_ms);
        }
        f.log_end_offset = fetch_offset;
        f.last_fetch_leader_leo = leader_leo;
        f.last_fetch_time_ms = now_ms;
        self.maybe_advance_hw()
    }

    fn maybe_advance_hw(&mut self) -> Option<i64> {
        let mut hw = self.leo;
        for r in self.maximal_isr() {
            if r == self.local {
                continue;
            }
            let leo = self
                .followers
                .get(&r)
                .map_or(UNKNOWN_OFFSET, |f| f.log_end_offset);
            hw = hw.min(leo);
        }
        if hw > self.hw {
            self.hw = hw;
            Some(hw)
        } else {
            None
        }
    }

    fn may_propose(&self, now_ms: i64, max_lag_ms: u64) -> bool {
        // A proposal that got no answer for a whole lag period may be sent again.
        self.pending
            .as_ref()
            .is_none_or(|p| now_ms.saturating_sub(p.since_ms) > max_lag_ms as i64)
    }

    /// Kafka's `maybeShrinkIsr`: the ISR without the followers that have not caught up within
    /// `max_lag_ms`, if there are any (the proposal is then pending).
    pub fn isr_to_shrink(&mut self, now_ms: i64, max_lag_ms: u64) -> Option<Vec<i32>> {
        if !self.may_propose(now_ms, max_lag_ms) {
            return None;
        }
        let out_of_sync: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| *r != self.local)
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_none_or(|f| !f.is_caught_up(self.leo, now_ms, max_lag_ms))
            })
            .collect();
        if out_of_sync.is_empty() {
            return None;
        }
        let new_isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| !out_of_sync.contains(r))
            .collect();
        self.pending = Some(PendingIsr {
            new_isr: new_isr.clone(),
            expansion: false,
            since_ms: now_ms,
        });
        Some(new_isr)
    }

    /// Kafka's `maybeExpandIsr`: the ISR plus the replicas whose log end offset reached both the
    /// high watermark and the start of this leader's epoch, if there are any (then pending).
    pub fn isr_to_expand(&mut self, now_ms: i64, max_lag_ms: u64) -> Option<Vec<i32>> {
        if !self.may_propose(now_ms, max_lag_ms) {
            return None;
        }
        let joining: Vec<i32> = self
            .followers
            .iter()
            .filter(|(id, _)| !self.isr.contains(id))
            .filter(|(_, f)| {
                f.log_end_offset >= self.hw && f.log_end_offset >= self.epoch_start_offset
            })
            .map(|(id, _)| *id)
            .collect();
        if joining.is_empty() {
            return None;
        }
        let mut new_isr = self.isr.clone();
        new_isr.extend(joining);
        self.pending = Some(PendingIsr {
            new_isr: new_isr.clone(),
            expansion: true,
            since_ms: now_ms,
        });
        Some(new_isr)
    }

    /// Whether the committed ISR has at least `min_isr` members (acks=-1 produce).
    pub fn has_min_isr(&self, min_isr: usize) -> bool {
        self.isr.len() >= min_isr
    }
}

fn self_replicas(replicas: &[i32], id: i32) -> bool {
    replicas.contains(&id)
}

/// A follower's high watermark: the leader's, capped by its own log end offset.
pub fn follower_high_watermark(leader_hw: i64, local_leo: i64) -> i64 {
    leader_hw.min(local_leo)
}

/// Where a follower truncates after an OffsetForLeaderEpoch answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    pub offset: i64,
    /// False when the follower must ask again (with its new latest epoch) after truncating.
    pub complete: bool,
}

/// KIP-101/KIP-279 (Kafka's `getOffsetTruncationState`). The follower asked the leader about its
/// latest epoch and got `(leader_epoch, leader_end_offset)`; `local_end_for_leader_epoch` is the
/// follower's own answer for `leader_epoch` (largest local epoch ≤ it, with its end offset).
/// Without an answer the follower falls back to its high watermark.
pub fn truncation_offset(
    local_leo: i64,
    local_hw: i64,
    leader_epoch: i32,
    leader_end_offset: i64,
    local_end_for_leader_epoch: Option<(i32, i64)>,
) -> Truncation {
    if leader_end_offset == UNDEFINED_EPOCH_OFFSET {
        return Truncation {
            offset: local_hw.min(local_leo),
            complete: true,
        };
    }
    if leader_epoch == UNDEFINED_EPOCH {
        return Truncation {
            offset: leader_end_offset.min(local_leo),
            complete: true,
        };
    }
    match local_end_for_leader_epoch {
        Some((epoch, end)) if epoch != leader_epoch => Truncation {
            // The follower does not know the leader's epoch: cut to the end of the largest epoch
            // below it and ask again.
            offset: end.min(local_leo),
            complete: false,
        },
        Some((_, end)) => Truncation {
            offset: end.min(leader_end_offset).min(local_leo),
            complete: true,
        },
        None => Truncation {
            offset: leader_end_offset.min(local_leo),
            complete: true,
        },
    }
}

#[cfg(test)]
mod tests;
