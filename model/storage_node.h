// A storage node: one process per storage host, hosting many replicas (thousands) of different
// partitions' replication groups.
//
// P22 section 3: each replica runs Multi-Paxos with its group's other two replicas, keeps a WAL and
// a B-tree, and serves reads and writes for its partition's key range. A storage replica here is
// the composition of model/paxos (the protocol, a pure state machine), model/wal (what Paxos must
// persist before it sends) and model/btree (the state machine the committed log is applied to,
// checkpointed so that the WAL and the in-memory log can be truncated).
//
// A replica's life:
// - Boot: read the B-tree's checkpoint, then the WAL from the position the checkpoint names,
//   rebuild Paxos's RecoveredState (hard state, log entries, applied index) and re-apply the
//   committed entries past the checkpoint. While recovering it answers kRecovering.
// - Each Paxos Ready: WAL-append the hard state and entries, flush (fsync), and only then send the
//   messages, then apply the committed entries in order to the B-tree and answer the clients
//   whose writes they carried (at the leader).
// - Periodic checkpoints: B-tree checkpoint with (applied index, WAL replay position, hard state),
//   then WAL release and Paxos compaction behind it (keeping a tail for lagging peers). A peer past
//   the compacted log gets a snapshot: the leader streams its items by scan, the peer clears its
//   tree, installs them, checkpoints and calls PaxosReplica::install_snapshot.
// - A page or record that fails its checksum makes the replica unhealthy: it answers kUnhealthy
//   for the range and stops voting... (see storage_node.cc for exactly what it does).
//
// Cost model: the node has `cpu_cores` cores; every message handled costs CPU time from
// StorageCostModel and waits for a free core (a FIFO queue, bounded), so load shows up as latency.
// A Query or Scan page also takes a core for every item it read (per_scanned_item, per_kilobyte)
// once the page is done (docs/api.md).
// Disk time is the simulated disk's own service model.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "model/admission.h"
#include "model/archive.h"
#include "model/btree.h"
#include "model/memds.h"
#include "model/capacity_controller.h"
#include "model/paxos.h"
#include "model/split_executor.h"
#include "model/storage_protocol.h"
#include "model/wal.h"
#include "sim/env.h"

