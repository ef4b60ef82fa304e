#include "sim/corruption_ledger.h"

#include <algorithm>

#include "sim/check.h"

namespace dynasim::sim {

const char* to_string(FlipSource source) {
  switch (source) {
    case FlipSource::kBitRot:
      return "bit_rot";
    case FlipSource::kInjected:
      return "injected";
  }
  return "?";
}

const char* to_string(FlipFate fate) {
  switch (fate) {
    case FlipFate::kPending:
      return "pending";
    case FlipFate::kDetected:
      return "detected";
    case FlipFate::kOverwritten:
      return "overwritten";
    case FlipFate::kDiscarded:
      return "discarded";
    case FlipFate::kAbsorbed:
      return "absorbed";
  }
  return "?";
}

std::vector<Duration> CorruptionLedger::detection_delays() const {
  std::vector<Duration> delays;
  delays.reserve(count(FlipFate::kDetected));
  for (const BitFlipRecord& record : records_) {
    if (record.fate == FlipFate::kDetected) delays.push_back(record.fate_at - record.injected_at);
  }
  return delays;
}

std::string_view CorruptionLedger::intern(std::string_view label) {
  auto found = labels_.find(label);
  if (found == labels_.end()) found = labels_.emplace(label).first;
  return *found;
}

BitFlipRecord& CorruptionLedger::add(SimTime now, uint64_t sector, uint32_t bit,
                                     FlipSource source) {
  DYN_ASSERT_MSG(records_.size() < kMaxRecords,
                 "the corruption ledger is full: the bit rot rate is far beyond any game day's");
  BitFlipRecord& record = records_.emplace_back();
  record.id = records_.size() - 1;
  record.source = source;
  record.injected_at = now;
  record.sector = sector;
  record.bit = bit;
  ++fate_counts_[static_cast<size_t>(FlipFate::kPending)];
  return record;
}

void CorruptionLedger::decide(BitFlipRecord& record, FlipFate fate, SimTime now,
                              std::string_view by) {
  DYN_ASSERT(record.fate == FlipFate::kPending && fate != FlipFate::kPending);
  --fate_counts_[static_cast<size_t>(FlipFate::kPending)];
  ++fate_counts_[static_cast<size_t>(fate)];
  record.fate = fate;
  record.fate_at = now;
  record.by = by.empty() ? std::string_view() : intern(by);
}

void CorruptionLedger::forget_if_gone(BitFlipRecord& record, SimTime now, std::string_view by) {
  if (record.on_media || record.in_cache) return;
  if (record.fate == FlipFate::kPending) decide(record, FlipFate::kOverwritten, now, by);
  auto entry = stored_.find(record.sector);
  DYN_ASSERT(entry != stored_.end());
  std::vector<uint64_t>& ids = entry->second;
  const auto at = std::find(ids.begin(), ids.end(), record.id);
  DYN_ASSERT(at != ids.end());
  ids.erase(at);
  --stored_count_;
  if (ids.empty()) stored_.erase(entry);
}

void CorruptionLedger::on_flip(SimTime now, uint64_t sector, uint32_t bit, FlipSource source,
                               bool durable, bool cached) {
  DYN_ASSERT(durable || cached);
  // The new flip toggles the bit in every copy that exists. Where an earlier flip of the same bit
  // is still stored, the toggle undoes it instead (at most one stored flip per bit and copy).
  bool media_taken = false;
  bool cache_taken = false;
  std::vector<uint64_t> undone;
  if (auto entry = stored_.find(sector); entry != stored_.end()) {
    for (uint64_t id : entry->second) {
      BitFlipRecord& earlier = records_[id];
      if (earlier.bit != bit) continue;
      if (durable && earlier.on_media) {
        earlier.on_media = false;
        media_taken = true;
      }
      if (cached && earlier.in_cache) {
        earlier.in_cache = false;
        cache_taken = true;
      }
      undone.push_back(id);
    }
  }
  for (uint64_t id : undone) forget_if_gone(records_[id], now, "bit_flip");

  BitFlipRecord& record = add(now, sector, bit, source);
  record.on_media = durable && !media_taken;
  record.in_cache = cached && !cache_taken;
  if (!record.on_media && !record.in_cache) {
    // It restored what an earlier flip changed and left nothing of its own.
    decide(record, FlipFate::kOverwritten, now, "bit_flip");
    return;
  }
  stored_[sector].push_back(record.id);
  ++stored_count_;
}

void CorruptionLedger::on_absorbed(SimTime now, uint64_t sector, uint32_t bit) {
  BitFlipRecord& record = add(now, sector, bit, FlipSource::kBitRot);
  decide(record, FlipFate::kAbsorbed, now, "");
}

void CorruptionLedger::on_cache_write(SimTime now, uint64_t sector) {
  auto entry = stored_.find(sector);
  if (entry == stored_.end()) return;
  const std::vector<uint64_t> ids = entry->second;
  for (uint64_t id : ids) {
    BitFlipRecord& record = records_[id];
    record.in_cache = false;
    forget_if_gone(record, now, "write");
  }
}

void CorruptionLedger::on_flush(SimTime now, const std::function<bool(uint64_t)>& cached) {
  for (auto it = stored_.begin(); it != stored_.end();) {
    if (!cached(it->first)) {
      ++it;
      continue;
    }
    const std::vector<uint64_t> ids = it->second;
    ++it;  // forget_if_gone may erase the entry just passed
    // The cached copy becomes the media copy: a flip is on the media now exactly if it was in the
    // cached copy.
    for (uint64_t id : ids) {
      BitFlipRecord& record = records_[id];
      record.on_media = record.in_cache;
      record.in_cache = false;
      forget_if_gone(record, now, "write");
    }
  }
}

void CorruptionLedger::on_tear(SimTime now, uint64_t sector, uint64_t split_bytes) {
  auto entry = stored_.find(sector);
  if (entry == stored_.end()) return;
  const std::vector<uint64_t> ids = entry->second;
  for (uint64_t id : ids) {
    BitFlipRecord& record = records_[id];
    const bool was_on_media = record.on_media;
    // Bytes before the split come from the cached copy, the rest stays as the media had it.
    if (record.bit / 8 < split_bytes) record.on_media = record.in_cache;
    record.in_cache = false;  // the power-off drops the cache right after the tear
    forget_if_gone(record, now, was_on_media ? "torn_write" : "power_loss");
  }
}

void CorruptionLedger::on_cache_lost(SimTime now) {
  for (auto it = stored_.begin(); it != stored_.end();) {
    const std::vector<uint64_t> ids = it->second;
    ++it;
    for (uint64_t id : ids) {
      BitFlipRecord& record = records_[id];
      if (!record.in_cache) continue;
      record.in_cache = false;
      forget_if_gone(record, now, "power_loss");
    }
  }
}

void CorruptionLedger::on_discard(SimTime now, uint64_t first_sector, uint64_t end_sector) {
  auto it = stored_.lower_bound(first_sector);
  while (it != stored_.end() && it->first < end_sector) {
    for (uint64_t id : it->second) {
      BitFlipRecord& record = records_[id];
      record.on_media = false;
      record.in_cache = false;
      if (record.fate == FlipFate::kPending) decide(record, FlipFate::kDiscarded, now, "");
      --stored_count_;
    }
    it = stored_.erase(it);
  }
}

bool CorruptionLedger::on_read(SimTime now, uint64_t sector, bool from_cache) {
  auto entry = stored_.find(sector);
  if (entry == stored_.end()) return false;
  bool returned_pending = false;
  for (uint64_t id : entry->second) {
    BitFlipRecord& record = records_[id];
    const bool returned = from_cache ? record.in_cache : record.on_media;
    if (!returned || record.fate != FlipFate::kPending) continue;
    ++record.reads_while_pending;
    if (!record.first_read_at.has_value()) record.first_read_at = now;
    returned_pending = true;
  }
  if (returned_pending) ++pending_flip_sector_reads_;
  return returned_pending;
}

void CorruptionLedger::on_report(SimTime now, uint64_t sector, bool from_cache,
                                 std::string_view by) {
  ++reported_sectors_;
  bool detected = false;
  bool known = false;
  if (auto entry = stored_.find(sector); entry != stored_.end()) {
    for (uint64_t id : entry->second) {
      BitFlipRecord& record = records_[id];
      const bool visible = from_cache ? record.in_cache : record.on_media;
      if (!visible) continue;
      if (record.fate == FlipFate::kPending) {
        decide(record, FlipFate::kDetected, now, by);
        detected = true;
      } else {
        known = true;
      }
    }
  }
  if (detected) {
    ++reports_detecting_;
  } else if (known) {
    ++reports_of_known_flips_;
  } else {
    ++reports_without_flip_;
  }
}

}  // namespace dynasim::sim
