//! The broker's state: metadata image and store, the partitions it hosts, producer id blocks.
//!
//! Metadata changes go through [`Broker::commit`]: the controller's records are made durable, applied
//! to the image, and the hosted partitions are brought in line (logs opened, configs updated, logs of
//! deleted topics removed). Partition data goes through [`Partition`], one log behind a mutex.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use brook_metadata::controller::{self, ControllerDefaults, ControllerError};
use brook_metadata::image::PartitionImage;
use brook_metadata::store::{MetadataStore, StoreError};
use brook_metadata::topic_config::TOPIC_CONFIGS;
use brook_metadata::{ControllerOp, ControllerReply, MetadataImage, MetadataRecord};
use brook_replication::LeaderState;
use brook_storage::offset_checkpoint::{self, PartitionOffsets, REPLICATION_OFFSET_CHECKPOINT};
use brook_storage::{Log, LogConfig, StorageError};
use tokio::sync::{mpsc, watch, Notify};
use uuid::Uuid;

use crate::config::{BrokerConfig, Listener};
use crate::fetch_session::FetchSessionCache;
use crate::groups::GroupService;

/// Wall-clock time in milliseconds since the epoch, Kafka's timestamp unit.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Metadata(#[from] StoreError),
    #[error("cannot open the log of {partition}: {source}")]
    Log {
        partition: String,
        source: StorageError,
    },
    #[error("{0}")]
    MetaProperties(String),
}

/// A partition hosted by this broker.
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    log: Mutex<Log>,
    /// Offsets below this are committed and visible to consumers. On a single node every append is
    /// committed at once; with replication, followers' progress moves it.
    high_watermark: AtomicI64,
    leader_epoch: AtomicI64,
    /// This broker's role for the partition (lock order: the log first, then the role).
    role: Mutex<Role>,
    /// Bumped on every role change; a replica fetcher applies what it fetched only while the
    /// generation it started with is current (checked under the log lock).
    generation: AtomicU64,
    /// Woken when the high watermark moves or the role changes (acks=-1 produces wait on it).
    pub state_changed: Notify,
}

/// What this broker is for a partition, from the metadata image.
#[derive(Debug)]
pub enum Role {
    /// The leader, with the followers' progress.
    Leader(LeaderState),
    /// A follower of `leader` in `leader_epoch`.
    Follower { leader: i32, leader_epoch: i32 },
    /// The image names no leader (-1): nothing is served, nothing fetched.
    NoLeader,
}

/// An ISR change proposed by a leader (Kafka's AlterPartition), for the controller to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

impl Partition {
    /// Locks the log. A poisoned lock means a handler panicked mid-operation; the log itself only
    /// changes through whole appends, so its state is still the last consistent one.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }
    pub fn set_high_watermark(&self, hw: i64) {
        self.high_watermark.store(hw, Ordering::Release);
    }
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire) as i32
    }
    /// Locks the role (never while waiting for the log lock).
    pub fn role(&self) -> MutexGuard<'_, Role> {
        self.role.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub fn is_leader(&self) -> bool {
        matches!(*self.role(), Role::Leader(_))
    }
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
    /// Waits until the high watermark reaches `offset` while this broker leads the partition;
    /// false when leadership is lost or `deadline` passes first.
    pub async fn wait_high_watermark(&self, offset: i64, deadline: tokio::time::Instant) -> bool {
        loop {
            let changed = self.state_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.high_watermark() >= offset {
                return true;
            }
            if !self.is_leader() {
                return false;
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(deadline) => return self.high_watermark() >= offset,
            }
        }
    }

    /// Stores a new high watermark (it only moves forward on a leader) and wakes its waiters.
    pub(crate) fn publish_high_watermark(&self, hw: i64) {
        self.set_high_watermark(hw);
        self.state_changed.notify_waiters();
    }
    /// The leader's log grew to `leo`: on a single replica this commits at once. Returns whether
    /// the high watermark moved.
    pub fn on_leader_append(&self, leo: i64) -> bool {
        let moved = match &mut *self.role() {
            Role::Leader(s) => s.on_leader_append(leo),
            _ => None,
        };
        if let Some(hw) = moved {
            self.publish_high_watermark(hw);
        }
        moved.is_some()
    }
}

