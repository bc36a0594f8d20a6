//! The next-generation consumer group protocol (KIP-848): members heartbeat with
//! ConsumerGroupHeartbeat, the broker computes the assignment with a server-side assignor
//! (uniform or range) and hands it out incrementally, so a partition moves to a new owner only
//! after its previous owner has confirmed giving it up.
//!
//! State per group: the group epoch (bumped by every membership or subscription change), the
//! target assignment computed at the assignment epoch, and per member its epoch, the partitions it
//! owns and those it was asked to revoke. Like [`crate::group`], logic only: time comes in as an
//! argument.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Why a ConsumerGroupHeartbeat was refused (each is one Kafka error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConsumerGroupError {
    #[error("INVALID_REQUEST")]
    InvalidRequest,
    #[error("INVALID_GROUP_ID")]
    InvalidGroupId,
    #[error("UNKNOWN_MEMBER_ID")]
    UnknownMemberId,
    #[error("FENCED_MEMBER_EPOCH")]
    FencedMemberEpoch,
    #[error("UNSUPPORTED_ASSIGNOR")]
    UnsupportedAssignor,
    #[error("GROUP_MAX_SIZE_REACHED")]
    GroupMaxSizeReached,
    #[error("UNRELEASED_INSTANCE_ID")]
    UnreleasedInstanceId,
    #[error("STALE_MEMBER_EPOCH")]
    StaleMemberEpoch,
    #[error("GROUP_ID_NOT_FOUND")]
    GroupIdNotFound,
}

/// Settings under Kafka's property names.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerGroupConfig {
    /// group.consumer.session.timeout.ms
    pub session_timeout_ms: i64,
    /// group.consumer.heartbeat.interval.ms
    pub heartbeat_interval_ms: i32,
    /// group.consumer.max.size
    pub max_size: usize,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
        }
    }
}

/// Server-side assignors, by the names clients use in `group.remote.assignor`.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// A ConsumerGroupHeartbeat request.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub server_assignor: Option<String>,
    /// What the member reports owning (None = unchanged since the last heartbeat).
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

/// A ConsumerGroupHeartbeat answer.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's assignment; always sent, which the protocol allows.
    pub assignment: Option<Assignment>,
}

/// A topic the group can be assigned: its id and partition count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: Uuid,
    pub partitions: i32,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Vec<String>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns (was told to take).
    pub assigned: Assignment,
    /// Partitions the member was told to give up and has not confirmed yet.
    pub revoking: Assignment,
    last_heartbeat: i64,
    revoke_deadline: Option<i64>,
}

/// One KIP-848 consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    pub target: BTreeMap<String, Assignment>,
    /// Topic metadata the target was computed from; a change (new partitions) recomputes it.
    topics_seen: BTreeMap<String, TopicInfo>,
    pub assignor: String,
}

impl ConsumerGroup {
    fn new(group_id: &str) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            topics_seen: BTreeMap::new(),
            assignor: ASSIGNORS[0].to_string(),
        }
    }

    /// Kafka's consumer group states: Empty, Assigning, Reconciling, Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed.iter().cloned())
            .collect()
    }

    /// Who owns (or is still giving up) each partition.
    fn owners(&self) -> BTreeMap<(Uuid, i32), String> {
        let mut out = BTreeMap::new();
        for m in self.members.values() {
            for (t, ps) in m.assigned.iter().chain(m.revoking.iter()) {
                for p in ps {
                    out.insert((*t, *p), m.member_id.clone());
                }
            }
        }
        out
    }

    fn compute_target(&mut self, topics: &BTreeMap<String, TopicInfo>) {
        let members: Vec<(&String, &Vec<String>)> = self
            .members
            .iter()
            .map(|(id, m)| (id, &m.subscribed))
            .collect();
        let previous = &self.target;
        self.target = match self.assignor.as_str() {
            "range" => range_assign(&members, topics),
            _ => uniform_assign(&members, topics, previous),
        };
        self.assignment_epoch = self.group_epoch;
        self.topics_seen = topics
            .iter()
            .filter(|(n, _)| self.subscribed_topics().contains(*n))
            .map(|(n, t)| (n.clone(), *t))
            .collect();
    }

    /// Moves a member toward its target: revoke what it must give up first; take new partitions
    /// only once no one else holds them; adopt the assignment epoch when nothing is left to revoke.
    fn reconcile(&mut self, member_id: &str, now: i64) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let owners = self.owners();
        let epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        // What it holds but should not.
        for (t, ps) in m.assigned.clone() {
            for p in ps {
                if !target.get(&t).is_some_and(|s| s.contains(&p)) {
                    m.assigned.entry(t).or_default().remove(&p);
                    m.revoking.entry(t).or_default().insert(p);
                }
            }
        }
        m.assigned.retain(|_, s| !s.is_empty());
        m.revoking.retain(|_, s| !s.is_empty());
        if !m.revoking.is_empty() {
            if m.revoke_deadline.is_none() {
                m.revoke_deadline = Some(now + m.rebalance_timeout_ms.max(0) as i64);
            }
            return;
        }
        m.revoke_deadline = None;
        // What it should get and nobody else holds.
        for (t, ps) in &target {
            for p in ps {
                let free = owners.get(&(*t, *p)).is_none_or(|o| o == member_id);
                if free {
                    m.assigned.entry(*t).or_default().insert(*p);
                }
            }
        }
        m.member_epoch = epoch;
    }
}

