#include "model/split_executor.h"

#include "model/codec.h"
#include "sim/check.h"

namespace dynasim::model {

std::vector<uint8_t> SplitMarker::encode() const {
  std::vector<uint8_t> out;
  codec::put_u32(out, kSplitMarkerMagic);
  codec::put_u8(out, static_cast<uint8_t>(kind));
  codec::put_u32(out, parent.value);
  codec::put_u32(out, child.value);
  codec::put_u64(out, parent_begin);
  codec::put_u64(out, parent_end);
  codec::put_u64(out, split_hash);
  codec::put_u32(out, child_stride);
  codec::put_u8(out, static_cast<uint8_t>(reason));
  codec::put_u64(out, begin_index);
  codec::put_u64(out, static_cast<uint64_t>(decided_local_ns));
  codec::put_u32(out, child_leader);
  return out;
}

bool SplitMarker::is_marker(const std::vector<uint8_t>& bytes) {
  if (bytes.size() < 4) return false;
  codec::Reader in{bytes};
  return in.u32() == kSplitMarkerMagic;
}

bool SplitMarker::decode(const std::vector<uint8_t>& bytes, SplitMarker* out) {
  codec::Reader in{bytes};
  if (in.u32() != kSplitMarkerMagic || !in.ok) return false;
  SplitMarker marker;
  const uint8_t kind = in.u8();
  if (kind != 1 && kind != 2) return false;
  marker.kind = static_cast<Kind>(kind);
  marker.parent = GroupId(in.u32());
  marker.child = GroupId(in.u32());
  marker.parent_begin = in.u64();
  marker.parent_end = in.u64();
  marker.split_hash = in.u64();
  marker.child_stride = in.u32();
  const uint8_t reason = in.u8();
  if (reason > static_cast<uint8_t>(SplitVerdict::kNoSplitNoBenefit)) return false;
  marker.reason = static_cast<SplitVerdict>(reason);
  marker.begin_index = in.u64();
  marker.decided_local_ns = static_cast<int64_t>(in.u64());
  marker.child_leader = in.u32();
  if (!in.ok || in.at != bytes.size()) return false;
  if (!(marker.parent_begin < marker.split_hash && marker.split_hash <= marker.parent_end)) {
    return false;
  }
  *out = marker;
  return true;
}

SplitExecution::SplitExecution(SplitMarker begin, LogIndex begin_index, bool plant)
    : marker_(begin), begin_index_(begin_index), plant_(plant) {
  DYN_ASSERT(marker_.kind == SplitMarker::Kind::kBegin);
}

void SplitExecution::on_bulk_copy_done() {
  bulk_done_ = true;
  if (phase_ == Phase::kCopying) phase_ = Phase::kCopied;
}

void SplitExecution::on_copy_reported(uint32_t replica, uint64_t begin_index) {
  if (begin_index != begin_index_.value) return;
  reported_.insert(replica);
}

bool SplitExecution::commit_due(const Configuration& configuration) const {
  if (committed()) return false;
  if (proposed_in_term_ && *proposed_in_term_ == term_) return false;
  if (plant_) return true;
  return configuration.has_quorum(std::vector<uint32_t>(reported_.begin(), reported_.end()));
}

void SplitExecution::on_term(uint64_t term_id) {
  if (term_id == term_) return;
  term_ = term_id;
  proposed_in_term_.reset();
}

void SplitExecution::on_commit_applied(LogIndex index) {
  DYN_ASSERT(!committed());
  DYN_ASSERT(begin_index_ < index);
  commit_index_ = index;
  phase_ = Phase::kCommitted;
}

bool SplitExecution::child_may_start(size_t marked_keys_pending) const {
  if (phase_ != Phase::kCommitted) return false;
  if (plant_) return true;
  return bulk_done_ && marked_keys_pending == 0;
}

void SplitExecution::on_child_started() {
  DYN_ASSERT(phase_ == Phase::kCommitted);
  phase_ = Phase::kChildStarted;
}

const char* to_string(SplitExecution::Phase phase) {
  switch (phase) {
    case SplitExecution::Phase::kCopying:
      return "copying";
    case SplitExecution::Phase::kCopied:
      return "copied";
    case SplitExecution::Phase::kCommitted:
      return "committed";
    case SplitExecution::Phase::kChildStarted:
      return "child_started";
  }
  return "?";
}

uint64_t split_entry_version(uint32_t generation, uint64_t ballot_epoch_version) {
  if (generation == 0) return ballot_epoch_version;
  DYN_ASSERT(generation < 256);
  DYN_ASSERT(ballot_epoch_version < (uint64_t{1} << 56));
  return uint64_t{generation} << 56 | ballot_epoch_version;
}

}  // namespace dynasim::model
