// The ground truth about every bit flip one simulated disk suffered, and what became of it.
//
// P22 section 5.3 has DynamoDB verify its data at rest continuously, so that silent corruption is
// found before it is served or spreads. A game day must then be able to say "every injected
// corruption was detected, unless it was overwritten first", with how long detection took. The
// disk knows where it flipped bits; the model only knows which pages failed verification. The
// ledger joins the two: sim::Disk records every flip here, tracks where the flipped bit still
// lives (media image, write-cache copy), and model code reports the sectors whose pages failed
// verification (Disk::report_verification_failure).
//
// A flip's fate is decided once:
// - kPending: the flipped bit is still stored and no report has named its sector yet.
// - kDetected: a verification failure was reported for its sector while the copy a read of the
//   sector returns (the cached one if any, else the media's) held the flipped bit. The first
//   report wins; `by` is the reporter's label ("read", "scrub", ...).
// - kOverwritten: every stored copy of the flipped bit was replaced before any report. `by` says
//   what replaced the last copy: "write" (a later write of the sector replaced a copy that existed
//   only in the write cache, or a flush put newer cached bytes over the media copy), "torn_write"
//   (a power-off tore a newer write into the sector and the new part covered the bit),
//   "power_loss" (the flip existed only in the write cache, which the power-off lost) or
//   "bit_flip" (a second flip of the same bit restored it).
// - kDiscarded: a TRIM dropped the sector before any report.
// - kAbsorbed: bit rot hit a sector that held no data. The disk has always treated this as an
//   unmapped sector: nothing changes, the flip is not counted in Disk::Stats::bit_flips and not
//   reported to the DiskObserver (an SSD reads an unmapped sector as zeros without touching
//   flash). The ledger still records it, decided at birth. Disk::inject_bit_flip on such a sector
//   instead makes it a durable sector of zeros with one bit set, so an injected flip is never
//   absorbed.
//
// A detected flip keeps being tracked (where it is, whether it is still stored) but its fate
// stays kDetected: a repair that later rewrites the page elsewhere does not undo the detection.
//
// Inspection only: checkers and tests read the ledger; model code never does (it only reports).
// The ledger is pure bookkeeping: it draws no random numbers, schedules no events and folds
// nothing into the trace fingerprint, so a run's trace_hash does not depend on it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "sim/time.h"

namespace dynasim::sim {

enum class FlipSource : uint8_t {
  kBitRot,    // the disk's bit rot process
  kInjected,  // Disk::inject_bit_flip
};

enum class FlipFate : uint8_t { kPending, kDetected, kOverwritten, kDiscarded, kAbsorbed };
constexpr size_t kFlipFateCount = 5;

const char* to_string(FlipSource source);
const char* to_string(FlipFate fate);

struct BitFlipRecord {
  uint64_t id = 0;  // its index in CorruptionLedger::records(), in injection order
  FlipSource source = FlipSource::kBitRot;
  SimTime injected_at;  // true simulated time
  uint64_t sector = 0;
  uint32_t bit = 0;  // within the sector
  FlipFate fate = FlipFate::kPending;
  SimTime fate_at;      // when the fate was decided (meaningless while kPending)
  std::string_view by;  // kDetected and kOverwritten: see above; empty otherwise
  // Where the flipped bit is stored now. Both false once it is gone (and always for kAbsorbed).
  bool on_media = false;
  bool in_cache = false;
  // Sector reads that returned the flipped bit while it was still pending: corrupt bytes that
  // left the disk before anyone reported them. The model's verification decides whether they
  // were served; a read that the model rejects is reported at once, so for such a read
  // first_read_at equals fate_at.
  uint64_t reads_while_pending = 0;
  std::optional<SimTime> first_read_at;
};

class CorruptionLedger {
 public:
  // Bound on the records one disk keeps (CONVENTIONS.md rule 15). A run that reaches it injects
  // bit rot at a rate no game day needs (millions of flips on one disk); it stops with an
  // assertion rather than grow without limit.
  static constexpr uint64_t kMaxRecords = uint64_t{1} << 22;