/// The uniform assignor: every subscribed partition goes to one of the members subscribed to its
/// topic, balancing counts; partitions stay with their previous target owner where that keeps the
/// balance (sticky).
fn uniform_assign(
    members: &[(&String, &Vec<String>)],
    topics: &BTreeMap<String, TopicInfo>,
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|(id, _)| ((*id).clone(), Assignment::new()))
        .collect();
    let mut count: BTreeMap<String, usize> =
        members.iter().map(|(id, _)| ((*id).clone(), 0)).collect();
    let mut partitions = Vec::new();
    for (name, info) in topics {
        let eligible: Vec<&String> = members
            .iter()
            .filter(|(_, subs)| subs.contains(name))
            .map(|(id, _)| *id)
            .collect();
        if eligible.is_empty() {
            continue;
        }
        for p in 0..info.partitions {
            partitions.push((info.id, p, name.clone()));
        }
    }
    let total = partitions.len();
    let n = members.len().max(1);
    let quota = total.div_ceil(n);
    let mut unassigned = Vec::new();
    for (id, p, name) in partitions {
        let prev = previous
            .iter()
            .find(|(_, a)| a.get(&id).is_some_and(|s| s.contains(&p)))
            .map(|(m, _)| m.clone());
        let keep = prev.filter(|m| {
            members
                .iter()
                .any(|(mid, subs)| *mid == m && subs.contains(&name))
                && count.get(m).copied().unwrap_or(usize::MAX) < quota
        });
        match keep {
            Some(m) => {
                out.entry(m.clone())
                    .or_default()
                    .entry(id)
                    .or_default()
                    .insert(p);
                *count.entry(m).or_default() += 1;
            }
            None => unassigned.push((id, p, name)),
        }
    }
    for (id, p, name) in unassigned {
        let best = members
            .iter()
            .filter(|(_, subs)| subs.contains(&name))
            .map(|(mid, _)| (*mid).clone())
            .min_by_key(|m| (count.get(m).copied().unwrap_or(0), m.clone()));
        if let Some(m) = best {
            out.entry(m.clone())
                .or_default()
                .entry(id)
                .or_default()
                .insert(p);
            *count.entry(m).or_default() += 1;
        }
    }
    // Even out counts that stickiness left uneven (moves from the fullest to the emptiest member
    // that can take the partition).
    while let Some(((max_m, max_c), (min_m, min_c))) = extremes(&count) {
        if max_c <= min_c + 1 {
            break;
        }
        let subs_min: &Vec<String> = match members.iter().find(|(id, _)| **id == min_m) {
            Some((_, s)) => s,
            None => break,
        };
        let movable = out.get(&max_m).and_then(|a| {
            a.iter().find_map(|(t, ps)| {
                let name = topics.iter().find(|(_, i)| i.id == *t).map(|(n, _)| n)?;
                if subs_min.contains(name) {
                    ps.iter().next().map(|p| (*t, *p))
                } else {
                    None
                }
            })
        });
        let Some((t, p)) = movable else { break };
        if let Some(a) = out.get_mut(&max_m) {
            if let Some(s) = a.get_mut(&t) {
                s.remove(&p);
                if s.is_empty() {
                    a.remove(&t);
                }
            }
        }
        out.entry(min_m.clone())
            .or_default()
            .entry(t)
            .or_default()
            .insert(p);
        *count.entry(max_m).or_default() -= 1;
        *count.entry(min_m).or_default() += 1;
    }
    out
}