namespace dynasim::model {

struct ReplicaAssignment {
  GroupId group;
  uint32_t replica = 0;  // 1..3: this replica's number in the group (Paxos member number)
  std::array<sim::Address, kReplicasPerGroup> members;  // members[r - 1] is replica r
};

// Healing (P22 sections 3 and 5.1; docs/healing.md): a group's leader that stops hearing from a
// voter asks auto-admin (model/auto_admin.h) where a new replica should go, adds a log replica
// there through the log, promotes it once caught up and removes the lost voter; then it rebuilds
// a full replica the same way and retires the log replica. Off without an auto-admin.
struct HealingOptions {
  bool enabled = false;
  sim::Address auto_admin;
  // A voter the leader has not heard from for this long is lost. Our assumption: a few
  // heartbeat intervals past the election timeout, so one lost heartbeat is not a failure.
  sim::Duration replica_lost_after = sim::seconds(2);
  sim::Duration check_interval = sim::milliseconds(200);
  // Off: a lost replica is replaced by a full replica directly (what healing took before log
  // replicas; P22 section 5.1 says that "can take several minutes").
  bool log_replicas = true;
  // A log replica is seeded from the leader's log this many committed entries back.
  uint64_t log_replica_seed_entries = 64;
  // The pace of a full replica's rebuild (the leader's snapshot stream), so it does not starve
  // foreground traffic. Our assumption; the network and the disks pace it too.
  double rebuild_bytes_per_second = 50e6;
  // How long the full replica that replaces a log replica waits for a node in an AZ where the
  // group has no other member, before it takes a node in any AZ. The log replica holds the
  // quorum meanwhile; a full replica placed in a shared AZ stays there, and the group then loses
  // its majority with that AZ. Our assumption: longer than most AZ outages in a game day, short
  // enough that a group does not keep two full copies for long if an AZ does not come back.
  // Zero: the rebuild takes a node in any AZ at once (what healing did first).
  sim::Duration rebuild_waits_for_az = sim::minutes(10);
  sim::Duration node_heartbeat_interval = sim::seconds(1);
  // Planted bug for the healing checker: retire the log replica as soon as a full replica joins
  // as a learner, before it has caught up. Never set outside tests.
  bool plant_remove_log_replica_early = false;
};

// CPU time per unit of work. Our assumptions, in the range of a key-value server on one core:
// tens of microseconds per request, a few per protocol message.
struct StorageCostModel {
  uint32_t cpu_cores = 16;
  sim::Duration per_message = sim::microseconds(3);  // any message: decode, dispatch
  sim::Duration per_read = sim::microseconds(15);    // a get, plus per_kilobyte of item
  sim::Duration per_write = sim::microseconds(25);   // a put or delete applied
  sim::Duration per_kilobyte = sim::microseconds(1);
  // A Query or Scan: each item it reads from the tree (decode, key and filter checks), on top of
  // per_kilobyte of what it reads. Taken on a core once the page is read. Our assumption.
  sim::Duration per_scanned_item = sim::microseconds(2);
  // Verifying one page read by scrub or a digest (checksumming 4 KB). It takes a core like a
  // message does, so an aggressive scrub delays requests. Our assumption.
  sim::Duration per_verified_page = sim::microseconds(4);
  uint32_t max_queued_messages = 100'000;  // beyond: requests answered kBusy, others dropped
};

// WAL archival (P22 sections 5.1, 5.2, 5.5; docs/archival.md): every replica runs an archiver
// that uploads its group's committed log in fixed segments to the object store after the
// archiver's checks; the local WAL (and the in-memory log) are truncated only behind what the
// store acknowledged; the leader uploads a partition snapshot every so many archived entries.
struct ArchivalOptions {
  bool enabled = false;
  TableId table{0};
  uint64_t entries_per_segment = 1024;
  uint64_t snapshot_every_entries = 16 * 1024;
  // The groups' hash ranges, by group id, for the archiver's ownership check (the placement's).
  std::vector<std::pair<uint64_t, uint64_t>> group_hash_ranges;
  // Planted bug for the archive audit: the node does not restart its archiver after a snapshot
  // install, and the archiver's sequence check is skipped, so a segment with a hole can be
  // uploaded. Never set outside tests.
  bool plant_accept_sequence_gap = false;
  // Planted bug for scrub's reference check: ArchiverOptions::plant_alter_entry_every.
  uint64_t plant_alter_entry_every = 0;
};

// Scrub against bit rot (P22 section 5.3: data at rest is verified continuously, and a damaged
// copy is repaired from a good one; docs/scrub.md). Each full replica re-reads its B-tree's
// durable pages at a pace; a replica whose tree lists a damaged key range (found by scrub, by a
// read or by an apply) fetches the range's items from a healthy peer (model/scrub_protocol.h) and
// repairs it. Off by default.
struct ScrubOptions {
  bool enabled = false;
  // Pages each full replica re-reads per second. Our assumption: the paper gives no pace. Every
  // page read holds the tree's FIFO for one disk read, so this is the cost knob; the
  // "scrub.pages_read" metric counts what it spends, "scrub.passes" the passes completed.
  double pages_per_second = 200;
  // Pages per scrub step: the pace is kept by running a step every
  // pages_per_step / pages_per_second seconds, which is also the period of repair bookkeeping.
  uint32_t pages_per_step = 8;
  // A repair request not answered within this is sent again (to the next peer).
  sim::Duration repair_timeout = sim::seconds(1);
  // Attempts per repair round (requests, refused or stale answers, failed installs); after them
  // the replica counts a repair failure and waits repair_backoff before a new round.
  uint32_t max_repair_attempts = 12;
  sim::Duration repair_backoff = sim::seconds(10);
  // Planted bug for the game day's scrub check: the replica with this number (1..) in every group
  // never runs its scrubber (repairs still run). 0: none. Never set outside tests.
  uint32_t plant_skip_replica = 0;

