#include "model/wal.h"

#include <algorithm>
#include <cstring>

#include "sim/buffer_pool.h"
#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {

namespace {
constexpr uint64_t kSectorMagic = 0x57414c5345435431ULL;  // "WALSECT1"
constexpr size_t kRecordHeaderBytes = 12;                 // sequence, length
constexpr size_t kRecordTrailerBytes = 8;                 // checksum
constexpr uint64_t kRecoveryBatchSectors = 64;

void put_u64(uint8_t* out, uint64_t value) {
  std::memcpy(out, &value, 8);
}
void put_u32(uint8_t* out, uint32_t value) {
  std::memcpy(out, &value, 4);
}
uint64_t get_u64(const uint8_t* in) {
  uint64_t value;
  std::memcpy(&value, in, 8);
  return value;
}
uint32_t get_u32(const uint8_t* in) {
  uint32_t value;
  std::memcpy(&value, in, 4);
  return value;
}

}  // namespace

const char* to_string(WalStatus status) {
  switch (status) {
    case WalStatus::kOk:
      return "ok";
    case WalStatus::kFull:
      return "log region full";
    case WalStatus::kRecordTooLarge:
      return "record too large";
    case WalStatus::kBufferFull:
      return "append buffer full";
    case WalStatus::kIoError:
      return "disk error";
  }
  return "?";
}

Wal::Wal(sim::Disk& disk, WalOptions options)
    : disk_(disk), options_(options), sector_bytes_(disk.options().sector_size_bytes) {
  DYN_ASSERT(options_.region_offset_bytes % sector_bytes_ == 0);
  DYN_ASSERT(options_.region_sectors >= 4);
  DYN_ASSERT(options_.region_offset_bytes + options_.region_sectors * sector_bytes_ <=
             disk.capacity_sectors() * sector_bytes_);
}

void Wal::reset(uint64_t start_position, LogSequence next_sequence) {
  DYN_ASSERT(!flushing_);
  next_position_ = start_position;
  oldest_position_ = start_position;
  next_sequence_ = next_sequence;
  durable_through_ = next_sequence - 1;
  buffered_through_ = durable_through_;
  buffer_.clear();
  record_positions_.clear();
}

WalStatus Wal::append(std::vector<uint8_t> payload, LogSequence* sequence) {
  if (payload.size() > options_.max_record_bytes) return WalStatus::kRecordTooLarge;
  const size_t encoded = kRecordHeaderBytes + payload.size() + kRecordTrailerBytes;
  if (buffer_.size() + encoded > options_.max_buffered_bytes) return WalStatus::kBufferFull;
  const LogSequence assigned = next_sequence_++;
  const size_t start = buffer_.size();
  buffer_.resize(start + encoded);
  uint8_t* out = buffer_.data() + start;
  put_u64(out, assigned);
  put_u32(out + 8, static_cast<uint32_t>(payload.size()));
  if (!payload.empty()) std::memcpy(out + kRecordHeaderBytes, payload.data(), payload.size());
  put_u64(out + kRecordHeaderBytes + payload.size(),
          sim::hash_bytes(assigned, out, kRecordHeaderBytes + payload.size()));
  buffered_through_ = assigned;
  *sequence = assigned;
  return WalStatus::kOk;
}

uint64_t Wal::disk_offset(uint64_t position) const {
  return options_.region_offset_bytes + (position % options_.region_sectors) * sector_bytes_;
}

std::vector<uint8_t> Wal::seal_sector(uint64_t position, const uint8_t* body,
                                      size_t body_bytes) const {
  std::vector<uint8_t> sector = sim::take_buffer(sector_bytes_);
  put_u64(sector.data(), kSectorMagic);
  put_u64(sector.data() + 8, position);
  put_u32(sector.data() + 16, static_cast<uint32_t>(body_bytes));
  if (body_bytes > 0) std::memcpy(sector.data() + kSectorHeaderBytes, body, body_bytes);
  // The checksum covers the header fields and the whole body, padding included.
  const uint64_t checksum = sim::hash_bytes(position, sector.data() + 8, sector_bytes_ - 8);
  put_u64(sector.data() + 24, 0);
  put_u64(sector.data() + 24, checksum);
  return sector;
}