/// The members with the most and the fewest partitions (ties broken by member id).
fn extremes(count: &BTreeMap<String, usize>) -> Option<((String, usize), (String, usize))> {
    let max = count
        .iter()
        .max_by_key(|(m, c)| (**c, std::cmp::Reverse(*m)))?;
    let min = count.iter().min_by_key(|(m, c)| (**c, *m))?;
    Some(((max.0.clone(), *max.1), (min.0.clone(), *min.1)))
}

/// The range assignor: per topic, consecutive ranges of partitions to the subscribed members in
/// member-id order.
fn range_assign(
    members: &[(&String, &Vec<String>)],
    topics: &BTreeMap<String, TopicInfo>,
) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = members
        .iter()
        .map(|(id, _)| ((*id).clone(), Assignment::new()))
        .collect();
    for (name, info) in topics {
        let mut eligible: Vec<&String> = members
            .iter()
            .filter(|(_, subs)| subs.contains(name))
            .map(|(id, _)| *id)
            .collect();
        eligible.sort();
        if eligible.is_empty() {
            continue;
        }
        let n = eligible.len() as i32;
        let (per, extra) = (info.partitions / n, info.partitions % n);
        let mut next = 0;
        for (i, m) in eligible.iter().enumerate() {
            let take = per + i32::from((i as i32) < extra);
            for p in next..next + take {
                out.entry((*m).clone())
                    .or_default()
                    .entry(info.id)
                    .or_default()
                    .insert(p);
            }
            next += take;
        }
    }
    out
}

/// All KIP-848 groups of this coordinator.
#[derive(Debug, Default)]
pub struct ConsumerGroups {
    pub config: ConsumerGroupConfig,
    groups: BTreeMap<String, ConsumerGroup>,
}

impl ConsumerGroups {
    pub fn new(config: ConsumerGroupConfig) -> ConsumerGroups {
        ConsumerGroups {
            config,
            groups: BTreeMap::new(),
        }
    }

