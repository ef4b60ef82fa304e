// WAL archival (model/archive.h): the segment and snapshot formats and what damage does to them,
// the pre-upload checks, the agent on three replicas against one object store (upload once,
// compare elsewhere, divergence, retries, back-pressure, start after a snapshot install), the
// planted sequence-gap bug and the audit that catches it, and the reference replica against a
// real B-tree fed the same commands.
#include "model/archive.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/btree.h"
#include "model/scrub_protocol.h"
#include "model/wal_record.h"
#include "sim/disk.h"
#include "sim/object_store.h"
#include "sim/random.h"
#include "sim/simulation.h"

namespace dynasim::model {
namespace {

using sim::ObjectStatus;

constexpr sim::EventKind kArchiveTimer = sim::event_kind("test.archive_timer");

// ArchiveIo over a bare Simulation and ObjectStore, as a storage node's Env would forward it.
class StoreIo final : public ArchiveIo {
 public:
  StoreIo(sim::Simulation& simulation, sim::ObjectStore& store)
      : simulation_(simulation), store_(store) {}

  void set_timer(sim::Duration delay, uint64_t cookie) override {
    timer_delays.push_back(delay);
    simulation_.call_after(delay, kArchiveTimer, 0, [this, cookie] { on_timer(cookie); });
  }
  void put(std::string key, sim::ObjectBytes data, uint64_t content_checksum,
           PutDone done) override {
    ++puts;
    if (damage_next_checksums > 0) {
      --damage_next_checksums;
      content_checksum ^= 1;  // as if the bytes had been damaged on the way
    }
    store_.put_with_checksum(
        std::move(key), std::move(data), content_checksum,
        [done = std::move(done)](ObjectStatus status) mutable { done(status); });
  }
  void get(std::string key, GetDone done) override {
    ++gets;
    store_.get(std::move(key), [done = std::move(done)](sim::ObjectResult result) mutable {
      done(std::move(result));
    });
  }
  void list(std::string prefix, ListDone done) override {
    ++lists;
    store_.list(std::move(prefix), [done = std::move(done)](ObjectStatus status,
                                                            std::vector<std::string> keys) mutable {
      done(status, std::move(keys));
    });
  }
  void report_failure(const ArchiveError& error) override { failures.push_back(error); }

  std::function<void(uint64_t)> on_timer;
  std::vector<ArchiveError> failures;
  std::vector<sim::Duration> timer_delays;
  uint64_t puts = 0;
  uint64_t gets = 0;
  uint64_t lists = 0;
  int damage_next_checksums = 0;

