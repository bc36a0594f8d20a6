//! The classic group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) as a state machine.
//!
//! Everything takes the current time as an argument and returns what to answer; answers that must
//! wait (a JoinGroup until the rebalance completes, a SyncGroup until the leader's assignment
//! arrives) come back later as [`Event`]s from another call or from [`Groups::tick`]. No I/O, no
//! clocks, no threads: the broker owns those.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

/// Why a group request was refused. Each variant is one Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("INVALID_GROUP_ID")]
    InvalidGroupId,
    #[error("INVALID_SESSION_TIMEOUT")]
    InvalidSessionTimeout,
    #[error("INCONSISTENT_GROUP_PROTOCOL")]
    InconsistentGroupProtocol,
    #[error("UNKNOWN_MEMBER_ID")]
    UnknownMemberId,
    #[error("MEMBER_ID_REQUIRED")]
    MemberIdRequired,
    #[error("ILLEGAL_GENERATION")]
    IllegalGeneration,
    #[error("REBALANCE_IN_PROGRESS")]
    RebalanceInProgress,
    #[error("FENCED_INSTANCE_ID")]
    FencedInstanceId,
    #[error("GROUP_MAX_SIZE_REACHED")]
    GroupMaxSizeReached,
    #[error("COORDINATOR_NOT_AVAILABLE")]
    CoordinatorNotAvailable,
    #[error("GROUP_ID_NOT_FOUND")]
    GroupIdNotFound,
    #[error("NON_EMPTY_GROUP")]
    NonEmptyGroup,
    #[error("STALE_MEMBER_EPOCH")]
    StaleMemberEpoch,
    /// The group's `__consumer_offsets` partition is led by another broker.
    #[error("NOT_COORDINATOR")]
    NotCoordinator,
}

/// Group states, named as Kafka names them in DescribeGroups and ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// Limits and delays, under Kafka's broker property names.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// group.min.session.timeout.ms
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms
    pub max_session_timeout_ms: i32,
    /// group.initial.rebalance.delay.ms
    pub initial_rebalance_delay_ms: i64,
    /// group.max.size
    pub max_size: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: i32::MAX as usize,
        }
    }
}

/// A JoinGroup request.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a new member first gets MEMBER_ID_REQUIRED with its id, then joins with it (KIP-394).
    pub require_known_member_id: bool,
}

/// A SyncGroup request.
#[derive(Debug, Clone, Default)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id (empty from followers).
    pub assignments: Vec<(String, Bytes)>,
}

/// LeaveGroup's outcome: a group-level error, or one result per member.
pub type LeaveResult = Result<Vec<Result<(), GroupError>>, GroupError>;