    pub fn get(&self, group_id: &str) -> Option<&ConsumerGroup> {
        self.groups.get(group_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConsumerGroup> {
        self.groups.values()
    }

    /// Drops every group for which `moved` says yes (their partition moved away).
    pub fn unload(&mut self, moved: impl Fn(&str) -> bool) {
        self.groups.retain(|id, _| !moved(id));
    }

    /// Removes an empty group (DeleteGroups).
    pub fn delete(&mut self, group_id: &str) -> bool {
        match self.groups.get(group_id) {
            Some(g) if g.members.is_empty() => {
                self.groups.remove(group_id);
                true
            }
            _ => false,
        }
    }

    /// Checks an OffsetCommit's member id and epoch (STALE_MEMBER_EPOCH when they do not match).
    pub fn check_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), ConsumerGroupError> {
        let Some(g) = self.groups.get(group_id) else {
            return Ok(());
        };
        if member_epoch < 0 && member_id.is_empty() {
            return if g.members.is_empty() {
                Ok(())
            } else {
                Err(ConsumerGroupError::UnknownMemberId)
            };
        }
        let m = g
            .members
            .get(member_id)
            .ok_or(ConsumerGroupError::UnknownMemberId)?;
        if member_epoch != m.member_epoch {
            return Err(ConsumerGroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Handles one heartbeat. `topics` is the cluster's topic metadata (name to id and size).
    pub fn heartbeat(
        &mut self,
        now: i64,
        req: Heartbeat,
        topics: &BTreeMap<String, TopicInfo>,
    ) -> Result<HeartbeatResponse, ConsumerGroupError> {
        if req.group_id.is_empty() {
            return Err(ConsumerGroupError::InvalidGroupId);
        }
        if let Some(a) = &req.server_assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return Err(ConsumerGroupError::UnsupportedAssignor);
            }
        }
        let config = self.config;
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| ConsumerGroup::new(&req.group_id));

        // Leaving: -1 (and -2, a static member's temporary leave, treated the same here).
        if req.member_epoch < 0 {
            let id = match (&req.instance_id, req.member_id.is_empty()) {
                (Some(instance), true) => group
                    .members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(instance))
                    .map(|m| m.member_id.clone()),
                _ => Some(req.member_id.clone()),
            };
            if let Some(id) = id {
                if group.members.remove(&id).is_some() {
                    group.target.remove(&id);
                    group.group_epoch += 1;
                }
            }
            return Ok(HeartbeatResponse {
                member_id: req.member_id,
                member_epoch: req.member_epoch,
                heartbeat_interval_ms: config.heartbeat_interval_ms,
                assignment: None,
            });
        }

        let member_id = if req.member_epoch == 0 {
            if req.member_id.is_empty() {
                Uuid::new_v4().simple().to_string()
            } else {
                req.member_id.clone()
            }
        } else {
            req.member_id.clone()
        };

        let mut changed = false;
        if req.member_epoch == 0 {
            let subscribed = req
                .subscribed_topic_names
                .clone()
                .ok_or(ConsumerGroupError::InvalidRequest)?;
            // A static member rejoining replaces its previous incarnation.
            if let Some(instance) = &req.instance_id {
                let old = group
                    .members
                    .values()
                    .find(|m| m.instance_id.as_ref() == Some(instance) && m.member_id != member_id)
                    .map(|m| m.member_id.clone());
                if let Some(old) = old {
                    group.members.remove(&old);
                    group.target.remove(&old);
                }
            }
            if !group.members.contains_key(&member_id) {
                if group.members.len() >= config.max_size {
                    return Err(ConsumerGroupError::GroupMaxSizeReached);
                }
                group.members.insert(
                    member_id.clone(),
                    Member {
                        member_id: member_id.clone(),
                        instance_id: req.instance_id.clone(),
                        rack_id: req.rack_id.clone(),
                        client_id: req.client_id.clone(),
                        client_host: req.client_host.clone(),
                        member_epoch: 0,
                        rebalance_timeout_ms: req.rebalance_timeout_ms,
                        subscribed: subscribed.clone(),
                        server_assignor: req.server_assignor.clone(),
                        assigned: Assignment::new(),
                        revoking: Assignment::new(),
                        last_heartbeat: now,
                        revoke_deadline: None,
                    },
                );
                changed = true;
            }
        }
        let m = group
            .members
            .get_mut(&member_id)
            .ok_or(ConsumerGroupError::UnknownMemberId)?;
        if req.member_epoch > 0 && req.member_epoch != m.member_epoch {
            return Err(ConsumerGroupError::FencedMemberEpoch);
        }
        m.last_heartbeat = now;
        if req.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(subs) = &req.subscribed_topic_names {
            if *subs != m.subscribed {
                m.subscribed = subs.clone();
                changed = true;
            }
        }
        if let Some(a) = &req.server_assignor {
            group.assignor = a.clone();
        }
        // The member confirms what it owns: revocations it no longer reports are done.
        if let Some(owned) = &req.owned {
            if let Some(m) = group.members.get_mut(&member_id) {
                m.revoking.retain(|t, ps| {
                    ps.retain(|p| owned.get(t).is_some_and(|s| s.contains(p)));
                    !ps.is_empty()
                });
            }
        }
        if changed {
            group.group_epoch += 1;
        }
        let subscribed = group.subscribed_topics();
        let relevant: BTreeMap<String, TopicInfo> = topics
            .iter()
            .filter(|(n, _)| subscribed.contains(*n))
            .map(|(n, t)| (n.clone(), *t))
            .collect();
        if relevant != group.topics_seen && group.assignment_epoch == group.group_epoch {
            // New partitions or topics appeared: that is a metadata change, so a new epoch.
            group.group_epoch += 1;
        }
        if group.assignment_epoch < group.group_epoch {
            group.compute_target(&relevant);
        }
        group.reconcile(&member_id, now);
        let m = &group.members[&member_id];
        Ok(HeartbeatResponse {
            member_id,
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
            assignment: Some(m.assigned.clone()),
        })
    }