 private:
  sim::Simulation& simulation_;
  sim::ObjectStore& store_;
};

// One replica's agent and its Io.
struct Agent {
  Agent(sim::Simulation& simulation, sim::ObjectStore& store, const ArchiverOptions& options,
        uint64_t seed)
      : io(simulation, store), archiver(options, io, sim::Random(seed)) {
    io.on_timer = [this](uint64_t cookie) { archiver.on_timer(cookie); };
  }
  StoreIo io;
  Archiver archiver;
};

struct World {
  explicit World(uint64_t seed = 1) : simulation(seed), store(simulation, {}) {}
  sim::Simulation simulation;
  sim::ObjectStore store;
};

ArchiveScope whole_range_scope() {
  ArchiveScope scope;
  scope.table = TableId(3);
  scope.group = GroupId(0);
  return scope;
}

ArchiverOptions options_with(uint64_t entries_per_segment,
                             ArchiveScope scope = whole_range_scope()) {
  ArchiverOptions options;
  options.scope = std::move(scope);
  options.entries_per_segment = entries_per_segment;
  options.max_pending_entries = 4 * entries_per_segment;
  return options;
}

PrimaryKey key_of(uint64_t i) {
  return PrimaryKey{KeyValue::string("user" + std::to_string(i)), std::nullopt};
}

Item item_of(const PrimaryKey& key, int64_t version) {
  Item item(key);
  item.set("ver", Decimal::from_int(version));
  item.set("payload", Payload{300, static_cast<uint64_t>(version),
                              sim::splitmix64(static_cast<uint64_t>(version))});
  return item;
}

Command put_command(uint64_t id, const PrimaryKey& key, int64_t version, Condition condition = {}) {
  return Command{
      id, WriteCommand::encode(1, id, StorageOp::kPut, key, item_of(key, version), condition)};
}

Command delete_command(uint64_t id, const PrimaryKey& key, Condition condition = {}) {
  return Command{id, WriteCommand::encode(1, id, StorageOp::kDelete, key, Item(key), condition)};
}

LogEntry committed(uint64_t index, Command command, Ballot ballot = Ballot{1, 1}) {
  return LogEntry{LogIndex(index), ballot, std::move(command)};
}

// Entries 1..count: puts to a few keys, with a no-op every 7th slot.
std::vector<LogEntry> simple_log(uint64_t count, Ballot ballot = Ballot{1, 1}) {
  std::vector<LogEntry> log;
  for (uint64_t i = 1; i <= count; ++i) {
    log.push_back(
        committed(i, i % 7 == 0 ? Command::noop() : put_command(i, key_of(i % 5), i), ballot));
  }
  return log;
}

std::vector<ArchivedEntry> archived(const std::vector<LogEntry>& log, uint64_t from, uint64_t to) {
  std::vector<ArchivedEntry> out;
  for (const LogEntry& entry : log) {
    if (entry.index.value >= from && entry.index.value <= to) {
      out.push_back(ArchivedEntry::of(entry));
    }
  }
  return out;
}

std::vector<uint64_t> checksums_of(const std::vector<ArchivedEntry>& entries) {
  std::vector<uint64_t> out;
  for (const ArchivedEntry& entry : entries) out.push_back(entry.checksum());
  return out;
}

void offer_all(Archiver& archiver, const std::vector<LogEntry>& log, uint64_t from = 1,
               uint64_t to = UINT64_MAX) {
  for (const LogEntry& entry : log) {
    if (entry.index.value < from || entry.index.value > to) continue;
    ASSERT_EQ(archiver.offer(entry), OfferStatus::kAccepted) << entry.index.value;
  }
}

// --- The segment format -------------------------------------------------------------------------

TEST(ArchiveSegmentTest, RoundTripsWithItsManifestAndKeysSortByIndex) {
  const ArchiveScope scope = whole_range_scope();
  const std::vector<LogEntry> log = simple_log(8);
  const std::vector<ArchivedEntry> entries = archived(log, 5, 8);
  const std::vector<uint8_t> bytes = encode_segment(scope, LogIndex(5), LogIndex(8), entries);
  WalSegment segment;
  ASSERT_TRUE(decode_segment(bytes, &segment).ok());
  EXPECT_EQ(segment.entries, entries);
  EXPECT_EQ(segment.manifest.table, scope.table);
  EXPECT_EQ(segment.manifest.group, scope.group);
  EXPECT_EQ(segment.manifest.hash_begin, 0u);
  EXPECT_EQ(segment.manifest.hash_end, UINT64_MAX);
  EXPECT_EQ(segment.manifest.first_index, LogIndex(5));
  EXPECT_EQ(segment.manifest.last_index, LogIndex(8));
  EXPECT_EQ(segment.manifest.entry_count, 4u);
  EXPECT_EQ(segment.manifest.entry_checksums, checksums_of(entries));

  EXPECT_EQ(segment_key(TableId(3), GroupId(12), LogIndex(1), LogIndex(1024)),
            "wal/0000000003/0000000012/00000000000000000001-00000000000000001024");
  // Byte order is index order.
  EXPECT_LT(segment_key(TableId(3), GroupId(0), LogIndex(1025), LogIndex(2048)),
            segment_key(TableId(3), GroupId(0), LogIndex(10241), LogIndex(11264)));
  const std::string prefix = segment_prefix(TableId(3), GroupId(12));
  const auto bounds = parse_segment_key(
      segment_key(TableId(3), GroupId(12), LogIndex(1025), LogIndex(2048)), prefix);
  ASSERT_TRUE(bounds.has_value());
  EXPECT_EQ(bounds->first, LogIndex(1025));
  EXPECT_EQ(bounds->second, LogIndex(2048));
  EXPECT_FALSE(parse_segment_key(prefix + "1-2", prefix).has_value());
  EXPECT_FALSE(parse_segment_key(prefix + "00000000000000000001-0000000000000000002x", prefix));
  EXPECT_EQ(segment_bounds(LogIndex(1), 4), std::make_pair(LogIndex(1), LogIndex(4)));
  EXPECT_EQ(segment_bounds(LogIndex(4), 4), std::make_pair(LogIndex(1), LogIndex(4)));
  EXPECT_EQ(segment_bounds(LogIndex(5), 4), std::make_pair(LogIndex(5), LogIndex(8)));
}

// Membership changes are committed entries like any other: archived with their mark, their
// checksum covering it, passed by the ownership check, and skipped by the reference replica.
TEST(ArchiveSegmentTest, AConfigurationEntryIsArchivedWithItsMark) {
  const ArchiveScope scope = whole_range_scope();
  std::vector<LogEntry> log = simple_log(4);
  log[1].command = Command{2, Configuration::of_voters({1, 2, 3}).encode(), true};
  const std::vector<ArchivedEntry> entries = archived(log, 1, 4);
  ASSERT_TRUE(entries[1].configuration);
  WalSegment segment;
  ASSERT_TRUE(decode_segment(encode_segment(scope, LogIndex(1), LogIndex(4), entries), &segment)
                  .ok());
  EXPECT_EQ(segment.entries, entries);
  ArchivedEntry unmarked = entries[1];
  unmarked.configuration = false;
  EXPECT_NE(unmarked.checksum(), entries[1].checksum());
  EXPECT_TRUE(check_segment_entries(scope, LogIndex(1), LogIndex(4), entries,
                                    checksums_of(entries), SequenceCheck::kEnforce)
                  .ok());
  std::map<PrimaryKey, Item> items;
  bool condition_failed = false;
  EXPECT_TRUE(apply_archived_command(entries[1].command(), items, &condition_failed));
  EXPECT_TRUE(items.empty());
}

TEST(ArchiveSegmentTest, EveryTruncationAndEveryByteFlipFailsCleanly) {
  const std::vector<LogEntry> log = simple_log(4);
  const std::vector<uint8_t> bytes =
      encode_segment(whole_range_scope(), LogIndex(1), LogIndex(4), archived(log, 1, 4));
  for (size_t length = 0; length < bytes.size(); ++length) {
    WalSegment segment;
    EXPECT_FALSE(
        decode_segment(std::vector<uint8_t>(bytes.begin(), bytes.begin() + length), &segment).ok())
        << "truncated to " << length;
  }
  for (size_t at = 0; at < bytes.size(); ++at) {
    std::vector<uint8_t> damaged = bytes;
    damaged[at] ^= 0x10;
    WalSegment segment;
    EXPECT_FALSE(decode_segment(damaged, &segment).ok()) << "flip at byte " << at;
  }
  // A flip inside entry 3's command is reported as that entry's checksum failing.
  const size_t manifest_bytes = 4 + 1 + 4 + 4 + 8 * 5 + 4 * 8;
  size_t at = manifest_bytes;
  for (int i = 0; i < 2; ++i) at += 20 + log[i].command.bytes.size();
  std::vector<uint8_t> damaged = bytes;
  damaged[at + 20 + 3] ^= 0x01;
  WalSegment segment;
  const ArchiveError error = decode_segment(damaged, &segment);
  EXPECT_EQ(error.check, ArchiveCheck::kEntryChecksum) << to_string(error);
  EXPECT_EQ(error.index, LogIndex(3));
}

// --- The checks before an upload ----------------------------------------------------------------

TEST(ArchiveChecksTest, SequenceHolesRepeatsAndShortSegmentsAreFound) {
  const ArchiveScope scope = whole_range_scope();
  const std::vector<LogEntry> log = simple_log(8);
  std::vector<ArchivedEntry> entries = archived(log, 1, 8);
  EXPECT_TRUE(check_segment_entries(scope, LogIndex(1), LogIndex(8), entries, checksums_of(entries),
                                    SequenceCheck::kEnforce)
                  .ok());

  std::vector<ArchivedEntry> hole = entries;
  hole.erase(hole.begin() + 4);  // index 5 missing
  ArchiveError error = check_segment_entries(scope, LogIndex(1), LogIndex(8), hole,
                                             checksums_of(hole), SequenceCheck::kEnforce);
  EXPECT_EQ(error.check, ArchiveCheck::kSequence);
  EXPECT_EQ(error.index, LogIndex(5));
  EXPECT_EQ(error.field, "index");
  // The planted bug's mode does not see it.
  EXPECT_TRUE(check_segment_entries(scope, LogIndex(1), LogIndex(8), hole, checksums_of(hole),
                                    SequenceCheck::kSkip)
                  .ok());

  std::vector<ArchivedEntry> repeat = entries;
  repeat[5] = repeat[4];
  error = check_segment_entries(scope, LogIndex(1), LogIndex(8), repeat, checksums_of(repeat),
                                SequenceCheck::kEnforce);
  EXPECT_EQ(error.check, ArchiveCheck::kSequence);
  EXPECT_EQ(error.index, LogIndex(6));

  std::vector<ArchivedEntry> short_segment(entries.begin(), entries.begin() + 6);
  error = check_segment_entries(scope, LogIndex(1), LogIndex(8), short_segment,
                                checksums_of(short_segment), SequenceCheck::kEnforce);
  EXPECT_EQ(error.check, ArchiveCheck::kSequence);
  EXPECT_EQ(error.index, LogIndex(7));

  // Not starting at the segment's first index.
  std::vector<ArchivedEntry> late = archived(log, 2, 8);
  error = check_segment_entries(scope, LogIndex(1), LogIndex(8), late, checksums_of(late),
                                SequenceCheck::kEnforce);
  EXPECT_EQ(error.check, ArchiveCheck::kSequence);
  EXPECT_EQ(error.index, LogIndex(1));
}

TEST(ArchiveChecksTest, EntryChecksumRecordedAtReadIsComparedWithTheBytesHeld) {
  const ArchiveScope scope = whole_range_scope();
  const std::vector<ArchivedEntry> entries = archived(simple_log(4), 1, 4);
  std::vector<uint64_t> recorded = checksums_of(entries);
  recorded[2] ^= 0x100;
  const ArchiveError error = check_segment_entries(scope, LogIndex(1), LogIndex(4), entries,
                                                   recorded, SequenceCheck::kEnforce);
  EXPECT_EQ(error.check, ArchiveCheck::kEntryChecksum);
  EXPECT_EQ(error.index, LogIndex(3));
  EXPECT_EQ(error.field, "checksum");
  // The checksum binds the index and the command id as well as the bytes.
  const ArchivedEntry& e = entries[0];
  EXPECT_NE(archive_entry_checksum(e.index, e.command_id, e.command_bytes),
            archive_entry_checksum(e.index.next(), e.command_id, e.command_bytes));
  EXPECT_NE(archive_entry_checksum(e.index, e.command_id, e.command_bytes),
            archive_entry_checksum(e.index, e.command_id + 1, e.command_bytes));
}

TEST(ArchiveChecksTest, OwnershipByHashRangeKeySchemaAndDecoding) {
  // Four groups over the hash space; the scope is group 1.
  std::vector<std::array<sim::Address, kReplicasPerGroup>> hosts(4);
  const Placement placement = Placement::uniform(4, hosts);
  KeySchema schema;
  schema.partition_key_name = "id";
  schema.partition_key_type = ScalarType::kString;
  const ArchiveScope scope = ArchiveScope::of(TableId(3), placement.group(GroupId(1)), schema);
  uint64_t own_number = 0;
  while (placement.group_for(key_of(own_number)).group != GroupId(1)) ++own_number;
  uint64_t foreign_number = 0;
  while (placement.group_for(key_of(foreign_number)).group == GroupId(1)) ++foreign_number;
  const PrimaryKey own_key = key_of(own_number);
  const PrimaryKey foreign_key = key_of(foreign_number);
  EXPECT_EQ(scope.ownership_failure(own_key), "");
  EXPECT_EQ(scope.ownership_failure(foreign_key), "partition_hash");

  auto check = [&scope](std::vector<ArchivedEntry> entries) {
    return check_segment_entries(scope, LogIndex(1), LogIndex(entries.size()), entries,
                                 checksums_of(entries), SequenceCheck::kEnforce);
  };
  const ArchivedEntry noop = ArchivedEntry::of(committed(1, Command::noop()));
  const ArchivedEntry own = ArchivedEntry::of(committed(2, put_command(2, own_key, 1)));
  EXPECT_TRUE(check({noop, own}).ok());

  ArchiveError error =
      check({noop, own, ArchivedEntry::of(committed(3, delete_command(3, foreign_key)))});
  EXPECT_EQ(error.check, ArchiveCheck::kOwnership);
  EXPECT_EQ(error.index, LogIndex(3));
  EXPECT_EQ(error.field, "partition_hash");

  // A number partition key is not this table's (its schema says string).
  PrimaryKey number_key{KeyValue::number_value(Decimal::from_int(7)), std::nullopt};
  error = check({noop, ArchivedEntry::of(committed(2, put_command(2, number_key, 1)))});
  EXPECT_EQ(error.check, ArchiveCheck::kOwnership);
  EXPECT_EQ(error.field, "partition_key_type");
  // Neither is a key with a sort key.
  PrimaryKey sorted_key = own_key;
  sorted_key.sort = KeyValue::string("s");
  error = check({ArchivedEntry::of(committed(1, put_command(1, sorted_key, 1)))});
  EXPECT_EQ(error.field, "sort_key");

  // Bytes that are not a write command.
  error = check({noop, ArchivedEntry::of(committed(2, Command{9, std::vector<uint8_t>{1, 2}}))});
  EXPECT_EQ(error.check, ArchiveCheck::kOwnership);
  EXPECT_EQ(error.index, LogIndex(2));
  EXPECT_EQ(error.field, "command");
}

// --- The agent ----------------------------------------------------------------------------------

TEST(ArchiverTest, OneReplicaUploadsTheOthersCompareAndAllAgree) {
  World world;
  const ArchiverOptions options = options_with(8);
  // The replicas accepted the same committed entries in different ballots; the WAL path (record
  // encode, decode, checksum at read) is the one a replica recovering from its log would take.
  std::vector<std::unique_ptr<Agent>> agents;
  std::vector<std::vector<LogEntry>> logs;
  for (uint32_t replica = 1; replica <= 3; ++replica) {
    agents.push_back(std::make_unique<Agent>(world.simulation, world.store, options, replica));
    const std::vector<LogEntry> written = simple_log(28, Ballot{replica + 4, replica});
    const std::vector<uint8_t> record =
        encode_wal_record(std::nullopt, written.data(), written.size());
    WalBatch batch;
    ASSERT_TRUE(decode_wal_record(record, &batch));
    logs.push_back(std::move(batch.entries));
  }
  for (const LogEntry& entry : logs[0]) {
    ASSERT_EQ(agents[0]->archiver.offer(entry, archive_entry_checksum(entry)),
              OfferStatus::kAccepted);
  }
  world.simulation.run();
  EXPECT_EQ(agents[0]->archiver.archived_through(), LogIndex(24));
  EXPECT_EQ(agents[0]->archiver.stats().segments_uploaded, 3u);
  EXPECT_EQ(agents[0]->archiver.pending_entries(), 4u);  // 25..28 wait for their segment
  EXPECT_EQ(world.store.object_count(), 3u);
  for (size_t r = 1; r < 3; ++r) offer_all(agents[r]->archiver, logs[r]);
  world.simulation.run();
  for (size_t r = 1; r < 3; ++r) {
    EXPECT_EQ(agents[r]->archiver.archived_through(), LogIndex(24));
    EXPECT_EQ(agents[r]->archiver.stats().segments_matched, 3u);
    EXPECT_EQ(agents[r]->archiver.stats().segments_uploaded, 0u);
    EXPECT_EQ(agents[r]->io.puts, 0u);
    EXPECT_TRUE(agents[r]->io.failures.empty());
  }
  // What is stored is exactly the segment of the committed entries, whatever their ballots.
  const sim::ObjectBytes stored =
      world.store.peek(segment_key(TableId(3), GroupId(0), LogIndex(9), LogIndex(16)));
  ASSERT_NE(stored, nullptr);
  EXPECT_EQ(*stored, encode_segment(options.scope, LogIndex(9), LogIndex(16),
                                    archived(simple_log(28), 9, 16)));
  EXPECT_TRUE(ArchiveAudit(world.store, options.scope).run().ok());
}

TEST(ArchiverTest, ReplicasRacingToUploadEndInOneAgreedArchive) {
  World world(9);
  ArchiverOptions options = options_with(4);
  options.max_pending_entries = 40;  // entries arrive faster than one segment's round trips
  std::vector<std::unique_ptr<Agent>> agents;
  for (uint32_t replica = 1; replica <= 3; ++replica) {
    agents.push_back(std::make_unique<Agent>(world.simulation, world.store, options, replica));
  }
  const std::vector<LogEntry> log = simple_log(40);
  // Entries reach the three replicas interleaved, one at a time.
  for (const LogEntry& entry : log) {
    for (auto& agent : agents) ASSERT_EQ(agent->archiver.offer(entry), OfferStatus::kAccepted);
    world.simulation.run_until(world.simulation.now() + sim::milliseconds(20));
  }
  world.simulation.run();
  uint64_t uploaded = 0;
  for (auto& agent : agents) {
    EXPECT_EQ(agent->archiver.archived_through(), LogIndex(40));
    EXPECT_TRUE(agent->io.failures.empty());
    uploaded += agent->archiver.stats().segments_uploaded;
    EXPECT_EQ(agent->archiver.stats().segments_uploaded + agent->archiver.stats().segments_matched,
              10u);
  }
  EXPECT_GE(uploaded, 10u);
  const ArchiveAuditReport report = ArchiveAudit(world.store, options.scope).run();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.archived_through, LogIndex(40));
  EXPECT_EQ(report.entries, 40u);
}

TEST(ArchiverTest, ArchivedThroughOnlyEverCoversStoredSegmentsThroughOutages) {
  // The contract the storage node truncates its WAL by, checked after every event while the
  // store flaps and three replicas race.
  World world(13);
  ArchiverOptions options = options_with(4);
  options.max_pending_entries = 400;
  std::vector<std::unique_ptr<Agent>> agents;
  for (uint32_t replica = 1; replica <= 3; ++replica) {
    agents.push_back(std::make_unique<Agent>(world.simulation, world.store, options, replica));
  }
  const std::vector<LogEntry> log = simple_log(120);
  sim::Random random(77);
  size_t next = 0;
  for (int step = 0; step < 200'000; ++step) {
    if (next < log.size() && random.bernoulli(0.01)) {
      for (auto& agent : agents) {
        ASSERT_EQ(agent->archiver.offer(log[next]), OfferStatus::kAccepted);
      }
      ++next;
    }
    if (random.bernoulli(0.002)) world.store.set_available(!world.store.available());
    if (next == log.size()) world.store.set_available(true);
    for (auto& agent : agents) {
      const uint64_t through = agent->archiver.archived_through().value;
      for (uint64_t last = 4; last <= through; last += 4) {
        ASSERT_NE(world.store.peek(
                      segment_key(TableId(3), GroupId(0), LogIndex(last - 3), LogIndex(last))),
                  nullptr)
            << "archived_through " << through << " covers a segment the store does not hold";
      }
    }
    if (!world.simulation.step() && next == log.size()) break;
  }
  for (auto& agent : agents) {
    EXPECT_EQ(agent->archiver.archived_through(), LogIndex(120));
    EXPECT_TRUE(agent->io.failures.empty());
    EXPECT_GT(agent->archiver.stats().get_retries + agent->archiver.stats().put_retries, 0u);
  }
  EXPECT_TRUE(ArchiveAudit(world.store, options.scope).run().ok());
}

TEST(ArchiverTest, ADivergentReplicaIsReportedAtTheFirstDifferingIndex) {
  World world;
  const ArchiverOptions options = options_with(8);
  Agent first(world.simulation, world.store, options, 1);
  Agent second(world.simulation, world.store, options, 2);
  const std::vector<LogEntry> log = simple_log(24);
  offer_all(first.archiver, log);
  world.simulation.run();
  ASSERT_EQ(first.archiver.archived_through(), LogIndex(24));

  std::vector<LogEntry> diverged = log;
  diverged[10].command = put_command(11, key_of(99), 1234);  // index 11, segment (8, 16]
  offer_all(second.archiver, diverged);
  world.simulation.run();
  ASSERT_TRUE(second.archiver.halted());
  const ArchiveError& failure = second.archiver.failure();
  EXPECT_EQ(failure.check, ArchiveCheck::kDivergence) << to_string(failure);
  EXPECT_EQ(failure.index, LogIndex(11));
  EXPECT_EQ(failure.key, segment_key(TableId(3), GroupId(0), LogIndex(9), LogIndex(16)));
  ASSERT_EQ(second.io.failures.size(), 1u);  // reported once, loudly
  EXPECT_EQ(second.io.failures[0].index, LogIndex(11));
  EXPECT_EQ(second.archiver.archived_through(), LogIndex(8));  // the matching segment only
  EXPECT_EQ(second.io.puts, 0u);  // the archive is left as the first replica wrote it
  EXPECT_EQ(second.archiver.offer(committed(25, Command::noop())), OfferStatus::kHalted);
}

TEST(ArchiverTest, AFailedCheckUploadsNothingAndSaysWhere) {
  World world;
  const ArchiverOptions options = options_with(8);
  Agent agent(world.simulation, world.store, options, 1);
  std::vector<LogEntry> log = simple_log(16);
  log.erase(log.begin() + 10);  // index 11 never offered
  offer_all(agent.archiver, log);
  world.simulation.run();
  ASSERT_TRUE(agent.archiver.halted());
  EXPECT_EQ(agent.archiver.failure().check, ArchiveCheck::kSequence);
  EXPECT_EQ(agent.archiver.failure().index, LogIndex(11));
  EXPECT_EQ(agent.archiver.failure().field, "index");
  EXPECT_EQ(agent.archiver.archived_through(), LogIndex(8));
  EXPECT_EQ(world.store.object_count(), 1u);  // segment (0, 8] only
  EXPECT_EQ(agent.io.failures.size(), 1u);

  // A foreign key: ownership, at its index.
  World other;
  std::vector<std::array<sim::Address, kReplicasPerGroup>> hosts(2);
  const Placement placement = Placement::uniform(2, hosts);
  Agent owner(other.simulation, other.store,
              options_with(4, ArchiveScope::of(TableId(3), placement.group(GroupId(0)))), 1);
  uint64_t foreign = 0;
  while (placement.group_for(key_of(foreign)).group == GroupId(0)) ++foreign;
  uint64_t own = 0;
  while (placement.group_for(key_of(own)).group != GroupId(0)) ++own;
  for (uint64_t i = 1; i <= 4; ++i) {
    owner.archiver.offer(committed(i, put_command(i, key_of(i == 3 ? foreign : own), i)));
  }
  other.simulation.run();
  EXPECT_EQ(owner.archiver.failure().check, ArchiveCheck::kOwnership);
  EXPECT_EQ(owner.archiver.failure().index, LogIndex(3));
  EXPECT_EQ(other.store.object_count(), 0u);

  // A checksum recorded at read that the bytes no longer match.
  World third;
  Agent reader(third.simulation, third.store, options_with(4), 1);
  const std::vector<LogEntry> short_log = simple_log(4);
  for (const LogEntry& entry : short_log) {
    const uint64_t recorded = archive_entry_checksum(entry) ^ (entry.index.value == 2 ? 1 : 0);
    reader.archiver.offer(entry, recorded);
  }
  third.simulation.run();
  EXPECT_EQ(reader.archiver.failure().check, ArchiveCheck::kEntryChecksum);
  EXPECT_EQ(reader.archiver.failure().index, LogIndex(2));
  EXPECT_EQ(third.store.object_count(), 0u);
}

TEST(ArchiverTest, RetriesWithGrowingBackoffWhileTheStoreIsDown) {
  World world;
  ArchiverOptions options = options_with(4);
  options.retry = RetryOptions{sim::milliseconds(100), sim::seconds(5)};
  Agent agent(world.simulation, world.store, options, 1);
  world.store.set_available(false);
  offer_all(agent.archiver, simple_log(8));
  world.simulation.run_until(sim::SimTime(0) + sim::seconds(60));
  EXPECT_EQ(agent.archiver.archived_through(), LogIndex(0));
  EXPECT_EQ(world.store.object_count(), 0u);
  const uint64_t retries = agent.archiver.stats().get_retries;
  // Backoff doubles to the 5 s cap: about 4 + 60/5 attempts a minute, not one per 100 ms.
  EXPECT_GE(retries, 8u);
  EXPECT_LE(retries, 25u);
  const std::vector<sim::Duration>& delays = agent.io.timer_delays;
  // Waits are drawn from [d/2, d) with d = 100 ms, 200 ms, ... capped at 5 s.
  ASSERT_GE(delays.size(), 7u);
  EXPECT_GE(delays[0], sim::milliseconds(50));
  EXPECT_LT(delays[0], sim::milliseconds(100));
  EXPECT_GE(delays[5], sim::milliseconds(1600));
  EXPECT_GE(delays[6], sim::milliseconds(2500));
  for (const sim::Duration delay : delays) EXPECT_LT(delay, sim::seconds(5));

  world.store.set_available(true);
  world.simulation.run();
  EXPECT_EQ(agent.archiver.archived_through(), LogIndex(8));
  EXPECT_TRUE(agent.io.failures.empty());
  EXPECT_TRUE(ArchiveAudit(world.store, options.scope).run().ok());
}

TEST(ArchiverTest, BackPressureAtTheBoundThenResumesWhereTheNodeLeftOff) {
  World world;
  ArchiverOptions options = options_with(4);
  options.max_pending_entries = 8;
  Agent agent(world.simulation, world.store, options, 1);
  world.store.set_available(false);
  const std::vector<LogEntry> log = simple_log(20);
  size_t offered = 0;
  while (offered < log.size() && agent.archiver.offer(log[offered]) == OfferStatus::kAccepted) {
    ++offered;
  }
  EXPECT_EQ(offered, 8u);
  EXPECT_EQ(agent.archiver.offered_through(), LogIndex(8));
  EXPECT_EQ(agent.archiver.pending_entries(), 8u);
  EXPECT_EQ(agent.archiver.offer(log[8]), OfferStatus::kBackPressure);
  EXPECT_EQ(agent.archiver.stats().back_pressure_refusals, 2u);
  EXPECT_EQ(agent.archiver.offer(log[3]), OfferStatus::kAlreadyOffered);
  world.simulation.run_until(sim::SimTime(0) + sim::seconds(30));
  EXPECT_EQ(agent.archiver.archived_through(), LogIndex(0));

  // The store is back: the node offers again from offered_through() + 1 as room appears.
  world.store.set_available(true);
  for (int rounds = 0; rounds < 1000 && agent.archiver.offered_through() < LogIndex(20); ++rounds) {
    const uint64_t next = agent.archiver.offered_through().value + 1;
    if (agent.archiver.offer(log[next - 1]) != OfferStatus::kAccepted) {
      world.simulation.run_until(world.simulation.now() + sim::milliseconds(50));
    }
    EXPECT_LE(agent.archiver.pending_entries(), 8u);
  }
  world.simulation.run();
  EXPECT_EQ(agent.archiver.archived_through(), LogIndex(20));
  EXPECT_TRUE(ArchiveAudit(world.store, options.scope).run().ok());
}

TEST(ArchiverTest, ChecksumRefusedPutsAreRetriedThenStopTheAgent) {
  World world;
  ArchiverOptions options = options_with(4);
  options.max_checksum_refusals = 3;
  Agent agent(world.simulation, world.store, options, 1);
  agent.io.damage_next_checksums = 2;
  offer_all(agent.archiver, simple_log(4));
  world.simulation.run();
  EXPECT_EQ(agent.archiver.archived_through(), LogIndex(4));
  EXPECT_EQ(agent.archiver.stats().checksum_refusals, 2u);
  EXPECT_EQ(agent.io.puts, 3u);

  agent.io.damage_next_checksums = 100;
  offer_all(agent.archiver, simple_log(8), 5);
  world.simulation.run();
  ASSERT_TRUE(agent.archiver.halted());
  EXPECT_EQ(agent.archiver.failure().check, ArchiveCheck::kObjectChecksum);
  EXPECT_EQ(agent.archiver.archived_through(), LogIndex(4));
  EXPECT_EQ(world.store.object_count(), 1u);
}

TEST(ArchiverTest, AfterASnapshotInstallOnlyTheHeldPartIsComparedAndNothingIsUploaded) {
  World world;
  const ArchiverOptions options = options_with(8);
  Agent whole(world.simulation, world.store, options, 1);
  Agent installed(world.simulation, world.store, options, 2);
  const std::vector<LogEntry> log = simple_log(32);

  // The replica installed a snapshot through 12: segment (0, 8] is not its own, (8, 16] it holds
  // only from 13.
  installed.archiver.start_after(LogIndex(12));
  EXPECT_EQ(installed.archiver.archived_through(), LogIndex(8));
  EXPECT_EQ(installed.archiver.offer(log[11]), OfferStatus::kBelowStart);
  offer_all(installed.archiver, log, 13);
  world.simulation.run_until(sim::SimTime(0) + sim::seconds(20));
  // Nobody has uploaded (8, 16] yet: it waits and retries, and does not upload past it either.
  EXPECT_EQ(installed.archiver.archived_through(), LogIndex(8));
  EXPECT_GT(installed.archiver.stats().waits_for_peer_segment, 0u);
  EXPECT_EQ(installed.io.puts, 0u);

  offer_all(whole.archiver, log);
  world.simulation.run();
  EXPECT_EQ(whole.archiver.archived_through(), LogIndex(32));
  EXPECT_EQ(installed.archiver.archived_through(), LogIndex(32));
  EXPECT_EQ(installed.archiver.stats().partial_segments_matched, 1u);
  EXPECT_TRUE(installed.io.failures.empty());
  EXPECT_TRUE(ArchiveAudit(world.store, options.scope).run().ok());

  // A held part that differs from the peer's upload is a divergence at that index.
  Agent wrong(world.simulation, world.store, options, 3);
  wrong.archiver.start_after(LogIndex(20));
  std::vector<LogEntry> diverged = log;
  diverged[22].command = put_command(23, key_of(77), 5);
  offer_all(wrong.archiver, diverged, 21);
  world.simulation.run();
  EXPECT_EQ(wrong.archiver.failure().check, ArchiveCheck::kDivergence);
  EXPECT_EQ(wrong.archiver.failure().index, LogIndex(23));
}

TEST(ArchiverTest, StartAfterMidFlightDropsWhatItNoLongerHolds) {
  World world;
  const ArchiverOptions options = options_with(8);
  Agent agent(world.simulation, world.store, options, 1);
  world.store.set_available(false);
  offer_all(agent.archiver, simple_log(10));
  world.simulation.run_until(sim::SimTime(0) + sim::seconds(1));
  agent.archiver.start_after(LogIndex(20));
  EXPECT_EQ(agent.archiver.pending_entries(), 0u);
  EXPECT_EQ(agent.archiver.offered_through(), LogIndex(20));
  EXPECT_EQ(agent.archiver.archived_through(), LogIndex(16));
  world.store.set_available(true);
  world.simulation.run();
  EXPECT_EQ(world.store.object_count(), 0u);  // the abandoned segment's retries did nothing
  EXPECT_FALSE(agent.archiver.halted());
}

// --- The planted bug and the audit --------------------------------------------------------------

TEST(ArchiveAuditTest, PlantedSequenceGapIsUploadedAndTheAuditReportsIt) {
  const std::vector<LogEntry> log = simple_log(40);
  std::vector<LogEntry> with_hole = log;
  with_hole.erase(with_hole.begin() + 5);  // index 6: a hole inside segment (0, 8]
  // Indexes 17..24: a whole segment missing between (8, 16] and (24, 32].
  with_hole.erase(with_hole.begin() + 15, with_hole.begin() + 23);

  for (const bool planted : {true, false}) {
    World world;
    ArchiverOptions options = options_with(8);
    options.plant_accept_sequence_gap = planted;
    Agent agent(world.simulation, world.store, options, 1);
    for (const LogEntry& entry : with_hole) agent.archiver.offer(entry);
    world.simulation.run();
    const ArchiveAuditReport report = ArchiveAudit(world.store, options.scope).run();
    if (planted) {
      EXPECT_FALSE(agent.archiver.halted());
      EXPECT_EQ(agent.archiver.archived_through(), LogIndex(40));
      ASSERT_EQ(report.findings.size(), 2u);
      EXPECT_EQ(report.findings[0].check, ArchiveCheck::kSequence);
      EXPECT_EQ(report.findings[0].index, LogIndex(6));  // inside a segment
      EXPECT_EQ(report.findings[0].key,
                segment_key(TableId(3), GroupId(0), LogIndex(1), LogIndex(8)));
      EXPECT_EQ(report.findings[1].check, ArchiveCheck::kSequence);
      EXPECT_EQ(report.findings[1].index, LogIndex(17));  // between segments
      EXPECT_EQ(report.archived_through, LogIndex(16));
      EXPECT_EQ(report.highest_index, LogIndex(40));
    } else {
      ASSERT_TRUE(agent.archiver.halted());
      EXPECT_EQ(agent.archiver.failure().check, ArchiveCheck::kSequence);
      EXPECT_EQ(agent.archiver.failure().index, LogIndex(6));
      EXPECT_EQ(world.store.object_count(), 0u);
      EXPECT_TRUE(report.ok());
    }
  }

  // Without the plant, the between-segments gap is refused too, and what was archived audits clean.
  World world;
  Agent agent(world.simulation, world.store, options_with(8), 1);
  std::vector<LogEntry> missing_segment = log;
  missing_segment.erase(missing_segment.begin() + 16, missing_segment.begin() + 24);
  for (const LogEntry& entry : missing_segment) agent.archiver.offer(entry);
  world.simulation.run();
  EXPECT_EQ(agent.archiver.failure().check, ArchiveCheck::kSequence);
  EXPECT_EQ(agent.archiver.failure().index, LogIndex(17));
  EXPECT_EQ(agent.archiver.archived_through(), LogIndex(16));
  const ArchiveAuditReport report = ArchiveAudit(world.store, options_with(8).scope).run();
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.archived_through, LogIndex(16));
}