/// A member as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinResponse {
    pub error: Option<GroupError>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    pub fn error(e: GroupError, member_id: &str) -> JoinResponse {
        JoinResponse {
            error: Some(e),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: vec![],
        }
    }
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResponse {
    pub error: Option<GroupError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResponse {
    pub fn error(e: GroupError) -> SyncResponse {
        SyncResponse {
            error: Some(e),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer to a request that was left waiting.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Joined {
        group: String,
        member_id: String,
        response: JoinResponse,
    },
    Synced {
        group: String,
        member_id: String,
        response: SyncResponse,
    },
    /// A rebalance completed: the group's new generation should be persisted.
    GenerationChanged { group: String },
}

/// The immediate outcome of a JoinGroup.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinOutcome {
    Now(JoinResponse),
    /// Wait for an [`Event::Joined`] for this member id.
    Wait {
        member_id: String,
    },
}

/// The immediate outcome of a SyncGroup.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncOutcome {
    Now(SyncResponse),
    /// Wait for an [`Event::Synced`].
    Wait,
}

#[derive(Debug, Clone)]
struct Member {
    member_id: String,
    group_instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat: i64,
    awaiting_join: bool,
    awaiting_sync: bool,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
    fn same_protocols(&self, other: &[(String, Bytes)]) -> bool {
        self.protocols == other
    }
}

/// One classic group.
#[derive(Debug, Clone)]
pub struct Group {
    pub group_id: String,
    state: GroupState,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, with their expiry.
    pending_members: HashMap<String, i64>,
    static_members: HashMap<String, String>,
    /// When the current join phase ends even if not every member has rejoined.
    join_deadline: Option<i64>,
    /// Initial delay (empty group): the phase may also not end before this.
    initial_delay_until: Option<i64>,
    initial_delay_cap: Option<i64>,
    pub state_timestamp: i64,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

impl Group {
    fn new(group_id: &str, now: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            join_deadline: None,
            initial_delay_until: None,
            initial_delay_cap: None,
            state_timestamp: now,
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }
    pub fn member_count(&self) -> usize {
        self.members.len()
    }
    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// The members as DescribeGroups reports them (metadata and assignment only when Stable, as
    /// Kafka does).
    pub fn describe_members(&self) -> Vec<MemberDescription> {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| MemberDescription {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                metadata: if stable {
                    m.metadata_for(&protocol)
                } else {
                    Bytes::new()
                },
                assignment: if stable {
                    m.assignment.clone()
                } else {
                    Bytes::new()
                },
            })
            .collect()
    }

    /// The subscription metadata of every member for the current protocol (for OffsetDelete).
    pub fn member_metadata(&self) -> Vec<Bytes> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| m.metadata_for(&protocol))
            .collect()
    }

    fn transition(&mut self, to: GroupState, now: i64) {
        self.state = to;
        self.state_timestamp = now;
    }

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        // Some protocol must be supported by every member and by the newcomer.
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == *n))
            })
            .collect();
        let mut votes: Vec<(usize, &String)> = candidates.iter().map(|c| (0usize, *c)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
                if let Some(v) = votes.iter_mut().find(|(_, c)| *c == name) {
                    v.0 += 1;
                }
            }
        }
        // Most votes wins; ties go to the protocol listed first by the first member.
        let best = votes.iter().map(|(v, _)| *v).max()?;
        votes
            .iter()
            .find(|(v, _)| *v == best)
            .map(|(_, c)| (*c).clone())
    }

    fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms as i64)
            .max()
            .unwrap_or(0)
    }

    fn prepare_rebalance(&mut self, now: i64, config: &GroupConfig, events: &mut Vec<Event>) {
        // Members waiting for their assignment must rejoin instead.
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                if m.awaiting_sync {
                    m.awaiting_sync = false;
                    events.push(Event::Synced {
                        group: self.group_id.clone(),
                        member_id: m.member_id.clone(),
                        response: SyncResponse::error(GroupError::RebalanceInProgress),
                    });
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        self.transition(GroupState::PreparingRebalance, now);
        let timeout = self.max_rebalance_timeout();
        if was_empty && config.initial_rebalance_delay_ms > 0 {
            let delay = config.initial_rebalance_delay_ms;
            self.initial_delay_until = Some(now + delay);
            self.initial_delay_cap = Some(now + timeout.max(delay));
            self.join_deadline = Some(now + timeout.max(delay));
        } else {
            self.initial_delay_until = None;
            self.initial_delay_cap = None;
            self.join_deadline = Some(now + timeout);
        }
    }

    fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join)
    }

    /// Completes the join phase if it may: everyone rejoined (and the initial delay is over), or
    /// the deadline passed (members that did not rejoin are removed).
    fn maybe_complete_join(&mut self, now: i64, events: &mut Vec<Event>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let delay_over = self.initial_delay_until.is_none_or(|t| now >= t);
        let deadline_passed = self.join_deadline.is_some_and(|t| now >= t);
        let ready = delay_over && self.all_joined();
        if !ready && !deadline_passed {
            return;
        }
        // Drop members that did not rejoin in time, and unused pending ids.
        let missing: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.member_id.clone())
            .collect();
        for id in missing {
            self.remove_member(&id);
        }
        self.pending_members.clear();
        self.join_deadline = None;
        self.initial_delay_until = None;
        self.initial_delay_cap = None;
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.leader = None;
            self.transition(GroupState::Empty, now);
            events.push(Event::GenerationChanged {
                group: self.group_id.clone(),
            });
            return;
        }
        self.protocol_name = self.select_protocol();
        if self
            .leader
            .as_ref()
            .is_none_or(|l| !self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.transition(GroupState::CompletingRebalance, now);
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<JoinedMember> = self
            .members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect();
        for m in self.members.values_mut() {
            m.awaiting_join = false;
            m.assignment = Bytes::new();
            // The new generation starts the session clock afresh.
            m.last_heartbeat = now;
            events.push(Event::Joined {
                group: self.group_id.clone(),
                member_id: m.member_id.clone(),
                response: JoinResponse {
                    error: None,
                    generation_id: self.generation_id,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    leader: leader.clone(),
                    member_id: m.member_id.clone(),
                    members: if m.member_id == leader {
                        all.clone()
                    } else {
                        vec![]
                    },
                },
            });
        }
        events.push(Event::GenerationChanged {
            group: self.group_id.clone(),
        });
    }

    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let m = self.members.remove(member_id)?;
        if let Some(instance) = &m.group_instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        if self.members.is_empty() && self.state != GroupState::PreparingRebalance {
            self.protocol_name = None;
        }
        Some(m)
    }

    /// Removes a member for good and moves the group on, answering its waiting requests.
    fn evict(&mut self, member_id: &str, now: i64, config: &GroupConfig, events: &mut Vec<Event>) {
        let Some(m) = self.remove_member(member_id) else {
            return;
        };
        if m.awaiting_join {
            events.push(Event::Joined {
                group: self.group_id.clone(),
                member_id: m.member_id.clone(),
                response: JoinResponse::error(GroupError::UnknownMemberId, &m.member_id),
            });
        }
        if m.awaiting_sync {
            events.push(Event::Synced {
                group: self.group_id.clone(),
                member_id: m.member_id.clone(),
                response: SyncResponse::error(GroupError::UnknownMemberId),
            });
        }
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, config, events);
                self.maybe_complete_join(now, events);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, events),
            GroupState::Empty | GroupState::Dead => {}
        }
    }
}

