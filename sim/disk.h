// A simulated block device: the NVMe SSD that a storage node's WAL and B-tree pages live on.
//
// It models what a real drive does to data, not just how long it takes:
// - Real bytes per sector, stored sparsely. A durable image (the flash) plus a volatile write cache
//   of completed but unsynced sectors (the drive's DRAM cache, or an OS page cache without
//   power-loss protection). Reads see the cache first; a sector never written reads as zeros.
//   Each stored sector is a SectorImage (below): its non-zero window, or a head and the state of
//   the random stream its payload came from, so memory follows the information written, not the
//   sectors touched. Every reader sees the bytes written, byte for byte.
// - fsync makes every write that completed before it durable. A power-off loses the cache and may
//   tear the last written unsynced sector (new bytes up to a random point, old bytes after it), the
//   failure that InnoDB's doublewrite buffer and page checksums exist to catch.
// - Silent corruption: bit rot that accrues over simulated time (a Poisson process per terabyte),
//   latent sector errors that appear on read and stay until the sector is rewritten, and
//   misdirected writes that land on a nearby sector while reporting success (Bairavasundaram et
//   al., "An Analysis of Data Corruption in the Storage Stack", FAST 2008, describe all three as
//   seen in the field).
// - Ground truth about bit flips (sim/corruption_ledger.h): every flip, where its bit is stored,
//   and its fate (pending, detected by a report from the model, overwritten, discarded,
//   absorbed), so a checker can prove that scrub found what rot did. Pure bookkeeping: it draws
//   nothing, schedules nothing and leaves the trace fingerprint as it was.
// - Limping and full disks: a slow factor on latencies, and writes that fail with kNoSpace.
// - Timing: a FIFO service model with an IOPS limit, a bandwidth limit and a latency distribution
//   per operation type.
//
// Expected failures are values (IoStatus). Misuse (unaligned offsets, reads past the end, too many
// pending operations) is a DYN_ASSERT. Completions always arrive through the simulation's event
// queue, never re-entrantly from inside write()/read()/fsync().
//
// Every random draw comes from streams derived from the disk's stable name, so two disks never
// share a stream and adding I/O on one disk shifts nothing on another.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "sim/corruption_ledger.h"
#include "sim/distribution.h"
#include "sim/event_queue.h"
#include "sim/ids.h"
#include "sim/inplace_function.h"
#include "sim/random.h"
#include "sim/simulation.h"
#include "sim/time.h"

namespace dynasim::sim {

enum class IoStatus {
  kOk,
  kMediaError,  // a latent sector error on read; ReadResult::first_bad_sector names the sector
  kNoSpace,     // the disk is full
  kPoweredOff,  // the operation was issued while the disk had no power
};

const char* to_string(IoStatus status);

struct DiskOptions {
  // 1.92 TB, the usual size of a datacenter NVMe drive: 3,750,748,848 512-byte LBAs by the IDEMA
  // LBA1-03 capacity formula (97,696,368 + 1,953,504 * (1920 - 50)), a multiple of 4096.
  uint64_t capacity_bytes = 1'920'383'410'176ULL;
  uint32_t sector_size_bytes = 4096;