TEST(ArchiveAuditTest, DamagedObjectsForeignManifestsAndAMissingStartAreFound) {
  World world;
  const ArchiverOptions options = options_with(4);
  Agent agent(world.simulation, world.store, options, 1);
  offer_all(agent.archiver, simple_log(16));
  world.simulation.run();
  ASSERT_TRUE(ArchiveAudit(world.store, options.scope).run().ok());

  auto replace = [&world](const std::string& key, std::vector<uint8_t> bytes) {
    world.store.put(key, std::make_shared<const std::vector<uint8_t>>(std::move(bytes)),
                    [](ObjectStatus) {});
    world.simulation.run();
  };
  const std::string second = segment_key(TableId(3), GroupId(0), LogIndex(5), LogIndex(8));
  std::vector<uint8_t> rotted = *world.store.peek(second);
  rotted[rotted.size() - 12] ^= 0x04;  // inside the last entry's command
  replace(second, rotted);
  // Another group's segment stored under this group's key.
  ArchiveScope foreign_scope = options.scope;
  foreign_scope.group = GroupId(7);
  const std::string third = segment_key(TableId(3), GroupId(0), LogIndex(9), LogIndex(12));
  replace(third, encode_segment(foreign_scope, LogIndex(9), LogIndex(12),
                                archived(simple_log(12), 9, 12)));

  const ArchiveAuditReport report = ArchiveAudit(world.store, options.scope).run();
  ASSERT_EQ(report.findings.size(), 2u);
  EXPECT_EQ(report.findings[0].check, ArchiveCheck::kEntryChecksum);
  EXPECT_EQ(report.findings[0].index, LogIndex(8));
  EXPECT_EQ(report.findings[0].key, second);
  EXPECT_EQ(report.findings[1].check, ArchiveCheck::kManifest);
  EXPECT_EQ(report.findings[1].field, "group");
  EXPECT_EQ(report.findings[1].key, third);

  // An archive that starts above index 1 with no snapshot below it.
  World late_world;
  const ArchiveScope scope = options.scope;
  late_world.store.put(segment_key(scope.table, scope.group, LogIndex(5), LogIndex(8)),
                       std::make_shared<const std::vector<uint8_t>>(encode_segment(
                           scope, LogIndex(5), LogIndex(8), archived(simple_log(8), 5, 8))),
                       [](ObjectStatus) {});
  late_world.simulation.run();
  ArchiveAuditReport late = ArchiveAudit(late_world.store, scope).run();
  ASSERT_EQ(late.findings.size(), 1u);
  EXPECT_EQ(late.findings[0].index, LogIndex(1));
  // With a snapshot through 4, it begins there and is whole.
  std::vector<uint8_t> snapshot;
  ASSERT_TRUE(encode_snapshot(scope, LogIndex(4), {item_of(key_of(1), 1)}, &snapshot).ok());
  late_world.store.put(snapshot_key(scope.table, scope.group, LogIndex(4)),
                       std::make_shared<const std::vector<uint8_t>>(snapshot), [](ObjectStatus) {});
  late_world.simulation.run();
  late = ArchiveAudit(late_world.store, scope).run();
  EXPECT_TRUE(late.ok()) << to_string(late.findings[0]);
  EXPECT_EQ(late.begins_after, LogIndex(4));
  EXPECT_EQ(late.archived_through, LogIndex(8));

  // A valid segment stored under another segment's key: its manifest disagrees with the key.
  const std::string misplaced = segment_key(scope.table, scope.group, LogIndex(1), LogIndex(4));
  late_world.store.put(misplaced,
                       std::make_shared<const std::vector<uint8_t>>(encode_segment(
                           scope, LogIndex(5), LogIndex(8), archived(simple_log(8), 5, 8))),
                       [](ObjectStatus) {});
  late_world.simulation.run();
  late = ArchiveAudit(late_world.store, scope).run();
  ASSERT_EQ(late.findings.size(), 1u);
  EXPECT_EQ(late.findings[0].check, ArchiveCheck::kManifest);
  EXPECT_EQ(late.findings[0].field, "first_index");
  EXPECT_EQ(late.findings[0].key, misplaced);
}

