#include "model/wal_record.h"

#include <cstring>

namespace dynasim::model {

namespace codec {

void put_hard_state(std::vector<uint8_t>& out, const HardState& hard_state) {
  put_u64(out, hard_state.promised.round);
  put_u32(out, hard_state.promised.replica);
  put_u64(out, hard_state.commit.value);
}

HardState get_hard_state(Reader& in) {
  HardState hard_state;
  hard_state.promised.round = in.u64();
  hard_state.promised.replica = in.u32();
  hard_state.commit = LogIndex(in.u64());
  return hard_state;
}

}  // namespace codec

std::vector<uint8_t> encode_wal_record(const std::optional<HardState>& hard_state,
                                       const LogEntry* entries, size_t count) {
  size_t size = 2 + 4 + (hard_state ? 32 : 0);
  for (size_t i = 0; i < count; ++i) size += 32 + entries[i].command.bytes.size();
  std::vector<uint8_t> out;
  out.reserve(size);
  codec::put_u8(out, kWalRecordFormat);
  codec::put_u8(out, hard_state ? 1 : 0);
  if (hard_state) codec::put_hard_state(out, *hard_state);
  codec::put_u32(out, static_cast<uint32_t>(count));
  for (size_t i = 0; i < count; ++i) {
    const LogEntry& entry = entries[i];
    codec::put_u64(out, entry.index.value);
    codec::put_u64(out, entry.ballot.round);
    codec::put_u32(out, entry.ballot.replica);
    codec::put_u64(out, entry.command.id);
    codec::put_u32(out, static_cast<uint32_t>(entry.command.bytes.size()) |
                            (entry.command.configuration ? kConfigurationFlag : 0));
    out.insert(out.end(), entry.command.bytes.begin(), entry.command.bytes.end());
  }
  return out;
}

bool decode_wal_record(const std::vector<uint8_t>& bytes, WalBatch* out) {
  codec::Reader in{bytes};
  if (in.u8() != kWalRecordFormat) return false;
  const uint8_t has_hard_state = in.u8();
  if (has_hard_state > 1) return false;
  if (has_hard_state) out->hard_state = codec::get_hard_state(in);
  const uint32_t count = in.u32();
  if (!in.ok) return false;
  for (uint32_t i = 0; i < count && in.ok; ++i) {
    LogEntry entry;
    entry.index = LogIndex(in.u64());
    entry.ballot.round = in.u64();
    entry.ballot.replica = in.u32();
    entry.command.id = in.u64();
    const uint32_t length_and_flag = in.u32();
    entry.command.configuration = (length_and_flag & kConfigurationFlag) != 0;
    const uint32_t length = length_and_flag & ~kConfigurationFlag;
    if (!in.ok || bytes.size() - in.at < length) return false;
    std::vector<uint8_t> command_bytes(length);
    if (length > 0) std::memcpy(command_bytes.data(), bytes.data() + in.at, length);
    entry.command.bytes = std::move(command_bytes);
    in.at += length;
    out->entries.push_back(std::move(entry));
  }
  return in.ok && in.at == bytes.size();
}

}  // namespace dynasim::model