struct MetaState {
    /// The single-node metadata log; `None` in cluster mode, where the quorum keeps metadata.
    store: Option<MetadataStore>,
    /// Producer ids handed out from the current block: (next, end).
    producer_ids: (i64, i64),
}

/// One broker node.
pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    /// The address clients are told to use (the bound port when the configured one was 0).
    pub advertised: Listener,
    meta: Mutex<MetaState>,
    image: RwLock<Arc<MetadataImage>>,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// Woken on every append, so long-polling fetches re-check their partitions.
    pub data_arrived: Notify,
    /// Woken when a roll left a sealed segment to fsync (see [`Broker::flush_rolled_segments`]).
    pub(crate) flush_wanted: Notify,
    /// The group coordinator (consumer groups and committed offsets).
    pub groups: GroupService,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: Mutex<FetchSessionCache>,
    /// Serializes bringing the partitions in line with a new image.
    sync_lock: Mutex<()>,
    isr_tx: mpsc::UnboundedSender<IsrChange>,
    isr_rx: Mutex<Option<mpsc::UnboundedReceiver<IsrChange>>>,
    /// The replica fetchers, one per source broker.
    pub(crate) fetchers: Mutex<crate::replica_fetcher::FetcherManager>,
    /// Set on shutdown: replica fetchers stop.
    pub(crate) stopping: watch::Sender<bool>,
    stopped: AtomicBool,
    /// This broker, for the tasks it spawns (they must not keep it alive).
    pub(crate) me: Weak<Broker>,
    /// The runtime the broker was opened in, for spawning replica fetchers.
    pub(crate) runtime: Option<tokio::runtime::Handle>,
    /// Cluster mode: the metadata quorum (metadata changes go to its active controller).
    pub quorum: Option<crate::quorum::Quorum>,
    /// Kafka's `replication-offset-checkpoint` (see [`Broker::checkpoint_high_watermarks`]).
    hw_checkpoint: Mutex<HwCheckpoint>,
}

/// High watermarks as checkpointed in the log directory: those read at start, each taken by the
/// first opening of its partition's log, and those last written.
struct HwCheckpoint {
    at_start: PartitionOffsets,
    written: PartitionOffsets,
}

fn partition_dir(root: &Path, topic: &str, p: i32) -> PathBuf {
    root.join(format!("{topic}-{p}"))
}

impl Broker {
    /// Opens a single-node broker's data: metadata, then every hosted partition's log (with
    /// recovery).
    pub fn open(config: BrokerConfig, advertised: Listener) -> Result<Arc<Broker>, StartError> {
        Self::open_with(config, advertised, None)
    }