bool Wal::sector_valid(const std::vector<uint8_t>& data, size_t offset, uint64_t position,
                       uint32_t* used_bytes) const {
  const uint8_t* sector = data.data() + offset;
  if (get_u64(sector) != kSectorMagic || get_u64(sector + 8) != position) return false;
  std::vector<uint8_t> copy(sector, sector + sector_bytes_);
  const uint64_t stored = get_u64(copy.data() + 24);
  put_u64(copy.data() + 24, 0);
  if (stored != sim::hash_bytes(position, copy.data() + 8, sector_bytes_ - 8)) return false;
  *used_bytes = get_u32(sector + 16);
  return *used_bytes <= sector_bytes_ - kSectorHeaderBytes;
}

void Wal::flush(FlushDone done) {
  waiting_.push_back(PendingFlush{std::move(done)});
  if (!flushing_) start_flush();
}

// One flush in progress: who waits for it, what it makes durable, and its outstanding writes.
struct Wal::FlushState {
  std::vector<PendingFlush> callers;
  LogSequence through = 0;
  int writes_left = 0;
  bool failed = false;
};

void Wal::finish_flush(const std::shared_ptr<FlushState>& state, WalStatus status) {
  flushing_ = false;
  if (status == WalStatus::kOk) durable_through_ = std::max(durable_through_, state->through);
  for (PendingFlush& caller : state->callers) caller.done(status, durable_through_);
  if (!waiting_.empty()) start_flush();
}

void Wal::start_flush() {
  DYN_ASSERT(!flushing_ && !waiting_.empty());
  flushing_ = true;
  // Every waiting caller is answered by this one flush: it covers everything buffered now.
  auto state = std::make_shared<FlushState>();
  state->callers = std::move(waiting_);
  waiting_.clear();
  state->through = buffered_through_;
  std::vector<uint8_t> stream = std::move(buffer_);
  buffer_.clear();
  const size_t body_bytes = sector_bytes_ - kSectorHeaderBytes;
  const uint64_t sectors = (stream.size() + body_bytes - 1) / body_bytes;

  if (next_position_ + sectors - oldest_position_ > options_.region_sectors) {
    // No room: the records go back to the buffer for a later flush, after a checkpoint.
    buffer_ = std::move(stream);
    disk_.fsync([this, state](sim::IoStatus) { finish_flush(state, WalStatus::kFull); });
    return;
  }
  if (sectors == 0) {
    // Nothing new: still answer through the disk, never from inside flush().
    disk_.fsync([this, state](sim::IoStatus synced) {
      finish_flush(state, synced == sim::IoStatus::kOk ? WalStatus::kOk : WalStatus::kIoError);
    });
    return;
  }

  // Cut the stream into sealed sectors, remembering where each record starts.
  std::vector<std::vector<uint8_t>> image;
  image.reserve(sectors);
  for (uint64_t i = 0; i < sectors; ++i) {
    const size_t begin = i * body_bytes;
    const size_t length = std::min(body_bytes, stream.size() - begin);
    image.push_back(seal_sector(next_position_ + i, stream.data() + begin, length));
  }
  for (size_t offset = 0; offset < stream.size();) {
    const LogSequence sequence = get_u64(stream.data() + offset);
    record_positions_.emplace_back(sequence, next_position_ + offset / body_bytes);
    offset += kRecordHeaderBytes + get_u32(stream.data() + offset + 8) + kRecordTrailerBytes;
  }
  // The stream is sealed into sectors: its memory becomes the append buffer again (records
  // appended since this flush began are none: flush runs inside one call).
  if (buffer_.empty()) {
    stream.clear();
    buffer_.swap(stream);
  }
  const uint64_t first = next_position_;
  next_position_ += sectors;

  // The region is circular: a flush that crosses its end is two writes. fsync follows both.
  const uint64_t until_wrap = options_.region_sectors - first % options_.region_sectors;
  const uint64_t first_part = std::min<uint64_t>(sectors, until_wrap);
  state->writes_left = first_part < sectors ? 2 : 1;
  auto after_write = [this, state](sim::IoStatus status) {
    if (status != sim::IoStatus::kOk) state->failed = true;
    if (--state->writes_left > 0) return;
    if (state->failed) {
      finish_flush(state, WalStatus::kIoError);
      return;
    }
    disk_.fsync([this, state](sim::IoStatus synced) {
      finish_flush(state, synced == sim::IoStatus::kOk ? WalStatus::kOk : WalStatus::kIoError);
    });
  };
  std::vector<std::vector<uint8_t>> after_wrap(
      std::make_move_iterator(image.begin() + static_cast<std::ptrdiff_t>(first_part)),
      std::make_move_iterator(image.end()));
  image.resize(first_part);
  disk_.write_sectors(disk_offset(first), std::move(image), after_write);
  if (!after_wrap.empty()) {
    disk_.write_sectors(disk_offset(first + first_part), std::move(after_wrap), after_write);
  }
}

