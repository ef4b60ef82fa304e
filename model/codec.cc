#include "model/codec.h"

namespace dynasim::model::codec {

void put_u8(std::vector<uint8_t>& out, uint8_t value) {
  out.push_back(value);
}
void put_u32(std::vector<uint8_t>& out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

uint64_t Reader::get(int width) {
  if (!ok || bytes.size() - at < static_cast<size_t>(width)) {
    ok = false;
    return 0;
  }
  uint64_t value = 0;
  for (int i = 0; i < width; ++i) value |= static_cast<uint64_t>(bytes[at + i]) << (8 * i);
  at += width;
  return value;
}

}  // namespace dynasim::model::codec
