// The pending-event set of a simulation, ordered by (time, sequence number).
//
// The sequence number is a global insertion counter, so two events at one instant always run in
// the order they were scheduled, on every run and with every compiler. Nothing is ordered by
// pointer value.
//
// Structure (a bucketed timing wheel with an overflow heap, in the spirit of calendar and ladder
// queues): time is cut into buckets of 2^kBucketWidthLog2 ns; a ring of 2^kBucketCountLog2 buckets
// covers the near future (the horizon). Each event lives in a 48-byte pool node; a bucket is an
// unsorted array of node indices, so scheduling into the horizon is O(1) and draining a bucket
// loads its nodes independently (no pointer chasing). When the current bucket runs dry, the next
// occupied one is found through a bitmap and its events are radix-sorted once by time, then by
// sequence number. Events scheduled into the current bucket after it was sorted wait in a small
// binary heap beside it. Events beyond the horizon wait in a 4-ary heap and join the ring as it
// turns. BM_PHOLD reports the measured kernel bytes per pending event.
//
// Cancellation is O(1): the handle names the node and its sequence number; a cancelled node stays
// in place as a tombstone and is dropped when its time comes.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "sim/check.h"
#include "sim/time.h"

namespace dynasim::sim {

// What an event is, by a stable name. The id is a hash of the name, so fingerprints do not depend
// on registration order. Define each kind once, with static storage:
//   static constexpr EventKind kDeliver = event_kind("net.deliver");
struct EventKind {
  const char* name;
  uint32_t id;
};

constexpr EventKind event_kind(const char* name) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char* c = name; *c != '\0'; ++c) {
    hash ^= static_cast<uint8_t>(*c);
    hash *= 0x100000001b3ULL;
  }
  return EventKind{name, static_cast<uint32_t>(hash ^ (hash >> 32))};
}

// One executed or pending event, as its handler sees it. The fingerprint folds time, kind, target
// and payload; a handler whose payload is only a slot number folds the digest of the content it
// stands for through Simulation::fold_digest().
struct Event {
  SimTime time;
  const EventKind* kind;
  uint32_t target;   // the id of what the event acts on (a host, a disk, a process); for traces
  uint64_t payload;  // meaning is the sink's: a message slot, a timer cookie, a closure slot
};

class EventSink {
 public:
  virtual void on_event(const Event& event) = 0;

 protected:
  ~EventSink() = default;
};

struct EventHandle {
  uint32_t node = UINT32_MAX;
  uint64_t seq = 0;
  bool valid() const { return node != UINT32_MAX; }
};

class EventQueue {
 public:
  // 65.5 us per bucket and 256 buckets: a 16.8 ms horizon. Network hops, disk I/O and CPU costs
  // fall inside it; timers of seconds wait in the overflow heap, which they reach rarely.
  static constexpr int kBucketWidthLog2 = 16;
  static constexpr int kBucketCountLog2 = 8;
  static constexpr uint32_t kBucketCount = 1u << kBucketCountLog2;
  static constexpr uint32_t kNil = UINT32_MAX;

  EventQueue();
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // REQUIRES: time >= the time of the last popped event (checked by the Simulation).
  EventHandle push(SimTime time, EventSink* sink, const EventKind* kind, uint32_t target,
                   uint64_t payload);

  // Marks a pending event cancelled. Returns false if it already ran or was cancelled. On success
  // reports the event's sink and payload, so their owner can release what the payload names.
  bool cancel(EventHandle handle, EventSink** sink, uint64_t* payload);

  // Removes the earliest live event into `out`, with its sink. Returns false when none is left.
  bool pop(Event* out, EventSink** sink);

  // Time of the earliest live event, or SimTime::max() when none is pending.
  SimTime peek_time();

  uint64_t live_events() const { return live_; }
  bool empty() const { return live_ == 0; }
  uint64_t next_sequence() const { return next_seq_; }

  // Bytes held by the queue's own structures (pool, wheel, heaps), payload aside.
  uint64_t memory_bytes() const;

 private:
  struct Node {
    int64_t time;
    uint64_t seq;
    EventSink* sink;  // nullptr marks a free node or a cancelled event
    const EventKind* kind;
    uint64_t payload;
    uint32_t target;
    uint32_t next_free;
  };
  static_assert(sizeof(Node) == 48);

  // A sort entry: the time inline (most comparisons need nothing else), the sequence number
  // looked up in the node only to break a tie.
  struct ReadyEntry {
    int64_t time;
    uint32_t node;
  };
  bool earlier(const ReadyEntry& a, const ReadyEntry& b) const {
    return a.time < b.time || (a.time == b.time && node(a.node).seq < node(b.node).seq);
  }

  // A bucket of the ring: an unsorted array of node indices, released when drained.
  struct Bucket {
    std::unique_ptr<uint32_t[]> indices;
    uint32_t size = 0;
    uint32_t capacity = 0;
  };

  static constexpr int kChunkLog2 = 8;
  static constexpr uint32_t kChunkSize = 1u << kChunkLog2;

  Node& node(uint32_t index) { return chunks_[index >> kChunkLog2][index & (kChunkSize - 1)]; }
  const Node& node(uint32_t index) const {
    return chunks_[index >> kChunkLog2][index & (kChunkSize - 1)];
  }
  uint32_t allocate_node();
  void free_node(uint32_t index);

  static constexpr int64_t bucket_width() { return int64_t{1} << kBucketWidthLog2; }
  int64_t horizon_end() const {
    return current_start_ + (int64_t{1} << (kBucketWidthLog2 + kBucketCountLog2));
  }
  static uint32_t bucket_of(int64_t time) {
    return static_cast<uint32_t>(time >> kBucketWidthLog2) & (kBucketCount - 1);
  }

  void insert_bucket(uint32_t index);
  void late_push(const ReadyEntry& entry);
  void late_pop();
  void far_push(uint32_t index);
  uint32_t far_pop();
  bool far_less(uint32_t a, uint32_t b) const;
  // Refills ready_ from the next occupied bucket (or the overflow heap). False if nothing is left.
  bool advance();
  void drain_bucket(uint32_t bucket);
  void sort_ready();
  int find_next_occupied(uint32_t from_bucket) const;  // distance 1..kBucketCount-1, or -1
  // The earliest queued entry (live or tombstone), removed. REQUIRES: queued_ > 0.
  ReadyEntry take_earliest();

  std::vector<std::unique_ptr<Node[]>> chunks_;
  uint32_t free_head_ = kNil;
  uint32_t nodes_allocated_ = 0;

  int64_t current_start_ = 0;  // start of the bucket that ready_ holds
  int64_t last_popped_time_ = 0;
  std::vector<Bucket> buckets_;
  std::vector<uint64_t> occupied_;  // one bit per bucket
  std::vector<ReadyEntry> ready_;   // the current bucket, sorted ascending
  size_t ready_position_ = 0;       // next entry of ready_ to run
  std::vector<ReadyEntry> sort_scratch_;
  std::vector<ReadyEntry> late_;  // binary min-heap: arrivals into the current bucket
  std::vector<uint32_t> far_;     // 4-ary min-heap of node indices beyond the horizon

  uint64_t next_seq_ = 0;
  uint64_t live_ = 0;
  uint64_t queued_ = 0;  // live plus tombstones
};

}  // namespace dynasim::sim
