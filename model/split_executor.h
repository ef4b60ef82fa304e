// The split executor: what a partition's replicas do to split it in place (docs/partitions.md,
// "Splitting a running partition").
//
// P22 section 4.4: a partition splits for size and for consumption, at a point taken from the key
// distribution it observed (model/split_policy.h decides), and "split duration: usually complete
// in the order of minutes". P22 section 3: every change to a partition's state goes through its
// replication group's Multi-Paxos log, so every replica acts at the same log index.
//
// The protocol, for parent group P (range [b, e]) splitting at hash h into the low half [b, h-1]
// (kept by P) and the high half [h, e] (a new group C on the same three nodes):
// 1. P's leader asks SplitPolicy every period, with a KeyTrafficSampler fed by what it admits
//    (reads and writes, consumed milli units, at the key's partition hash). On a split verdict it
//    proposes a begin marker (SplitMarker, kind kBegin) through P's log.
// 2. Each replica of P, at the begin marker's index, creates C's replica in a free disk slot (not
//    yet serving, not voting) and copies P's items in [h, e] into C's tree at a paced rate
//    (SplitExecutorOptions::copy_bytes_per_second). Entries P applies meanwhile for [h, e] mark
//    their keys, which the copy brings over again from P's tree, so the copy converges to P's
//    high half. When its bulk copy is done a replica reports it to P's leader (type 165, sent
//    again every period until the commit marker is applied).
// 3. Once a quorum of P's voters reported, the leader proposes the commit marker (kCommit). At its
//    index every replica shrinks P to [b, h-1]: later entries for [h, e] are not applied
//    (answered kNoSuchGroup, so routers re-resolve), reads for [h, e] are refused. A replica
//    whose copy holds every key marked up to the commit index (then exactly P's high half at that
//    index) starts C: the first checkpoint of C's tree at log index 0 with P's configuration, then
//    C's own Paxos, whose leader is elected (and takes its lease) before it serves.
// 4. C's leader publishes C's MemDS entry and P's leader P's shrunk entry, both at a version
//    whose top byte is the split generation, above every entry of the range before the split.
//
// Group ids stay unique without a coordinator: a group with stride s hands its child id g + s and
// both then have stride 2s (the initial groups 0..n-1 have stride n). The ids of the groups with
// a given stride are exactly the residues mod that stride that no other group holds.
//
// This file holds the pure parts: the marker's encoding, the copy-done message, and the per-replica
// state machine (SplitExecution) that says when the leader may commit and when a replica may start
// the child. model/storage_node.cc drives them.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "model/paxos.h"
#include "model/split_policy.h"
#include "model/storage_protocol.h"
#include "sim/env.h"
#include "sim/time.h"

namespace dynasim::model {

// Message types of the splits area (160-169; 160-164 are auto-admin's placement,
// model/auto_admin.h).
enum class SplitMessageType : uint32_t {
  kCopyDone = 165,  // SplitCopyDoneBody: a replica of the parent to the parent's leader
};

struct SplitExecutorOptions {
  bool enabled = false;
  SplitPolicyOptions policy;
  KeyTrafficSamplerOptions sampler;
  // How often each leader asks the policy, and how often a replica sends its copy-done report
  // again. Our assumption: the sampler's period (10 s), so each decision sees one more period.
  sim::Duration policy_period = sim::seconds(10);
  // The pace of the copy into the child. Our assumption: 16 MiB/s copies a 9 GB partition (a
  // split for size) in about 10 minutes, P22 section 4.4's "order of minutes", and leaves the
  // disk and the cores to foreground traffic.
  uint64_t copy_bytes_per_second = 16ull << 20;
  // Items per copy step (one tree scan call). Our assumption, as the snapshot chunks.
  uint32_t copy_chunk_items = 64;
  // The initial groups' stride: their count (ids 0..stride-1).
  uint32_t first_group_stride = 1;
  // The leader that commits a split names itself the child's first leader, which then leads
  // from its first start (SplitMarker::child_leader). Off: the child elects a leader like a
  // group that lost its leader, after a follower timeout, a leader check and a full lease, and
  // its range goes unserved meanwhile (kept to measure that gap).
  bool first_leader_at_once = true;
  // Planted bug for SplitRunTest.PlantedEarlyChildIsCaught: the leader proposes the commit right
  // after the begin marker, without waiting for copies, and each replica starts the child at the
  // commit with whatever its copy holds then. Never set outside tests.
  bool plant_child_serves_before_copy = false;
};

// The two markers a split puts in the parent's log.
inline constexpr uint32_t kSplitMarkerMagic = 0x54494C53;  // "SLIT"

struct SplitMarker {
  enum class Kind : uint8_t { kBegin = 1, kCommit = 2 };
  Kind kind = Kind::kBegin;
  GroupId parent;
  GroupId child;
  uint64_t parent_begin = 0;  // the parent's range when the split began
  uint64_t parent_end = 0;
  uint64_t split_hash = 0;    // the child takes [split_hash, parent_end]
  uint32_t child_stride = 0;  // both groups' stride after the split
  SplitVerdict reason = SplitVerdict::kSplitForConsumption;
  uint64_t begin_index = 0;      // kCommit: the begin marker's log index
  int64_t decided_local_ns = 0;  // the leader's clock when it decided (reports only)
  // kCommit: the replica number of the leader that proposed it. The child group is created with
  // every replica having promised Ballot{1, child_leader}, and that replica leads it from its
  // first start without an election (PaxosReplica::lead_first_ballot). 0: none (kBegin).
  uint32_t child_leader = 0;