    /// Opens the broker's data. With a quorum (cluster mode) the metadata comes from it and this
    /// broker registers with the active controller once it runs; alone, it comes from the
    /// single-node metadata log, where this broker registers itself.
    pub fn open_with(
        config: BrokerConfig,
        advertised: Listener,
        quorum: Option<crate::quorum::Quorum>,
    ) -> Result<Arc<Broker>, StartError> {
        std::fs::create_dir_all(&config.log_dir).map_err(|e| {
            StartError::MetaProperties(format!("cannot create {}: {e}", config.log_dir.display()))
        })?;
        let cluster_id = meta_properties(&config)?;
        let (store, mut image) = match &quorum {
            Some(q) => (None, (*q.image()).clone()),
            None => {
                let (store, image) =
                    MetadataStore::open(&config.log_dir.join("__cluster_metadata-0"))?;
                (Some(store), image)
            }
        };
        let single_node = store.is_some();
        let checkpoint_path = config.log_dir.join(REPLICATION_OFFSET_CHECKPOINT);
        let at_start = offset_checkpoint::read(&checkpoint_path).unwrap_or_else(|e| {
            // Safe to lose: high watermarks then start at the log start offsets and are
            // re-established from the ISR (at once where this broker is the only member).
            tracing::warn!(path = %checkpoint_path.display(), error = %e, "ignoring the high watermark checkpoint");
            PartitionOffsets::new()
        });
        let (isr_tx, isr_rx) = mpsc::unbounded_channel();
        let broker = Arc::new_cyclic(|me| Broker {
            sync_lock: Mutex::new(()),
            isr_tx,
            isr_rx: Mutex::new(Some(isr_rx)),
            fetchers: Mutex::new(Default::default()),
            stopping: watch::channel(false).0,
            stopped: AtomicBool::new(false),
            me: me.clone(),
            runtime: tokio::runtime::Handle::try_current().ok(),
            quorum,
            hw_checkpoint: Mutex::new(HwCheckpoint {
                at_start,
                written: PartitionOffsets::new(),
            }),
            cluster_id,
            advertised: advertised.clone(),
            meta: Mutex::new(MetaState {
                store,
                producer_ids: (0, 0),
            }),
            image: RwLock::new(Arc::new(MetadataImage::default())),
            partitions: RwLock::new(HashMap::new()),
            data_arrived: Notify::new(),
            flush_wanted: Notify::new(),
            groups: GroupService::new(config.coordinator),
            fetch_sessions: Mutex::new(FetchSessionCache::new(config.fetch_session_cache_slots)),
            config,
        });
        let registration = MetadataRecord::RegisterBroker {
            node_id: broker.config.node_id,
            host: advertised.host.clone(),
            port: advertised.port as i32,
            rack: broker.config.rack.clone(),
            epoch: image.next_broker_epoch,
            fenced: false,
        };
        let mut records = Vec::new();
        let current = image.brokers.get(&broker.config.node_id);
        let registered = current.is_some_and(|b| {
            b.host == advertised.host
                && b.port == advertised.port as i32
                && b.rack == broker.config.rack
        });
        if !registered && single_node {
            records.push(registration);
        }
        if let Some(store) = broker.lock_meta().store.as_mut() {
            store.append(&records)?;
            for r in &records {
                image.apply(r);
            }
        }
        *broker.image.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(image);
        broker.sync_partitions()?;
        // Committed offsets must be readable as soon as clients connect. (In cluster mode the
        // coordinator takes over partitions as the image says it leads them.)
        if single_node
            && broker
                .image()
                .topic(crate::groups::CONSUMER_OFFSETS)
                .is_some()
        {
            broker
                .groups
                .ensure_loaded(&broker)
                .map_err(|e| StartError::MetaProperties(e.to_string()))?;
        }
        Ok(broker)
    }