  const std::vector<BitFlipRecord>& records() const { return records_; }
  uint64_t count(FlipFate fate) const { return fate_counts_[static_cast<size_t>(fate)]; }
  // fate_at - injected_at of every detected flip, in id order.
  std::vector<Duration> detection_delays() const;
  // Flips whose bit is still stored somewhere (pending or detected).
  uint64_t stored_flips() const { return stored_count_; }

  // Sector reads that returned at least one pending flip's bit (each such read counts once per
  // sector, however many flips the sector holds).
  uint64_t pending_flip_sector_reads() const { return pending_flip_sector_reads_; }

  // Reports, one count per sector named:
  uint64_t reported_sectors() const { return reported_sectors_; }
  // ... that detected at least one pending flip;
  uint64_t reports_detecting() const { return reports_detecting_; }
  // ... whose visible flips had all been detected before (a repeated report);
  uint64_t reports_of_known_flips() const { return reports_of_known_flips_; }
  // ... where a read returns no flipped bit at all: the page failed for another reason (a torn
  // or misdirected write, a stale image) or the report names the wrong sector. Not an error.
  uint64_t reports_without_flip() const { return reports_without_flip_; }

 private:
  friend class Disk;

  // The hooks sim::Disk calls. `durable` and `cached` say which copies of the sector exist.
  void on_flip(SimTime now, uint64_t sector, uint32_t bit, FlipSource source, bool durable,
               bool cached);
  void on_absorbed(SimTime now, uint64_t sector, uint32_t bit);
  // A write replaced the sector's cached copy (or created it).
  void on_cache_write(SimTime now, uint64_t sector);
  // A flush moves every cached copy (of each sector for which `cached` is true) to the media.
  void on_flush(SimTime now, const std::function<bool(uint64_t)>& cached);
  // A power-off tore the sector: the media now holds the cached copy's first `split_bytes` bytes
  // and its old bytes after them; the cached copy is about to be lost.
  void on_tear(SimTime now, uint64_t sector, uint64_t split_bytes);
  // A power-off lost every cached copy.
  void on_cache_lost(SimTime now);
  void on_discard(SimTime now, uint64_t first_sector, uint64_t end_sector);
  // A read returned the sector from the cache or from the media. True if it returned a pending
  // flip's bit.
  bool on_read(SimTime now, uint64_t sector, bool from_cache);
  void on_report(SimTime now, uint64_t sector, bool from_cache, std::string_view by);

  bool any_stored() const { return !stored_.empty(); }

  BitFlipRecord& add(SimTime now, uint64_t sector, uint32_t bit, FlipSource source);
  void decide(BitFlipRecord& record, FlipFate fate, SimTime now, std::string_view by);
  // Drops the record from the index of stored flips if no copy holds it any more, deciding
  // kOverwritten (with `by`) if it was pending.
  void forget_if_gone(BitFlipRecord& record, SimTime now, std::string_view by);
  std::string_view intern(std::string_view label);

  std::vector<BitFlipRecord> records_;
  // Sector -> ids of flips whose bit is still stored there, oldest first. Ordered: the disk
  // iterates it, and nothing about a run may depend on hashing.
  std::map<uint64_t, std::vector<uint64_t>> stored_;
  uint64_t stored_count_ = 0;
  // Labels are kept once each; records point into this set (its elements never move).
  std::set<std::string, std::less<>> labels_;
  std::array<uint64_t, kFlipFateCount> fate_counts_{};
  uint64_t pending_flip_sector_reads_ = 0;
  uint64_t reported_sectors_ = 0;
  uint64_t reports_detecting_ = 0;
  uint64_t reports_of_known_flips_ = 0;
  uint64_t reports_without_flip_ = 0;
};

}  // namespace dynasim::sim