/// All classic groups on this coordinator.
#[derive(Debug, Default)]
pub struct Groups {
    pub config: GroupConfig,
    groups: BTreeMap<String, Group>,
    next_id: u64,
}

impl Groups {
    pub fn new(config: GroupConfig) -> Groups {
        Groups {
            config,
            groups: BTreeMap::new(),
            next_id: 0,
        }
    }

    pub fn get(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Makes sure a group exists (an offset commit creates an empty group, as in Kafka).
    pub fn get_or_create(&mut self, group_id: &str, now: i64) -> &mut Group {
        self.groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id, now))
    }

    /// Restores a group's generation and protocol from the offsets topic.
    pub fn restore(&mut self, group_id: &str, generation: i32, protocol_type: String, now: i64) {
        let g = self.get_or_create(group_id, now);
        g.generation_id = g.generation_id.max(generation);
        if !protocol_type.is_empty() {
            g.protocol_type = Some(protocol_type);
        }
    }

    /// Deletes an empty group (DeleteGroups).
    pub fn delete(&mut self, group_id: &str) -> Result<(), GroupError> {
        match self.groups.get(group_id) {
            None => Err(GroupError::GroupIdNotFound),
            Some(g) if g.state != GroupState::Empty => Err(GroupError::NonEmptyGroup),
            Some(_) => {
                self.groups.remove(group_id);
                Ok(())
            }
        }
    }

    /// Drops every group for which `moved` says yes, whatever its state: their `__consumer_offsets`
    /// partition is now led by another broker, whose coordinator takes them over (members rejoin
    /// there after NOT_COORDINATOR).
    pub fn unload(&mut self, moved: impl Fn(&str) -> bool) {
        self.groups.retain(|id, _| !moved(id));
    }

    /// Forgets an empty group that has nothing left (all its offsets expired or deleted).
    pub fn remove_if_empty(&mut self, group_id: &str) {
        if self
            .groups
            .get(group_id)
            .is_some_and(|g| g.state == GroupState::Empty)
        {
            self.groups.remove(group_id);
        }
    }

    fn new_member_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", uuid::Uuid::new_v4())
    }

    pub fn join(&mut self, now: i64, req: JoinRequest) -> (JoinOutcome, Vec<Event>) {
        let mut events = Vec::new();
        let outcome = self.join_inner(now, req, &mut events);
        (outcome, events)
    }

    fn join_inner(&mut self, now: i64, req: JoinRequest, events: &mut Vec<Event>) -> JoinOutcome {
        let config = self.config;
        let fail = |e: GroupError, id: &str| JoinOutcome::Now(JoinResponse::error(e, id));
        if req.group_id.is_empty() {
            return fail(GroupError::InvalidGroupId, &req.member_id);
        }
        if req.session_timeout_ms < config.min_session_timeout_ms
            || req.session_timeout_ms > config.max_session_timeout_ms
        {
            return fail(GroupError::InvalidSessionTimeout, &req.member_id);
        }
        let new_id = if req.member_id.is_empty() {
            let prefix = req
                .group_instance_id
                .clone()
                .unwrap_or_else(|| req.client_id.clone());
            Some(self.new_member_id(&prefix))
        } else {
            None
        };
        let group = self
            .groups
            .entry(req.group_id.clone())
            .or_insert_with(|| Group::new(&req.group_id, now));
        if group.state == GroupState::Dead {
            return fail(GroupError::CoordinatorNotAvailable, &req.member_id);
        }
        if !group.supports(&req.protocol_type, &req.protocols) {
            return fail(GroupError::InconsistentGroupProtocol, &req.member_id);
        }

        // Static member rejoining with a new process: take over the old member's identity.
        if let (Some(instance), Some(new_id)) = (&req.group_instance_id, &new_id) {
            if let Some(old_id) = group.static_members.get(instance).cloned() {
                let Some(mut m) = group.members.remove(&old_id) else {
                    group.static_members.remove(instance);
                    return fail(GroupError::UnknownMemberId, &req.member_id);
                };
                if m.awaiting_join {
                    events.push(Event::Joined {
                        group: group.group_id.clone(),
                        member_id: old_id.clone(),
                        response: JoinResponse::error(GroupError::FencedInstanceId, &old_id),
                    });
                }
                if m.awaiting_sync {
                    events.push(Event::Synced {
                        group: group.group_id.clone(),
                        member_id: old_id.clone(),
                        response: SyncResponse::error(GroupError::FencedInstanceId),
                    });
                }
                let protocols_same = m.same_protocols(&req.protocols);
                m.member_id = new_id.clone();
                m.client_id = req.client_id.clone();
                m.client_host = req.client_host.clone();
                m.session_timeout_ms = req.session_timeout_ms;
                m.rebalance_timeout_ms = req.rebalance_timeout_ms;
                m.protocols = req.protocols.clone();
                m.last_heartbeat = now;
                m.awaiting_join = false;
                m.awaiting_sync = false;
                if group.leader.as_deref() == Some(old_id.as_str()) {
                    group.leader = Some(new_id.clone());
                }
                group
                    .static_members
                    .insert(instance.clone(), new_id.clone());
                group.members.insert(new_id.clone(), m);
                match group.state {
                    GroupState::Stable if protocols_same => {
                        // KIP-345: a static member's restart causes no rebalance.
                        let leader = group.leader.clone().unwrap_or_default();
                        return JoinOutcome::Now(JoinResponse {
                            error: None,
                            generation_id: group.generation_id,
                            protocol_type: group.protocol_type.clone(),
                            protocol_name: group.protocol_name.clone(),
                            leader,
                            member_id: new_id.clone(),
                            members: vec![],
                        });
                    }
                    GroupState::PreparingRebalance => {
                        if let Some(m) = group.members.get_mut(new_id) {
                            m.awaiting_join = true;
                        }
                        group.maybe_complete_join(now, events);
                        return JoinOutcome::Wait {
                            member_id: new_id.clone(),
                        };
                    }
                    _ => {
                        if let Some(m) = group.members.get_mut(new_id) {
                            m.awaiting_join = true;
                        }
                        group.prepare_rebalance(now, &config, events);
                        group.maybe_complete_join(now, events);
                        return JoinOutcome::Wait {
                            member_id: new_id.clone(),
                        };
                    }
                }
            }
        }

        let member_id = match new_id {
            Some(id) => {
                if group.members.len() >= config.max_size {
                    return fail(GroupError::GroupMaxSizeReached, "");
                }
                if req.require_known_member_id && req.group_instance_id.is_none() {
                    // KIP-394: hand out the id; the member joins again with it.
                    let expires = now + req.session_timeout_ms as i64;
                    group.pending_members.insert(id.clone(), expires);
                    return fail(GroupError::MemberIdRequired, &id);
                }
                id
            }
            None => {
                let known = group.members.contains_key(&req.member_id);
                let pending = group.pending_members.contains_key(&req.member_id);
                if !known && !pending {
                    return fail(GroupError::UnknownMemberId, &req.member_id);
                }
                if let (Some(instance), true) = (&req.group_instance_id, known) {
                    if group.static_members.get(instance) != Some(&req.member_id) {
                        return fail(GroupError::FencedInstanceId, &req.member_id);
                    }
                }
                req.member_id.clone()
            }
        };
        group.pending_members.remove(&member_id);

        if let Some(m) = group.members.get_mut(&member_id) {
            // A known member rejoining.
            let changed = !m.same_protocols(&req.protocols);
            m.protocols = req.protocols.clone();
            m.session_timeout_ms = req.session_timeout_ms;
            m.rebalance_timeout_ms = req.rebalance_timeout_ms;
            m.last_heartbeat = now;
            let is_leader = group.leader.as_deref() == Some(member_id.as_str());
            match group.state {
                GroupState::PreparingRebalance => {
                    m.awaiting_join = true;
                    group.maybe_complete_join(now, events);
                    return JoinOutcome::Wait { member_id };
                }
                GroupState::CompletingRebalance | GroupState::Stable
                    if !changed && (!is_leader || group.state != GroupState::Stable) =>
                {
                    // Nothing changed: answer with the current generation (the leader also gets
                    // the member list while the group is completing, so it can resend the sync).
                    let protocol = group.protocol_name.clone().unwrap_or_default();
                    let leader = group.leader.clone().unwrap_or_default();
                    let members = if is_leader {
                        group
                            .members
                            .values()
                            .map(|m| JoinedMember {
                                member_id: m.member_id.clone(),
                                group_instance_id: m.group_instance_id.clone(),
                                metadata: m.metadata_for(&protocol),
                            })
                            .collect()
                    } else {
                        vec![]
                    };
                    return JoinOutcome::Now(JoinResponse {
                        error: None,
                        generation_id: group.generation_id,
                        protocol_type: group.protocol_type.clone(),
                        protocol_name: group.protocol_name.clone(),
                        leader,
                        member_id,
                        members,
                    });
                }
                _ => {
                    if let Some(m) = group.members.get_mut(&member_id) {
                        m.awaiting_join = true;
                    }
                    group.prepare_rebalance(now, &config, events);
                    group.maybe_complete_join(now, events);
                    return JoinOutcome::Wait { member_id };
                }
            }
        }

        // A new member.
        if group.members.is_empty() {
            group.protocol_type = Some(req.protocol_type.clone());
        }
        group.members.insert(
            member_id.clone(),
            Member {
                member_id: member_id.clone(),
                group_instance_id: req.group_instance_id.clone(),
                client_id: req.client_id.clone(),
                client_host: req.client_host.clone(),
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols.clone(),
                assignment: Bytes::new(),
                last_heartbeat: now,
                awaiting_join: true,
                awaiting_sync: false,
            },
        );
        if let Some(instance) = &req.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), member_id.clone());
        }
        match group.state {
            GroupState::PreparingRebalance => {
                // During the initial delay each newcomer extends it, up to the rebalance timeout.
                if let (Some(until), Some(cap)) =
                    (group.initial_delay_until, group.initial_delay_cap)
                {
                    let extended = (now + config.initial_rebalance_delay_ms).min(cap);
                    group.initial_delay_until = Some(until.max(extended));
                }
                let deadline = now + group.max_rebalance_timeout();
                group.join_deadline =
                    Some(group.join_deadline.map_or(deadline, |d| d.max(deadline)));
            }
            _ => group.prepare_rebalance(now, &config, events),
        }
        group.maybe_complete_join(now, events);
        JoinOutcome::Wait { member_id }
    }

    pub fn sync(&mut self, now: i64, req: SyncRequest) -> (SyncOutcome, Vec<Event>) {
        let SyncRequest {
            group_id,
            generation_id,
            member_id,
            group_instance_id,
            protocol_type,
            protocol_name,
            assignments,
        } = req;
        let (group_id, member_id) = (group_id.as_str(), member_id.as_str());
        let group_instance_id = group_instance_id.as_deref();
        let (protocol_type, protocol_name) = (protocol_type.as_deref(), protocol_name.as_deref());
        let mut events = Vec::new();
        let fail = |e| (SyncOutcome::Now(SyncResponse::error(e)), vec![]);
        let Some(group) = self.groups.get_mut(group_id) else {
            return fail(GroupError::UnknownMemberId);
        };
        if group.state == GroupState::Dead {
            return fail(GroupError::CoordinatorNotAvailable);
        }
        let Some(m) = group.members.get(member_id) else {
            return fail(GroupError::UnknownMemberId);
        };
        if let Some(instance) = group_instance_id {
            if m.group_instance_id.as_deref() != Some(instance) {
                return fail(GroupError::FencedInstanceId);
            }
        }
        if generation_id != group.generation_id {
            return fail(GroupError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|t| Some(t) != group.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != group.protocol_name.as_deref())
        {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        let ok = |group: &Group, assignment: Bytes| SyncResponse {
            error: None,
            protocol_type: group.protocol_type.clone(),
            protocol_name: group.protocol_name.clone(),
            assignment,
        };
        match group.state {
            GroupState::Empty => fail(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(GroupError::RebalanceInProgress),
            GroupState::Stable => {
                let a = m.assignment.clone();
                (SyncOutcome::Now(ok(group, a)), vec![])
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = group.members.get_mut(member_id) {
                    m.last_heartbeat = now;
                }
                if group.leader.as_deref() != Some(member_id) {
                    if let Some(m) = group.members.get_mut(member_id) {
                        m.awaiting_sync = true;
                    }
                    return (SyncOutcome::Wait, events);
                }
                let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                for m in group.members.values_mut() {
                    m.assignment = by_member.remove(&m.member_id).unwrap_or_default();
                }
                group.transition(GroupState::Stable, now);
                let mut mine = Bytes::new();
                let (ptype, pname) = (group.protocol_type.clone(), group.protocol_name.clone());
                for m in group.members.values_mut() {
                    if m.member_id == member_id {
                        mine = m.assignment.clone();
                        m.awaiting_sync = false;
                    } else if m.awaiting_sync {
                        m.awaiting_sync = false;
                        events.push(Event::Synced {
                            group: group_id.to_string(),
                            member_id: m.member_id.clone(),
                            response: SyncResponse {
                                error: None,
                                protocol_type: ptype.clone(),
                                protocol_name: pname.clone(),
                                assignment: m.assignment.clone(),
                            },
                        });
                    }
                }
                (SyncOutcome::Now(ok(group, mine)), events)
            }
            GroupState::Dead => fail(GroupError::CoordinatorNotAvailable),
        }
    }

    pub fn heartbeat(
        &mut self,
        now: i64,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let m = group
            .members
            .get_mut(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if let Some(instance) = group_instance_id {
            if m.group_instance_id.as_deref() != Some(instance) {
                return Err(GroupError::FencedInstanceId);
            }
        }
        if generation_id != group.generation_id {
            return Err(GroupError::IllegalGeneration);
        }
        m.last_heartbeat = now;
        match group.state {
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Empty => Err(GroupError::UnknownMemberId),
            _ => Ok(()),
        }
    }

    /// LeaveGroup: each `(member_id, group_instance_id)` leaves; returns a result per member.
    pub fn leave(
        &mut self,
        now: i64,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> (LeaveResult, Vec<Event>) {
        let mut events = Vec::new();
        let config = self.config;
        let Some(group) = self.groups.get_mut(group_id) else {
            return (Err(GroupError::UnknownMemberId), events);
        };
        if group.state == GroupState::Dead {
            return (Err(GroupError::CoordinatorNotAvailable), events);
        }
        let mut results = Vec::new();
        for (member_id, instance) in members {
            // A static member may leave by instance id alone (empty member id).
            let id = match (member_id.is_empty(), instance) {
                (true, Some(i)) => group.static_members.get(i).cloned(),
                _ => Some(member_id.clone()),
            };
            let Some(id) = id.filter(|id| group.members.contains_key(id)) else {
                if group.pending_members.remove(member_id).is_some() {
                    results.push(Ok(()));
                } else {
                    results.push(Err(GroupError::UnknownMemberId));
                }
                continue;
            };
            if let Some(i) = instance {
                if group.static_members.get(i) != Some(&id) {
                    results.push(Err(GroupError::FencedInstanceId));
                    continue;
                }
            }
            group.evict(&id, now, &config, &mut events);
            results.push(Ok(()));
        }
        (Ok(results), events)
    }

    /// Advances time: expires sessions and pending member ids, ends join phases whose deadline or
    /// initial delay passed.
    pub fn tick(&mut self, now: i64) -> Vec<Event> {
        let config = self.config;
        let mut events = Vec::new();
        for group in self.groups.values_mut() {
            group.pending_members.retain(|_, expires| *expires > now);
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    // While waiting for the join phase to end, a member is not expected to heartbeat.
                    !m.awaiting_join && now - m.last_heartbeat >= m.session_timeout_ms as i64
                })
                .map(|m| m.member_id.clone())
                .collect();
            for id in expired {
                group.evict(&id, now, &config, &mut events);
            }
            group.maybe_complete_join(now, &mut events);
        }
        events
    }

    /// The earliest time at which [`Groups::tick`] has something to do (for the broker's timer).
    pub fn next_deadline(&self) -> Option<i64> {
        self.groups
            .values()
            .flat_map(|g| {
                let members = g
                    .members
                    .values()
                    .filter(|m| !m.awaiting_join)
                    .map(|m| m.last_heartbeat + m.session_timeout_ms as i64);
                let phase = [g.join_deadline, g.initial_delay_until]
                    .into_iter()
                    .flatten();
                members
                    .chain(phase)
                    .chain(g.pending_members.values().copied())
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    fn sync(
        groups: &mut Groups,
        now: i64,
        group_id: &str,
        generation_id: i32,
        member_id: &str,
        instance: Option<&str>,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> (SyncOutcome, Vec<Event>) {
        groups.sync(
            now,
            SyncRequest {
                group_id: group_id.into(),
                generation_id,
                member_id: member_id.into(),
                group_instance_id: instance.map(String::from),
                protocol_type: protocol_type.map(String::from),
                protocol_name: protocol_name.map(String::from),
                assignments,
            },
        )
    }

    fn config() -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: 100,
            ..GroupConfig::default()
        }
    }

    fn req(member: &str, client: &str) -> JoinRequest {
        JoinRequest {
            group_id: "g".into(),
            member_id: member.into(),
            group_instance_id: None,
            client_id: client.into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    /// Joins a member through MEMBER_ID_REQUIRED; returns its id.
    fn join(groups: &mut Groups, now: i64, client: &str) -> String {
        let (out, _) = groups.join(now, req("", client));
        let JoinOutcome::Now(r) = out else {
            panic!("{out:?}")
        };
        assert_eq!(r.error, Some(GroupError::MemberIdRequired));
        let (out, _) = groups.join(now, req(&r.member_id, client));
        assert_eq!(
            out,
            JoinOutcome::Wait {
                member_id: r.member_id.clone()
            }
        );
        r.member_id
    }

    fn joined(events: &[Event]) -> Vec<&JoinResponse> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Joined { response, .. } => Some(response),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn two_members_rebalance_and_sync_after_the_initial_delay() {
        let mut groups = Groups::new(config());
        let a = join(&mut groups, 0, "a");
        let b = join(&mut groups, 50, "b");
        // The newcomer extended the initial delay to 150.
        assert!(joined(&groups.tick(120)).is_empty());
        let events = groups.tick(150);
        let responses = joined(&events);
        assert_eq!(responses.len(), 2);
        let leader = responses[0].leader.clone();
        assert!(leader == a || leader == b);
        for r in &responses {
            assert_eq!(r.generation_id, 1);
            assert_eq!(r.protocol_name.as_deref(), Some("range"));
            assert_eq!(r.members.len(), if r.member_id == leader { 2 } else { 0 });
        }
        let follower = if leader == a { b.clone() } else { a.clone() };
        let (out, _) = sync(
            &mut groups,
            151,
            "g",
            1,
            &follower,
            None,
            None,
            None,
            vec![],
        );
        assert_eq!(out, SyncOutcome::Wait);
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"A")),
            (b.clone(), Bytes::from_static(b"B")),
        ];
        let (out, events) = sync(
            &mut groups,
            152,
            "g",
            1,
            &leader,
            None,
            Some("consumer"),
            Some("range"),
            assignments,
        );
        let SyncOutcome::Now(mine) = out else {
            panic!()
        };
        assert_eq!(mine.assignment, if leader == a { "A" } else { "B" });
        let Event::Synced {
            member_id,
            response,
            ..
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!(member_id, &follower);
        assert_eq!(response.assignment, if follower == a { "A" } else { "B" });
        assert_eq!(groups.get("g").unwrap().state(), GroupState::Stable);
        assert_eq!(groups.heartbeat(200, "g", 1, &a, None), Ok(()));
        assert_eq!(
            groups.heartbeat(200, "g", 0, &a, None),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(
            groups.heartbeat(200, "g", 1, "nobody", None),
            Err(GroupError::UnknownMemberId)
        );
    }

    fn stable_group(groups: &mut Groups, clients: &[&str]) -> Vec<String> {
        let ids: Vec<String> = clients.iter().map(|c| join(groups, 0, c)).collect();
        let events = groups.tick(100);
        let leader = joined(&events)[0].leader.clone();
        for id in &ids {
            if *id != leader {
                sync(groups, 101, "g", 1, id, None, None, None, vec![]);
            }
        }
        sync(groups, 101, "g", 1, &leader, None, None, None, vec![]);
        assert_eq!(groups.get("g").unwrap().state(), GroupState::Stable);
        ids
    }

    #[test]
    fn a_silent_member_is_evicted_after_its_session_timeout() {
        let mut groups = Groups::new(config());
        let ids = stable_group(&mut groups, &["a", "b"]);
        assert_eq!(groups.heartbeat(5_000, "g", 1, &ids[0], None), Ok(()));
        // b's last sign of life was its SyncGroup at 101.
        groups.tick(10_100);
        assert!(groups.get("g").unwrap().has_member(&ids[1]));
        groups.tick(10_101);
        let g = groups.get("g").unwrap();
        assert!(g.has_member(&ids[0]) && !g.has_member(&ids[1]));
        assert_eq!(g.state(), GroupState::PreparingRebalance);
        assert_eq!(
            groups.heartbeat(10_200, "g", 1, &ids[0], None),
            Err(GroupError::RebalanceInProgress)
        );
        let (out, events) = groups.join(10_300, req(&ids[0], "a"));
        assert_eq!(
            out,
            JoinOutcome::Wait {
                member_id: ids[0].clone()
            }
        );
        let r = joined(&events);
        assert_eq!((r.len(), r[0].generation_id), (1, 2));
    }

    #[test]
    fn leaving_triggers_a_rebalance_and_an_unknown_member_is_refused() {
        let mut groups = Groups::new(config());
        let ids = stable_group(&mut groups, &["a", "b", "c"]);
        let (res, _) = groups.leave(500, "g", &[(ids[2].clone(), None), ("ghost".into(), None)]);
        assert_eq!(res.unwrap(), vec![Ok(()), Err(GroupError::UnknownMemberId)]);
        assert_eq!(
            groups.get("g").unwrap().state(),
            GroupState::PreparingRebalance
        );
        groups.join(600, req(&ids[0], "a"));
        let (_, events) = groups.join(600, req(&ids[1], "b"));
        let r = joined(&events);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|r| r.generation_id == 2));
    }

    #[test]
    fn a_static_member_restart_keeps_the_generation() {
        let mut groups = Groups::new(config());
        let mut r = req("", "a");
        r.group_instance_id = Some("instance-1".into());
        let (out, _) = groups.join(0, r.clone());
        let JoinOutcome::Wait { member_id } = out else {
            panic!("{out:?}")
        };
        let events = groups.tick(100);
        assert_eq!(joined(&events).len(), 1);
        sync(
            &mut groups,
            101,
            "g",
            1,
            &member_id,
            Some("instance-1"),
            None,
            None,
            vec![(member_id.clone(), Bytes::from_static(b"X"))],
        );
        // The process restarts: same instance id, no member id.
        let (out, events) = groups.join(200, r.clone());
        let JoinOutcome::Now(resp) = out else {
            panic!("{out:?}")
        };
        assert!(events.is_empty());
        assert_eq!(resp.generation_id, 1);
        assert_ne!(resp.member_id, member_id);
        assert_eq!(groups.get("g").unwrap().state(), GroupState::Stable);
        let (out, _) = sync(
            &mut groups,
            201,
            "g",
            1,
            &resp.member_id,
            Some("instance-1"),
            None,
            None,
            vec![],
        );
        let SyncOutcome::Now(s) = out else { panic!() };
        assert_eq!(s.assignment, "X");
        // The old incarnation is fenced.
        assert_eq!(
            groups.heartbeat(202, "g", 1, &member_id, Some("instance-1")),
            Err(GroupError::UnknownMemberId)
        );
    }

    #[test]
    fn inconsistent_protocols_and_bad_timeouts_are_refused() {
        let mut groups = Groups::new(config());
        join(&mut groups, 0, "a");
        let mut other = req("", "b");
        other.protocols = vec![("roundrobin".into(), Bytes::new())];
        let (out, _) = groups.join(1, other);
        assert_eq!(
            out,
            JoinOutcome::Now(JoinResponse::error(
                GroupError::InconsistentGroupProtocol,
                ""
            ))
        );
        let mut short = req("", "c");
        short.session_timeout_ms = 10;
        let (out, _) = groups.join(1, short);
        assert!(matches!(
            out,
            JoinOutcome::Now(JoinResponse {
                error: Some(GroupError::InvalidSessionTimeout),
                ..
            })
        ));
    }

    #[test]
    fn a_member_that_does_not_rejoin_in_time_is_dropped() {
        let mut groups = Groups::new(config());
        let ids = stable_group(&mut groups, &["a", "b"]);
        // a rejoins (new protocol metadata): rebalance; b never does.
        let mut r = req(&ids[0], "a");
        r.protocols = vec![("range".into(), Bytes::from_static(b"new"))];
        groups.join(1_000, r);
        // b keeps heartbeating (and is told a rebalance is on) but never rejoins.
        for t in [9_000, 18_000, 27_000] {
            assert_eq!(
                groups.heartbeat(t, "g", 1, &ids[1], None),
                Err(GroupError::RebalanceInProgress)
            );
            assert!(joined(&groups.tick(t)).is_empty());
        }
        let events = groups.tick(31_000);
        let r = joined(&events);
        assert!(r.iter().any(|r| r.member_id == ids[0] && r.error.is_none()));
        assert!(!groups.get("g").unwrap().has_member(&ids[1]));
    }
}
