#include "sim/event_queue.h"

#include <algorithm>
#include <bit>

namespace dynasim::sim {

EventQueue::EventQueue() : buckets_(kBucketCount), occupied_(kBucketCount / 64, 0) {}

uint32_t EventQueue::allocate_node() {
  if (free_head_ != kNil) {
    const uint32_t index = free_head_;
    free_head_ = node(index).next_free;
    return index;
  }
  if ((nodes_allocated_ & (kChunkSize - 1)) == 0) {
    DYN_ASSERT_MSG(nodes_allocated_ < kNil - kChunkSize, "event queue exhausted its node space");
    chunks_.push_back(std::make_unique<Node[]>(kChunkSize));
  }
  return nodes_allocated_++;
}

void EventQueue::free_node(uint32_t index) {
  Node& n = node(index);
  n.sink = nullptr;
  n.next_free = free_head_;
  free_head_ = index;
}

EventHandle EventQueue::push(SimTime time, EventSink* sink, const EventKind* kind, uint32_t target,
                             uint64_t payload) {
  DYN_ASSERT(sink != nullptr);
  const uint32_t index = allocate_node();
  Node& n = node(index);
  n.time = time.ns;
  n.seq = next_seq_++;
  n.sink = sink;
  n.kind = kind;
  n.payload = payload;
  n.target = target;
  if (queued_ == 0) {
    // An empty queue restarts the wheel at the bucket of the last event run (the clock): every
    // event scheduled from here on is at or after it.
    current_start_ = last_popped_time_ & ~(bucket_width() - 1);
    ready_.clear();
    ready_position_ = 0;
  }
  ++live_;
  ++queued_;
  if (time.ns < current_start_ + bucket_width()) {
    // The current bucket, already sorted; or (after peek_time() turned the wheel past the clock)
    // an earlier instant. Either way it runs before every later bucket.
    late_push(ReadyEntry{n.time, index});
  } else if (time.ns < horizon_end()) {
    insert_bucket(index);
  } else {
    far_push(index);
  }
  return EventHandle{index, n.seq};
}

void EventQueue::insert_bucket(uint32_t index) {
  const uint32_t bucket_index = bucket_of(node(index).time);
  Bucket& bucket = buckets_[bucket_index];
  if (bucket.size == bucket.capacity) {
    const uint32_t capacity = bucket.capacity == 0 ? 8 : bucket.capacity * 2;
    auto grown = std::make_unique_for_overwrite<uint32_t[]>(capacity);
    std::copy(bucket.indices.get(), bucket.indices.get() + bucket.size, grown.get());
    bucket.indices = std::move(grown);
    bucket.capacity = capacity;
  }
  bucket.indices[bucket.size++] = index;
  occupied_[bucket_index >> 6] |= uint64_t{1} << (bucket_index & 63);
}

void EventQueue::late_push(const ReadyEntry& entry) {
  size_t position = late_.size();
  late_.push_back(entry);
  while (position > 0) {
    const size_t parent = (position - 1) / 2;
    if (!earlier(late_[position], late_[parent])) break;
    std::swap(late_[position], late_[parent]);
    position = parent;
  }
}

void EventQueue::late_pop() {
  const ReadyEntry last = late_.back();
  late_.pop_back();
  if (late_.empty()) return;
  size_t position = 0;
  const size_t size = late_.size();
  for (;;) {
    size_t child = position * 2 + 1;
    if (child >= size) break;
    if (child + 1 < size && earlier(late_[child + 1], late_[child])) ++child;
    if (!earlier(late_[child], last)) break;
    late_[position] = late_[child];
    position = child;
  }
  late_[position] = last;
}

bool EventQueue::far_less(uint32_t a, uint32_t b) const {
  const Node& x = node(a);
  const Node& y = node(b);
  return x.time < y.time || (x.time == y.time && x.seq < y.seq);
}

void EventQueue::far_push(uint32_t index) {
  size_t position = far_.size();
  far_.push_back(index);
  while (position > 0) {
    const size_t parent = (position - 1) / 4;
    if (!far_less(far_[position], far_[parent])) break;
    std::swap(far_[position], far_[parent]);
    position = parent;
  }
}

uint32_t EventQueue::far_pop() {
  const uint32_t top = far_.front();
  const uint32_t last = far_.back();
  far_.pop_back();
  if (!far_.empty()) {
    size_t position = 0;
    const size_t size = far_.size();
    for (;;) {
      const size_t first_child = position * 4 + 1;
      if (first_child >= size) break;
      size_t best = first_child;
      const size_t end = std::min(first_child + 4, size);
      for (size_t child = first_child + 1; child < end; ++child) {
        if (far_less(far_[child], far_[best])) best = child;
      }
      if (!far_less(far_[best], last)) break;
      far_[position] = far_[best];
      position = best;
    }
    far_[position] = last;
  }
  return top;
}

int EventQueue::find_next_occupied(uint32_t from_bucket) const {
  // Scan buckets from_bucket+1, +2, ... around the ring, one 64-bit word at a time.
  for (uint32_t distance = 1; distance < kBucketCount;) {
    const uint32_t bucket = (from_bucket + distance) & (kBucketCount - 1);
    const uint32_t bit = bucket & 63;
    const uint64_t word = occupied_[bucket >> 6] >> bit;
    if (word != 0) {
      const uint32_t found = distance + static_cast<uint32_t>(std::countr_zero(word));
      return found < kBucketCount ? static_cast<int>(found) : -1;
    }
    distance += 64 - bit;
  }
  return -1;
}

void EventQueue::sort_ready() {
  // Small buckets: insertion sort. Large ones: a stable LSD radix sort on the time offset inside
  // the bucket (two 8-bit digits), then equal-time runs are put in sequence order. Both give the
  // unique (time, seq) order, so the result does not depend on the gathering order.
  const size_t size = ready_.size();
  if (size < 48) {
    for (size_t i = 1; i < size; ++i) {
      const ReadyEntry entry = ready_[i];
      size_t j = i;
      while (j > 0 && earlier(entry, ready_[j - 1])) {
        ready_[j] = ready_[j - 1];
        --j;
      }
      ready_[j] = entry;
    }
    return;
  }
  static_assert(kBucketWidthLog2 == 16, "the radix sort below takes two 8-bit digits");
  sort_scratch_.resize(size);
  for (int shift = 0; shift < 16; shift += 8) {
    uint32_t counts[257] = {};
    for (const ReadyEntry& entry : ready_) {
      ++counts[((static_cast<uint64_t>(entry.time - current_start_) >> shift) & 0xff) + 1];
    }
    for (int digit = 0; digit < 256; ++digit) counts[digit + 1] += counts[digit];
    for (const ReadyEntry& entry : ready_) {
      const auto digit = (static_cast<uint64_t>(entry.time - current_start_) >> shift) & 0xff;
      sort_scratch_[counts[digit]++] = entry;
    }
    ready_.swap(sort_scratch_);
  }
  for (size_t i = 1; i < size; ++i) {
    if (ready_[i].time != ready_[i - 1].time) continue;
    const ReadyEntry entry = ready_[i];
    size_t j = i;
    while (j > 0 && earlier(entry, ready_[j - 1])) {
      ready_[j] = ready_[j - 1];
      --j;
    }
    ready_[j] = entry;
  }
}

void EventQueue::drain_bucket(uint32_t bucket_index) {
  Bucket& bucket = buckets_[bucket_index];
  occupied_[bucket_index >> 6] &= ~(uint64_t{1} << (bucket_index & 63));
  ready_.clear();
  ready_position_ = 0;
  for (uint32_t i = 0; i < bucket.size; ++i) {
    const uint32_t index = bucket.indices[i];
    ready_.push_back(ReadyEntry{node(index).time, index});
  }
  // Give the bucket's memory back: every bucket of the ring would otherwise keep the capacity of
  // its busiest turn, which would cost far more than the events it holds.
  bucket = Bucket();
  sort_ready();
}

bool EventQueue::advance() {
  if (queued_ == 0) return false;
  DYN_ASSERT(late_.empty());
  const uint32_t current_bucket = bucket_of(current_start_);
  const int distance = find_next_occupied(current_bucket);
  if (distance > 0) {
    current_start_ += int64_t{distance} << kBucketWidthLog2;
  } else {
    // The ring is empty: jump straight to the earliest event beyond the horizon.
    DYN_ASSERT(!far_.empty());
    current_start_ = node(far_.front()).time & ~(bucket_width() - 1);
  }
  // The horizon moved forward; events that now fall inside it join the ring. None of them can
  // belong to a bucket before the new current one: they were beyond the old horizon.
  const int64_t horizon = horizon_end();
  while (!far_.empty() && node(far_.front()).time < horizon) {
    insert_bucket(far_pop());
  }
  drain_bucket(bucket_of(current_start_));
  DYN_ASSERT(!ready_.empty());
  return true;
}

EventQueue::ReadyEntry EventQueue::take_earliest() {
  if (ready_position_ == ready_.size() && late_.empty()) {
    const bool refilled = advance();
    DYN_ASSERT(refilled);
  }
  if (!late_.empty() &&
      (ready_position_ == ready_.size() || earlier(late_.front(), ready_[ready_position_]))) {
    const ReadyEntry entry = late_.front();
    late_pop();
    return entry;
  }
  return ready_[ready_position_++];
}

bool EventQueue::pop(Event* out, EventSink** sink) {
  while (queued_ > 0) {
    const ReadyEntry entry = take_earliest();
    Node& n = node(entry.node);
    --queued_;
    last_popped_time_ = n.time;
    if (n.sink == nullptr) {  // cancelled
      free_node(entry.node);
      continue;
    }
    out->time = SimTime(n.time);
    out->kind = n.kind;
    out->target = n.target;
    out->payload = n.payload;
    *sink = n.sink;
    --live_;
    free_node(entry.node);
    return true;
  }
  return false;
}

SimTime EventQueue::peek_time() {
  while (queued_ > 0) {
    if (ready_position_ == ready_.size() && late_.empty()) advance();
    const bool from_late = !late_.empty() && (ready_position_ == ready_.size() ||
                                              earlier(late_.front(), ready_[ready_position_]));
    const ReadyEntry& entry = from_late ? late_.front() : ready_[ready_position_];
    if (node(entry.node).sink != nullptr) return SimTime(entry.time);
    // Drop a tombstone.
    const uint32_t index = entry.node;
    if (from_late) {
      late_pop();
    } else {
      ++ready_position_;
    }
    --queued_;
    free_node(index);
  }
  return SimTime::max();
}

bool EventQueue::cancel(EventHandle handle, EventSink** sink, uint64_t* payload) {
  if (!handle.valid() || handle.node >= nodes_allocated_) return false;
  Node& n = node(handle.node);
  if (n.sink == nullptr || n.seq != handle.seq) return false;
  *sink = n.sink;
  *payload = n.payload;
  n.sink = nullptr;  // a tombstone; freed when its time comes
  --live_;
  return true;
}

uint64_t EventQueue::memory_bytes() const {
  uint64_t bytes = uint64_t{chunks_.size()} * kChunkSize * sizeof(Node) +
                   chunks_.capacity() * sizeof(void*) + occupied_.capacity() * sizeof(uint64_t) +
                   buckets_.capacity() * sizeof(Bucket);
  for (const Bucket& bucket : buckets_) bytes += uint64_t{bucket.capacity} * sizeof(uint32_t);
  bytes += (ready_.capacity() + sort_scratch_.capacity() + late_.capacity()) * sizeof(ReadyEntry);
  bytes += far_.capacity() * sizeof(uint32_t);
  return bytes;
}

}  // namespace dynasim::sim
