// Fixed-width little-endian fields for the model's byte formats (WAL records, configurations,
// write commands, scrub markers). Writers append; the Reader is bounds-checked: a read past the
// end sets ok = false and returns 0, and every later read fails too, so a decoder checks `ok`
// once at the end (or before it trusts a length). It depends on nothing else in the model, so
// every format can use it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dynasim::model::codec {

void put_u8(std::vector<uint8_t>& out, uint8_t value);
void put_u32(std::vector<uint8_t>& out, uint32_t value);
void put_u64(std::vector<uint8_t>& out, uint64_t value);

struct Reader {
  const std::vector<uint8_t>& bytes;
  size_t at = 0;
  bool ok = true;

  uint64_t get(int width);
  uint8_t u8() { return static_cast<uint8_t>(get(1)); }
  uint32_t u32() { return static_cast<uint32_t>(get(4)); }
  uint64_t u64() { return get(8); }
};

}  // namespace dynasim::model::codec