  // Replica comparison (model/scrub_protocol.h): every compare_interval each group's leader
  // proposes a digest marker over the whole key space; 0 turns comparison off. A range where a
  // replica differs from a majority is cut into compare_fanout pieces per round until it holds at
  // most compare_leaf_items items (at the leader) or compare_max_depth rounds were taken, then
  // the differing replica repairs it. Reports not in within compare_timeout end the round with
  // what came. Our assumptions: P22 gives no period or fanout.
  sim::Duration compare_interval = sim::seconds(60);
  uint32_t compare_fanout = 8;
  uint64_t compare_leaf_items = 32;
  uint32_t compare_max_depth = 8;
  sim::Duration compare_timeout = sim::seconds(10);
  // Planted bug for the convergence check: a leader ignores the digest reports of the replica
  // with this number, so a divergence there is never found. 0: none. Never set outside tests.
  uint32_t plant_compare_ignore_replica = 0;
};

// Planted software bug for the replica comparison (never set outside tests): the replica with
// number `replica` in every group applies every `every`-th put it applies with an extra attribute
// the command does not carry (a silent state-machine divergence with valid checksums, which page
// verification cannot see), while its local clock is before `until`.
struct DivergentApplyPlant {
  uint32_t replica = 0;  // 0: off
  uint64_t every = 0;
  sim::SimTime until = sim::SimTime::max();
};

// Storage-side admission control (P22 section 4.1.1; model/admission.h, docs/admission.md "In a
// game day"). The node keeps one NodeAdmission, built when the process starts; its incarnation is
// the local clock reading at boot in nanoseconds, which grows across restarts (a restart takes far
// longer than any step the clock makes). Every hosted full replica's partition gets `allocation`.
// - Reads (gets, queries, scans; strong at the leader, eventual at any replica) are admitted once
//   the read knows what it consumed (the item or page size, as DynamoDB charges after the read):
//   a refused read answers kThrottled and hands nothing back.
// - Writes are admitted at the leader before proposing, at write_capacity of the size the request
//   carries (a put's new item; a delete's or an update's key: the old item is known only at
//   apply), with the group's other full voters as the peers of the burst check.
// - Followers pay the node-level write bucket for each write they apply (on_replicated_write).
// - Every report_interval the node sends its NodeCapacityReport (type 120) to every node that
//   hosts a replica of a group it hosts.
// Off by default: nothing is built, sent or charged.
struct AdmissionWiring {
  bool enabled = false;
  AdmissionOptions admission;
  // Each partition's share of the table's provisioned capacity (allocate_to_partitions); the same
  // for every group.
  PartitionAllocation allocation;
  // Capacity modes (model/capacity_controller.h): with a controller, `allocation` is the static
  // allocation the node enforces from boot until the controller's first update. Every
  // capacity_agent.report_interval the node sends its consumption (type 121); it applies each
  // newer AllocationUpdate (122) to every hosted partition and acks it (123); at boot it asks for
  // the current one (124) until an update arrives. With the controller down it keeps enforcing the
  // last allocation it applied. Admitted milli units also feed the counters
  // "capacity.consumed_read_milli_units" and "capacity.consumed_write_milli_units".
  std::optional<sim::Address> capacity_controller;
  CapacityAgent::Options capacity_agent;  // `controller` is filled from capacity_controller
  AllocationObserver* allocation_observer = nullptr;  // may be null; for checkers
};

// Routing metadata (P22 section 6.6: storage nodes are the authoritative source of partition
// membership; model/memds.h). A group's leader publishes its partition's entry (range, full voters
// of its committed configuration, itself as leader) to every MemDS node through a MemdsPublisher
// when it becomes leader and whenever its committed configuration changes. The entry's version is
// the leader's ballot (round in bits 40-63, replica number in bits 32-39) above the
// configuration's epoch (bits 0-31): a later leader always publishes a higher version, and so does
// a leader that commits a newer configuration. Off (nothing sent, nothing drawn) while
// memds_nodes is empty.
struct MemdsPublishing {
  std::vector<sim::Address> memds_nodes;
  TableId table{0};
  // The groups' hash ranges, by group id (the placement's).
  std::vector<std::pair<uint64_t, uint64_t>> group_hash_ranges;
  MemdsPublisherOptions publisher;
};

struct StorageNodeOptions {
  std::vector<ReplicaAssignment> replicas;
  // Template for every replica's Paxos; self and members are filled per replica.
  PaxosOptions paxos;
  // Each replica gets a slot of the disk: [slot * slot_bytes, (slot + 1) * slot_bytes), the WAL
  // region first, the B-tree page region after it. Slot = the replica's index in `replicas`.
  uint64_t wal_region_sectors = 16'384;     // 64 MB
  uint64_t btree_region_sectors = 245'760;  // 960 MB
  uint64_t btree_cache_pages = 256;
  uint32_t disk_index = 0;
  // Checkpoint when this many entries were applied since the last one, or this much time passed
  // with at least one applied entry.
  uint64_t checkpoint_every_entries = 2'000;
  sim::Duration checkpoint_interval = sim::seconds(30);
  // Entries kept in memory (and in the WAL) behind a checkpoint for peers that lag.
  uint64_t log_tail_entries = 10'000;
  StorageCostModel cost;
  StorageObserver* observer = nullptr;  // may be null
  HealingOptions healing;
  ArchivalOptions archival;
  ScrubOptions scrub;
  AdmissionWiring admission;
  // Disk slots for replicas (each wal_region_sectors + btree_region_sectors); the replica
  // directory (which slot holds which group's replica) sits right after them. Replicas created
  // by healing take slots not used since the node started. 0: as many as the disk holds.
  uint32_t max_replica_slots = 0;