void Wal::release_before(uint64_t position) {
  DYN_ASSERT(position <= next_position_);
  // The released sectors will never be read again (recovery starts at a durable checkpoint's
  // replay position, which is at or past `position`): trim them. The region is circular, so the
  // released run is at most two pieces.
  for (uint64_t from = oldest_position_; from < position;) {
    const uint64_t until_wrap = options_.region_sectors - from % options_.region_sectors;
    const uint64_t count = std::min<uint64_t>(position - from, until_wrap);
    disk_.discard(disk_offset(from), count * sector_bytes_);
    from += count;
  }
  oldest_position_ = std::max(oldest_position_, position);
  auto keep = std::find_if(record_positions_.begin(), record_positions_.end(),
                           [position](const auto& entry) { return entry.second >= position; });
  record_positions_.erase(record_positions_.begin(), keep);
}

uint64_t Wal::position_of(LogSequence sequence) const {
  for (const auto& [record, position] : record_positions_) {
    if (record == sequence) return position;
  }
  return UINT64_MAX;
}

void Wal::recover(uint64_t start_position, RecoverDone done) {
  DYN_ASSERT(!flushing_);
  WalRecovery recovery;
  recovery.next_position = start_position;
  recover_batch(start_position, {}, std::move(recovery), std::move(done));
}

void Wal::recover_batch(uint64_t position, std::vector<uint8_t> stream, WalRecovery recovery,
                        RecoverDone done) {
  // Read up to the region's end or a batch, whichever is nearer, never wrapping within one read.
  const uint64_t until_wrap = options_.region_sectors - position % options_.region_sectors;
  const uint64_t count = std::min(kRecoveryBatchSectors, until_wrap);
  auto state = std::make_shared<std::tuple<std::vector<uint8_t>, WalRecovery, RecoverDone>>(
      std::move(stream), std::move(recovery), std::move(done));
  disk_.read(
      disk_offset(position), count * sector_bytes_,
      [this, position, count, state](sim::ReadResult result) {
        auto& [stream, recovery, done] = *state;
        uint64_t scanned = 0;
        bool stop = result.status != sim::IoStatus::kOk;
        if (stop) {
          recovery.clean_end = false;
          recovery.damaged_position = position;
        }
        for (; !stop && scanned < count; ++scanned) {
          const uint64_t at = position + scanned;
          if (at - recovery.next_position >= options_.region_sectors) {
            stop = true;  // a whole lap read: nothing older can follow
            break;
          }
          uint32_t used = 0;
          if (!sector_valid(result.data, scanned * sector_bytes_, at, &used)) {
            const uint8_t* sector = result.data.data() + scanned * sector_bytes_;
            const bool never_written =
                std::all_of(sector, sector + sector_bytes_, [](uint8_t b) { return b == 0; });
            const bool stale_lap = get_u64(sector) == kSectorMagic && get_u64(sector + 8) < at;
            if (!never_written && !stale_lap) {
              recovery.clean_end = false;
              recovery.damaged_position = at;
            }
            stop = true;
            break;
          }
          const uint8_t* body = result.data.data() + scanned * sector_bytes_ + kSectorHeaderBytes;
          stream.insert(stream.end(), body, body + used);
        }
        const uint64_t next = position + scanned;
        if (!stop) {
          recover_batch(next, std::move(stream), std::move(recovery), std::move(done));
          return;
        }
        // Parse the records of the intact sectors.
        size_t offset = 0;
        while (stream.size() - offset >= kRecordHeaderBytes + kRecordTrailerBytes) {
          const uint8_t* record = stream.data() + offset;
          const LogSequence sequence = get_u64(record);
          const uint32_t length = get_u32(record + 8);
          const size_t total = kRecordHeaderBytes + length + kRecordTrailerBytes;
          if (total > stream.size() - offset ||
              get_u64(record + kRecordHeaderBytes + length) !=
                  sim::hash_bytes(sequence, record, kRecordHeaderBytes + length) ||
              (!recovery.records.empty() && sequence != recovery.records.back().sequence + 1)) {
            recovery.clean_end = false;
            recovery.damaged_position = next;
            break;
          }
          recovery.records.push_back(
              WalRecord{sequence, std::vector<uint8_t>(record + kRecordHeaderBytes,
                                                       record + kRecordHeaderBytes + length)});
          offset += total;
        }
        recovery.next_position = next;
        done(std::move(recovery));
      });
}

}  // namespace dynasim::model