// --- Snapshots ----------------------------------------------------------------------------------

TEST(PartitionSnapshotTest, RoundTripsAndRefusesWhatIsNotAPartition) {
  const ArchiveScope scope = whole_range_scope();
  std::vector<Item> items;
  for (uint64_t i = 0; i < 12; ++i) items.push_back(item_of(key_of(i), static_cast<int64_t>(i)));
  std::sort(items.begin(), items.end(),
            [](const Item& a, const Item& b) { return a.key() < b.key(); });
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(encode_snapshot(scope, LogIndex(40), items, &bytes).ok());
  PartitionSnapshot snapshot;
  ASSERT_TRUE(decode_snapshot(bytes, &snapshot).ok());
  EXPECT_EQ(snapshot.items, items);
  EXPECT_EQ(snapshot.manifest.through, LogIndex(40));
  EXPECT_EQ(snapshot.manifest.item_count, 12u);
  uint64_t digest = 0;
  for (const Item& item : items) digest += item.checksum();
  EXPECT_EQ(snapshot.manifest.content_digest, digest);
  EXPECT_EQ(snapshot_key(TableId(3), GroupId(1), LogIndex(40)),
            "snap/0000000003/0000000001/00000000000000000040");
  EXPECT_EQ(parse_snapshot_key(snapshot_key(TableId(3), GroupId(1), LogIndex(40)),
                               snapshot_prefix(TableId(3), GroupId(1))),
            LogIndex(40));

  for (size_t length = 0; length < bytes.size(); length += 7) {
    PartitionSnapshot cut;
    EXPECT_FALSE(
        decode_snapshot(std::vector<uint8_t>(bytes.begin(), bytes.begin() + length), &cut).ok());
  }
  for (size_t at = 0; at < bytes.size(); at += 3) {
    std::vector<uint8_t> damaged = bytes;
    damaged[at] ^= 0x20;
    PartitionSnapshot out;
    EXPECT_FALSE(decode_snapshot(damaged, &out).ok()) << "flip at " << at;
  }

  std::vector<Item> unsorted = items;
  std::swap(unsorted[2], unsorted[3]);
  std::vector<uint8_t> refused;
  EXPECT_EQ(encode_snapshot(scope, LogIndex(40), unsorted, &refused).field, "key_order");
  EXPECT_TRUE(refused.empty());
  ArchiveScope narrow = scope;
  narrow.hash_end = 0;
  EXPECT_EQ(encode_snapshot(narrow, LogIndex(40), items, &refused).check, ArchiveCheck::kOwnership);
}