    fn lock_meta(&self) -> MutexGuard<'_, MetaState> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current metadata image (a cheap snapshot).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn controller_defaults(&self) -> ControllerDefaults {
        ControllerDefaults {
            num_partitions: self.config.num_partitions,
            default_replication_factor: self.config.default_replication_factor,
        }
    }

    /// Asks the controller for a metadata change and returns its answer once the change is
    /// committed and visible in [`Broker::image`].
    pub fn submit(&self, op: ControllerOp) -> Result<ControllerReply, CommitError> {
        match &self.quorum {
            None => self.commit(|image| op.execute(image)),
            Some(quorum) => {
                // Handlers are synchronous; the quorum is not. The broker runs on a multi-thread
                // runtime, so this worker may block while the request crosses the network.
                let quorum = quorum.clone();
                let handle = self.runtime.clone().ok_or_else(|| {
                    CommitError::Unavailable("no runtime to reach the controller".into())
                })?;
                tokio::task::block_in_place(|| handle.block_on(crate::cluster::submit(&quorum, op)))
            }
        }
    }

    /// DescribeQuorum, answered by the active controller; `None` in single-node mode, which has
    /// no controller quorum.
    pub fn describe_quorum(&self) -> Option<Result<crate::cluster::QuorumDescription, String>> {
        let quorum = self.quorum.clone()?;
        let Some(handle) = self.runtime.clone() else {
            return Some(Err("no runtime to reach the controller".into()));
        };
        let call = async move {
            let req = crate::cluster::ControllerRequest::DescribeQuorum;
            match crate::cluster::call_controller(&quorum, &req, std::time::Duration::from_secs(5))
                .await
            {
                Ok(crate::cluster::ControllerResponse::Quorum(q)) => Ok(q),
                Ok(other) => Err(format!("unexpected controller reply {other:?}")),
                Err(e) => Err(e),
            }
        };
        // Handlers are synchronous, as in `submit`.
        Some(tokio::task::block_in_place(|| handle.block_on(call)))
    }

    /// The active controller's node id, as Metadata and DescribeCluster report it. While the
    /// quorum has no leader (an election), this node: clients send it their admin requests and
    /// it forwards them once a controller exists, as KRaft brokers do for every request.
    pub fn controller_id(&self) -> i32 {
        match &self.quorum {
            None => self.config.node_id,
            // Clients can only talk to brokers: a dedicated controller leading the quorum is
            // named as this broker, which forwards what needs the controller (as KRaft brokers
            // name a broker, not the controller).
            Some(q) => q
                .leader_id()
                .filter(|l| self.image().brokers.contains_key(l))
                .unwrap_or(self.config.node_id),
        }
    }

    /// Runs a controller operation against the current image and, when it succeeds, commits its
    /// records. The metadata lock is held throughout, so operations are serialized as in Kafka's
    /// single-threaded controller.
    fn commit<T>(
        &self,
        op: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, T), ControllerError>,
    ) -> Result<T, CommitError> {
        let mut meta = self.lock_meta();
        let image = self.image();
        let (records, out) = op(&image)?;
        if records.is_empty() {
            return Ok(out);
        }
        let store = meta.store.as_mut().ok_or_else(|| {
            CommitError::Unavailable("cluster metadata changes go through the quorum".into())
        })?;
        store.append(&records).map_err(CommitError::Store)?;
        let mut next = (*image).clone();
        for r in &records {
            next.apply(r);
        }
        *self.image.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
        drop(meta);
        self.sync_partitions().map_err(CommitError::Start)?;
        Ok(out)
    }

    /// Hands out a producer id, reserving a new block in the metadata log when the current one is
    /// used up, so ids are never reused across restarts.
    pub fn next_producer_id(&self) -> Result<i64, CommitError> {
        {
            let mut meta = self.lock_meta();
            let (next, end) = meta.producer_ids;
            if next < end {
                meta.producer_ids.0 += 1;
                return Ok(next);
            }
        }
        let first = match self.submit(ControllerOp::AllocateProducerIds)? {
            ControllerReply::ProducerIds { first } => first,
            other => {
                return Err(CommitError::Unavailable(format!(
                    "unexpected controller reply {other:?} to AllocateProducerIds"
                )))
            }
        };
        let mut meta = self.lock_meta();
        meta.producer_ids = (first + 1, first + controller::PRODUCER_ID_BLOCK);
        Ok(first)
    }

    /// The effective topic configs: Kafka's default, overridden by the broker's synonym property
    /// (static, then the dynamic cluster default, then this broker's dynamic value), overridden by
    /// the topic's own dynamic config.
    pub fn effective_topic_config(
        &self,
        image: &MetadataImage,
        topic: &str,
    ) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = TOPIC_CONFIGS
            .iter()
            .map(|d| (d.name.to_string(), d.default.to_string()))
            .collect();
        for (k, v) in &self.config.topic_defaults {
            out.insert(k.to_string(), v.clone());
        }
        // Dynamic broker configs: the cluster-wide default, then this broker's own.
        for resource in [None, Some(self.config.node_id)] {
            for (k, v) in image.broker_configs(resource).into_iter().flatten() {
                if let Some(def) = brook_metadata::controller::dynamic_broker_config(k) {
                    out.insert(def.name.to_string(), v.clone());
                }
            }
        }
        if let Some(c) = image.topic_configs(topic) {
            for (k, v) in c {
                out.insert(k.clone(), v.clone());
            }
        }
        out
    }

    pub fn log_config(&self, image: &MetadataImage, topic: &str) -> LogConfig {
        log_config_from(&self.effective_topic_config(image, topic))
    }

    /// The hosted partition, if any.
    pub fn partition(&self, topic: &str, p: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(topic.to_string(), p))
            .cloned()
    }

    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Installs a new metadata image (from the controller quorum) and brings the hosted
    /// partitions in line: logs opened or deleted, configs updated, leader and follower roles.
    pub fn install_image(&self, image: Arc<MetadataImage>) {
        *self.image.write().unwrap_or_else(|e| e.into_inner()) = image;
        if let Err(e) = self.sync_partitions() {
            tracing::error!(error = %e, "could not bring partitions in line with the metadata image");
        }
    }

    /// The ISR changes this broker's leaders propose, for the controller (once: the receiver
    /// is handed out to the first caller).
    pub fn take_isr_changes(&self) -> Option<mpsc::UnboundedReceiver<IsrChange>> {
        self.isr_rx.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    pub(crate) fn propose_isr(
        &self,
        p: &Partition,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) {
        tracing::info!(topic = %p.topic, partition = p.index, ?new_isr, "proposing ISR change");
        let _ = self.isr_tx.send(IsrChange {
            topic_id: p.topic_id,
            partition: p.index,
            leader_epoch,
            partition_epoch,
            new_isr,
        });
    }

    /// Brings hosted partitions in line with the image.
    fn sync_partitions(&self) -> Result<(), StartError> {
        let _serial = self.sync_lock.lock().unwrap_or_else(|e| e.into_inner());
        let result = self.sync_logs();
        let image = self.image();
        let now = now_ms();
        for p in self.all_partitions() {
            match image
                .topic(&p.topic)
                .and_then(|t| t.partitions.get(&p.index))
            {
                Some(pi) if pi.replicas.contains(&self.config.node_id) => {
                    self.apply_role(&p, pi, now)
                }
                _ => self.stop_replica(&p),
            }
        }
        result
    }

    /// A partition this broker no longer replicates: no fetching, no serving.
    fn stop_replica(&self, p: &Arc<Partition>) {
        self.lock_fetchers().remove(p);
        let mut role = p.role();
        if !matches!(*role, Role::NoLeader) {
            *role = Role::NoLeader;
            p.generation.fetch_add(1, Ordering::AcqRel);
            drop(role);
            p.state_changed.notify_waiters();
        }
    }

    pub(crate) fn lock_fetchers(&self) -> MutexGuard<'_, crate::replica_fetcher::FetcherManager> {
        self.fetchers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Kafka's makeLeader / makeFollower for one partition.
    fn apply_role(&self, p: &Arc<Partition>, pi: &PartitionImage, now: i64) {
        let node = self.config.node_id;
        if pi.leader == node {
            // The log first (lock order): a replica fetcher appending under the old generation
            // finishes before the leader's end offset is read.
            let log = p.log();
            let leo = log.log_end_offset();
            let mut role = p.role();
            let hw = match &mut *role {
                Role::Leader(s) if s.leader_epoch() == pi.leader_epoch => {
                    s.update_assignment(pi.partition_epoch, &pi.replicas, &pi.isr, now)
                }
                _ => {
                    p.generation.fetch_add(1, Ordering::AcqRel);
                    let s = LeaderState::new(
                        node,
                        pi.leader_epoch,
                        pi.partition_epoch,
                        &pi.replicas,
                        &pi.isr,
                        leo,
                        p.high_watermark(),
                        now,
                    );
                    tracing::info!(topic = %p.topic, partition = p.index, epoch = pi.leader_epoch, "became leader");
                    p.leader_epoch
                        .store(pi.leader_epoch as i64, Ordering::Release);
                    let hw = s.high_watermark();
                    *role = Role::Leader(s);
                    Some(hw)
                }
            };
            drop(log);
            drop(role);
            self.lock_fetchers().remove(p);
            if let Some(hw) = hw {
                p.set_high_watermark(hw);
            }
            p.state_changed.notify_waiters();
            self.data_arrived.notify_waiters();
            return;
        }
        let mut role = p.role();
        let same = match &*role {
            Role::Follower {
                leader,
                leader_epoch,
            } => *leader == pi.leader && *leader_epoch == pi.leader_epoch,
            Role::NoLeader => pi.leader < 0,
            Role::Leader(_) => false,
        };
        if same {
            return;
        }
        *role = if pi.leader >= 0 {
            Role::Follower {
                leader: pi.leader,
                leader_epoch: pi.leader_epoch,
            }
        } else {
            Role::NoLeader
        };
        p.leader_epoch
            .store(pi.leader_epoch as i64, Ordering::Release);
        let generation = p.generation.fetch_add(1, Ordering::AcqRel) + 1;
        drop(role);
        p.state_changed.notify_waiters();
        let mut fetchers = self.lock_fetchers();
        if pi.leader >= 0 && !self.stopped.load(Ordering::Acquire) {
            tracing::info!(topic = %p.topic, partition = p.index, leader = pi.leader, epoch = pi.leader_epoch, "became follower");
            fetchers.add(self, pi.leader, p.clone(), pi.leader_epoch, generation);
        } else {
            fetchers.remove(p);
        }
    }

    /// Kafka's periodic ISR shrink check on every partition this broker leads.
    pub fn maybe_shrink_isr(&self, now: i64) {
        let lag = self.config.cluster.replica_lag_time_max_ms;
        for p in self.all_partitions() {
            let proposal = match &mut *p.role() {
                Role::Leader(s) => s
                    .isr_to_shrink(now, lag)
                    .map(|isr| (s.leader_epoch(), s.partition_epoch(), isr)),
                _ => None,
            };
            if let Some((epoch, pepoch, isr)) = proposal {
                self.propose_isr(&p, epoch, pepoch, isr);
            }
        }
    }

    /// A follower fetched `fetch_offset` from this leader: its progress moves the high
    /// watermark and may let it back into the ISR.
    pub(crate) fn on_follower_fetch(&self, p: &Partition, replica: i32, fetch_offset: i64) {
        let leo = p.log().log_end_offset();
        let now = now_ms();
        let lag = self.config.cluster.replica_lag_time_max_ms;
        let (hw, proposal) = match &mut *p.role() {
            Role::Leader(s) => {
                let hw = s.on_follower_fetch(replica, fetch_offset, leo, now);
                let proposal = s
                    .isr_to_expand(now, lag)
                    .map(|isr| (s.leader_epoch(), s.partition_epoch(), isr));
                (hw, proposal)
            }
            _ => (None, None),
        };
        if let Some(hw) = hw {
            p.publish_high_watermark(hw);
            self.data_arrived.notify_waiters();
        }
        if let Some((epoch, pepoch, isr)) = proposal {
            self.propose_isr(p, epoch, pepoch, isr);
        }
    }

    /// Stops the replica fetchers and waits for them (before the logs are closed).
    pub async fn stop_fetchers(&self) {
        self.stopped.store(true, Ordering::Release);
        let _ = self.stopping.send(true);
        let tasks = self.lock_fetchers().take_tasks();
        for t in tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), t).await;
        }
    }

    /// Opens the logs of newly hosted partitions, updates configs, and deletes the logs of
    /// deleted topics and of partitions moved to other brokers.
    fn sync_logs(&self) -> Result<(), StartError> {
        let image = self.image();
        let node = self.config.node_id;
        // Drop partitions of deleted (or re-created) topics, and those moved off this broker by
        // a reassignment (Kafka's StopReplica with deletion).
        let removed: Vec<Arc<Partition>> = {
            let mut parts = self.partitions.write().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<(String, i32)> = parts
                .iter()
                .filter(|(_, p)| {
                    image.topic(&p.topic).is_none_or(|t| {
                        t.topic_id != p.topic_id
                            || t.partitions
                                .get(&p.index)
                                .is_some_and(|pi| !pi.replicas.contains(&node))
                    })
                })
                .map(|(k, _)| k.clone())
                .collect();
            gone.iter().filter_map(|k| parts.remove(k)).collect()
        };
        for p in removed {
            // Requests still holding it see it stop, and no fetcher appends to it any more.
            self.stop_replica(&p);
            let dir = partition_dir(&self.config.log_dir, &p.topic, p.index);
            tracing::info!(topic = %p.topic, partition = p.index, "deleting the log of a partition this broker no longer hosts");
            drop(p);
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove deleted log");
            }
        }
        let mut parts = self.partitions.write().unwrap_or_else(|e| e.into_inner());
        let now = now_ms();
        for topic in image.topics.values() {
            let config = self.log_config(&image, &topic.name);
            for p in topic.partitions.values() {
                if !p.replicas.contains(&node) {
                    continue;
                }
                let key = (topic.name.clone(), p.partition);
                match parts.get(&key) {
                    Some(existing) => {
                        let mut log = existing.log();
                        if *log.config() != config {
                            log.update_config(config.clone());
                        }
                    }
                    None => {
                        let dir = partition_dir(&self.config.log_dir, &topic.name, p.partition);
                        let log = Log::open(&dir, config.clone(), now).map_err(|source| {
                            StartError::Log {
                                partition: format!("{}-{}", topic.name, p.partition),
                                source,
                            }
                        })?;
                        // Kafka starts a replica's high watermark at its checkpointed value, not
                        // at its log end: records past it may never have reached the ISR, and
                        // this broker may be elected leader before its followers fetch again.
                        let (log_start, leo) = (log.log_start_offset(), log.log_end_offset());
                        let hw = self
                            .lock_hw_checkpoint()
                            .at_start
                            .remove(&key)
                            .map_or(log_start, |hw| hw.clamp(log_start, leo));
                        parts.insert(
                            key,
                            Arc::new(Partition {
                                topic: topic.name.clone(),
                                topic_id: topic.topic_id,
                                index: p.partition,
                                log: Mutex::new(log),
                                high_watermark: AtomicI64::new(hw),
                                // Set with the role below.
                                leader_epoch: AtomicI64::new(-1),
                                role: Mutex::new(Role::NoLeader),
                                generation: AtomicU64::new(0),
                                state_changed: Notify::new(),
                            }),
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Periodic log maintenance: retention, compaction, time-based roll and flush.
    pub fn run_maintenance(&self) {
        let now = now_ms();
        for p in self.all_partitions() {
            let mut log = p.log();
            if let Err(e) = log.run_maintenance(now) {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "log maintenance failed");
            }
        }
        self.flush_rolled_segments();
    }

    /// Fsyncs the segments that rolls sealed, without holding any log's lock meanwhile, and moves
    /// each log's recovery point past them (Kafka's flush after roll). Blocking.
    pub fn flush_rolled_segments(&self) {
        for p in self.all_partitions() {
            let pending = match p.log().pending_flush() {
                Ok(Some(pending)) => pending,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "cannot prepare the flush of rolled segments");
                    continue;
                }
            };
            let done = pending
                .run()
                .map_err(brook_storage::StorageError::from)
                .and_then(|()| p.log().complete_flush(&pending));
            if let Err(e) = done {
                tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "flushing rolled segments failed");
            }
        }
    }

    fn lock_hw_checkpoint(&self) -> MutexGuard<'_, HwCheckpoint> {
        self.hw_checkpoint.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes every hosted partition's high watermark to the log directory's
    /// `replication-offset-checkpoint` (Kafka's format), unless nothing changed since the last
    /// write. Kafka does this every `replica.high.watermark.checkpoint.interval.ms` and on
    /// shutdown; a restarted replica starts from these values. Blocking.
    pub fn checkpoint_high_watermarks(&self) {
        let offsets: PartitionOffsets = self
            .all_partitions()
            .iter()
            .map(|p| ((p.topic.clone(), p.index), p.high_watermark()))
            .collect();
        if self.lock_hw_checkpoint().written == offsets {
            return;
        }
        // Not under the lock: opening a log takes it while holding the partition map.
        let path = self.config.log_dir.join(REPLICATION_OFFSET_CHECKPOINT);
        match offset_checkpoint::write(&path, &offsets) {
            Ok(()) => self.lock_hw_checkpoint().written = offsets,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write the high watermark checkpoint")
            }
        }
    }

    /// Checkpoints the high watermarks, then flushes and closes every log (clean shutdown).
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        let _ = self.stopping.send(true);
        self.checkpoint_high_watermarks();
        let parts: Vec<Arc<Partition>> = {
            let mut map = self.partitions.write().unwrap_or_else(|e| e.into_inner());
            map.drain().map(|(_, p)| p).collect()
        };
        for p in parts {
            match Arc::try_unwrap(p) {
                Ok(p) => {
                    let log = p.log.into_inner().unwrap_or_else(|e| e.into_inner());
                    if let Err(e) = log.close() {
                        tracing::warn!(error = %e, "error closing log");
                    }
                }
                Err(p) => {
                    // A request still holds it; flush so nothing acknowledged is at risk.
                    if let Err(e) = p.log().flush() {
                        tracing::warn!(error = %e, "error flushing log");
                    }
                }
            }
        }
    }
}

