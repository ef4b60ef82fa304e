// The write-ahead log of a storage replica, on its host's simulated disk.
//
// P22 section 3: a replica's WAL holds the log records of its partition; a write is acknowledged
// once a quorum has persisted its record. This log makes "persisted" exact: append() buffers a
// record, flush() writes every buffered record and then fsyncs, and only when the fsync has
// completed are the records durable and the flush's callback run (group commit). Nothing is
// acknowledged before fsync.
//
// On-disk layout: a circular region of sectors. Records (sequence number, length, payload,
// checksum) form a byte stream across sectors. Every sector starts with a header naming its
// absolute log position (laps included) and a checksum over the whole sector, so recovery rejects
// a torn sector, a misdirected write (the position does not match) and a stale sector left from an
// earlier lap. Each flush pads to the end of its last sector: a later flush never rewrites a sector
// that holds synced records, so a torn write can only damage records that were never durable.
//
// Recovery reads sectors from a start position (kept by the replica's checkpoint) until the first
// sector that fails its checks, and returns the records it found intact. A record whose checksum
// fails inside an intact sector stops recovery too; the replica then reports itself unhealthy for
// what follows.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "sim/disk.h"

namespace dynasim::model {

using LogSequence = uint64_t;

struct WalRecord {
  LogSequence sequence = 0;
  std::vector<uint8_t> payload;
  bool operator==(const WalRecord&) const = default;
};

struct WalOptions {
  uint64_t region_offset_bytes = 0;   // sector-aligned start of the log region on the disk
  uint64_t region_sectors = 1 << 16;  // the circular region's length (256 MB at 4 KB sectors)
  uint64_t max_record_bytes = 512 * 1024;
  uint64_t max_buffered_bytes = 8 << 20;  // a bound on the append buffer
};

enum class WalStatus { kOk, kFull, kRecordTooLarge, kBufferFull, kIoError };
const char* to_string(WalStatus status);

struct WalRecovery {
  std::vector<WalRecord> records;
  uint64_t next_position = 0;  // absolute sector where appending resumes
  bool clean_end = true;  // false: stopped at a damaged sector or record, not at unwritten space
  uint64_t damaged_position = UINT64_MAX;
};

class Wal {
 public:
  using FlushDone = std::function<void(WalStatus, LogSequence durable_through)>;
  using RecoverDone = std::function<void(WalRecovery)>;

  // REQUIRES: the disk outlives the log; the region lies inside the disk.
  Wal(sim::Disk& disk, WalOptions options);

  // Starts a fresh log at absolute position `start_position` (0 for a new replica).
  void reset(uint64_t start_position, LogSequence next_sequence);

  // Buffers a record with the next sequence number, returned in *sequence.
  WalStatus append(std::vector<uint8_t> payload, LogSequence* sequence);
  // Writes every buffered record, fsyncs, then calls `done` with the highest durable sequence.
  // Flushes run one at a time; a flush requested while one is running waits for it.
  void flush(FlushDone done);

  // Lets the sectors before `position` be reused (after a checkpoint made them unnecessary).
  void release_before(uint64_t position);

  // Reads the log from `start_position`. Used after a restart, before anything else.
  void recover(uint64_t start_position, RecoverDone done);

  LogSequence next_sequence() const { return next_sequence_; }
  LogSequence durable_through() const { return durable_through_; }
  uint64_t next_position() const { return next_position_; }
  uint64_t oldest_position() const { return oldest_position_; }
  uint64_t sectors_in_use() const { return next_position_ - oldest_position_; }
  // The absolute position at which the record with this sequence starts, if it is still known.
  uint64_t position_of(LogSequence sequence) const;

  static constexpr size_t kSectorHeaderBytes = 32;

 private:
  struct PendingFlush {
    FlushDone done;
  };
  struct FlushState;
  void start_flush();
  void finish_flush(const std::shared_ptr<FlushState>& state, WalStatus status);
  std::vector<uint8_t> seal_sector(uint64_t position, const uint8_t* body, size_t body_bytes) const;
  bool sector_valid(const std::vector<uint8_t>& data, size_t offset, uint64_t position,
                    uint32_t* used_bytes) const;
  uint64_t disk_offset(uint64_t position) const;
  void recover_batch(uint64_t position, std::vector<uint8_t> stream, WalRecovery recovery,
                     RecoverDone done);

  sim::Disk& disk_;
  WalOptions options_;
  uint32_t sector_bytes_;
  LogSequence next_sequence_ = 1;
  LogSequence durable_through_ = 0;
  uint64_t next_position_ = 0;    // absolute sector the next flush writes
  uint64_t oldest_position_ = 0;  // absolute sector of the oldest record still needed
  std::vector<uint8_t> buffer_;   // encoded records not yet written
  LogSequence buffered_through_ = 0;
  bool flushing_ = false;
  std::vector<PendingFlush> waiting_;
  std::vector<std::pair<LogSequence, uint64_t>> record_positions_;  // sequence -> first sector
};

}  // namespace dynasim::model