TEST(PartitionSnapshotTest, PolicyIsEveryMArchivedEntriesAndTheUploaderRetries) {
  const SnapshotPolicy policy{100};
  EXPECT_FALSE(policy.due(LogIndex(99), LogIndex(0)));
  EXPECT_TRUE(policy.due(LogIndex(100), LogIndex(0)));
  EXPECT_FALSE(policy.due(LogIndex(150), LogIndex(100)));
  EXPECT_TRUE(policy.due(LogIndex(230), LogIndex(100)));
  EXPECT_FALSE(SnapshotPolicy{0}.due(LogIndex(1'000'000), LogIndex(0)));

  World world;
  StoreIo io(world.simulation, world.store);
  SnapshotUploader uploader(whole_range_scope(), io, sim::Random(4));
  io.on_timer = [&uploader](uint64_t cookie) { uploader.on_timer(cookie); };
  world.store.set_available(false);
  const std::vector<Item> items = {item_of(key_of(1), 1)};
  EXPECT_EQ(uploader.upload(LogIndex(64), items), SnapshotUploader::Start::kStarted);
  EXPECT_EQ(uploader.upload(LogIndex(65), items), SnapshotUploader::Start::kBusy);
  world.simulation.run_until(sim::SimTime(0) + sim::seconds(10));
  EXPECT_GT(uploader.retries(), 2u);
  EXPECT_EQ(uploader.uploaded_through(), LogIndex(0));
  world.store.set_available(true);
  world.simulation.run();
  EXPECT_EQ(uploader.uploaded_through(), LogIndex(64));
  EXPECT_FALSE(uploader.busy());
  PartitionSnapshot stored;
  ASSERT_TRUE(decode_snapshot(*world.store.peek(snapshot_key(TableId(3), GroupId(0), LogIndex(64))),
                              &stored)
                  .ok());
  EXPECT_EQ(stored.items, items);
  ArchiveError refusal;
  EXPECT_EQ(uploader.upload(LogIndex(70), {items[0], items[0]}, &refusal),
            SnapshotUploader::Start::kRefused);
  EXPECT_EQ(refusal.field, "key_order");
}