  std::vector<uint8_t> encode() const;
  static bool is_marker(const std::vector<uint8_t>& bytes);
  // False for bytes that are not exactly one marker.
  static bool decode(const std::vector<uint8_t>& bytes, SplitMarker* out);
};

// kCopyDone: replica `replica` of `parent` finished the bulk copy of the split begun at
// `begin_index`.
struct SplitCopyDoneBody final : sim::MessageBody {
  GroupId parent;
  uint32_t replica = 0;
  uint64_t begin_index = 0;
};

// One replica's view of one split of its group, from the begin marker's apply to the child's
// start. The leader's part (copy reports, the commit proposal) is kept by every replica; only
// the leader acts on it.
class SplitExecution {
 public:
  enum class Phase : uint8_t {
    kCopying,       // begin applied: bulk copy under way
    kCopied,        // bulk copy done, commit not yet applied
    kCommitted,     // commit applied, copy still catching up
    kChildStarted,  // the child's replica was started (its Paxos runs)
  };

  SplitExecution(SplitMarker begin, LogIndex begin_index, bool plant);

  const SplitMarker& marker() const { return marker_; }
  LogIndex begin_index() const { return begin_index_; }
  Phase phase() const { return phase_; }
  bool committed() const { return phase_ == Phase::kCommitted || phase_ == Phase::kChildStarted; }

  // The replica's bulk copy reached the end of the parent's tree.
  void on_bulk_copy_done();
  bool bulk_copy_done() const { return bulk_done_; }
  // Whether the replica should (re)send its copy-done report: bulk copy done, commit not applied.
  bool report_due() const { return bulk_done_ && !committed(); }

  // Leader side: a copy-done report (the leader's own included). Reports for another split
  // are ignored.
  void on_copy_reported(uint32_t replica, uint64_t begin_index);
  // Whether the leader should propose the commit now: a quorum of `configuration`'s voters
  // reported (planted: at once), and it did not propose it in this term yet.
  bool commit_due(const Configuration& configuration) const;
  void on_commit_proposed(uint64_t term_id) { proposed_in_term_ = term_id; }
  // A new leader term forgets the proposal (the marker may have been lost with the old term).
  void on_term(uint64_t term_id);
  const std::set<uint32_t>& reported() const { return reported_; }

  // The commit marker applied at `index`.
  void on_commit_applied(LogIndex index);
  LogIndex commit_index() const { return commit_index_; }
  // Whether the child may start: commit applied and the copy holds every key marked before it
  // (`marked_keys_pending` is the count not yet copied again). Planted: at the commit.
  bool child_may_start(size_t marked_keys_pending) const;
  void on_child_started();
  // Whether the copy must go on: it stops once the child started.
  bool copying() const { return phase_ != Phase::kChildStarted && !(plant_ && committed()); }

 private:
  SplitMarker marker_;
  LogIndex begin_index_;
  bool plant_ = false;
  Phase phase_ = Phase::kCopying;
  bool bulk_done_ = false;
  std::set<uint32_t> reported_;
  std::optional<uint64_t> proposed_in_term_;
  uint64_t term_ = 0;
  LogIndex commit_index_;
};

const char* to_string(SplitExecution::Phase phase);

// The MemDS entry version of a group of split generation `generation` (0: never split): the
// generation in the top byte, above model/storage_node.cc's ballot-and-epoch version. Generation
// 0 gives the version unchanged.
uint64_t split_entry_version(uint32_t generation, uint64_t ballot_epoch_version);

}  // namespace dynasim::model
