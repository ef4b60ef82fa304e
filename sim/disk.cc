#include "sim/disk.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iterator>
#include <utility>

#include "sim/buffer_pool.h"
#include "sim/check.h"

namespace dynasim::sim {

namespace {

// 2^62 ns is about 146 years: no run lasts that long, so a longer span means "never".
constexpr double kLongestSpanNs = 4.6e18;
constexpr double kNanosecondsPerSecond = 1e9;
constexpr double kNanosecondsPerHour = 3.6e12;
constexpr double kBytesPerTerabyte = 1e12;

// Tags that keep the digests of different operation types apart.
constexpr uint64_t kWriteTag = 0x7772697465ULL;
constexpr uint64_t kReadTag = 0x72656164ULL;
constexpr uint64_t kFsyncTag = 0x6673796e63ULL;
constexpr uint64_t kRejectTag = 0x72656a656374ULL;
constexpr uint64_t kBitRotTag = 0x726f74ULL;
constexpr uint64_t kDiscardTag = 0x7472696dULL;

uint64_t mix(uint64_t hash, uint64_t word) {
  return splitmix64(hash ^ word);
}

// A content hash for the trace digest, the same on every machine (hash_bytes reads little-endian).
// A write's digest chains it over its sectors in order (each sector's hash seeds the next).
uint64_t content_hash(const std::vector<uint8_t>& bytes) {
  return hash_bytes(0, bytes.data(), bytes.size());
}

uint64_t load_word(const uint8_t* bytes) {
  uint64_t word;
  std::memcpy(&word, bytes, sizeof word);
  return word;
}

// How many zero bytes `bytes` starts with (all `size` if it holds only zeros).
size_t leading_zero_bytes(const uint8_t* bytes, size_t size) {
  size_t at = 0;
  while (at + sizeof(uint64_t) <= size && load_word(bytes + at) == 0) at += sizeof(uint64_t);
  while (at < size && bytes[at] == 0) ++at;
  return at;
}

// One past the last non-zero byte of `bytes`, which has one at `first_nonzero`.
size_t end_of_nonzero_bytes(const uint8_t* bytes, size_t size, size_t first_nonzero) {
  size_t end = size;
  while (end >= first_nonzero + sizeof(uint64_t) &&
         load_word(bytes + end - sizeof(uint64_t)) == 0) {
    end -= sizeof(uint64_t);
  }
  while (bytes[end - 1] == 0) --end;
  return end;
}

// Rounds a non-negative span in nanoseconds, clamped to what a run can hold.
Duration span_from_ns(double ns) {
  if (!(ns > 0)) return Duration(0);
  if (ns >= kLongestSpanNs) return Duration(int64_t{1} << 62);
  return Duration(static_cast<int64_t>(ns + 0.5));
}

bool is_probability(double p) {
  return p >= 0.0 && p <= 1.0;
}

}  // namespace

const char* to_string(IoStatus status) {
  switch (status) {
    case IoStatus::kOk:
      return "ok";
    case IoStatus::kMediaError:
      return "media_error";
    case IoStatus::kNoSpace:
      return "no_space";
    case IoStatus::kPoweredOff:
      return "powered_off";
  }
  return "?";
}

const char* to_string(DiskFaultKind kind) {
  switch (kind) {
    case DiskFaultKind::kBitFlip:
      return "bit_flip";
    case DiskFaultKind::kTornWrite:
      return "torn_write";
    case DiskFaultKind::kMisdirectedWrite:
      return "misdirected_write";
    case DiskFaultKind::kLatentSectorError:
      return "latent_sector_error";
    case DiskFaultKind::kLostUnsyncedWrites:
      return "lost_unsynced_writes";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Sector images.

SectorImage SectorImage::of_bytes(const uint8_t* bytes, size_t size) {
  DYN_ASSERT(size < kPatternFlag);
  SectorImage image;
  const size_t begin = leading_zero_bytes(bytes, size);
  if (begin == size) return image;
  const size_t end = end_of_nonzero_bytes(bytes, size, begin);
  image.data_.reset(new uint8_t[end - begin]);
  std::memcpy(image.data_.get(), bytes + begin, end - begin);
  image.offset_ = static_cast<uint32_t>(begin);
  image.length_ = static_cast<uint32_t>(end - begin);
  return image;
}

SectorImage SectorImage::of_pattern(std::span<const uint8_t> head, const Random& fill) {
  DYN_ASSERT(head.size() < kPatternFlag);
  SectorImage image;
  image.data_.reset(new uint8_t[sizeof(Random) + head.size()]);
  std::memcpy(image.data_.get(), &fill, sizeof(Random));
  if (!head.empty()) std::memcpy(image.data_.get() + sizeof(Random), head.data(), head.size());
  image.length_ = static_cast<uint32_t>(head.size()) | kPatternFlag;
  return image;
}

void SectorImage::copy_to_zeroed(uint8_t* out, size_t sector_size) const {
  if (data_ == nullptr) return;
  const size_t length = stored_length();
  if (!pattern()) {
    DYN_ASSERT_MSG(offset_ + length <= sector_size, "a sector image is larger than the sector");
    std::memcpy(out + offset_, data_.get(), length);
    return;
  }
  DYN_ASSERT_MSG(length <= sector_size, "a pattern's head is larger than the sector");
  Random fill(0);
  std::memcpy(&fill, data_.get(), sizeof(Random));
  if (length > 0) std::memcpy(out, data_.get() + sizeof(Random), length);
  for (size_t at = length; at + sizeof(uint64_t) <= sector_size; at += sizeof(uint64_t)) {
    const uint64_t word = fill.next_u64();
    std::memcpy(out + at, &word, sizeof word);
  }
}

std::vector<uint8_t> SectorImage::bytes(size_t sector_size) const {
  std::vector<uint8_t> out(sector_size, 0);
  copy_to_zeroed(out.data(), sector_size);
  return out;
}

uint64_t SectorImage::hash(uint64_t seed, size_t sector_size) const {
  std::vector<uint8_t> scratch = take_buffer(sector_size);
  copy_to_zeroed(scratch.data(), sector_size);
  const uint64_t hash = hash_bytes(seed, scratch.data(), sector_size);
  recycle_buffer(scratch);
  return hash;
}

size_t SectorImage::stored_bytes() const {
  if (data_ == nullptr) return 0;
  return stored_length() + (pattern() ? sizeof(Random) : 0);
}

// ---------------------------------------------------------------------------------------------
// The disk.

Disk::Disk(Simulation& simulation, DiskId id, std::string stable_name, DiskOptions options)
    : simulation_(simulation),
      id_(id),
      stable_name_(std::move(stable_name)),
      options_(std::move(options)),
      configured_options_(options_),
      capacity_sectors_(0),
      io_random_(simulation.random_stream("disk/" + stable_name_)),
      bit_rot_random_(simulation.random_stream("disk/" + stable_name_ + "/bit_rot")) {
  DYN_ASSERT(id_.valid());
  DYN_ASSERT_MSG(options_.sector_size_bytes >= 512 && options_.sector_size_bytes % 512 == 0,
                 "sector size must be a multiple of 512 bytes");
  DYN_ASSERT_MSG(
      options_.capacity_bytes > 0 && options_.capacity_bytes % options_.sector_size_bytes == 0,
      "capacity must be a whole, positive number of sectors");
  DYN_ASSERT(options_.iops_limit > 0);
  DYN_ASSERT(options_.bandwidth_bytes_per_second > 0);
  DYN_ASSERT(is_probability(options_.torn_write_probability));
  DYN_ASSERT(is_probability(options_.latent_error_probability_per_read));
  DYN_ASSERT(is_probability(options_.misdirected_write_probability));
  DYN_ASSERT(options_.bit_rot_per_tb_hour >= 0 && std::isfinite(options_.bit_rot_per_tb_hour));
  DYN_ASSERT(options_.slow_factor > 0 && std::isfinite(options_.slow_factor));
  capacity_sectors_ = options_.capacity_bytes / options_.sector_size_bytes;
  const SimTime now = simulation_.now();
  next_start_allowed_ = now;
  transfer_busy_until_ = now;
  latest_completion_time_ = now;
  schedule_next_bit_rot();
}

Disk::~Disk() {
  cancel_pending_ops();
  if (bit_rot_event_.valid()) simulation_.cancel(bit_rot_event_);
}

// ---------------------------------------------------------------------------------------------
// Issuing operations.

void Disk::check_range(uint64_t offset_bytes, uint64_t length_bytes) const {
  const uint64_t sector_size = options_.sector_size_bytes;
  DYN_ASSERT_MSG(offset_bytes % sector_size == 0, "disk offset is not sector aligned");
  DYN_ASSERT_MSG(length_bytes % sector_size == 0, "disk length is not a whole number of sectors");
  DYN_ASSERT_MSG(length_bytes > 0 && length_bytes <= kMaxIoBytes, "disk length out of bounds");
  DYN_ASSERT_MSG(length_bytes <= options_.capacity_bytes &&
                     offset_bytes <= options_.capacity_bytes - length_bytes,
                 "disk range extends past the capacity");
}

SectorImage Disk::image_of(const uint8_t* bytes) const {
  const uint64_t sector_size = options_.sector_size_bytes;
  if (!options_.plant_window_drops_last_byte) return SectorImage::of_bytes(bytes, sector_size);
  std::vector<uint8_t> cut(bytes, bytes + sector_size);
  const auto last = std::find_if(cut.rbegin(), cut.rend(), [](uint8_t byte) { return byte != 0; });
  if (last != cut.rend()) *last = 0;
  return SectorImage::of_bytes(cut);
}

void Disk::write(uint64_t offset_bytes, std::vector<uint8_t> data,
                 InplaceFunction<void(IoStatus)> done) {
  check_range(offset_bytes, data.size());
  const uint64_t sector_size = options_.sector_size_bytes;
  PendingOp op;
  op.offset_bytes = offset_bytes;
  op.length_bytes = data.size();
  op.sectors.reserve(data.size() / sector_size);
  // The digest and the images are taken now: the bytes cannot change before the write completes.
  for (uint64_t at = 0; at < data.size(); at += sector_size) {
    op.content_hash = hash_bytes(op.content_hash, data.data() + at, sector_size);
    op.sectors.push_back(image_of(data.data() + at));
  }
  if (data.size() == sector_size) recycle_buffer(data);
  submit_write(std::move(op), std::move(done));
}

void Disk::write_sectors(uint64_t offset_bytes, std::vector<std::vector<uint8_t>> sectors,
                         InplaceFunction<void(IoStatus)> done) {
  const uint64_t sector_size = options_.sector_size_bytes;
  for (const std::vector<uint8_t>& sector : sectors) DYN_ASSERT(sector.size() == sector_size);
  PendingOp op;
  op.offset_bytes = offset_bytes;
  op.length_bytes = sectors.size() * sector_size;
  check_range(offset_bytes, op.length_bytes);
  op.sectors.reserve(sectors.size());
  for (std::vector<uint8_t>& sector : sectors) {
    op.content_hash = hash_bytes(op.content_hash, sector.data(), sector_size);
    op.sectors.push_back(image_of(sector.data()));
    recycle_buffer(sector);
  }
  submit_write(std::move(op), std::move(done));
}

void Disk::write_images(uint64_t offset_bytes, std::vector<SectorImage> sectors,
                        InplaceFunction<void(IoStatus)> done) {
  const uint64_t sector_size = options_.sector_size_bytes;
  PendingOp op;
  op.offset_bytes = offset_bytes;
  op.length_bytes = sectors.size() * sector_size;
  check_range(offset_bytes, op.length_bytes);
  // SectorImage::hash asserts that each image fits in a sector.
  for (const SectorImage& sector : sectors) {
    op.content_hash = sector.hash(op.content_hash, sector_size);
  }
  op.sectors = std::move(sectors);
  submit_write(std::move(op), std::move(done));
}

void Disk::submit_write(PendingOp op, InplaceFunction<void(IoStatus)> done) {
  DYN_ASSERT(done);
  op.type = OpType::kWrite;
  op.status_done = std::move(done);
  if (!powered_) return reject_powered_off(std::move(op));
  const SimTime completion = service_completion_time(op.length_bytes, options_.write_latency_ns);
  submit(std::move(op), completion, kDiskWriteDone);
}

void Disk::read(uint64_t offset_bytes, uint64_t length_bytes,
                InplaceFunction<void(ReadResult)> done) {
  check_range(offset_bytes, length_bytes);
  DYN_ASSERT(done);
  PendingOp op;
  op.type = OpType::kRead;
  op.offset_bytes = offset_bytes;
  op.length_bytes = length_bytes;
  op.read_done = std::move(done);
  if (!powered_) return reject_powered_off(std::move(op));
  const SimTime completion = service_completion_time(length_bytes, options_.read_latency_ns);
  submit(std::move(op), completion, kDiskReadDone);
}

void Disk::fsync(InplaceFunction<void(IoStatus)> done) {
  DYN_ASSERT(done);
  PendingOp op;
  op.type = OpType::kFsync;
  op.status_done = std::move(done);
  if (!powered_) return reject_powered_off(std::move(op));
  // An fsync takes an IOPS slot but moves no data. It waits for every earlier operation: this is
  // what makes "completed before the fsync was issued" a subset of what the flush covers.
  const SimTime now = simulation_.now();
  const SimTime start = std::max(now, next_start_allowed_);
  next_start_allowed_ = start + span_from_ns(kNanosecondsPerSecond / options_.iops_limit);
  const SimTime completion =
      std::max(start, latest_completion_time_) + scaled_latency(options_.fsync_latency_ns);
  latest_completion_time_ = completion;
  submit(std::move(op), completion, kDiskFsyncDone);
}

void Disk::submit(PendingOp op, SimTime completion_time, const EventKind& kind) {
  DYN_ASSERT_MSG(pending_ops_.size() < kMaxPendingOps, "too many pending disk operations");
  // The payload is the op id, a per-disk counter: deterministic, and folded into the fingerprint.
  const uint64_t op_id = next_op_id_++;
  op.event = simulation_.schedule_at(completion_time, this, kind, id_.value, op_id);
  pending_ops_.emplace(op_id, std::move(op));
}

void Disk::reject_powered_off(PendingOp op) {
  // Answered through the event queue, never from inside write()/read()/fsync(): callers must not
  // see their callback run before the call returns.
  op.rejected_powered_off = true;
  op.sectors.clear();
  submit(std::move(op), simulation_.now(), kDiskPoweredOffReply);
}

SimTime Disk::service_completion_time(uint64_t transfer_bytes, const DistributionSpec& latency_ns) {
  // Operations start in issue order, at most iops_limit per second. Their data then crosses one
  // serial channel at the bandwidth, and the drawn latency (scaled by the slow factor) follows.
  const SimTime now = simulation_.now();
  const SimTime start = std::max(now, next_start_allowed_);
  next_start_allowed_ = start + span_from_ns(kNanosecondsPerSecond / options_.iops_limit);
  const SimTime transfer_start = std::max(start, transfer_busy_until_);
  const double transfer_ns = static_cast<double>(transfer_bytes) * kNanosecondsPerSecond /
                             options_.bandwidth_bytes_per_second;
  transfer_busy_until_ = transfer_start + span_from_ns(transfer_ns);
  const SimTime completion = transfer_busy_until_ + scaled_latency(latency_ns);
  latest_completion_time_ = std::max(latest_completion_time_, completion);
  return completion;
}

Duration Disk::scaled_latency(const DistributionSpec& latency_ns) {
  return span_from_ns(latency_ns.sample(io_random_) * options_.slow_factor);
}

void Disk::reset_service_timing() {
  // The dropped operations no longer occupy the device.
  const SimTime now = simulation_.now();
  next_start_allowed_ = now;
  transfer_busy_until_ = now;
  latest_completion_time_ = now;
}

void Disk::cancel_pending_ops() {
  // Cancelled events never execute, so no stale completion can reach on_event. The callbacks are
  // destroyed without being called.
  for (auto& [op_id, op] : pending_ops_) {
    const bool cancelled = simulation_.cancel(op.event);
    DYN_ASSERT_MSG(cancelled, "a pending disk operation had no live completion event");
  }
  pending_ops_.clear();
}

// ---------------------------------------------------------------------------------------------
// Completions.

void Disk::on_event(const Event& event) {
  if (event.kind == &kDiskBitRot) {
    bit_rot_event_ = EventHandle();
    simulation_.fold_digest(mix(mix(kBitRotTag, bit_rot_sector_), bit_rot_bit_));
    apply_bit_rot(bit_rot_sector_, bit_rot_bit_);
    schedule_next_bit_rot();
    return;
  }
  auto found = pending_ops_.find(event.payload);
  DYN_ASSERT_MSG(found != pending_ops_.end(), "a disk completion for an unknown operation");
  // Take the operation out before its callback runs: the callback may issue more I/O, power the
  // disk off or abort pending I/O.
  PendingOp op = std::move(found->second);
  pending_ops_.erase(found);

  if (op.rejected_powered_off) {
    simulation_.fold_digest(mix(mix(kRejectTag, static_cast<uint64_t>(op.type)), op.offset_bytes));
    if (op.type == OpType::kRead) {
      ReadResult result;
      result.status = IoStatus::kPoweredOff;
      op.read_done(std::move(result));
    } else {
      op.status_done(IoStatus::kPoweredOff);
    }
    return;
  }
  DYN_ASSERT(powered_);  // power_off cancels every pending completion
  switch (op.type) {
    case OpType::kWrite: {
      // What was written (and how it ended) reaches the fingerprint, not just that a write ran.
      // The content was hashed when the write was issued.
      const uint64_t content = op.content_hash;
      const IoStatus status = complete_write(op);
      simulation_.fold_digest(
          mix(mix(mix(mix(kWriteTag, op.offset_bytes), op.length_bytes), content),
              static_cast<uint64_t>(status)));
      op.status_done(status);
      return;
    }
    case OpType::kRead: {
      ReadResult result = complete_read(op);
      simulation_.fold_digest(
          mix(mix(mix(mix(kReadTag, op.offset_bytes), op.length_bytes), content_hash(result.data)),
              static_cast<uint64_t>(result.status)));
      op.read_done(std::move(result));
      return;
    }
    case OpType::kFsync:
      simulation_.fold_digest(mix(kFsyncTag, cached_sectors_.size()));
      complete_fsync();
      op.status_done(IoStatus::kOk);
      return;
  }
}

IoStatus Disk::complete_write(PendingOp& op) {
  const uint64_t sector_size = options_.sector_size_bytes;
  const uint64_t first_sector = op.offset_bytes / sector_size;
  const uint64_t sector_count = op.length_bytes / sector_size;

  uint64_t landed_sector = first_sector;
  if (io_random_.bernoulli(options_.misdirected_write_probability)) {
    landed_sector = misdirect_target(first_sector, sector_count);
  }

  // Sectors new to the device: in neither the cache nor the media. The sectors are consecutive, so
  // each map is searched once and then walked.
  uint64_t new_sectors = 0;
  {
    auto cached = cached_sectors_.lower_bound(landed_sector);
    auto durable = durable_sectors_.lower_bound(landed_sector);
    for (uint64_t sector = landed_sector; sector < landed_sector + sector_count; ++sector) {
      while (cached != cached_sectors_.end() && cached->first < sector) ++cached;
      while (durable != durable_sectors_.end() && durable->first < sector) ++durable;
      const bool in_cache = cached != cached_sectors_.end() && cached->first == sector;
      const bool on_media = durable != durable_sectors_.end() && durable->first == sector;
      if (!in_cache && !on_media) ++new_sectors;
    }
  }
  if (full_ && new_sectors > 0) return IoStatus::kNoSpace;
  // Every landed sector lies within the capacity, so distinct sectors holding data cannot exceed
  // it: a block device only fills when something above it says so (set_full).
  DYN_ASSERT(used_sectors_ + new_sectors <= capacity_sectors_);

  auto hint = cached_sectors_.lower_bound(landed_sector);
  for (uint64_t i = 0; i < sector_count; ++i) {
    hint = std::next(
        cached_sectors_.insert_or_assign(hint, landed_sector + i, std::move(op.sectors[i])));
  }
  if (ledger_.any_stored()) {
    const SimTime now = simulation_.now();
    for (uint64_t i = 0; i < sector_count; ++i) ledger_.on_cache_write(now, landed_sector + i);
  }
  used_sectors_ += new_sectors;
  last_written_sector_ = landed_sector + sector_count - 1;
  ++stats_.writes;
  stats_.bytes_written += op.length_bytes;

  if (landed_sector != first_sector) {
    // The caller hears kOk: only a checksum that covers the intended address can tell.
    ++stats_.misdirected_writes;
    report(DiskFaultKind::kMisdirectedWrite, first_sector, landed_sector, 0, sector_count);
  }
  return IoStatus::kOk;
}

uint64_t Disk::misdirect_target(uint64_t first_sector, uint64_t sector_count) {
  const uint64_t room_below = first_sector;
  const uint64_t room_above = capacity_sectors_ - sector_count - first_sector;
  if (room_below == 0 && room_above == 0) return first_sector;  // the write spans the device
  bool go_up;
  if (room_below == 0) {
    go_up = true;
  } else if (room_above == 0) {
    go_up = false;
  } else {
    go_up = io_random_.bernoulli(0.5);
  }
  const uint64_t room = go_up ? room_above : room_below;
  const uint64_t distance =
      1 + io_random_.uniform_u64(std::min(room, kMaxMisdirectDistanceSectors));
  return go_up ? first_sector + distance : first_sector - distance;
}

ReadResult Disk::complete_read(const PendingOp& op) {
  const uint64_t sector_size = options_.sector_size_bytes;
  const uint64_t first_sector = op.offset_bytes / sector_size;
  const uint64_t sector_count = op.length_bytes / sector_size;
  ReadResult result;

  // A cached sector is served from the cache and never touches the media. A sector that never
  // reached the media is unmapped: an SSD returns zeros without reading flash, so it cannot
  // develop an error either. The read stops at the first unreadable sector, as a drive does.
  for (uint64_t i = 0; i < sector_count; ++i) {
    const uint64_t sector = first_sector + i;
    if (cached_sectors_.contains(sector)) continue;
    bool unreadable = bad_sectors_.contains(sector);
    if (!unreadable && durable_sectors_.contains(sector) &&
        io_random_.bernoulli(options_.latent_error_probability_per_read)) {
      bad_sectors_.insert(sector);
      ++stats_.latent_errors;
      report(DiskFaultKind::kLatentSectorError, sector, sector, 0, 1);
      unreadable = true;
    }
    if (unreadable) {
      result.status = IoStatus::kMediaError;
      result.first_bad_sector = sector;
      return result;
    }
  }

  result.data.assign(op.length_bytes, 0);
  for (uint64_t i = 0; i < sector_count; ++i) {
    const uint64_t sector = first_sector + i;
    const SectorImage* source = nullptr;
    if (auto cached = cached_sectors_.find(sector); cached != cached_sectors_.end()) {
      source = &cached->second;
    } else if (auto durable = durable_sectors_.find(sector); durable != durable_sectors_.end()) {
      source = &durable->second;
    }
    if (source != nullptr)
      source->copy_to_zeroed(result.data.data() + i * sector_size, sector_size);
  }
  if (ledger_.any_stored()) {
    const SimTime now = simulation_.now();
    for (uint64_t i = 0; i < sector_count; ++i) {
      const uint64_t sector = first_sector + i;
      if (ledger_.on_read(now, sector, cached_sectors_.contains(sector))) {
        ++stats_.pending_flip_reads;
      }
    }
  }
  ++stats_.reads;
  stats_.bytes_read += op.length_bytes;
  return result;
}

void Disk::discard(uint64_t offset_bytes, uint64_t length_bytes) {
  const uint64_t sector_size = options_.sector_size_bytes;
  DYN_ASSERT(offset_bytes % sector_size == 0 && length_bytes % sector_size == 0);
  DYN_ASSERT(offset_bytes / sector_size + length_bytes / sector_size <= capacity_sectors_);
  if (!powered_ || length_bytes == 0) return;
  const uint64_t first = offset_bytes / sector_size;
  const uint64_t end = first + length_bytes / sector_size;
  uint64_t dropped = 0;
  for (auto it = durable_sectors_.lower_bound(first);
       it != durable_sectors_.end() && it->first < end;) {
    if (!cached_sectors_.contains(it->first)) ++dropped;
    it = durable_sectors_.erase(it);
  }
  for (auto it = cached_sectors_.lower_bound(first);
       it != cached_sectors_.end() && it->first < end;) {
    ++dropped;
    it = cached_sectors_.erase(it);
  }
  for (auto it = bad_sectors_.lower_bound(first); it != bad_sectors_.end() && *it < end;) {
    it = bad_sectors_.erase(it);
  }
  if (last_written_sector_ && *last_written_sector_ >= first && *last_written_sector_ < end) {
    last_written_sector_.reset();
  }
  if (ledger_.any_stored()) ledger_.on_discard(simulation_.now(), first, end);
  used_sectors_ -= dropped;
  stats_.discarded_sectors += dropped;
  simulation_.fold_digest(mix(mix(kDiscardTag, first), end));
}

void Disk::complete_fsync() {
  // The whole cache is flushed, including writes that completed after this fsync was issued. That
  // is allowed: a drive may destage its cache at any moment, and fsync only promises durability
  // for what completed before it. The adversary is slightly gentler than it could be (such a
  // write can no longer be lost), never wrong.
  if (ledger_.any_stored()) {
    ledger_.on_flush(simulation_.now(),
                     [this](uint64_t sector) { return cached_sectors_.contains(sector); });
  }
  // A sector new to the media moves its map node over; one already there takes the new image.
  for (auto it = cached_sectors_.begin(); it != cached_sectors_.end();) {
    const uint64_t sector = it->first;
    bad_sectors_.erase(sector);  // rewriting a sector remaps it: a latent error is gone
    const auto durable = durable_sectors_.lower_bound(sector);
    if (durable != durable_sectors_.end() && durable->first == sector) {
      durable->second = std::move(it->second);
      it = cached_sectors_.erase(it);
    } else {
      durable_sectors_.insert(durable, cached_sectors_.extract(it++));
    }
  }
  last_written_sector_.reset();
  ++stats_.fsyncs;
}

// ---------------------------------------------------------------------------------------------
// Power and crashes.

void Disk::power_off() {
  if (!powered_) return;
  cancel_pending_ops();
  tear_last_written_sector();
  drop_write_cache();
  powered_ = false;
  reset_service_timing();
}

void Disk::power_on() {
  if (powered_) return;
  powered_ = true;
  reset_service_timing();
}

void Disk::abort_pending_io() {
  cancel_pending_ops();
  reset_service_timing();
}

void Disk::tear_last_written_sector() {
  if (!last_written_sector_.has_value()) return;
  const uint64_t sector = *last_written_sector_;
  const auto cached = cached_sectors_.find(sector);
  if (cached == cached_sectors_.end()) return;  // already durable: nothing unsynced to tear
  if (!io_random_.bernoulli(options_.torn_write_probability)) return;
  const uint64_t sector_size = options_.sector_size_bytes;
  std::vector<uint8_t> torn = durable_sector(sector);
  // Any byte may be the split: the most adversarial choice (real drives tear at their internal
  // atomic unit, often 512 bytes or a flash page; a byte split includes those cases).
  const uint64_t split = 1 + io_random_.uniform_u64(sector_size - 1);
  const std::vector<uint8_t> new_bytes = cached->second.bytes(sector_size);
  std::copy(new_bytes.begin(), new_bytes.begin() + static_cast<std::ptrdiff_t>(split),
            torn.begin());
  // used_sectors_ is unchanged: the sector moves from the cache to the media.
  durable_sectors_[sector] = SectorImage::of_bytes(torn);
  if (ledger_.any_stored()) ledger_.on_tear(simulation_.now(), sector, split);
  bad_sectors_.erase(sector);
  ++stats_.torn_writes;
  report(DiskFaultKind::kTornWrite, sector, sector, 0, split);
}

void Disk::drop_write_cache() {
  if (cached_sectors_.empty()) return;
  const uint64_t lowest_sector = cached_sectors_.begin()->first;
  const uint64_t lost = cached_sectors_.size();
  for (const auto& [sector, bytes] : cached_sectors_) {
    if (!durable_sectors_.contains(sector)) --used_sectors_;
  }
  if (ledger_.any_stored()) ledger_.on_cache_lost(simulation_.now());
  cached_sectors_.clear();
  last_written_sector_.reset();
  stats_.lost_unsynced_sectors += lost;
  report(DiskFaultKind::kLostUnsyncedWrites, lowest_sector, lowest_sector, 0, lost);
}

// ---------------------------------------------------------------------------------------------
// Bit rot and injected faults.

void Disk::schedule_next_bit_rot() {
  if (bit_rot_event_.valid()) {
    simulation_.cancel(bit_rot_event_);
    bit_rot_event_ = EventHandle();
  }
  if (options_.bit_rot_per_tb_hour <= 0) return;
  // A Poisson process over the whole capacity. Each event picks a uniform sector; one that holds
  // no data absorbs the flip unseen. That thinning makes the rate per terabyte of stored data
  // exactly bit_rot_per_tb_hour, whatever the fill level.
  const double flips_per_hour = options_.bit_rot_per_tb_hour *
                                static_cast<double>(options_.capacity_bytes) / kBytesPerTerabyte;
  const double mean_gap_ns = kNanosecondsPerHour / flips_per_hour;
  if (!(mean_gap_ns < kLongestSpanNs)) return;  // rarer than once a century: never in a run
  const double gap_ns = bit_rot_random_.exponential(mean_gap_ns);
  if (!(gap_ns < kLongestSpanNs)) return;
  // At least 1 ns, so an absurd rate still lets the clock move.
  const Duration gap = std::max(Duration(1), span_from_ns(gap_ns));
  // Sector and bit are drawn with the gap, so the rot timeline depends on nothing but this
  // stream; the handler folds them into the fingerprint.
  bit_rot_sector_ = bit_rot_random_.uniform_u64(capacity_sectors_);
  bit_rot_bit_ =
      static_cast<uint32_t>(bit_rot_random_.uniform_u64(uint64_t{options_.sector_size_bytes} * 8));
  bit_rot_event_ = simulation_.schedule_after(gap, this, kDiskBitRot, id_.value, 0);
}

void Disk::apply_bit_rot(uint64_t sector, uint32_t bit) {
  // Rot continues with or without power: it is a property of the media. A sector that holds no
  // data is unmapped: the flip changes nothing anyone can read (the ledger notes it as absorbed).
  if (!holds_data(sector)) {
    ledger_.on_absorbed(simulation_.now(), sector, bit);
    return;
  }
  flip_bit(sector, bit, FlipSource::kBitRot);
}

void Disk::flip_bit(uint64_t sector, uint32_t bit, FlipSource source) {
  const uint64_t byte_index = bit / 8;
  const auto mask = static_cast<uint8_t>(1u << (bit % 8));
  // The cached copy flips too: otherwise the next flush would overwrite the rotted media with the
  // clean cached copy, and a checker would wait forever for scrub to find a flip that vanished.
  // Rare enough to expand the image, flip, and store it again.
  const uint64_t sector_size = options_.sector_size_bytes;
  const auto flip_in = [&](SectorImage& image) {
    std::vector<uint8_t> bytes = image.bytes(sector_size);
    bytes[byte_index] ^= mask;
    image = SectorImage::of_bytes(bytes);
  };
  bool in_durable = false;
  bool in_cache = false;
  if (auto durable = durable_sectors_.find(sector); durable != durable_sectors_.end()) {
    flip_in(durable->second);
    in_durable = true;
  }
  if (auto cached = cached_sectors_.find(sector); cached != cached_sectors_.end()) {
    flip_in(cached->second);
    in_cache = true;
  }
  DYN_ASSERT(in_durable || in_cache);
  ledger_.on_flip(simulation_.now(), sector, bit, source, in_durable, in_cache);
  ++stats_.bit_flips;
  report(DiskFaultKind::kBitFlip, sector, sector, bit, 1);
}

void Disk::set_slow_factor(double factor) {
  DYN_ASSERT(factor > 0 && std::isfinite(factor));
  options_.slow_factor = factor;
}

void Disk::set_full(bool full) {
  full_ = full;
}

void Disk::set_bit_rot_per_tb_hour(double rate) {
  DYN_ASSERT(rate >= 0 && std::isfinite(rate));
  options_.bit_rot_per_tb_hour = rate;
  schedule_next_bit_rot();
}

void Disk::set_latent_error_probability(double probability) {
  DYN_ASSERT(is_probability(probability));
  options_.latent_error_probability_per_read = probability;
}

void Disk::set_misdirected_write_probability(double probability) {
  DYN_ASSERT(is_probability(probability));
  options_.misdirected_write_probability = probability;
}

void Disk::set_torn_write_probability(double probability) {
  DYN_ASSERT(is_probability(probability));
  options_.torn_write_probability = probability;
}

void Disk::inject_bit_flip(uint64_t sector, uint32_t bit) {
  DYN_ASSERT(sector < capacity_sectors_);
  DYN_ASSERT(bit < uint64_t{options_.sector_size_bytes} * 8);
  if (!holds_data(sector)) {
    durable_sectors_.emplace(sector, SectorImage());
    ++used_sectors_;
  }
  flip_bit(sector, bit, FlipSource::kInjected);
}

void Disk::report_verification_failure(uint64_t first_sector, uint64_t sector_count,
                                       const char* by) {
  DYN_ASSERT(by != nullptr);
  DYN_ASSERT(sector_count <= capacity_sectors_ && first_sector <= capacity_sectors_ - sector_count);
  const SimTime now = simulation_.now();
  for (uint64_t i = 0; i < sector_count; ++i) {
    const uint64_t sector = first_sector + i;
    ledger_.on_report(now, sector, cached_sectors_.contains(sector), by);
  }
}

void Disk::inject_latent_error(uint64_t sector) {
  DYN_ASSERT(sector < capacity_sectors_);
  if (!bad_sectors_.insert(sector).second) return;  // already bad
  ++stats_.latent_errors;
  report(DiskFaultKind::kLatentSectorError, sector, sector, 0, 1);
}

// ---------------------------------------------------------------------------------------------
// Inspection and reports.

std::vector<uint8_t> Disk::durable_sector(uint64_t sector) const {
  DYN_ASSERT(sector < capacity_sectors_);
  const auto durable = durable_sectors_.find(sector);
  if (durable == durable_sectors_.end()) return std::vector<uint8_t>(options_.sector_size_bytes, 0);
  return durable->second.bytes(options_.sector_size_bytes);
}

uint64_t Disk::stored_image_bytes() const {
  uint64_t total = 0;
  for (const auto& [sector, image] : durable_sectors_) total += image.stored_bytes();
  for (const auto& [sector, image] : cached_sectors_) total += image.stored_bytes();
  return total;
}

void Disk::report(DiskFaultKind kind, uint64_t sector, uint64_t landed_sector, uint32_t bit,
                  uint64_t count) {
  if (observer_ == nullptr) return;
  DiskFaultRecord record;
  record.kind = kind;
  record.time = simulation_.now();
  record.sector = sector;
  record.landed_sector = landed_sector;
  record.bit = bit;
  record.count = count;
  observer_->on_disk_fault(id_, record);
}

}  // namespace dynasim::sim