// --- The reference replica against a real B-tree ------------------------------------------------

// A replica's state machine: a BTree on a simulated disk, applying committed entries with the
// storage node's semantics (a condition is judged on the tree's current item).
struct TreeReplica {
  TreeReplica() : disk(simulation, sim::DiskId(0), "archive-test", disk_options()) {
    BTreeOptions options;
    options.region_offset_bytes = 4096 * 16;
    options.region_sectors = 16384;
    options.cache_pages = 64;
    tree = std::make_unique<BTree>(disk, options);
  }
  static sim::DiskOptions disk_options() {
    sim::DiskOptions options;
    options.capacity_bytes = 256 << 20;
    return options;
  }
  void wait(const bool& done) {
    for (int i = 0; i < 1'000'000 && !done; ++i) {
      if (!simulation.step()) break;
    }
    ASSERT_TRUE(done);
  }
  void apply(const Command& command) {
    if (command.is_noop()) return;
    WriteCommand write;
    ASSERT_TRUE(WriteCommand::decode(command.bytes, &write));
    bool done = false;
    std::optional<Item> current;
    tree->get(write.key, [&](BTreeStatus status, std::optional<Item> item) {
      EXPECT_TRUE(status == BTreeStatus::kOk || status == BTreeStatus::kNotFound);
      current = std::move(item);
      done = true;
    });
    wait(done);
    if (!write.condition.holds(current ? &*current : nullptr)) return;
    done = false;
    auto finished = [&done](BTreeStatus status) {
      EXPECT_TRUE(status == BTreeStatus::kOk || status == BTreeStatus::kNotFound);
      done = true;
    };
    if (write.op == StorageOp::kPut) {
      tree->put(write.item, finished);
    } else {
      tree->erase(write.key, finished);
    }
    wait(done);
  }
  std::vector<Item> items() {
    std::vector<Item> out;
    std::optional<PrimaryKey> from;
    for (int pages = 0; pages < 100'000; ++pages) {
      bool done = false;
      std::optional<PrimaryKey> next;
      tree->scan(
          from, 50,
          [&](BTreeStatus status, std::vector<Item> page, std::optional<PrimaryKey> continue_from) {
            EXPECT_EQ(status, BTreeStatus::kOk);
            for (Item& item : page) out.push_back(std::move(item));
            next = std::move(continue_from);
            done = true;
          });
      wait(done);
      if (!next) break;
      from = std::move(next);
    }
    return out;
  }

  sim::Simulation simulation{5};
  sim::Disk disk;
  std::unique_ptr<BTree> tree;
};

// Puts, deletes and conditional writes over a few keys, some of whose conditions fail.
std::vector<LogEntry> mixed_log(uint64_t count, uint64_t seed) {
  sim::Random random(seed);
  std::vector<LogEntry> log;
  for (uint64_t i = 1; i <= count; ++i) {
    const PrimaryKey key = key_of(random.uniform_u64(30));
    const int64_t version = static_cast<int64_t>(random.uniform_u64(6));
    const uint64_t roll = random.uniform_u64(100);
    Command command;
    if (roll < 5) {
      command = Command::noop();
    } else if (roll < 50) {
      command = put_command(i, key, version);
    } else if (roll < 62) {
      command = delete_command(i, key);
    } else if (roll < 74) {
      command =
          put_command(i, key, version, Condition{Condition::Kind::kAttributeNotExists, "ver", {}});
    } else if (roll < 90) {
      command = put_command(
          i, key, version + 1,
          Condition{Condition::Kind::kAttributeEquals, "ver", Decimal::from_int(version)});
    } else {
      command = delete_command(i, key, Condition{Condition::Kind::kAttributeExists, "ver", {}});
    }
    log.push_back(committed(i, std::move(command)));
  }
  return log;
}

TEST(ReferenceReplicaTest, ItemContentHashIsTheBTreesPerItemHash) {
  TreeReplica replica;
  const Item item = item_of(key_of(3), 9);
  replica.apply(put_command(1, item.key(), 9));
  EXPECT_EQ(replica.tree->content_digest(), item_content_hash(item));
}

TEST(ReferenceReplicaTest, DigestAtAnIndexEqualsTheBTreesAndMovesWhenAnEntryIsAltered) {
  const std::vector<LogEntry> log = mixed_log(200, 42);
  const ArchiveScope scope = whole_range_scope();

  // The live replica: the tree, with its digest and items recorded at a few indexes.
  TreeReplica replica;
  std::map<uint64_t, std::pair<uint64_t, uint64_t>> live;  // index -> (digest, count)
  std::vector<Item> items_at_64;
  for (const LogEntry& entry : log) {
    replica.apply(entry.command);
    const uint64_t index = entry.index.value;
    live[index] = {replica.tree->content_digest(), replica.tree->item_count()};
    if (index == 64) items_at_64 = replica.items();
  }

  // The archive: segments of 16 through 192 and a snapshot through 64.
  World world;
  ArchiverOptions options = options_with(16);
  options.max_pending_entries = 256;
  Agent agent(world.simulation, world.store, options, 1);
  offer_all(agent.archiver, log);
  StoreIo snapshot_io(world.simulation, world.store);
  SnapshotUploader uploader(scope, snapshot_io, sim::Random(2));
  ASSERT_EQ(uploader.upload(LogIndex(64), items_at_64), SnapshotUploader::Start::kStarted);
  world.simulation.run();
  ASSERT_EQ(agent.archiver.archived_through(), LogIndex(192));
  ASSERT_EQ(uploader.uploaded_through(), LogIndex(64));
  ASSERT_TRUE(ArchiveAudit(world.store, scope).run().ok());

  for (const uint64_t at : {1u, 40u, 64u, 100u, 150u, 192u}) {
    const ReferenceReplica reference = rebuild_reference_replica(world.store, scope, LogIndex(at));
    ASSERT_TRUE(reference.ok()) << at << ": " << to_string(reference.error);
    EXPECT_EQ(reference.content_digest, live[at].first) << "at index " << at;
    EXPECT_EQ(reference.item_count, live[at].second) << "at index " << at;
    EXPECT_EQ(reference.snapshot_through, LogIndex(at >= 64 ? 64 : 0));
  }
  const ReferenceReplica at_150 = rebuild_reference_replica(world.store, scope, LogIndex(150));
  EXPECT_EQ(at_150.entries_applied, 150u - 64u);
  EXPECT_GT(at_150.conditions_failed, 0u);  // the workload exercises failing conditions

  // Beyond the archive: a clear failure, not a digest.
  const ReferenceReplica beyond = rebuild_reference_replica(world.store, scope, LogIndex(193));
  EXPECT_EQ(beyond.error.check, ArchiveCheck::kIncomplete);
  EXPECT_EQ(beyond.error.index, LogIndex(193));

  // One archived entry altered (re-encoded with valid checksums): the digest moves.
  const std::string key = segment_key(scope.table, scope.group, LogIndex(97), LogIndex(112));
  WalSegment segment;
  ASSERT_TRUE(decode_segment(*world.store.peek(key), &segment).ok());
  segment.entries[3].command_bytes = put_command(100, key_of(500), 1).bytes;  // index 100
  world.store.put(key,
                  std::make_shared<const std::vector<uint8_t>>(
                      encode_segment(scope, LogIndex(97), LogIndex(112), segment.entries)),
                  [](ObjectStatus) {});
  world.simulation.run();
  const ReferenceReplica altered = rebuild_reference_replica(world.store, scope, LogIndex(150));
  ASSERT_TRUE(altered.ok());
  EXPECT_NE(altered.content_digest, live[150].first);
  // Before the altered entry, nothing changes.
  EXPECT_EQ(rebuild_reference_replica(world.store, scope, LogIndex(99)).content_digest,
            live[99].first);

  // A raw flip in a stored entry: refused by its checksum, at its index.
  std::vector<uint8_t> rotted = *world.store.peek(key);
  const std::string marker = "user500";
  const auto found = std::search(rotted.begin(), rotted.end(), marker.begin(), marker.end());
  ASSERT_NE(found, rotted.end());
  *found ^= 0x02;  // inside index 100's command
  world.store.put(key, std::make_shared<const std::vector<uint8_t>>(rotted), [](ObjectStatus) {});
  world.simulation.run();
  const ReferenceReplica damaged = rebuild_reference_replica(world.store, scope, LogIndex(150));
  EXPECT_FALSE(damaged.ok());
  EXPECT_EQ(damaged.error.key, key);
  EXPECT_EQ(damaged.error.check, ArchiveCheck::kEntryChecksum) << to_string(damaged.error);
  EXPECT_EQ(damaged.error.index, LogIndex(100));

  // A missing segment is a gap at its first index.
  World gap_world;
  Agent gap_agent(gap_world.simulation, gap_world.store, options, 1);
  offer_all(gap_agent.archiver, log);
  gap_world.simulation.run();
  std::map<std::string, sim::ObjectBytes> kept;
  for (const std::string& k : gap_world.store.peek_keys(segment_prefix(scope.table, scope.group))) {
    if (k != segment_key(scope.table, scope.group, LogIndex(33), LogIndex(48))) {
      kept[k] = gap_world.store.peek(k);
    }
  }
  World holed;
  for (auto& [k, bytes] : kept) holed.store.put(k, bytes, [](ObjectStatus) {});
  holed.simulation.run();
  const ReferenceReplica gap = rebuild_reference_replica(holed.store, scope, LogIndex(100));
  EXPECT_EQ(gap.error.check, ArchiveCheck::kSequence);
  EXPECT_EQ(gap.error.index, LogIndex(33));
  EXPECT_TRUE(rebuild_reference_replica(holed.store, scope, LogIndex(32)).ok());
}

