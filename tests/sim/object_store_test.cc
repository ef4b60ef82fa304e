// The object store's checked put: a put whose content checksum does not match the bytes it
// carries is refused with its own status and stores nothing; a matching one behaves exactly as a
// plain put, with the same latency (the same random draws).
#include "sim/object_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "sim/simulation.h"

namespace dynasim::sim {
namespace {

ObjectBytes bytes_of(size_t size, uint8_t fill) {
  return std::make_shared<const std::vector<uint8_t>>(size, fill);
}

TEST(ObjectStoreChecksumTest, MatchingChecksumStoresAndMismatchIsRefused) {
  Simulation simulation(5);
  ObjectStore store(simulation, ObjectStoreOptions{});
  const ObjectBytes data = bytes_of(500, 3);
  ObjectStatus good = ObjectStatus::kUnavailable;
  ObjectStatus bad = ObjectStatus::kOk;
  store.put_with_checksum("a", data, object_checksum(*data), [&](ObjectStatus s) { good = s; });
  store.put_with_checksum("b", data, object_checksum(*data) ^ 1, [&](ObjectStatus s) { bad = s; });
  simulation.run();
  EXPECT_EQ(good, ObjectStatus::kOk);
  EXPECT_EQ(bad, ObjectStatus::kChecksumMismatch);
  ASSERT_NE(store.peek("a"), nullptr);
  EXPECT_EQ(*store.peek("a"), *data);
  EXPECT_EQ(store.peek("b"), nullptr);
  EXPECT_EQ(store.object_count(), 1u);
  EXPECT_EQ(store.stored_bytes(), 500u);
  EXPECT_STREQ(to_string(bad), "checksum-mismatch");

  // A refused put does not replace what is stored under the key.
  const ObjectBytes other = bytes_of(10, 4);
  store.put_with_checksum("a", other, object_checksum(*data), [&](ObjectStatus s) { bad = s; });
  simulation.run();
  EXPECT_EQ(bad, ObjectStatus::kChecksumMismatch);
  EXPECT_EQ(*store.peek("a"), *data);
}

TEST(ObjectStoreChecksumTest, UnavailableWinsOverTheChecksum) {
  Simulation simulation(5);
  ObjectStore store(simulation, ObjectStoreOptions{});
  store.set_available(false);
  const ObjectBytes data = bytes_of(10, 1);
  ObjectStatus status = ObjectStatus::kOk;
  store.put_with_checksum("a", data, 0, [&](ObjectStatus s) { status = s; });
  simulation.run();
  EXPECT_EQ(status, ObjectStatus::kUnavailable);
}

TEST(ObjectStoreChecksumTest, SameLatencyAndDrawsAsAPlainPut) {
  SimTime plain_done;
  SimTime checked_done;
  uint64_t plain_hash = 0;
  uint64_t checked_hash = 0;
  for (const bool checked : {false, true}) {
    Simulation simulation(11);
    ObjectStore store(simulation, ObjectStoreOptions{});
    const ObjectBytes data = bytes_of(100'000, 9);
    SimTime done_at;
    for (int i = 0; i < 3; ++i) {
      auto done = [&](ObjectStatus) { done_at = simulation.now(); };
      if (checked) {
        store.put_with_checksum("k" + std::to_string(i), data, object_checksum(*data), done);
      } else {
        store.put("k" + std::to_string(i), data, done);
      }
    }
    simulation.run();
    (checked ? checked_done : plain_done) = done_at;
    (checked ? checked_hash : plain_hash) = simulation.trace_hash();
  }
  EXPECT_EQ(plain_done, checked_done);
  EXPECT_EQ(plain_hash, checked_hash);
}

TEST(ObjectStoreChecksumTest, PeekKeysListsAPrefixInByteOrder) {
  Simulation simulation(5);
  ObjectStore store(simulation, ObjectStoreOptions{});
  for (const char* key : {"wal/1/2", "wal/1/1", "snap/1/1", "wal/10/1"}) {
    store.put(key, bytes_of(1, 0), [](ObjectStatus) {});
  }
  simulation.run();
  EXPECT_EQ(store.peek_keys("wal/1/"), (std::vector<std::string>{"wal/1/1", "wal/1/2"}));
  EXPECT_EQ(store.peek_keys("").size(), 4u);
}

}  // namespace
}  // namespace dynasim::sim
