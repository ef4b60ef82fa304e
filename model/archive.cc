// WAL archival, partition snapshots, the audit and the reference replica (see archive.h and
// docs/archival.md).
//
// Code map: scope and errors; keys; the segment codec and the pre-upload checks; the Archiver;
// the snapshot codec and uploader; the reference replica (its shared fold, the offline rebuild and
// the asynchronous builder); the audit.
#include "model/archive.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>

#include "model/scrub_protocol.h"
#include "model/wal_record.h"
#include "sim/check.h"

namespace dynasim::model {

namespace {

constexpr uint32_t kSegmentMagic = 0x4c415744;   // "DWAL", little-endian
constexpr uint32_t kSnapshotMagic = 0x504e5344;  // "DSNP"
constexpr uint8_t kSegmentFormat = 1;
constexpr uint8_t kSnapshotFormat = 1;
constexpr uint64_t kEntryChecksumSeed = 0x617263682d656e74;     // "arch-ent"
constexpr uint64_t kSegmentChecksumSeed = 0x617263682d736567;   // "arch-seg"
constexpr uint64_t kSnapshotChecksumSeed = 0x617263682d736e70;  // "arch-snp"
// Bytes of a segment entry besides its command: index, command id, length.
constexpr size_t kSegmentEntryHeaderBytes = 8 + 8 + 4;
constexpr size_t kTrailerBytes = 8;

ArchiveError make_error(ArchiveCheck check, LogIndex index, std::string field, std::string detail,
                        std::string key = std::string()) {
  return ArchiveError{check, index, std::move(field), std::move(detail), std::move(key)};
}

std::string u64_text(uint64_t value) {
  return std::to_string(value);
}

void put_manifest_scope(std::vector<uint8_t>& out, TableId table, GroupId group,
                        uint64_t hash_begin, uint64_t hash_end) {
  codec::put_u32(out, table.value);
  codec::put_u32(out, group.value);
  codec::put_u64(out, hash_begin);
  codec::put_u64(out, hash_end);
}

// Fills the trailer: the checksum of every byte before it.
void seal(std::vector<uint8_t>& out, uint64_t seed) {
  codec::put_u64(out, sim::hash_bytes(seed, out.data(), out.size()));
}

uint64_t stored_trailer(const std::vector<uint8_t>& bytes) {
  uint64_t value = 0;
  const size_t at = bytes.size() - kTrailerBytes;
  for (size_t i = 0; i < kTrailerBytes; ++i)
    value |= static_cast<uint64_t>(bytes[at + i]) << (8 * i);
  return value;
}

bool scope_matches(const ArchiveScope& scope, TableId table, GroupId group, uint64_t hash_begin,
                   uint64_t hash_end, std::string* field) {
  if (table != scope.table) {
    *field = "table";
  } else if (group != scope.group) {
    *field = "group";
  } else if (hash_begin != scope.hash_begin || hash_end != scope.hash_end) {
    *field = "hash_range";
  } else {
    return true;
  }
  return false;
}

std::string padded(uint64_t value, int width) {
  char text[32];
  std::snprintf(text, sizeof(text), "%0*" PRIu64, width, value);
  return text;
}

// Parses a run of exactly `width` decimal digits at text[at]; advances `at`.
bool parse_digits(const std::string& text, size_t* at, int width, uint64_t* value) {
  if (text.size() - *at < static_cast<size_t>(width)) return false;
  uint64_t result = 0;
  for (int i = 0; i < width; ++i) {
    const char c = text[*at + i];
    if (c < '0' || c > '9') return false;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (result > (UINT64_MAX - digit) / 10) return false;
    result = result * 10 + digit;
  }
  *at += width;
  *value = result;
  return true;
}

constexpr int kIdDigits = 10;
constexpr int kIndexDigits = 20;

std::string scope_path(TableId table, GroupId group) {
  return padded(table.value, kIdDigits) + "/" + padded(group.value, kIdDigits) + "/";
}

}  // namespace

// --- Scope and errors -------------------------------------------------------------------------

ArchiveScope ArchiveScope::of(TableId table, const GroupPlacement& placement,
                              std::optional<KeySchema> key_schema) {
  return ArchiveScope{table, placement.group, placement.hash_begin, placement.hash_end,
                      std::move(key_schema)};
}

std::string ArchiveScope::ownership_failure(const PrimaryKey& key) const {
  if (key_schema) {
    if (key.partition.type != key_schema->partition_key_type) return "partition_key_type";
    if (key.sort.has_value() != key_schema->sort_key_name.has_value()) return "sort_key";
    if (key.sort && key.sort->type != key_schema->sort_key_type) return "sort_key_type";
  }
  // The hash Placement::group_for routes by.
  const uint64_t hash = partition_hash(key.partition);
  if (hash < hash_begin || hash > hash_end) return "partition_hash";
  return std::string();
}

const char* to_string(ArchiveCheck check) {
  switch (check) {
    case ArchiveCheck::kNone:
      return "ok";
    case ArchiveCheck::kOwnership:
      return "ownership";
    case ArchiveCheck::kEntryChecksum:
      return "entry-checksum";
    case ArchiveCheck::kSequence:
      return "sequence";
    case ArchiveCheck::kEncoding:
      return "encoding";
    case ArchiveCheck::kObjectChecksum:
      return "object-checksum";
    case ArchiveCheck::kManifest:
      return "manifest";
    case ArchiveCheck::kDivergence:
      return "divergence";
    case ArchiveCheck::kIncomplete:
      return "incomplete";
    case ArchiveCheck::kStore:
      return "store";
  }
  return "?";
}

std::string to_string(const ArchiveError& error) {
  if (error.ok()) return "ok";
  std::string text = to_string(error.check);
  if (error.index.value != 0) text += " at index " + u64_text(error.index.value);
  if (!error.field.empty()) text += " (" + error.field + ")";
  if (!error.key.empty()) text += " in " + error.key;
  if (!error.detail.empty()) text += ": " + error.detail;
  return text;
}

// --- Keys ---------------------------------------------------------------------------------------

std::string segment_prefix(TableId table, GroupId group) {
  return "wal/" + scope_path(table, group);
}

std::string segment_key(TableId table, GroupId group, LogIndex first, LogIndex last) {
  return segment_prefix(table, group) + padded(first.value, kIndexDigits) + "-" +
         padded(last.value, kIndexDigits);
}

std::optional<std::pair<LogIndex, LogIndex>> parse_segment_key(const std::string& key,
                                                               const std::string& prefix) {
  if (key.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  size_t at = prefix.size();
  uint64_t first = 0;
  uint64_t last = 0;
  if (!parse_digits(key, &at, kIndexDigits, &first)) return std::nullopt;
  if (at >= key.size() || key[at] != '-') return std::nullopt;
  ++at;
  if (!parse_digits(key, &at, kIndexDigits, &last) || at != key.size()) return std::nullopt;
  return std::make_pair(LogIndex(first), LogIndex(last));
}

std::pair<LogIndex, LogIndex> segment_bounds(LogIndex index, uint64_t entries_per_segment) {
  DYN_ASSERT(index.value >= 1 && entries_per_segment > 0);
  const uint64_t k = (index.value - 1) / entries_per_segment;
  return {LogIndex(k * entries_per_segment + 1), LogIndex((k + 1) * entries_per_segment)};
}

std::string snapshot_prefix(TableId table, GroupId group) {
  return "snap/" + scope_path(table, group);
}

std::string snapshot_key(TableId table, GroupId group, LogIndex through) {
  return snapshot_prefix(table, group) + padded(through.value, kIndexDigits);
}

std::optional<LogIndex> parse_snapshot_key(const std::string& key, const std::string& prefix) {
  if (key.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  size_t at = prefix.size();
  uint64_t through = 0;
  if (!parse_digits(key, &at, kIndexDigits, &through) || at != key.size()) return std::nullopt;
  return LogIndex(through);
}

// --- Segments -----------------------------------------------------------------------------------

uint64_t archive_entry_checksum(LogIndex index, uint64_t command_id, const SharedBytes& bytes,
                                bool configuration) {
  const uint64_t seed = sim::splitmix64(
      sim::splitmix64(kEntryChecksumSeed ^ index.value) ^ command_id ^ (configuration ? 1 : 0));
  return sim::hash_bytes(seed, bytes.data(), bytes.size());
}

std::vector<uint8_t> encode_segment(const ArchiveScope& scope, LogIndex first, LogIndex last,
                                    const std::vector<ArchivedEntry>& entries) {
  DYN_ASSERT(first.value >= 1 && first <= last);
  size_t size =
      4 + 1 + 4 + 4 + 8 * 5 + entries.size() * (8 + kSegmentEntryHeaderBytes) + kTrailerBytes;
  for (const ArchivedEntry& entry : entries) size += entry.command_bytes.size();
  std::vector<uint8_t> out;
  out.reserve(size);
  codec::put_u32(out, kSegmentMagic);
  codec::put_u8(out, kSegmentFormat);
  put_manifest_scope(out, scope.table, scope.group, scope.hash_begin, scope.hash_end);
  codec::put_u64(out, first.value);
  codec::put_u64(out, last.value);
  codec::put_u64(out, entries.size());
  for (const ArchivedEntry& entry : entries) codec::put_u64(out, entry.checksum());
  for (const ArchivedEntry& entry : entries) {
    DYN_ASSERT(entry.index >= first && entry.index <= last);
    codec::put_u64(out, entry.index.value);
    codec::put_u64(out, entry.command_id);
    // As in a WAL record: the length's top bit marks a configuration entry.
    codec::put_u32(out, static_cast<uint32_t>(entry.command_bytes.size()) |
                            (entry.configuration ? kConfigurationFlag : 0));
    out.insert(out.end(), entry.command_bytes.begin(), entry.command_bytes.end());
  }
  seal(out, kSegmentChecksumSeed);
  return out;
}

ArchiveError decode_segment(const std::vector<uint8_t>& bytes, WalSegment* out) {
  constexpr size_t kManifestBytes = 4 + 1 + 4 + 4 + 8 * 5;
  if (bytes.size() < kManifestBytes + kTrailerBytes) {
    return make_error(ArchiveCheck::kEncoding, LogIndex(), "length",
                      "object of " + u64_text(bytes.size()) + " bytes is shorter than a manifest");
  }
  codec::Reader in{bytes};
  if (in.u32() != kSegmentMagic) {
    return make_error(ArchiveCheck::kEncoding, LogIndex(), "magic", "not a WAL segment");
  }
  if (in.u8() != kSegmentFormat) {
    return make_error(ArchiveCheck::kEncoding, LogIndex(), "format", "unknown segment format");
  }
  WalSegment segment;
  SegmentManifest& m = segment.manifest;
  m.table = TableId(in.u32());
  m.group = GroupId(in.u32());
  m.hash_begin = in.u64();
  m.hash_end = in.u64();
  m.first_index = LogIndex(in.u64());
  m.last_index = LogIndex(in.u64());
  m.entry_count = in.u64();
  if (m.first_index.value == 0 || m.first_index > m.last_index) {
    return make_error(ArchiveCheck::kManifest, LogIndex(), "first_index",
                      "bounds [" + u64_text(m.first_index.value) + ", " +
                          u64_text(m.last_index.value) + "] are not a segment");
  }
  if (m.hash_begin > m.hash_end) {
    return make_error(ArchiveCheck::kManifest, LogIndex(), "hash_range", "begin after end");
  }
  if (m.entry_count > m.last_index - m.first_index + 1) {
    return make_error(ArchiveCheck::kManifest, LogIndex(), "entry_count",
                      u64_text(m.entry_count) + " entries for " +
                          u64_text(m.last_index - m.first_index + 1) + " indexes");
  }
  const size_t body_bytes = bytes.size() - kTrailerBytes - in.at;
  if (m.entry_count > body_bytes / (8 + kSegmentEntryHeaderBytes)) {
    return make_error(ArchiveCheck::kEncoding, LogIndex(), "entry_count",
                      u64_text(m.entry_count) + " entries cannot fit in the object");
  }
  m.entry_checksums.reserve(m.entry_count);
  for (uint64_t i = 0; i < m.entry_count; ++i) m.entry_checksums.push_back(in.u64());
  segment.entries.reserve(m.entry_count);
  const size_t body_end = bytes.size() - kTrailerBytes;
  for (uint64_t i = 0; i < m.entry_count; ++i) {
    ArchivedEntry entry;
    entry.index = LogIndex(in.u64());
    entry.command_id = in.u64();
    const uint32_t length_and_flag = in.u32();
    entry.configuration = (length_and_flag & kConfigurationFlag) != 0;
    const uint32_t length = length_and_flag & ~kConfigurationFlag;
    if (!in.ok || in.at > body_end || body_end - in.at < length) {
      return make_error(ArchiveCheck::kEncoding, entry.index, "length",
                        "entry " + u64_text(i) + " runs past the end of the object");
    }
    if (entry.index < m.first_index || entry.index > m.last_index) {
      return make_error(ArchiveCheck::kManifest, entry.index, "index",
                        "entry outside the manifest's bounds");
    }
    if (!segment.entries.empty() && entry.index <= segment.entries.back().index) {
      return make_error(ArchiveCheck::kSequence, entry.index, "index",
                        "entry repeats or goes back (previous " +
                            u64_text(segment.entries.back().index.value) + ")");
    }
    entry.command_bytes =
        std::vector<uint8_t>(bytes.begin() + static_cast<ptrdiff_t>(in.at),
                             bytes.begin() + static_cast<ptrdiff_t>(in.at + length));
    in.at += length;
    segment.entries.push_back(std::move(entry));
  }
  if (!in.ok || in.at != body_end) {
    return make_error(ArchiveCheck::kEncoding, LogIndex(), "length",
                      "bytes left over after the last entry");
  }
  for (size_t i = 0; i < segment.entries.size(); ++i) {
    if (segment.entries[i].checksum() != m.entry_checksums[i]) {
      return make_error(ArchiveCheck::kEntryChecksum, segment.entries[i].index, "checksum",
                        "entry bytes do not match the manifest's checksum");
    }
  }
  m.object_checksum = stored_trailer(bytes);
  if (sim::hash_bytes(kSegmentChecksumSeed, bytes.data(), body_end) != m.object_checksum) {
    return make_error(ArchiveCheck::kObjectChecksum, LogIndex(), "object_checksum",
                      "the object's bytes do not match its checksum");
  }
  *out = std::move(segment);
  return ArchiveError{};
}

bool is_non_write_command(const Command& command) {
  return command.is_noop() || command.is_configuration() || DigestMarker::is_marker(command.bytes);
}

ArchiveError check_segment_entries(const ArchiveScope& scope, LogIndex first, LogIndex last,
                                   const std::vector<ArchivedEntry>& entries,
                                   const std::vector<uint64_t>& recorded_checksums,
                                   SequenceCheck sequence_check) {
  DYN_ASSERT(recorded_checksums.size() == entries.size());
  const bool enforce = sequence_check == SequenceCheck::kEnforce;
  for (size_t i = 0; i < entries.size(); ++i) {
    const ArchivedEntry& entry = entries[i];
    if (enforce) {
      const LogIndex expected = first + i;
      if (entry.index != expected) {
        return make_error(ArchiveCheck::kSequence, expected, "index",
                          "expected index " + u64_text(expected.value) + ", found " +
                              u64_text(entry.index.value) +
                              (entry.index > expected ? " (a hole)" : " (a repeat)"));
      }
    }
    if (entry.checksum() != recorded_checksums[i]) {
      return make_error(ArchiveCheck::kEntryChecksum, entry.index, "checksum",
                        "the entry's bytes no longer match the checksum recorded when it was "
                        "read from the WAL");
    }
    const Command command = entry.command();
    if (is_non_write_command(command)) continue;  // not a partition's data
    WriteCommand write;
    if (!WriteCommand::decode(command.bytes, &write)) {
      return make_error(ArchiveCheck::kOwnership, entry.index, "command",
                        "not a no-op, configuration or marker, and does not decode as a write "
                        "command");
    }
    const std::string failure = scope.ownership_failure(write.key);
    if (!failure.empty()) {
      return make_error(ArchiveCheck::kOwnership, entry.index, failure,
                        "the key is not table " + u64_text(scope.table.value) + ", group " +
                            u64_text(scope.group.value) + "'s");
    }
  }
  if (enforce && entries.size() < last - first + 1) {
    const LogIndex missing = first + entries.size();
    return make_error(ArchiveCheck::kSequence, missing, "index",
                      "no entry for index " + u64_text(missing.value) + "; the segment ends at " +
                          u64_text(last.value));
  }
  return ArchiveError{};
}

// --- Retry --------------------------------------------------------------------------------------

sim::Duration RetryBackoff::next(sim::Random& random) {
  const sim::Duration ceiling = next_;
  const int64_t half = ceiling.ns / 2;
  const sim::Duration wait = sim::Duration(half + (half > 0 ? random.uniform_int(0, half - 1) : 0));
  next_ = std::min(ceiling * 2, options_.max);
  return std::max(wait, sim::Duration(1));
}

// --- The Archiver -------------------------------------------------------------------------------

const char* to_string(OfferStatus status) {
  switch (status) {
    case OfferStatus::kAccepted:
      return "accepted";
    case OfferStatus::kBelowStart:
      return "below-start";
    case OfferStatus::kAlreadyOffered:
      return "already-offered";
    case OfferStatus::kBackPressure:
      return "back-pressure";
    case OfferStatus::kHalted:
      return "halted";
  }
  return "?";
}

Archiver::Archiver(ArchiverOptions options, ArchiveIo& io, sim::Random random)
    : options_(std::move(options)), io_(io), random_(random), backoff_(options_.retry) {
  DYN_ASSERT_MSG(options_.entries_per_segment > 0, "entries_per_segment must be positive");
  DYN_ASSERT_MSG(options_.max_pending_entries >= options_.entries_per_segment,
                 "max_pending_entries must hold at least one segment");
  DYN_ASSERT(options_.retry.initial > sim::Duration(0) &&
             options_.retry.max >= options_.retry.initial);
}

OfferStatus Archiver::offer(const LogEntry& entry) {
  const uint64_t every = options_.plant_alter_entry_every;
  if (every > 0 && entry.index.value % every == 0 && !is_non_write_command(entry.command)) {
    WriteCommand write;
    if (WriteCommand::decode(entry.command.bytes, &write) && write.op == StorageOp::kPut) {
      write.item.set("planted_archive_alteration", true);  // the planted bug
      LogEntry altered = entry;
      altered.command.bytes = write.encode();
      return offer(altered, archive_entry_checksum(altered));
    }
  }
  return offer(entry, archive_entry_checksum(entry));
}

OfferStatus Archiver::offer(const LogEntry& entry, uint64_t recorded_checksum) {
  DYN_ASSERT_MSG(!entry.is_hole(), "only committed entries are archived");
  if (halted()) return OfferStatus::kHalted;
  if (entry.index <= start_after_) return OfferStatus::kBelowStart;
  if (entry.index <= offered_through_) return OfferStatus::kAlreadyOffered;
  if (pending_.size() >= options_.max_pending_entries) {
    ++stats_.back_pressure_refusals;
    return OfferStatus::kBackPressure;
  }
  pending_.push_back(Held{ArchivedEntry::of(entry), recorded_checksum});
  offered_through_ = entry.index;
  pump();
  return OfferStatus::kAccepted;
}

void Archiver::start_after(LogIndex through) {
  DYN_ASSERT_MSG(through >= start_after_, "a replica's start only moves forward");
  start_after_ = through;
  while (!pending_.empty() && pending_.front().entry.index <= through) pending_.pop_front();
  offered_through_ = std::max(offered_through_, through);
  const uint64_t n = options_.entries_per_segment;
  archived_through_ = std::max(archived_through_, LogIndex(through.value / n * n));
  if (in_flight_ && in_flight_->first <= through) {
    // Its entries are gone or the segment is now held in part: start it again from scratch.
    in_flight_.reset();
    phase_ = Phase::kIdle;
    ++generation_;
  }
  pump();
}

bool Archiver::next_segment(LogIndex* first, LogIndex* last) const {
  const uint64_t n = options_.entries_per_segment;
  *first = archived_through_.next();
  *last = archived_through_ + n;
  if (options_.plant_accept_sequence_gap && !pending_.empty() &&
      pending_.front().entry.index > *last) {
    // The planted bug: skip past missing segments to the one holding the next entry held.
    const auto bounds = segment_bounds(pending_.front().entry.index, n);
    *first = bounds.first;
    *last = bounds.second;
  }
  return offered_through_ >= *last;
}

void Archiver::pump() {
  if (halted() || in_flight_) return;
  LogIndex first;
  LogIndex last;
  if (next_segment(&first, &last)) start_segment(first, last);
}

void Archiver::start_segment(LogIndex first, LogIndex last) {
  InFlight segment;
  segment.first = first;
  segment.last = last;
  segment.held_whole = start_after_ < first;
  segment.key = segment_key(options_.scope.table, options_.scope.group, first, last);
  std::vector<ArchivedEntry> entries;
  std::vector<uint64_t> recorded;
  for (const Held& held : pending_) {
    if (held.entry.index > last) break;
    entries.push_back(held.entry);
    recorded.push_back(held.recorded_checksum);
  }
  segment.entry_count = entries.size();
  const SequenceCheck sequence =
      options_.plant_accept_sequence_gap ? SequenceCheck::kSkip : SequenceCheck::kEnforce;
  // A segment held in part is checked over the part held: (start_after_, last].
  const LogIndex checked_from = segment.held_whole ? first : start_after_.next();
  ArchiveError error =
      check_segment_entries(options_.scope, checked_from, last, entries, recorded, sequence);
  if (!error.ok()) {
    error.key = segment.key;
    halt(std::move(error));
    return;
  }
  if (segment.held_whole) {
    std::vector<uint8_t> bytes = encode_segment(options_.scope, first, last, entries);
    segment.content_checksum = sim::object_checksum(bytes);
    segment.bytes = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  }
  in_flight_ = std::move(segment);
  ++generation_;
  checksum_refusals_in_a_row_ = 0;
  issue_get();
}

void Archiver::issue_get() {
  DYN_ASSERT(in_flight_);
  phase_ = Phase::kGetting;
  io_.get(in_flight_->key, [this, generation = generation_](sim::ObjectResult result) {
    on_get(generation, std::move(result));
  });
}

void Archiver::issue_put() {
  DYN_ASSERT(in_flight_ && in_flight_->held_whole);
  phase_ = Phase::kPutting;
  io_.put(
      in_flight_->key, in_flight_->bytes, in_flight_->content_checksum,
      [this, generation = generation_](sim::ObjectStatus status) { on_put(generation, status); });
}

void Archiver::on_get(uint64_t generation, sim::ObjectResult result) {
  if (generation != generation_ || phase_ != Phase::kGetting || halted()) return;
  switch (result.status) {
    case sim::ObjectStatus::kOk:
      DYN_ASSERT(result.data != nullptr);
      compare_with_stored(result.data);
      return;
    case sim::ObjectStatus::kNotFound:
      if (in_flight_->held_whole) {
        issue_put();
      } else {
        // Only a replica that holds the whole segment can build it: wait for a peer's upload.
        ++stats_.waits_for_peer_segment;
        retry_later(Retry::kGet);
      }
      return;
    case sim::ObjectStatus::kUnavailable:
    case sim::ObjectStatus::kChecksumMismatch:
      ++stats_.get_retries;
      retry_later(Retry::kGet);
      return;
  }
}

void Archiver::on_put(uint64_t generation, sim::ObjectStatus status) {
  if (generation != generation_ || phase_ != Phase::kPutting || halted()) return;
  switch (status) {
    case sim::ObjectStatus::kOk:
      ++stats_.segments_uploaded;
      acknowledge();
      return;
    case sim::ObjectStatus::kChecksumMismatch:
      ++stats_.checksum_refusals;
      if (++checksum_refusals_in_a_row_ >= options_.max_checksum_refusals) {
        halt(make_error(ArchiveCheck::kObjectChecksum, LogIndex(), "content_checksum",
                        "the store refused the segment's checksum " +
                            u64_text(checksum_refusals_in_a_row_) + " times in a row",
                        in_flight_->key));
        return;
      }
      retry_later(Retry::kPut);
      return;
    case sim::ObjectStatus::kUnavailable:
    case sim::ObjectStatus::kNotFound:
      ++stats_.put_retries;
      retry_later(Retry::kPut);
      return;
  }
}

void Archiver::compare_with_stored(const sim::ObjectBytes& stored) {
  const InFlight& segment = *in_flight_;
  if (segment.held_whole && *stored == *segment.bytes) {
    ++stats_.segments_matched;
    acknowledge();
    return;
  }
  WalSegment theirs;
  ArchiveError decoded = decode_segment(*stored, &theirs);
  if (!decoded.ok()) {
    halt(make_error(ArchiveCheck::kDivergence, decoded.index, decoded.field,
                    "the archived object fails its checks: " + to_string(decoded), segment.key));
    return;
  }
  // Walk both in index order over the part this replica holds; the first index where they differ.
  const LogIndex from = segment.held_whole ? segment.first : start_after_.next();
  size_t mine = 0;
  size_t other = 0;
  while (other < theirs.entries.size() && theirs.entries[other].index < from) ++other;
  for (LogIndex index = from; index <= segment.last; index = index.next()) {
    const bool have_mine = mine < segment.entry_count && pending_[mine].entry.index == index;
    const bool have_other = other < theirs.entries.size() && theirs.entries[other].index == index;
    if (!have_mine && !have_other) continue;
    if (have_mine != have_other || !(pending_[mine].entry == theirs.entries[other])) {
      const std::string detail =
          !have_other  ? "the archived segment has no entry at this index"
          : !have_mine ? "the archived segment has an entry this replica does not"
          : pending_[mine].entry.command_id != theirs.entries[other].command_id
              ? "another replica archived a different command here"
              : "another replica archived different command bytes here";
      halt(make_error(ArchiveCheck::kDivergence, index, "command", detail, segment.key));
      return;
    }
    ++mine;
    ++other;
  }
  if (segment.held_whole) {
    // Every entry agrees but the bytes differ: the manifest does (scope or bounds).
    halt(make_error(ArchiveCheck::kDivergence, LogIndex(), "manifest",
                    "same entries, different manifest", segment.key));
    return;
  }
  ++stats_.partial_segments_matched;
  acknowledge();
}

void Archiver::acknowledge() {
  DYN_ASSERT(in_flight_);
  DYN_ASSERT(in_flight_->last > archived_through_);
  archived_through_ = in_flight_->last;
  for (size_t i = 0; i < in_flight_->entry_count; ++i) pending_.pop_front();
  DYN_ASSERT(pending_.empty() || pending_.front().entry.index > archived_through_);
  in_flight_.reset();
  phase_ = Phase::kIdle;
  backoff_.reset();
  pump();
}

void Archiver::retry_later(Retry what) {
  retry_ = what;
  phase_ = Phase::kWaiting;
  io_.set_timer(backoff_.next(random_), generation_);
}

void Archiver::on_timer(uint64_t cookie) {
  if (cookie != generation_ || phase_ != Phase::kWaiting || halted() || !in_flight_) return;
  if (retry_ == Retry::kGet) {
    issue_get();
  } else {
    issue_put();
  }
}

void Archiver::halt(ArchiveError error) {
  DYN_ASSERT(!error.ok());
  failure_ = std::move(error);
  phase_ = Phase::kIdle;
  in_flight_.reset();
  ++generation_;
  io_.report_failure(failure_);
}

// --- Snapshots ----------------------------------------------------------------------------------

uint64_t item_content_hash(const Item& item) {
  return item.checksum();
}

ArchiveError encode_snapshot(const ArchiveScope& scope, LogIndex through,
                             const std::vector<Item>& items, std::vector<uint8_t>* out) {
  uint64_t digest = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0 && !(items[i - 1].key() < items[i].key())) {
      return make_error(ArchiveCheck::kManifest, through, "key_order",
                        "item " + u64_text(i) + " is not after the one before it");
    }
    const std::string failure = scope.ownership_failure(items[i].key());
    if (!failure.empty()) {
      return make_error(ArchiveCheck::kOwnership, through, failure,
                        "item " + u64_text(i) + " is not the group's");
    }
    digest += item_content_hash(items[i]);
  }
  std::vector<uint8_t> bytes;
  codec::put_u32(bytes, kSnapshotMagic);
  codec::put_u8(bytes, kSnapshotFormat);
  put_manifest_scope(bytes, scope.table, scope.group, scope.hash_begin, scope.hash_end);
  codec::put_u64(bytes, through.value);
  codec::put_u64(bytes, items.size());
  codec::put_u64(bytes, digest);
  for (const Item& item : items) {
    const size_t at = bytes.size();
    codec::put_u32(bytes, 0);
    item.encode_to(bytes);
    const uint64_t length = bytes.size() - at - 4;
    DYN_ASSERT(length <= UINT32_MAX);
    for (size_t i = 0; i < 4; ++i) bytes[at + i] = static_cast<uint8_t>(length >> (8 * i));
  }
  seal(bytes, kSnapshotChecksumSeed);
  *out = std::move(bytes);
  return ArchiveError{};
}

ArchiveError decode_snapshot(const std::vector<uint8_t>& bytes, PartitionSnapshot* out) {
  constexpr size_t kManifestBytes = 4 + 1 + 4 + 4 + 8 * 5;
  if (bytes.size() < kManifestBytes + kTrailerBytes) {
    return make_error(ArchiveCheck::kEncoding, LogIndex(), "length",
                      "object of " + u64_text(bytes.size()) + " bytes is shorter than a manifest");
  }
  codec::Reader in{bytes};
  if (in.u32() != kSnapshotMagic) {
    return make_error(ArchiveCheck::kEncoding, LogIndex(), "magic", "not a partition snapshot");
  }
  if (in.u8() != kSnapshotFormat) {
    return make_error(ArchiveCheck::kEncoding, LogIndex(), "format", "unknown snapshot format");
  }
  PartitionSnapshot snapshot;
  SnapshotManifest& m = snapshot.manifest;
  m.table = TableId(in.u32());
  m.group = GroupId(in.u32());
  m.hash_begin = in.u64();
  m.hash_end = in.u64();
  m.through = LogIndex(in.u64());
  m.item_count = in.u64();
  m.content_digest = in.u64();
  const size_t body_end = bytes.size() - kTrailerBytes;
  if (m.item_count > (body_end - in.at) / 4) {
    return make_error(ArchiveCheck::kEncoding, m.through, "item_count",
                      u64_text(m.item_count) + " items cannot fit in the object");
  }
  snapshot.items.reserve(m.item_count);
  uint64_t digest = 0;
  for (uint64_t i = 0; i < m.item_count; ++i) {
    const uint32_t length = in.u32();
    if (!in.ok || in.at > body_end || body_end - in.at < length) {
      return make_error(ArchiveCheck::kEncoding, m.through, "length",
                        "item " + u64_text(i) + " runs past the end of the object");
    }
    Item item;
    if (!Item::decode(bytes.data() + in.at, length, &item)) {
      return make_error(ArchiveCheck::kEncoding, m.through, "item",
                        "item " + u64_text(i) + " does not decode");
    }
    in.at += length;
    if (!snapshot.items.empty() && !(snapshot.items.back().key() < item.key())) {
      return make_error(ArchiveCheck::kManifest, m.through, "key_order",
                        "item " + u64_text(i) + " is not after the one before it");
    }
    const uint64_t hash = partition_hash(item.key().partition);
    if (hash < m.hash_begin || hash > m.hash_end) {
      return make_error(ArchiveCheck::kOwnership, m.through, "partition_hash",
                        "item " + u64_text(i) + " is outside the manifest's hash range");
    }
    digest += item_content_hash(item);
    snapshot.items.push_back(std::move(item));
  }
  if (!in.ok || in.at != body_end) {
    return make_error(ArchiveCheck::kEncoding, m.through, "length",
                      "bytes left over after the last item");
  }
  if (digest != m.content_digest) {
    return make_error(ArchiveCheck::kManifest, m.through, "content_digest",
                      "the items' digest does not match the manifest's");
  }
  m.object_checksum = stored_trailer(bytes);
  if (sim::hash_bytes(kSnapshotChecksumSeed, bytes.data(), body_end) != m.object_checksum) {
    return make_error(ArchiveCheck::kObjectChecksum, m.through, "object_checksum",
                      "the object's bytes do not match its checksum");
  }
  *out = std::move(snapshot);
  return ArchiveError{};
}

SnapshotUploader::SnapshotUploader(ArchiveScope scope, ArchiveIo& io, sim::Random random,
                                   RetryOptions retry)
    : scope_(std::move(scope)), io_(io), random_(random), backoff_(retry) {}

SnapshotUploader::Start SnapshotUploader::upload(LogIndex through, const std::vector<Item>& items,
                                                 ArchiveError* refusal) {
  if (in_flight_) return Start::kBusy;
  std::vector<uint8_t> bytes;
  ArchiveError error = encode_snapshot(scope_, through, items, &bytes);
  if (!error.ok()) {
    if (refusal != nullptr) *refusal = std::move(error);
    return Start::kRefused;
  }
  InFlight upload;
  upload.through = through;
  upload.key = snapshot_key(scope_.table, scope_.group, through);
  upload.content_checksum = sim::object_checksum(bytes);
  upload.bytes = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
  in_flight_ = std::move(upload);
  ++generation_;
  backoff_.reset();
  issue_put();
  return Start::kStarted;
}

void SnapshotUploader::issue_put() {
  DYN_ASSERT(in_flight_);
  io_.put(in_flight_->key, in_flight_->bytes, in_flight_->content_checksum,
          [this, generation = generation_](sim::ObjectStatus status) {
            if (generation != generation_ || !in_flight_) return;
            if (status == sim::ObjectStatus::kOk) {
              uploaded_through_ = std::max(uploaded_through_, in_flight_->through);
              in_flight_.reset();
              return;
            }
            ++retries_;
            io_.set_timer(backoff_.next(random_), generation_);
          });
}

void SnapshotUploader::on_timer(uint64_t cookie) {
  if (cookie != generation_ || !in_flight_) return;
  issue_put();
}

// --- The reference replica ----------------------------------------------------------------------

bool apply_archived_command(const Command& command, std::map<PrimaryKey, Item>& items,
                            bool* condition_failed) {
  *condition_failed = false;
  if (is_non_write_command(command)) return true;
  WriteCommand write;
  if (!WriteCommand::decode(command.bytes, &write)) return false;
  auto found = items.find(write.key);
  const Item* current = found == items.end() ? nullptr : &found->second;
  // The replicas' own semantics (WriteCommand::apply_to): conditions, then the put, delete or
  // update; a refused update changes nothing, as a failed condition does.
  WriteEffect effect = write.apply_to(current);
  if (effect.status == StorageStatus::kConditionFailed) {
    *condition_failed = true;
    return true;
  }
  if (effect.change == WriteEffect::Change::kPut) {
    if (found == items.end()) {
      items.emplace(write.key, std::move(effect.item));
    } else {
      found->second = std::move(effect.item);
    }
  } else if (effect.change == WriteEffect::Change::kErase) {
    items.erase(found);
  }
  return true;
}

namespace {

std::vector<SegmentRef> segment_refs(std::vector<std::string> keys, const std::string& prefix,
                                     std::vector<std::string>* unparsed) {
  std::vector<SegmentRef> segments;
  for (std::string& key : keys) {
    const auto bounds = parse_segment_key(key, prefix);
    if (!bounds) {
      if (unparsed != nullptr) unparsed->push_back(std::move(key));
      continue;
    }
    segments.push_back(SegmentRef{bounds->first, bounds->second, std::move(key)});
  }
  // Zero-padded keys list in (first, last) order already; sorting states it.
  std::sort(segments.begin(), segments.end(), [](const SegmentRef& a, const SegmentRef& b) {
    return a.first != b.first ? a.first < b.first : a.last < b.last;
  });
  return segments;
}

std::vector<SegmentRef> list_segments(const sim::ObjectStore& store, const ArchiveScope& scope,
                                      std::vector<std::string>* unparsed) {
  const std::string prefix = segment_prefix(scope.table, scope.group);
  return segment_refs(store.peek_keys(prefix), prefix, unparsed);
}

ArchiveError check_segment_manifest(const ArchiveScope& scope, const SegmentRef& ref,
                                    const WalSegment& segment) {
  const SegmentManifest& m = segment.manifest;
  std::string field;
  if (!scope_matches(scope, m.table, m.group, m.hash_begin, m.hash_end, &field)) {
    return make_error(ArchiveCheck::kManifest, LogIndex(), field,
                      "the manifest names another table, group or range", ref.key);
  }
  if (m.first_index != ref.first || m.last_index != ref.last) {
    return make_error(ArchiveCheck::kManifest, LogIndex(),
                      m.first_index != ref.first ? "first_index" : "last_index",
                      "the manifest's bounds [" + u64_text(m.first_index.value) + ", " +
                          u64_text(m.last_index.value) + "] are not the key's",
                      ref.key);
  }
  return ArchiveError{};
}

// The segment stored under ref.key, decoded and its manifest checked against the key and the
// scope. A failure names the key.
ArchiveError check_segment_object(const ArchiveScope& scope, const SegmentRef& ref,
                                  const std::vector<uint8_t>& bytes, WalSegment* out) {
  ArchiveError error = decode_segment(bytes, out);
  if (error.ok()) error = check_segment_manifest(scope, ref, *out);
  if (error.key.empty()) error.key = ref.key;
  return error;
}

// The snapshot stored under `key` (which names `at`), decoded and its manifest checked against the
// key and the scope. A failure names the key.
ArchiveError check_snapshot_object(const ArchiveScope& scope, LogIndex at, const std::string& key,
                                   const std::vector<uint8_t>& bytes, PartitionSnapshot* out) {
  ArchiveError error = decode_snapshot(bytes, out);
  const SnapshotManifest& m = out->manifest;
  std::string field;
  if (error.ok() && !scope_matches(scope, m.table, m.group, m.hash_begin, m.hash_end, &field)) {
    error = make_error(ArchiveCheck::kManifest, at, field,
                       "the manifest names another table, group or range");
  }
  if (error.ok() && m.through != at) {
    error = make_error(ArchiveCheck::kManifest, at, "through",
                       "the manifest's through is not the key's");
  }
  if (error.key.empty()) error.key = key;
  return error;
}

// --- The reference replica's fold, shared by the offline rebuild and ReferenceBuilder ----------
//
// A fold holds the replica being built and `next`, the next index to apply. It starts at a
// snapshot or empty (next = 1), takes the listed segments in index order (segment_use says which
// it needs), applies each needed one (fold_segment), and ends with finish_fold.

// The newest snapshot with through <= `through` among listed keys.
std::optional<std::pair<LogIndex, std::string>> newest_snapshot(
    const std::vector<std::string>& keys, const std::string& prefix, LogIndex through) {
  std::optional<std::pair<LogIndex, std::string>> chosen;
  for (const std::string& key : keys) {
    const std::optional<LogIndex> at = parse_snapshot_key(key, prefix);
    if (at && *at <= through && (!chosen || *at > chosen->first)) chosen.emplace(*at, key);
  }
  return chosen;
}

// Starts the fold from a verified snapshot; returns the next index to apply.
LogIndex fold_snapshot(ReferenceReplica& replica, PartitionSnapshot snapshot) {
  replica.snapshot_through = snapshot.manifest.through;
  for (Item& item : snapshot.items) {
    PrimaryKey key = item.key();
    replica.items.emplace(std::move(key), std::move(item));
  }
  return replica.snapshot_through.next();
}

enum class SegmentUse : uint8_t {
  kBehind,  // ends before `next`: skip it
  kNeeded,  // holds `next`: apply it
  kDone,    // `next` is past `through`: nothing more is needed
  kGap,     // starts after `next`: no segment holds `next` (*error says so)
};

SegmentUse segment_use(const ReferenceReplica& replica, LogIndex next, const SegmentRef& ref,
                       ArchiveError* error) {
  if (next > replica.through) return SegmentUse::kDone;
  if (ref.last < next) return SegmentUse::kBehind;
  if (ref.first > next) {
    *error = make_error(
        ArchiveCheck::kSequence, next, "index",
        "no archived segment holds this index; the next one starts at " + u64_text(ref.first.value),
        ref.key);
    return SegmentUse::kGap;
  }
  return SegmentUse::kNeeded;
}

// Applies the segment's entries (*next, through] in order, each index exactly once.
ArchiveError fold_segment(ReferenceReplica& replica, LogIndex* next, const SegmentRef& ref,
                          const WalSegment& segment) {
  for (const ArchivedEntry& entry : segment.entries) {
    if (entry.index < *next) continue;
    if (entry.index > replica.through) break;
    if (entry.index != *next) {
      return make_error(
          ArchiveCheck::kSequence, *next, "index",
          "a hole inside the segment (next entry " + u64_text(entry.index.value) + ")", ref.key);
    }
    bool condition_failed = false;
    if (!apply_archived_command(entry.command(), replica.items, &condition_failed)) {
      return make_error(ArchiveCheck::kEncoding, entry.index, "command",
                        "a committed entry does not decode as a write command", ref.key);
    }
    replica.conditions_failed += condition_failed ? 1 : 0;
    ++replica.entries_applied;
    *next = next->next();
  }
  return ArchiveError{};
}

// Ends the fold: the first error if any (the items are dropped), else kIncomplete if the archive
// stopped short of `through`, else the digest and count.
void finish_fold(ReferenceReplica& replica, LogIndex next, ArchiveError error) {
  if (error.ok() && next <= replica.through) {
    error = make_error(ArchiveCheck::kIncomplete, next, "index",
                       "the archive ends at index " + u64_text(next.value - 1) + ", below " +
                           u64_text(replica.through.value));
  }
  if (!error.ok()) {
    replica.error = std::move(error);
    replica.items.clear();
    return;
  }
  for (const auto& [key, item] : replica.items) replica.content_digest += item_content_hash(item);
  replica.item_count = replica.items.size();
}

}  // namespace

ReferenceReplica rebuild_reference_replica(const sim::ObjectStore& store, const ArchiveScope& scope,
                                           LogIndex through) {
  ReferenceReplica replica;
  replica.through = through;
  LogIndex next(1);
  ArchiveError error;
  const std::string snap_prefix = snapshot_prefix(scope.table, scope.group);
  if (const auto chosen = newest_snapshot(store.peek_keys(snap_prefix), snap_prefix, through)) {
    PartitionSnapshot snapshot;
    error = check_snapshot_object(scope, chosen->first, chosen->second, *store.peek(chosen->second),
                                  &snapshot);
    if (error.ok()) next = fold_snapshot(replica, std::move(snapshot));
  }
  const std::vector<SegmentRef> segments =
      error.ok() ? list_segments(store, scope, nullptr) : std::vector<SegmentRef>();
  for (const SegmentRef& ref : segments) {
    const SegmentUse use = segment_use(replica, next, ref, &error);
    if (use == SegmentUse::kBehind) continue;
    if (use != SegmentUse::kNeeded) break;
    WalSegment segment;
    error = check_segment_object(scope, ref, *store.peek(ref.key), &segment);
    if (error.ok()) error = fold_segment(replica, &next, ref, segment);
    if (!error.ok()) break;
  }
  finish_fold(replica, next, std::move(error));
  return replica;
}

// --- The reference builder ----------------------------------------------------------------------

namespace {
constexpr uint64_t kBuilderGenerationMask = ReferenceBuilder::kCookieTag - 1;
}  // namespace

ReferenceBuilder::ReferenceBuilder(ReferenceBuilderOptions options, ArchiveIo& io,
                                   sim::Random random)
    : options_(std::move(options)),
      io_(io),
      random_(random),
      backoff_(options_.retry),
      snapshot_prefix_(snapshot_prefix(options_.scope.table, options_.scope.group)),
      segment_prefix_(segment_prefix(options_.scope.table, options_.scope.group)) {
  DYN_ASSERT_MSG(options_.max_attempts >= 1, "max_attempts must be at least 1");
  DYN_ASSERT(options_.retry.initial > sim::Duration(0) &&
             options_.retry.max >= options_.retry.initial);
}

ReferenceBuilder::Start ReferenceBuilder::start(LogIndex through, Done done) {
  if (running()) return Start::kBusy;
  replica_ = ReferenceReplica{};
  replica_.through = through;
  next_ = LogIndex(1);
  snapshot_.reset();
  segments_.clear();
  segment_at_ = 0;
  done_ = std::move(done);
  attempts_ = 0;
  backoff_.reset();
  step_ = Step::kListSnapshots;
  issue();
  return Start::kStarted;
}

void ReferenceBuilder::cancel() {
  step_ = Step::kIdle;
  waiting_ = false;
  ++generation_;
  done_.reset();
  replica_ = ReferenceReplica{};
  segments_.clear();
}

const std::string& ReferenceBuilder::target() const {
  switch (step_) {
    case Step::kListSnapshots:
      return snapshot_prefix_;
    case Step::kGetSnapshot:
      return snapshot_->second;
    case Step::kListSegments:
      return segment_prefix_;
    case Step::kGetSegment:
      return segments_[segment_at_].key;
    case Step::kIdle:
      break;
  }
  DYN_ASSERT_MSG(false, "no call in an idle builder");
  return snapshot_prefix_;
}

void ReferenceBuilder::issue() {
  waiting_ = false;
  ++generation_;
  ++calls_;
  // Each reply checks that the builder still exists, then that the call is still current.
  auto current = [this, alive = std::weak_ptr<const bool>(alive_), generation = generation_]() {
    return !alive.expired() && generation == generation_ && running() && !waiting_;
  };
  if (step_ == Step::kListSnapshots || step_ == Step::kListSegments) {
    io_.list(target(), [this, current](sim::ObjectStatus status, std::vector<std::string> keys) {
      if (current()) on_list(status, std::move(keys));
    });
  } else {
    io_.get(target(), [this, current](sim::ObjectResult result) {
      if (current()) on_get(std::move(result));
    });
  }
}

// kOk: true. Otherwise false, and either a retry is set (kUnavailable, and a get's
// kChecksumMismatch) or the build has failed.
bool ReferenceBuilder::take_answer(sim::ObjectStatus status) {
  if (status == sim::ObjectStatus::kOk) {
    attempts_ = 0;
    backoff_.reset();
    return true;
  }
  // kNotFound: an object the list named is gone (the store deletes nothing), so no retry.
  const bool transient =
      status == sim::ObjectStatus::kUnavailable || status == sim::ObjectStatus::kChecksumMismatch;
  ++attempts_;
  if (!transient || attempts_ >= options_.max_attempts) {
    finish(make_error(ArchiveCheck::kStore, LogIndex(), "status",
                      std::string("the store answered ") + sim::to_string(status) +
                          (transient ? " " + u64_text(attempts_) + " times in a row" : ""),
                      target()));
    return false;
  }
  ++retries_;
  waiting_ = true;
  io_.set_timer(backoff_.next(random_), kCookieTag | (generation_ & kBuilderGenerationMask));
  return false;
}

void ReferenceBuilder::on_timer(uint64_t cookie) {
  if (!waiting_ || !running() || cookie != (kCookieTag | (generation_ & kBuilderGenerationMask))) {
    return;
  }
  issue();
}

void ReferenceBuilder::on_list(sim::ObjectStatus status, std::vector<std::string> keys) {
  if (!take_answer(status)) return;
  if (step_ == Step::kListSnapshots) {
    snapshot_ = newest_snapshot(keys, snapshot_prefix_, replica_.through);
    if (snapshot_) {
      step_ = Step::kGetSnapshot;
      issue();
    } else {
      list_segments_or_finish();
    }
    return;
  }
  DYN_ASSERT(step_ == Step::kListSegments);
  segments_ = segment_refs(std::move(keys), segment_prefix_, nullptr);
  segment_at_ = 0;
  next_segment();
}

void ReferenceBuilder::on_get(sim::ObjectResult result) {
  if (!take_answer(result.status)) return;
  DYN_ASSERT(result.data != nullptr);
  if (step_ == Step::kGetSnapshot) {
    on_snapshot(*result.data);
  } else {
    DYN_ASSERT(step_ == Step::kGetSegment);
    on_segment(*result.data);
  }
}

void ReferenceBuilder::on_snapshot(const std::vector<uint8_t>& bytes) {
  PartitionSnapshot snapshot;
  ArchiveError error =
      check_snapshot_object(options_.scope, snapshot_->first, snapshot_->second, bytes, &snapshot);
  if (!error.ok()) {
    finish(std::move(error));
    return;
  }
  next_ = fold_snapshot(replica_, std::move(snapshot));
  list_segments_or_finish();
}

void ReferenceBuilder::list_segments_or_finish() {
  if (next_ > replica_.through) {
    finish(ArchiveError{});  // the snapshot is the content at `through`: no segment needed
    return;
  }
  step_ = Step::kListSegments;
  issue();
}

void ReferenceBuilder::on_segment(const std::vector<uint8_t>& bytes) {
  const SegmentRef& ref = segments_[segment_at_];
  WalSegment segment;
  ArchiveError error = check_segment_object(options_.scope, ref, bytes, &segment);
  if (error.ok()) error = fold_segment(replica_, &next_, ref, segment);
  if (!error.ok()) {
    finish(std::move(error));
    return;
  }
  ++segment_at_;
  next_segment();
}

void ReferenceBuilder::next_segment() {
  ArchiveError error;
  for (; segment_at_ < segments_.size(); ++segment_at_) {
    const SegmentUse use = segment_use(replica_, next_, segments_[segment_at_], &error);
    if (use == SegmentUse::kBehind) continue;
    if (use == SegmentUse::kNeeded) {
      step_ = Step::kGetSegment;
      issue();
      return;
    }
    break;
  }
  finish(std::move(error));
}

void ReferenceBuilder::finish(ArchiveError error) {
  finish_fold(replica_, next_, std::move(error));
  ReferenceReplica result = std::move(replica_);
  replica_ = ReferenceReplica{};
  Done done = std::move(done_);
  segments_.clear();
  snapshot_.reset();
  step_ = Step::kIdle;
  waiting_ = false;
  ++generation_;
  // The last act: `done` may destroy the builder or start another build.
  done(std::move(result));
}

// --- The audit ----------------------------------------------------------------------------------

ArchiveAuditReport ArchiveAudit::run() const {
  ArchiveAuditReport report;
  auto find = [&report](ArchiveError error, const std::string& key) {
    if (error.key.empty()) error.key = key;
    report.findings.push_back(std::move(error));
  };

  // Snapshots: each verified; the oldest valid one is where the archive may begin.
  const std::string snap_prefix = snapshot_prefix(scope_.table, scope_.group);
  std::optional<LogIndex> oldest_snapshot;
  for (const std::string& key : store_.peek_keys(snap_prefix)) {
    ++report.snapshots;
    const std::optional<LogIndex> at = parse_snapshot_key(key, snap_prefix);
    if (!at) {
      find(make_error(ArchiveCheck::kManifest, LogIndex(), "key", "not a snapshot key"), key);
      continue;
    }
    PartitionSnapshot snapshot;
    ArchiveError error = check_snapshot_object(scope_, *at, key, *store_.peek(key), &snapshot);
    if (!error.ok()) {
      find(std::move(error), key);
      continue;
    }
    if (!oldest_snapshot || *at < *oldest_snapshot) oldest_snapshot = *at;
  }

  // Segments: each verified on its own.
  std::vector<std::string> unparsed;
  const std::vector<SegmentRef> segments = list_segments(store_, scope_, &unparsed);
  for (const std::string& key : unparsed) {
    find(make_error(ArchiveCheck::kManifest, LogIndex(), "key", "not a segment key"), key);
  }
  report.segments = segments.size() + unparsed.size();
  for (const SegmentRef& ref : segments) {
    WalSegment segment;
    ArchiveError error = check_segment_object(scope_, ref, *store_.peek(ref.key), &segment);
    if (error.ok()) {
      report.entries += segment.entries.size();
      error = check_segment_entries(scope_, ref.first, ref.last, segment.entries,
                                    segment.manifest.entry_checksums, SequenceCheck::kEnforce);
    }
    if (!error.ok()) find(std::move(error), ref.key);
    report.highest_index = std::max(report.highest_index, ref.last);
  }

  // Contiguity: from index 1, or from just after the oldest snapshot, with no gap or overlap.
  if (segments.empty()) {
    report.begins_after = oldest_snapshot.value_or(LogIndex());
    report.archived_through = report.begins_after;
    return report;
  }
  LogIndex covered;  // every index in (begins_after, covered] is in a segment
  if (segments.front().first == LogIndex(1)) {
    report.begins_after = LogIndex();
  } else if (oldest_snapshot && segments.front().first <= oldest_snapshot->next()) {
    report.begins_after = *oldest_snapshot;
  } else {
    const LogIndex missing_from = oldest_snapshot ? oldest_snapshot->next() : LogIndex(1);
    find(make_error(ArchiveCheck::kSequence, missing_from, "index",
                    "the archive starts at index " + u64_text(segments.front().first.value) +
                        "; indexes " + u64_text(missing_from.value) + ".." +
                        u64_text(segments.front().first.value - 1) + " are in no segment"),
         segments.front().key);
    report.begins_after = LogIndex(segments.front().first.value - 1);
  }
  covered = segments.front().last;
  bool contiguous = true;
  for (size_t i = 1; i < segments.size(); ++i) {
    const SegmentRef& ref = segments[i];
    if (ref.first > covered.next()) {
      find(make_error(ArchiveCheck::kSequence, covered.next(), "index",
                      "a gap between segments: indexes " + u64_text(covered.value + 1) + ".." +
                          u64_text(ref.first.value - 1) + " are in no segment"),
           ref.key);
      if (contiguous) report.archived_through = covered;
      contiguous = false;
    } else if (ref.first < covered.next()) {
      find(make_error(ArchiveCheck::kSequence, ref.first, "index",
                      "the segment overlaps the one before it (which ends at " +
                          u64_text(covered.value) + ")"),
           ref.key);
    }
    covered = std::max(covered, ref.last);
  }
  if (contiguous) report.archived_through = covered;
  return report;
}

}  // namespace dynasim::model