// --- The reference replica built during a run ---------------------------------------------------

// A ReferenceBuilder with its own Io over a world's store; run() starts a build and runs the
// simulation until nothing is left.
struct Builder {
  Builder(World& world, ReferenceBuilderOptions options, uint64_t seed = 7)
      : world(world), io(world.simulation, world.store), builder(options, io, sim::Random(seed)) {
    io.on_timer = [this](uint64_t cookie) { builder.on_timer(cookie); };
  }
  static ReferenceBuilderOptions options_for(ArchiveScope scope) {
    ReferenceBuilderOptions options;
    options.scope = std::move(scope);
    return options;
  }
  ReferenceBuilder::Start start(LogIndex through) {
    result.reset();
    return builder.start(through, [this](ReferenceReplica replica) {
      EXPECT_FALSE(result.has_value()) << "done ran twice";
      result = std::move(replica);
    });
  }
  const ReferenceReplica& run(LogIndex through) {
    EXPECT_EQ(start(through), ReferenceBuilder::Start::kStarted);
    world.simulation.run();
    EXPECT_TRUE(result.has_value());
    EXPECT_FALSE(builder.running());
    if (!result) result.emplace();
    return *result;
  }

  World& world;
  StoreIo io;
  ReferenceBuilder builder;
  std::optional<ReferenceReplica> result;
};

// The content after `log` through `through`, folded by hand (apply_archived_command on a map), as
// a snapshot holds it: in key order.
std::vector<Item> items_through(const std::vector<LogEntry>& log, uint64_t through) {
  std::map<PrimaryKey, Item> items;
  for (const LogEntry& entry : log) {
    if (entry.index.value > through) break;
    bool condition_failed = false;
    EXPECT_TRUE(apply_archived_command(entry.command, items, &condition_failed));
  }
  std::vector<Item> out;
  for (auto& [key, item] : items) out.push_back(std::move(item));
  return out;
}

// `log` archived by the real agent (segments of `entries_per_segment`) and, when snapshot_at > 0,
// a snapshot through snapshot_at put by the real uploader, on world's store.
void archive_log(World& world, const ArchiverOptions& options, const std::vector<LogEntry>& log,
                 uint64_t snapshot_at) {
  Agent agent(world.simulation, world.store, options, 1);
  for (const LogEntry& entry : log) agent.archiver.offer(entry);
  StoreIo snapshot_io(world.simulation, world.store);
  SnapshotUploader uploader(options.scope, snapshot_io, sim::Random(2));
  if (snapshot_at > 0) {
    ASSERT_EQ(uploader.upload(LogIndex(snapshot_at), items_through(log, snapshot_at)),
              SnapshotUploader::Start::kStarted);
  }
  world.simulation.run();
  ASSERT_FALSE(agent.archiver.halted()) << to_string(agent.archiver.failure());
  ASSERT_EQ(uploader.uploaded_through(), LogIndex(snapshot_at));
}

void expect_same_replica(const ReferenceReplica& built, const ReferenceReplica& offline,
                         uint64_t at) {
  EXPECT_EQ(to_string(built.error), to_string(offline.error)) << "at index " << at;
  EXPECT_EQ(built.error.key, offline.error.key) << "at index " << at;
  EXPECT_EQ(built.through, offline.through) << "at index " << at;
  EXPECT_EQ(built.snapshot_through, offline.snapshot_through) << "at index " << at;
  EXPECT_EQ(built.content_digest, offline.content_digest) << "at index " << at;
  EXPECT_EQ(built.item_count, offline.item_count) << "at index " << at;
  EXPECT_EQ(built.entries_applied, offline.entries_applied) << "at index " << at;
  EXPECT_EQ(built.conditions_failed, offline.conditions_failed) << "at index " << at;
  EXPECT_TRUE(built.items == offline.items) << "at index " << at;
}

TEST(ReferenceBuilderTest, EqualsTheOfflineRebuildOnAnArchiveFromTheAgentAndTheUploader) {
  const std::vector<LogEntry> log = mixed_log(200, 42);
  World world;
  ArchiverOptions options = options_with(16);
  options.max_pending_entries = 256;
  archive_log(world, options, log, 64);
  ASSERT_TRUE(ArchiveAudit(world.store, options.scope).run().ok());

  Builder build(world, Builder::options_for(options.scope));
  for (const uint64_t at : {0u, 1u, 40u, 63u, 64u, 65u, 100u, 150u, 192u}) {
    const uint64_t lists_before = build.io.lists;
    const uint64_t gets_before = build.io.gets;
    const sim::SimTime started = world.simulation.now();
    const ReferenceReplica& built = build.run(LogIndex(at));
    ASSERT_TRUE(built.ok()) << at << ": " << to_string(built.error);
    const ReferenceReplica offline =
        rebuild_reference_replica(world.store, options.scope, LogIndex(at));
    ASSERT_TRUE(offline.ok());
    expect_same_replica(built, offline, at);
    uint64_t by_hand = 0;
    for (const Item& item : items_through(log, at)) by_hand += item_content_hash(item);
    EXPECT_EQ(built.content_digest, by_hand) << "at index " << at;
    // Through the store, with its latency: the snapshot list, the snapshot, the segment list
    // (unless the snapshot is the answer), and only the segments that hold (snapshot, T].
    EXPECT_GT(world.simulation.now(), started);
    const uint64_t snapshot_gets = at >= 64 ? 1 : 0;
    const uint64_t from = at >= 64 ? 65 : 1;
    const uint64_t segment_gets = at >= from ? (at - 1) / 16 - (from - 1) / 16 + 1 : 0;
    EXPECT_EQ(build.io.lists - lists_before, segment_gets > 0 ? 2u : 1u) << "at index " << at;
    EXPECT_EQ(build.io.gets - gets_before, snapshot_gets + segment_gets) << "at index " << at;
  }
  EXPECT_EQ(build.builder.retries(), 0u);

  // One build at a time; cancel() abandons one without calling done, and late replies do nothing.
  ASSERT_EQ(build.start(LogIndex(150)), ReferenceBuilder::Start::kStarted);
  EXPECT_EQ(build.builder.start(LogIndex(100), [](ReferenceReplica) { FAIL(); }),
            ReferenceBuilder::Start::kBusy);
  build.builder.cancel();
  EXPECT_FALSE(build.builder.running());
  world.simulation.run();
  EXPECT_FALSE(build.result.has_value());
  EXPECT_TRUE(build.run(LogIndex(100)).ok());

  // Destroyed mid-build, with a list in flight: its reply is dropped without touching it (under
  // the sanitizer build a use after free would fail here), and done never runs.
  StoreIo io(world.simulation, world.store);
  bool done_ran = false;
  auto doomed =
      std::make_unique<ReferenceBuilder>(Builder::options_for(options.scope), io, sim::Random(9));
  ASSERT_EQ(doomed->start(LogIndex(150), [&done_ran](ReferenceReplica) { done_ran = true; }),
            ReferenceBuilder::Start::kStarted);
  EXPECT_EQ(io.lists, 1u);
  doomed.reset();
  world.simulation.run();
  EXPECT_FALSE(done_ran);
}

TEST(ReferenceBuilderTest, IncompleteWhenTIsBeyondTheArchive) {
  World world;
  ArchiverOptions options = options_with(16);
  options.max_pending_entries = 256;
  const std::vector<LogEntry> log = mixed_log(200, 42);
  archive_log(world, options, log, 64);  // segments through 192: 193..200 are not archived
  Builder build(world, Builder::options_for(options.scope));
  for (const uint64_t at : {193u, 300u}) {
    const ReferenceReplica& built = build.run(LogIndex(at));
    EXPECT_EQ(built.error.check, ArchiveCheck::kIncomplete) << to_string(built.error);
    EXPECT_EQ(built.error.index, LogIndex(193));
    EXPECT_TRUE(built.items.empty());
    expect_same_replica(built, rebuild_reference_replica(world.store, options.scope, LogIndex(at)),
                        at);
  }

  // Nothing archived: incomplete from index 1, and the content at 0 is empty.
  World empty;
  Builder from_nothing(empty, Builder::options_for(options.scope));
  const ReferenceReplica& nothing = from_nothing.run(LogIndex(5));
  EXPECT_EQ(nothing.error.check, ArchiveCheck::kIncomplete);
  EXPECT_EQ(nothing.error.index, LogIndex(1));
  const ReferenceReplica& at_zero = from_nothing.run(LogIndex(0));
  EXPECT_TRUE(at_zero.ok());
  EXPECT_EQ(at_zero.item_count, 0u);
}