  // Latency defaults follow the public specification of the Intel SSD DC P4500 2.0 TB (Lenovo
  // product guide): random 4 KB read access latency 85 us, random write 20 us. We take those as
  // medians; the log-normal spread (sigma 0.25) and the 10 ms ceiling are our assumptions.
  DistributionSpec read_latency_ns = make_latency(85'000.0, 0.25);
  DistributionSpec write_latency_ns = make_latency(20'000.0, 0.25);
  // Our assumption: flushing a volatile write cache costs a few hundred microseconds on a drive
  // without power-loss protection (with it, a flush is nearly free; set a small constant then).
  DistributionSpec fsync_latency_ns = make_latency(200'000.0, 0.5);

  // Operations started per second. The same specification gives 490,000 random 4 KB read IOPS.
  double iops_limit = 490'000.0;
  // Bytes per second through the device, for reads and writes alike. The specification gives
  // 3.2 GB/s sequential read and 1.05 GB/s sequential write; a storage node is write-bound (its
  // WAL), so we take the write figure.
  double bandwidth_bytes_per_second = 1.05e9;

  // On power loss: the chance that the last written, unsynced sector is torn.
  double torn_write_probability = 0;
  // Expected bit flips per terabyte (10^12 bytes) of capacity per hour of simulated time.
  double bit_rot_per_tb_hour = 0;
  // Per sector read from the media: the chance that it becomes unreadable (sticky until rewritten).
  double latent_error_probability_per_read = 0;
  // Per write: the chance that its data lands on another, nearby sector range.
  double misdirected_write_probability = 0;
  // Above 1 makes a limping disk: every drawn latency is multiplied by it.
  double slow_factor = 1.0;

  // Planted bug for DiskTest.PlantedShortWindowIsCaughtByTheReferenceDisk: each written sector is
  // stored without its last non-zero byte. Never set outside tests.
  bool plant_window_drops_last_byte = false;

  static DistributionSpec make_latency(double median_ns, double sigma) {
    DistributionSpec spec = DistributionSpec::lognormal(median_ns, sigma);
    spec.maximum = 10'000'000.0;
    return spec;
  }
};

struct ReadResult {
  IoStatus status = IoStatus::kOk;
  std::vector<uint8_t> data;               // length_bytes of data when kOk; empty otherwise
  uint64_t first_bad_sector = UINT64_MAX;  // kMediaError: the first unreadable sector
};

// One sector's bytes, as the disk stores them: one of
// - zeros (a default image; nothing stored);
// - a window: the bytes from the sector's first to its last non-zero byte, zeros around them. A
//   B-tree page or a WAL sector usually holds a few hundred bytes of records and zeros after them;
// - a pattern: head bytes, then 64-bit words drawn from a sim::Random stream (each word's bytes as
//   std::memcpy stores it) while a whole word fits, then zeros. Kept as the head and the stream's
//   state (80 bytes for a 32-byte head), the words drawn again whenever the sector is read: how a
//   writer whose payload is random (the world probe's records) hands its sectors over.
// The representation is not canonical (a window may hold zeros, a pattern's words may be zero);
// only the bytes it stands for matter. Move-only: an image owns one heap block.
class SectorImage {
 public:
  SectorImage() = default;  // all zeros
  SectorImage(SectorImage&&) noexcept = default;
  SectorImage& operator=(SectorImage&&) noexcept = default;

  // The sector holding `size` bytes from `bytes`. REQUIRES: size < 2^31.
  static SectorImage of_bytes(const uint8_t* bytes, size_t size);
  static SectorImage of_bytes(const std::vector<uint8_t>& bytes) {
    return of_bytes(bytes.data(), bytes.size());
  }
  // `head`, then words from `fill`'s next draws (the copy's: `fill` itself is not advanced).
  // REQUIRES: head.size() < 2^31; a sector it is read as holds at least head.size() bytes.
  static SectorImage of_pattern(std::span<const uint8_t> head, const Random& fill);

  // Writes the image's `sector_size` bytes into `out`, which holds zeros on entry (only the parts
  // that may be non-zero are written).
  void copy_to_zeroed(uint8_t* out, size_t sector_size) const;
  std::vector<uint8_t> bytes(size_t sector_size) const;
  // hash_bytes(seed, bytes(sector_size)), the digest the disk folds into the trace.
  uint64_t hash(uint64_t seed, size_t sector_size) const;

  bool zero() const { return data_ == nullptr; }
  bool pattern() const { return (length_ & kPatternFlag) != 0; }
  // Heap bytes the image owns (the window, or the head and the stream's state).
  size_t stored_bytes() const;

 private:
  static constexpr uint32_t kPatternFlag = uint32_t{1} << 31;
  static_assert(std::is_trivially_copyable_v<Random>, "a pattern stores the stream's bytes");

  uint32_t stored_length() const { return length_ & ~kPatternFlag; }

  // A window's bytes, or a pattern's stream (sizeof(Random) bytes) followed by its head.
  std::unique_ptr<uint8_t[]> data_;
  uint32_t offset_ = 0;  // a window's first byte within the sector; 0 for a pattern
  uint32_t length_ = 0;  // the window's or the head's length, with kPatternFlag for a pattern
};

enum class DiskFaultKind {
  kBitFlip,             // sector, bit
  kTornWrite,           // sector; count = bytes of the new version before the split point
  kMisdirectedWrite,    // sector = intended first sector, landed_sector, count = sectors
  kLatentSectorError,   // sector
  kLostUnsyncedWrites,  // sector = lowest lost sector, count = sectors lost
};

const char* to_string(DiskFaultKind kind);

// One injected corruption or loss, for checkers that must later prove that scrub or recovery found
// every one of them. A later write to the same sector erases a bit flip or a torn sector.
struct DiskFaultRecord {
  DiskFaultKind kind = DiskFaultKind::kBitFlip;
  SimTime time;
  uint64_t sector = 0;
  uint64_t landed_sector = 0;  // kMisdirectedWrite only; otherwise equal to sector
  uint32_t bit = 0;            // kBitFlip only: the bit index within the sector
  uint64_t count = 0;
};

class DiskObserver {
 public:
  virtual void on_disk_fault(DiskId disk, const DiskFaultRecord& record) = 0;

 protected:
  ~DiskObserver() = default;
};

class Disk final : public EventSink {
 public:
  static constexpr EventKind kDiskWriteDone = event_kind("disk.write_done");
  static constexpr EventKind kDiskReadDone = event_kind("disk.read_done");
  static constexpr EventKind kDiskFsyncDone = event_kind("disk.fsync_done");
  // The kPoweredOff answer to an operation issued without power.
  static constexpr EventKind kDiskPoweredOffReply = event_kind("disk.powered_off_reply");
  static constexpr EventKind kDiskBitRot = event_kind("disk.bit_rot");

  // Bounds (CONVENTIONS.md rule 15): at most this many operations in flight, and this many bytes in
  // one operation (an OS splits larger requests; NVMe's own transfer limit is far smaller).
  static constexpr uint64_t kMaxPendingOps = uint64_t{1} << 20;
  static constexpr uint64_t kMaxIoBytes = uint64_t{64} << 20;
  // A misdirected write lands this many sectors away at most: firmware and driver bugs that
  // misdirect usually miss by a few blocks, not across the device.
  static constexpr uint64_t kMaxMisdirectDistanceSectors = 16;
  static constexpr uint64_t kNoSector = UINT64_MAX;

  struct Stats {
    // Operations that completed with kOk, and their bytes.
    uint64_t reads = 0;
    uint64_t writes = 0;
    uint64_t fsyncs = 0;
    uint64_t bytes_read = 0;
    uint64_t bytes_written = 0;
    // Faults that happened (each also reported to the observer).
    uint64_t bit_flips = 0;
    uint64_t torn_writes = 0;
    uint64_t misdirected_writes = 0;
    uint64_t latent_errors = 0;
    uint64_t lost_unsynced_sectors = 0;
    uint64_t discarded_sectors = 0;  // sectors that held data when discard() dropped them
    // Sector reads (completed, kOk) that returned the bit of a flip nobody had reported yet: the
    // ground truth for "corrupt bytes left the disk". Whether they were served is up to the
    // model's verification; see CorruptionLedger::records() for which flip and when.
    uint64_t pending_flip_reads = 0;
  };

  // REQUIRES: `simulation` outlives the disk; `stable_name` is unique in the run.
  Disk(Simulation& simulation, DiskId id, std::string stable_name, DiskOptions options);
  Disk(const Disk&) = delete;
  Disk& operator=(const Disk&) = delete;
  // Cancels every pending completion and the bit rot process, so a disk may go before the run ends.
  ~Disk();

  // REQUIRES for write and read: offset and length are multiples of sector_size_bytes, the length
  // is in (0, kMaxIoBytes], and the range lies within the capacity.
  //
  // The data enters the write cache (visible to reads, not yet durable) when the write completes.
  // A write is all-or-nothing with respect to kNoSpace.
  void write(uint64_t offset_bytes, std::vector<uint8_t> data,
             InplaceFunction<void(IoStatus)> done);
  // The same write, handed over as one buffer per sector (each exactly sector_size_bytes, at
  // consecutive sectors from offset_bytes), with no concatenation. The disk takes each sector's
  // SectorImage at once and hands the buffers to the thread's buffer pool (sim/buffer_pool.h), as
  // write() does with a one-sector buffer. Same completion, digest and fault behaviour as write()
  // of their concatenation.
  void write_sectors(uint64_t offset_bytes, std::vector<std::vector<uint8_t>> sectors,
                     InplaceFunction<void(IoStatus)> done);
  // The same write, handed over as images of consecutive sectors (a pattern for a random
  // payload, which the disk then never holds expanded). Same completion, digest and fault behaviour
  // as write() of their bytes. REQUIRES: a pattern's head fits in a sector.
  void write_images(uint64_t offset_bytes, std::vector<SectorImage> sectors,
                    InplaceFunction<void(IoStatus)> done);
  void read(uint64_t offset_bytes, uint64_t length_bytes, InplaceFunction<void(ReadResult)> done);
  // Completes after every earlier operation has completed, plus the fsync latency; then every
  // write completed before it is durable.
  void fsync(InplaceFunction<void(IoStatus)> done);
  // TRIM: the range no longer holds data, at once, cached or durable (reads return zeros, as
  // from a sector never written, and bit rot there is absorbed unseen). For space the caller
  // knows it will never read again, such as WAL sectors a durable checkpoint released; it keeps
  // the simulator's memory proportional to live data. Ignored while powered off. Same range rule
  // as write and read, except that the length may exceed kMaxIoBytes.
  void discard(uint64_t offset_bytes, uint64_t length_bytes);

  // The host lost power: the write cache is lost, the last written unsynced sector may be torn,
  // and pending callbacks never run (nor do pending writes land). No-op if already off.
  void power_off();
  void power_on();
  bool powered() const { return powered_; }
  // The owning process crashed: its pending callbacks never run and its pending writes never land,
  // but the write cache (the device's) survives.
  void abort_pending_io();

  // Fault knobs, set at runtime by the fault injector. A new slow factor applies to operations
  // issued afterwards. A new bit rot rate redraws the next flip (the process is memoryless).
  void set_slow_factor(double factor);
  // While full, any write touching a sector that holds no data fails with kNoSpace. A block device
  // never fills on its own (every in-range sector is addressable); this stands for the file system
  // or thin-provisioned volume beneath the store running out of space.
  void set_full(bool full);
  void set_bit_rot_per_tb_hour(double rate);
  void set_latent_error_probability(double probability);
  void set_misdirected_write_probability(double probability);
  void set_torn_write_probability(double probability);
  // Flips one bit of the sector's durable image (and of its cached copy). A never-written sector
  // becomes a durable sector of zeros with one bit set.
  void inject_bit_flip(uint64_t sector, uint32_t bit);
  void inject_latent_error(uint64_t sector);
  void set_observer(DiskObserver* observer) { observer_ = observer; }

  // Model code calls this when a page it read from these sectors failed verification (checksum,
  // page number, kind, or the checksum its parent recorded). `by` is a short label for the ledger
  // ("read", "scrub"); it is copied. Pending flips whose bit the sectors' readable copy holds are
  // marked detected now (the first report wins); a sector holding no flipped bit (a torn or
  // misdirected write, a stale image) is counted as such, which is not an error. It changes
  // nothing the disk does: a real drive has no such command, the report only feeds the ledger
  // that checkers read. REQUIRES: the range lies within the capacity.
  void report_verification_failure(uint64_t first_sector, uint64_t sector_count, const char* by);

  // Inspection for tests and checkers; model code never calls these.
  const Stats& stats() const { return stats_; }
  // Every bit flip this disk suffered and its fate. Model code never reads it.
  const CorruptionLedger& corruption_ledger() const { return ledger_; }
  // Distinct sectors holding data (durable or cached) times the sector size.
  uint64_t used_bytes() const { return used_sectors_ * options_.sector_size_bytes; }
  // Heap bytes the stored sector images own (cached and durable), without the containers' own
  // overhead: what the compact representation costs.
  uint64_t stored_image_bytes() const;
  // The durable bytes of one sector (zeros if it never reached the media).
  std::vector<uint8_t> durable_sector(uint64_t sector) const;
  bool sector_cached(uint64_t sector) const { return cached_sectors_.contains(sector); }
  bool sector_bad(uint64_t sector) const { return bad_sectors_.contains(sector); }
  uint64_t cached_sector_count() const { return cached_sectors_.size(); }
  uint64_t pending_ops() const { return pending_ops_.size(); }
  uint64_t capacity_sectors() const { return capacity_sectors_; }
  DiskId id() const { return id_; }
  const std::string& stable_name() const { return stable_name_; }
  // The options in force now: the fault setters above change them.
  const DiskOptions& options() const { return options_; }
  // The options the disk was built with, which a fault's end restores.
  const DiskOptions& configured_options() const { return configured_options_; }

  void on_event(const Event& event) override;

 private:
  enum class OpType : uint8_t { kWrite, kRead, kFsync };

  struct PendingOp {
    OpType type = OpType::kWrite;
    bool rejected_powered_off = false;
    uint64_t offset_bytes = 0;
    uint64_t length_bytes = 0;
    std::vector<SectorImage> sectors;             // kWrite: one image per sector
    uint64_t content_hash = 0;                    // kWrite: of the sectors' bytes, chained
    InplaceFunction<void(IoStatus)> status_done;  // kWrite, kFsync
    InplaceFunction<void(ReadResult)> read_done;  // kRead
    EventHandle event;
  };

  void check_range(uint64_t offset_bytes, uint64_t length_bytes) const;
  // The image a written sector is stored as.
  SectorImage image_of(const uint8_t* bytes) const;
  void submit_write(PendingOp op, InplaceFunction<void(IoStatus)> done);
  // Files the operation and schedules its completion. The handler folds a digest of what the
  // operation did (offset, length, a hash of the bytes, the status) into the fingerprint.
  void submit(PendingOp op, SimTime completion_time, const EventKind& kind);
  void reject_powered_off(PendingOp op);
  // The FIFO service model: returns when an operation moving `transfer_bytes` completes.
  SimTime service_completion_time(uint64_t transfer_bytes, const DistributionSpec& latency_ns);
  Duration scaled_latency(const DistributionSpec& latency_ns);
  void reset_service_timing();
  void cancel_pending_ops();

  IoStatus complete_write(PendingOp& op);
  ReadResult complete_read(const PendingOp& op);
  void complete_fsync();
  // Where a misdirected write of `sector_count` sectors meant for `first_sector` lands, or
  // `first_sector` itself if there is no room to miss.
  uint64_t misdirect_target(uint64_t first_sector, uint64_t sector_count);

  bool holds_data(uint64_t sector) const {
    return cached_sectors_.contains(sector) || durable_sectors_.contains(sector);
  }
  void tear_last_written_sector();
  void drop_write_cache();

  void schedule_next_bit_rot();
  void apply_bit_rot(uint64_t sector, uint32_t bit);
  void flip_bit(uint64_t sector, uint32_t bit, FlipSource source);
  void report(DiskFaultKind kind, uint64_t sector, uint64_t landed_sector, uint32_t bit,
              uint64_t count);

  Simulation& simulation_;
  DiskId id_;
  std::string stable_name_;
  DiskOptions options_;
  DiskOptions configured_options_;  // as built; never changed by a fault
  uint64_t capacity_sectors_;
  // One stream for I/O (latencies, latent errors, misdirection, tearing) and one for bit rot, so
  // the rot timeline does not shift when the workload changes.
  Random io_random_;
  Random bit_rot_random_;
  DiskObserver* observer_ = nullptr;

  bool powered_ = true;
  bool full_ = false;

  // Ordered containers only: any iteration below reaches behaviour (reports, draws).
  std::map<uint64_t, SectorImage> durable_sectors_;
  std::map<uint64_t, SectorImage> cached_sectors_;
  std::set<uint64_t> bad_sectors_;
  uint64_t used_sectors_ = 0;
  std::optional<uint64_t> last_written_sector_;  // the last sector that entered the cache

  std::map<uint64_t, PendingOp> pending_ops_;  // by op id
  uint64_t next_op_id_ = 0;

  // Service model state.
  SimTime next_start_allowed_;      // the previous start plus 1 / iops_limit
  SimTime transfer_busy_until_;     // the bandwidth is a single serial channel
  SimTime latest_completion_time_;  // of every operation issued so far, for fsync

  EventHandle bit_rot_event_;
  uint64_t bit_rot_sector_ = 0;  // drawn with the gap
  uint32_t bit_rot_bit_ = 0;

  Stats stats_;
  CorruptionLedger ledger_;
};

}  // namespace dynasim::sim