  // Planted bug for the durability checker: send Paxos messages (acceptances, acks) before the
  // WAL's fsync completed. Never set outside tests.
  bool plant_send_before_fsync = false;
  DivergentApplyPlant plant_divergent_apply;
  // Planted bug for the concurrent-counter test (tests/model/storage_api_test.cc): the leader
  // evaluates an UpdateItem against its tree when the request arrives and proposes the result as
  // a plain put, instead of logging the update for every replica to evaluate at apply, so
  // concurrent ADDs lose increments. Never set outside tests.
  bool plant_evaluate_update_at_leader_before_log = false;
  // Planted bug for the game day's counter check (tests/gameday/api_mix_run_test.cc): every
  // replica applies an UpdateItem as if it changed nothing, and the leader still answers kOk, so
  // every acknowledged ADD is lost (alike on all replicas: they still converge). Never set outside
  // tests.
  bool plant_acknowledge_update_without_apply = false;
  // Planted bug for the Query paging test: Limit and the 1 MB page count only the items that
  // pass the filter, so a page reads past 1 MB. Never set outside tests.
  bool plant_page_limit_after_filter = false;
  MemdsPublishing memds;
  // Splits (model/split_executor.h, docs/partitions.md, "Splitting a running partition"): each
  // leader samples its partition's traffic and asks SplitPolicy every policy_period; a split
  // copies the high half into a child group on the same nodes and cuts over through the log.
  // Off by default. Needs memds (the children's routing) and no healing, archival or restarts
  // (a replica's range and split state are not yet kept across a restart).
  SplitExecutorOptions splits;
};

class StorageNode final : public sim::Process {
 public:
  explicit StorageNode(StorageNodeOptions options);
  ~StorageNode() override;

  void on_start(sim::Env& env) override;
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override;
  void on_timer(sim::Env& env, uint64_t cookie) override;

  // For checkers and tests, never for model code: the state of each hosted replica, in the order
  // of StorageNodeOptions::replicas.
  std::vector<ReplicaSnapshot> inspect() const;
  size_t replica_count() const;
  // For checkers: what a sector of this node's disk holds now (docs/scrub.md).
  enum class SectorUse : uint8_t {
    kBTreeLive,  // a page a hosted replica's B-tree still uses: scrub must find rot here
    kBTreeFree,  // a free page slot of a hosted replica's B-tree region
    kWal,        // a hosted replica's WAL region (the WAL verifies records, scrub does not)
    kOther,      // the replica directory, or a slot no hosted replica uses
  };
  SectorUse sector_use(uint64_t sector) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dynasim::model