TEST(ReferenceBuilderTest, SequenceGapsLeftByThePlantedArchiverBugAreFound) {
  const std::vector<LogEntry> log = simple_log(40);
  std::vector<LogEntry> missing_segment = log;  // 17..24: between (8, 16] and (24, 32]
  missing_segment.erase(missing_segment.begin() + 16, missing_segment.begin() + 24);
  std::vector<LogEntry> with_hole = missing_segment;  // and index 6, inside (0, 8]
  with_hole.erase(with_hole.begin() + 5);

  ArchiverOptions options = options_with(8);
  options.plant_accept_sequence_gap = true;
  const ArchiveScope& scope = options.scope;

  struct Case {
    const std::vector<LogEntry>& log;
    uint64_t missing;    // the first index no archived entry holds
    uint64_t key_first;  // the segment in which the build finds it missing
    uint64_t holds_through;
  };
  for (const Case& c : {Case{missing_segment, 17, 25, 16}, Case{with_hole, 6, 1, 5}}) {
    World world;
    archive_log(world, options, c.log, 0);
    Builder build(world, Builder::options_for(scope));
    const ReferenceReplica& gap = build.run(LogIndex(40));
    EXPECT_EQ(gap.error.check, ArchiveCheck::kSequence) << to_string(gap.error);
    EXPECT_EQ(gap.error.index, LogIndex(c.missing));
    EXPECT_EQ(gap.error.key, segment_key(TableId(3), GroupId(0), LogIndex(c.key_first),
                                         LogIndex(c.key_first + 7)));
    expect_same_replica(gap, rebuild_reference_replica(world.store, scope, LogIndex(40)), 40);
    EXPECT_TRUE(build.run(LogIndex(c.holds_through)).ok());  // below the gap the archive holds
  }
}

TEST(ReferenceBuilderTest, RetriesThroughAnUnavailableStoreAndStopsAfterMaxAttempts) {
  World world;
  ArchiverOptions options = options_with(16);
  options.max_pending_entries = 256;
  archive_log(world, options, mixed_log(200, 42), 64);
  const ReferenceReplica offline =
      rebuild_reference_replica(world.store, options.scope, LogIndex(150));
  ASSERT_TRUE(offline.ok());
  ReferenceBuilderOptions patient = Builder::options_for(options.scope);
  patient.max_attempts = 30;

  // Down before the first call: the list is retried with backoff until the store is back.
  {
    Builder build(world, patient);
    world.store.set_available(false);
    ASSERT_EQ(build.start(LogIndex(150)), ReferenceBuilder::Start::kStarted);
    world.simulation.run_until(world.simulation.now() + sim::seconds(10));
    EXPECT_TRUE(build.builder.running());
    EXPECT_FALSE(build.result.has_value());
    ASSERT_GT(build.builder.retries(), 3u);
    ASSERT_EQ(build.io.timer_delays.size(), build.builder.retries());
    EXPECT_GT(build.io.timer_delays.back(), build.io.timer_delays.front());  // it backs off
    world.store.set_available(true);
    world.simulation.run();
    ASSERT_TRUE(build.result.has_value());
    expect_same_replica(*build.result, offline, 150);
  }

  // Down in the middle, between segment gets: those gets are retried, and the result is the same.
  {
    Builder build(world, patient);
    ASSERT_EQ(build.start(LogIndex(150)), ReferenceBuilder::Start::kStarted);
    for (int i = 0; i < 100'000 && build.io.gets < 3; ++i) ASSERT_TRUE(world.simulation.step());
    world.store.set_available(false);
    world.simulation.run_until(world.simulation.now() + sim::seconds(5));
    EXPECT_FALSE(build.result.has_value());
    EXPECT_GT(build.builder.retries(), 0u);
    world.store.set_available(true);
    world.simulation.run();
    ASSERT_TRUE(build.result.has_value());
    expect_same_replica(*build.result, offline, 150);
    EXPECT_GT(build.io.gets, 7u);  // the snapshot and 6 segments, and some of them again
  }

  // Down for good: max_attempts answers of kUnavailable in a row end the build with kStore.
  {
    ReferenceBuilderOptions brief = Builder::options_for(options.scope);
    brief.max_attempts = 3;
    Builder build(world, brief);
    world.store.set_available(false);
    const ReferenceReplica& failed = build.run(LogIndex(150));
    world.store.set_available(true);
    EXPECT_EQ(failed.error.check, ArchiveCheck::kStore) << to_string(failed.error);
    EXPECT_EQ(failed.error.key, snapshot_prefix(TableId(3), GroupId(0)));
    EXPECT_EQ(build.io.lists, 3u);
    EXPECT_EQ(build.builder.retries(), 2u);
    EXPECT_EQ(build.builder.calls(), 3u);
    EXPECT_TRUE(failed.items.empty());
  }
}

// A scrub digest marker (model/scrub_protocol.h) as the leader proposes it.
Command marker_command(uint64_t id) {
  DigestMarker marker;
  marker.round = id;
  marker.leader = 1;
  marker.ranges = {KeyRangeBounds{}};
  return Command{id, marker.encode()};
}

TEST(ArchiveChecksTest, ADigestMarkerIsNeverAWriteAndBelongsToAnyGroup) {
  const Command marker = marker_command(77);
  EXPECT_TRUE(DigestMarker::is_marker(marker.bytes));
  EXPECT_TRUE(is_non_write_command(marker));
  WriteCommand write;
  EXPECT_FALSE(WriteCommand::decode(marker.bytes, &write));
  EXPECT_FALSE(DigestMarker::is_marker({0x44, 0x52, 0x4B}));        // too short
  EXPECT_FALSE(DigestMarker::is_marker({0x4D, 0x4B, 0x52, 0x44}));  // big-endian
  const Command put = put_command(1, key_of(1), 1);
  EXPECT_FALSE(DigestMarker::is_marker(put.bytes));
  EXPECT_FALSE(is_non_write_command(put));
  EXPECT_TRUE(is_non_write_command(Command::noop()));
  EXPECT_TRUE(is_non_write_command(Command{2, Configuration::of_voters({1, 2, 3}).encode(), true}));

  // The ownership check passes a marker, as it passes a no-op, even for a group that owns nothing
  // of the written keys.
  ArchiveScope narrow = whole_range_scope();
  narrow.hash_begin = 5;
  narrow.hash_end = 5;
  std::vector<LogEntry> log = {committed(1, Command::noop()), committed(2, marker)};
  const std::vector<ArchivedEntry> entries = archived(log, 1, 2);
  EXPECT_TRUE(check_segment_entries(narrow, LogIndex(1), LogIndex(2), entries,
                                    checksums_of(entries), SequenceCheck::kEnforce)
                  .ok());
}

TEST(ReferenceBuilderTest, MarkersNoOpsAndConfigurationEntriesAreSkippedAlike) {
  // Writes with no-ops (every 7th), a configuration entry at 10 and markers at 12 and 20; the
  // control log has a no-op in each of those three slots.
  std::vector<LogEntry> log = simple_log(24);
  std::vector<LogEntry> control = log;
  log[9].command = Command{10, Configuration::of_voters({1, 2, 3}).encode(), true};
  log[11].command = marker_command(12);
  log[19].command = marker_command(20);
  for (const size_t i : {9u, 11u, 19u}) control[i].command = Command::noop();

  const ArchiverOptions options = options_with(8);
  World world;
  World control_world;
  archive_log(world, options, log, 0);  // the agent archives markers (it does not halt)
  archive_log(control_world, options, control, 0);
  EXPECT_TRUE(ArchiveAudit(world.store, options.scope).run().ok());

  Builder build(world, Builder::options_for(options.scope));
  Builder build_control(control_world, Builder::options_for(options.scope));
  for (const uint64_t at : {11u, 12u, 24u}) {
    const ReferenceReplica& built = build.run(LogIndex(at));
    ASSERT_TRUE(built.ok()) << to_string(built.error);
    EXPECT_EQ(built.entries_applied, at);  // the skipped entries count, like no-ops
    expect_same_replica(built, rebuild_reference_replica(world.store, options.scope, LogIndex(at)),
                        at);
    const ReferenceReplica& controlled = build_control.run(LogIndex(at));
    EXPECT_EQ(built.content_digest, controlled.content_digest) << "at index " << at;
    EXPECT_EQ(built.item_count, controlled.item_count) << "at index " << at;
    EXPECT_EQ(built.entries_applied, controlled.entries_applied) << "at index " << at;
  }

  // Bytes that are neither a write nor a marker (the magic cut short) still fail both paths, at
  // their index: the skip is for markers, not for anything undecodable.
  std::vector<ArchivedEntry> entries = archived(log, 17, 24);
  entries[3].command_bytes = std::vector<uint8_t>{0x44, 0x52, 0x4B};  // index 20
  world.store.put(segment_key(TableId(3), GroupId(0), LogIndex(17), LogIndex(24)),
                  std::make_shared<const std::vector<uint8_t>>(
                      encode_segment(options.scope, LogIndex(17), LogIndex(24), entries)),
                  [](ObjectStatus) {});
  world.simulation.run();
  const ReferenceReplica& refused = build.run(LogIndex(24));
  EXPECT_EQ(refused.error.check, ArchiveCheck::kEncoding) << to_string(refused.error);
  EXPECT_EQ(refused.error.index, LogIndex(20));
  expect_same_replica(refused, rebuild_reference_replica(world.store, options.scope, LogIndex(24)),
                      24);
}

}  // namespace
}  // namespace dynasim::model