    /// Expires members whose session lapsed or that did not revoke in time.
    pub fn tick(&mut self, now: i64) {
        let session = self.config.session_timeout_ms;
        for g in self.groups.values_mut() {
            let gone: Vec<String> = g
                .members
                .values()
                .filter(|m| {
                    now - m.last_heartbeat >= session || m.revoke_deadline.is_some_and(|d| now >= d)
                })
                .map(|m| m.member_id.clone())
                .collect();
            for id in gone {
                g.members.remove(&id);
                g.target.remove(&id);
                g.group_epoch += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(n: i32) -> (BTreeMap<String, TopicInfo>, Uuid) {
        let id = Uuid::new_v4();
        (
            [("t".to_string(), TopicInfo { id, partitions: n })]
                .into_iter()
                .collect(),
            id,
        )
    }

    fn join(
        groups: &mut ConsumerGroups,
        now: i64,
        id: &str,
        t: &BTreeMap<String, TopicInfo>,
    ) -> HeartbeatResponse {
        groups
            .heartbeat(
                now,
                Heartbeat {
                    group_id: "g".into(),
                    member_id: id.into(),
                    member_epoch: 0,
                    rebalance_timeout_ms: 30_000,
                    subscribed_topic_names: Some(vec!["t".into()]),
                    owned: Some(Assignment::new()),
                    ..Default::default()
                },
                t,
            )
            .unwrap()
    }

    fn beat(
        groups: &mut ConsumerGroups,
        now: i64,
        r: &HeartbeatResponse,
        t: &BTreeMap<String, TopicInfo>,
    ) -> HeartbeatResponse {
        groups
            .heartbeat(
                now,
                Heartbeat {
                    group_id: "g".into(),
                    member_id: r.member_id.clone(),
                    member_epoch: r.member_epoch,
                    owned: r.assignment.clone(),
                    ..Default::default()
                },
                t,
            )
            .unwrap()
    }

    fn count(r: &HeartbeatResponse) -> usize {
        r.assignment
            .as_ref()
            .map(|a| a.values().map(|s| s.len()).sum())
            .unwrap_or(0)
    }

    #[test]
    fn a_second_member_gets_partitions_only_after_the_first_revokes_them() {
        let mut g = ConsumerGroups::default();
        let (t, _) = topics(6);
        let a = join(&mut g, 0, "a", &t);
        assert_eq!((count(&a), a.member_epoch), (6, 1));
        let b = join(&mut g, 1, "b", &t);
        // b's share is still owned by a: b gets nothing yet.
        assert_eq!(count(&b), 0);
        let a = beat(&mut g, 2, &a, &t);
        assert_eq!(count(&a), 3, "a is told to keep 3 and give up 3");
        // a's next heartbeat reports it owns only 3: the revocation is done.
        let a = beat(&mut g, 3, &a, &t);
        assert_eq!(a.member_epoch, 2);
        let b = beat(&mut g, 4, &b, &t);
        assert_eq!((count(&b), b.member_epoch), (3, 2));
        let mut all: Vec<i32> = [a, b]
            .iter()
            .flat_map(|r| r.assignment.clone().unwrap().into_values().flatten())
            .collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(g.get("g").unwrap().state(), "Stable");
    }

    #[test]
    fn a_stale_epoch_is_fenced_and_a_silent_member_expires() {
        let mut g = ConsumerGroups::default();
        let (t, _) = topics(2);
        let a = join(&mut g, 0, "a", &t);
        let mut stale = a.clone();
        stale.member_epoch = 7;
        let err = g
            .heartbeat(
                1,
                Heartbeat {
                    group_id: "g".into(),
                    member_id: "a".into(),
                    member_epoch: 7,
                    ..Default::default()
                },
                &t,
            )
            .unwrap_err();
        assert_eq!(err, ConsumerGroupError::FencedMemberEpoch);
        let b = join(&mut g, 10, "b", &t);
        g.tick(45_001);
        assert!(g.get("g").unwrap().members.contains_key("b"));
        assert!(!g.get("g").unwrap().members.contains_key("a"));
        let b = beat(&mut g, 45_002, &b, &t);
        assert_eq!(count(&b), 2);
    }

    #[test]
    fn range_assignor_splits_each_topic_in_ranges() {
        let (t, id) = topics(5);
        let a = "a".to_string();
        let b = "b".to_string();
        let subs = vec!["t".to_string()];
        let out = range_assign(&[(&a, &subs), (&b, &subs)], &t);
        assert_eq!(out["a"][&id], [0, 1, 2].into_iter().collect());
        assert_eq!(out["b"][&id], [3, 4].into_iter().collect());
    }

    #[test]
    fn uniform_assignor_balances_and_sticks() {
        let (t, id) = topics(7);
        let ids: Vec<String> = (0..3).map(|i| format!("m{i}")).collect();
        let subs = vec!["t".to_string()];
        let members: Vec<(&String, &Vec<String>)> = ids.iter().map(|i| (i, &subs)).collect();
        let first = uniform_assign(&members, &t, &BTreeMap::new());
        let counts: Vec<usize> = first.values().map(|a| a[&id].len()).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        // Same members again: nothing moves.
        assert_eq!(uniform_assign(&members, &t, &first), first);
    }
}