/// Why a metadata change failed.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error(transparent)]
    Refused(#[from] ControllerError),
    #[error("metadata store: {0}")]
    Store(StoreError),
    #[error("{0}")]
    Start(StartError),
    /// The controller could not be reached or answered nonsense.
    #[error("{0}")]
    Unavailable(String),
}

fn parse_i64(c: &BTreeMap<String, String>, k: &str, default: i64) -> i64 {
    c.get(k)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Translates effective topic configs (Kafka names) into the storage layer's typed config.
pub fn log_config_from(c: &BTreeMap<String, String>) -> LogConfig {
    let d = LogConfig::default();
    let policy = c.get("cleanup.policy").cloned().unwrap_or_default();
    let flush_messages = parse_i64(c, "flush.messages", i64::MAX);
    LogConfig {
        segment_bytes: parse_i64(c, "segment.bytes", d.segment_bytes as i64).max(14) as u64,
        segment_ms: parse_i64(c, "segment.ms", d.segment_ms),
        retention_ms: parse_i64(c, "retention.ms", d.retention_ms),
        retention_bytes: parse_i64(c, "retention.bytes", d.retention_bytes),
        cleanup_policy_delete: policy.split(',').any(|p| p.trim() == "delete"),
        cleanup_policy_compact: policy.split(',').any(|p| p.trim() == "compact"),
        flush_interval_messages: if flush_messages <= 0 {
            1
        } else {
            flush_messages as u64
        },
        flush_interval_ms: parse_i64(c, "flush.ms", d.flush_interval_ms),
        index_interval_bytes: parse_i64(c, "index.interval.bytes", d.index_interval_bytes as i64)
            .clamp(0, u32::MAX as i64) as u32,
        message_timestamp_log_append_time: c
            .get("message.timestamp.type")
            .is_some_and(|t| t == "LogAppendTime"),
        delete_retention_ms: parse_i64(c, "delete.retention.ms", d.delete_retention_ms),
        min_compaction_lag_ms: parse_i64(c, "min.compaction.lag.ms", d.min_compaction_lag_ms),
        max_message_bytes: parse_i64(c, "max.message.bytes", d.max_message_bytes as i64).max(0)
            as usize,
    }
}

/// Reads or writes `meta.properties` in the log directory, as Kafka does: it ties the directory to
/// one node id and one cluster id.
fn meta_properties(config: &BrokerConfig) -> Result<String, StartError> {
    let path = config.log_dir.join("meta.properties");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let props = crate::config::parse_properties(&text, &path.display().to_string())
            .map_err(|e| StartError::MetaProperties(e.to_string()))?;
        let get = |k: &str| {
            props
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let node: Option<i32> = get("node.id").and_then(|v| v.parse().ok());
        if node != Some(config.node_id) {
            return Err(StartError::MetaProperties(format!(
                "{} belongs to node.id {:?}, but this broker is configured with node.id {}",
                path.display(),
                node,
                config.node_id
            )));
        }
        let cluster = get("cluster.id").ok_or_else(|| {
            StartError::MetaProperties(format!("{} has no cluster.id", path.display()))
        })?;
        if let Some(wanted) = &config.cluster_id {
            if *wanted != cluster {
                return Err(StartError::MetaProperties(format!(
                    "{} belongs to cluster {cluster}, but cluster.id is {wanted}",
                    path.display()
                )));
            }
        }
        return Ok(cluster);
    }
    let cluster = config
        .cluster_id
        .clone()
        .unwrap_or_else(|| short_uuid(Uuid::new_v4()));
    let text = format!(
        "#\n#Written by Brook\nnode.id={}\ndirectory.id={}\nversion=1\ncluster.id={cluster}\n",
        config.node_id,
        short_uuid(Uuid::new_v4())
    );
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|e| StartError::MetaProperties(format!("cannot write {}: {e}", path.display())))?;
    Ok(cluster)
}

/// Kafka's textual form of ids: URL-safe base64 of the 16 bytes, without padding.
pub fn short_uuid(id: Uuid) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = id.as_bytes();
    let mut out = String::with_capacity(22);
    let mut bits = 0u32;
    let mut nbits = 0;
    for b in bytes {
        bits = (bits << 8) | *b as u32;
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_uuid_matches_kafka_base64() {
        // Kafka prints Uuid(0x0123..., ...) as URL-safe base64 without padding: 22 characters.
        let id = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(short_uuid(id), "ASNFZ4mrze8BI0VniavN7w");
    }

    #[test]
    fn default_topic_config_translates_to_kafka_log_defaults() {
        let c: BTreeMap<String, String> = TOPIC_CONFIGS
            .iter()
            .map(|d| (d.name.to_string(), d.default.to_string()))
            .collect();
        let l = log_config_from(&c);
        assert_eq!(l.segment_bytes, 1 << 30);
        assert_eq!(l.retention_ms, 604_800_000);
        assert!(l.cleanup_policy_delete && !l.cleanup_policy_compact);
        assert_eq!(l.flush_interval_messages, i64::MAX as u64);
    }
}
