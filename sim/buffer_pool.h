// Recycled byte buffers for sector- and page-sized data.
//
// A storage replica writes thousands of 4 KB page images per checkpoint, and the simulated disk
// frees the sector buffers they replace at the next fsync. Handing those buffers back to the next
// writer skips the allocator (and the page faults of memory it returned to the kernel), which was
// the largest cost of the write path after hashing. Only capacity is reused: take_buffer returns
// zero-filled bytes, so no run can see another's data and results do not depend on the pool.
// One pool per thread (simulations on different threads never share buffers).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dynasim::sim {

namespace buffer_pool_detail {
// At most this many buffers wait in a thread's pool (16 MB of 4 KB buffers).
inline constexpr size_t kMaxPooled = 4096;
inline std::vector<std::vector<uint8_t>>& pool() {
  thread_local std::vector<std::vector<uint8_t>> buffers;
  return buffers;
}
}  // namespace buffer_pool_detail

// `size` zero bytes, in a recycled buffer when one of at least that capacity is pooled.
inline std::vector<uint8_t> take_buffer(size_t size) {
  auto& buffers = buffer_pool_detail::pool();
  if (!buffers.empty() && buffers.back().capacity() >= size) {
    std::vector<uint8_t> buffer = std::move(buffers.back());
    buffers.pop_back();
    buffer.assign(size, 0);
    return buffer;
  }
  return std::vector<uint8_t>(size, 0);
}

// Gives a buffer's memory back for reuse; the buffer is left empty.
inline void recycle_buffer(std::vector<uint8_t>& buffer) {
  auto& buffers = buffer_pool_detail::pool();
  if (buffer.capacity() >= 512 && buffers.size() < buffer_pool_detail::kMaxPooled) {
    buffers.push_back(std::move(buffer));
  }
  buffer = std::vector<uint8_t>();
}

}  // namespace dynasim::sim
