// The payload of a storage replica's WAL record, and the little-endian field codec the storage
// node's on-disk encodings share.
//
// P22 section 3: a replica's WAL holds the log records of its partition's Multi-Paxos group. One
// record carries what one Paxos Ready (or part of it) asks to persist: the hard state, if it
// changed, and the log entries written, each replacing any entry at its index (an entry may be
// rewritten until it commits). model/wal.h frames each record with a sequence number and a
// checksum; this file defines the bytes inside that frame (docs/storage.md, "WAL records"):
//
//   u8 format (1) | u8 has_hard_state | [u64 promised.round, u32 promised.replica, u64 commit]
//   | u32 count | count x (u64 index, u64 ballot.round, u32 ballot.replica, u64 command id,
//                          u32 length (top bit: a configuration entry), command bytes)
//
// The archiver (model/archive.h) reads committed entries back from these records; the storage
// node writes them. Changing the encoding changes every run's trace: it is pinned by tests.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "model/codec.h"
#include "model/paxos.h"

namespace dynasim::model {

// The fixed-width fields are model/codec.h's; the hard state's encoding is the WAL's.
namespace codec {

// A hard state in 20 bytes: promised.round, promised.replica, commit.
void put_hard_state(std::vector<uint8_t>& out, const HardState& hard_state);
HardState get_hard_state(Reader& in);

}  // namespace codec

inline constexpr uint8_t kWalRecordFormat = 1;
// The command length's top bit marks a configuration entry (commands are far below 2 GB).
inline constexpr uint32_t kConfigurationFlag = uint32_t{1} << 31;

// A decoded WAL record: what one Ready (or part of it) asked to persist.
struct WalBatch {
  std::optional<HardState> hard_state;
  std::vector<LogEntry> entries;
};

// The record for `count` entries starting at `entries`, with the hard state if given.
std::vector<uint8_t> encode_wal_record(const std::optional<HardState>& hard_state,
                                       const LogEntry* entries, size_t count);
// Appends the record's hard state and entries to *out. False for bytes that are not exactly one
// record (a wrong format, a field or command past the end, trailing bytes); *out may then hold
// part of the record.
bool decode_wal_record(const std::vector<uint8_t>& bytes, WalBatch* out);

}  // namespace dynasim::model
