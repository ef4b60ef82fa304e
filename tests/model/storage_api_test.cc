// DynamoDB's data-plane operations against real storage nodes: three hosts in three AZs, one
// StorageNode on each hosting a replica of every group, and DirectClient processes. UpdateItem's
// ADD is exact under concurrent clients because every replica evaluates it at apply, in log
// order (and the planted bug that evaluates it at the leader before logging loses increments);
// a conditional update that fails writes nothing; Query pages return every item once, in order,
// within 1 MB counted before the filter (and the planted bug that counts after the filter reads
// past it); Scan segments partition a table's items exactly; consumed capacity for known sizes.
#include <gtest/gtest.h>

#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "model/api.h"
#include "model/archive.h"
#include "model/client.h"
#include "model/storage_node.h"
#include "sim/world.h"

namespace dynasim::model {
namespace {

using sim::Address;

class ApiClientProcess final : public sim::Process {
 public:
  ApiClientProcess(ClientOptions options, const Placement* placement, uint64_t id,
                   ClientObserver* observer)
      : client_(options, placement, id, observer) {}
  void on_start(sim::Env& env) override { env_ = &env; }
  void on_message(sim::Env& env, Address from, const sim::Message& message) override {
    client_.on_message(env, from, message);
  }
  void on_timer(sim::Env& env, uint64_t cookie) override { client_.on_timer(env, cookie); }
  uint64_t submit(ClientRequest request, DirectClient::Done done) {
    return client_.submit(*env_, std::move(request), std::move(done));
  }
  const DirectClient::Stats& stats() const { return client_.stats(); }

 private:
  DirectClient client_;
  sim::Env* env_ = nullptr;
};

struct WorldOptions {
  uint32_t groups = 3;
  uint32_t clients = 1;
  uint64_t seed = 1;
  bool plant_update_at_leader = false;
  bool plant_page_limit_after_filter = false;
  ClientObserver* observer = nullptr;  // client 0's
};

struct ApiWorld {
  explicit ApiWorld(WorldOptions o)
      : options(o), simulation(o.seed), world(simulation, sim::WorldOptions{}) {
    const char* az_names[] = {"az-a", "az-b", "az-c"};
    std::array<Address, kReplicasPerGroup> nodes;
    sim::RackId first_rack;
    for (int i = 0; i < 3; ++i) {
      const sim::AzId az = world.add_az(az_names[i]);
      const sim::RackId rack = world.add_rack(az, std::string(az_names[i]) + "/r0");
      if (i == 0) first_rack = rack;
      const sim::HostId host =
          world.add_host(rack, std::string(az_names[i]) + "/storage", sim::HostOptions{});
      nodes[i] = Address{host, kStoragePort};
    }
    placement = Placement::uniform(o.groups, std::vector<std::array<Address, 3>>(o.groups, nodes));
    for (int i = 0; i < 3; ++i) {
      StorageNodeOptions n;
      for (uint32_t g = 0; g < o.groups; ++g) {
        ReplicaAssignment a;
        a.group = GroupId(g);
        a.replica = static_cast<uint32_t>(i + 1);
        a.members = nodes;
        n.replicas.push_back(a);
      }
      n.paxos.heartbeat_interval = sim::milliseconds(50);
      n.paxos.election_timeout = sim::milliseconds(250);
      n.paxos.lease_duration = sim::milliseconds(500);
      n.wal_region_sectors = 8192;
      n.btree_region_sectors = 8192;
      n.plant_evaluate_update_at_leader_before_log = o.plant_update_at_leader;
      n.plant_page_limit_after_filter = o.plant_page_limit_after_filter;
      world.add_process(nodes[i].host, kStoragePort,
                        [n] { return std::make_unique<StorageNode>(n); });
    }
    const sim::HostId client_host = world.add_host(first_rack, "az-a/client", sim::HostOptions{});
    ClientOptions client_options;
    client_options.max_attempts = 20;
    for (uint32_t c = 0; c < o.clients; ++c) {
      const Address address{client_host, kClientPort + c};
      clients.push_back(address);
      ClientObserver* observer = c == 0 ? o.observer : nullptr;
      world.add_process(client_host, address.port, [this, client_options, c, observer] {
        return std::make_unique<ApiClientProcess>(client_options, &placement, 100 + c, observer);
      });
    }
    world.start();
    run_for(sim::milliseconds(1));  // the processes start
  }

  ApiClientProcess& client(uint32_t c = 0) {
    return *dynamic_cast<ApiClientProcess*>(world.process_at(clients.at(c)));
  }
  void run_for(sim::Duration d) { simulation.run_until(simulation.now() + d); }

  // Submits one operation on client 0 and runs until it ends.
  ClientResult call(ClientRequest request) {
    std::optional<ClientResult> result;
    client().submit(std::move(request), [&result](const ClientResult& r) { result = r; });
    for (int step = 0; step < 60'000 && !result; ++step) run_for(sim::milliseconds(1));
    EXPECT_TRUE(result.has_value());
    return result.value_or(ClientResult{});
  }

  WorldOptions options;
  sim::Simulation simulation;
  sim::World world;
  Placement placement;
  std::vector<Address> clients;
};

PrimaryKey key(const std::string& partition, std::optional<std::string> sort = std::nullopt) {
  PrimaryKey k{KeyValue::string(partition), std::nullopt};
  if (sort) k.sort = KeyValue::string(*sort);
  return k;
}

Decimal number(int64_t value) {
  return Decimal::from_int(value);
}

ClientRequest put(const Item& item) {
  ClientRequest request;
  request.op = StorageOp::kPut;
  request.key = item.key();
  request.item = item;
  return request;
}

ClientRequest get(const PrimaryKey& k, ReadConsistency consistency = ReadConsistency::kStrong) {
  ClientRequest request;
  request.op = StorageOp::kGet;
  request.consistency = consistency;
  request.key = k;
  return request;
}

ClientRequest add_one(const PrimaryKey& k) {
  ClientRequest request;
  request.op = StorageOp::kUpdate;
  request.key = k;
  request.update.actions = {UpdateAction::add("count", number(1))};
  return request;
}

std::optional<int64_t> integer_of(const Item& item, const std::string& name) {
  const AttributeValue* value = item.find(name);
  if (value == nullptr || !std::holds_alternative<Decimal>(*value)) return std::nullopt;
  return std::stoll(std::get<Decimal>(*value).to_string());
}

// --- UpdateItem ---------------------------------------------------------------------------------

struct CounterRun {
  uint64_t acknowledged = 0;
  int64_t final_value = -1;
  uint64_t timeouts = 0;
};

// `clients` clients each add 1 to one counter `per_client` times, one after another, all at once.
CounterRun run_counter(bool plant) {
  WorldOptions options;
  options.clients = 4;
  options.plant_update_at_leader = plant;
  ApiWorld w(options);
  const PrimaryKey counter = key("counter");
  EXPECT_EQ(w.call(get(counter)).status, StorageStatus::kNotFound);  // a leader is up
  constexpr int kPerClient = 25;
  CounterRun run;
  int ended = 0;
  std::vector<int> sent(options.clients, 0);
  std::function<void(uint32_t)> next = [&](uint32_t c) {
    if (sent[c]++ == kPerClient) return;
    w.client(c).submit(add_one(counter), [&, c](const ClientResult& result) {
      ++ended;
      if (result.status == StorageStatus::kOk) ++run.acknowledged;
      next(c);
    });
  };
  for (uint32_t c = 0; c < options.clients; ++c) next(c);
  for (int step = 0; step < 60'000 && ended < kPerClient * 4; ++step) {
    w.run_for(sim::milliseconds(1));
  }
  EXPECT_EQ(ended, kPerClient * 4);
  for (uint32_t c = 0; c < options.clients; ++c)
    run.timeouts += w.client(c).stats().attempt_timeouts;
  const ClientResult read = w.call(get(counter));
  if (read.item) run.final_value = integer_of(*read.item, "count").value_or(-1);
  return run;
}

TEST(StorageApiTest, ConcurrentAddIncrementsAreExact) {
  const CounterRun run = run_counter(/*plant=*/false);
  EXPECT_EQ(run.timeouts, 0u);  // no attempt of unknown outcome: every ack is one increment
  EXPECT_EQ(run.acknowledged, 100u);
  EXPECT_EQ(run.final_value, static_cast<int64_t>(run.acknowledged));
}

TEST(StorageApiTest, PlantedUpdateAtLeaderBeforeLogLosesIncrements) {
  const CounterRun run = run_counter(/*plant=*/true);
  EXPECT_EQ(run.timeouts, 0u);
  EXPECT_EQ(run.acknowledged, 100u);
  // The check the test above makes fails: increments evaluated on the same old item are lost.
  EXPECT_LT(run.final_value, static_cast<int64_t>(run.acknowledged));
}

TEST(StorageApiTest, AFailedConditionalUpdateWritesNothing) {
  ApiWorld w(WorldOptions{});
  const PrimaryKey k = key("item");
  Item item(k);
  item.set("ver", number(1));
  item.set("name", std::string("first"));
  ASSERT_EQ(w.call(put(item)).status, StorageStatus::kOk);

  ClientRequest update = add_one(k);
  update.condition_expression = ConditionExpression::compare(
      Operand::attribute_named("ver"), Comparator::kEqual, Operand::literal(number(2)));
  ClientResult result = w.call(update);
  EXPECT_EQ(result.status, StorageStatus::kConditionFailed);
  EXPECT_EQ(api_error_for(result.status), ApiError::kConditionalCheckFailed);
  EXPECT_EQ(result.consumed.half_units, 2u);  // a failed condition still costs the item's size
  EXPECT_EQ(w.call(get(k)).item, item);

  // ADD to a string: ValidationException found at apply, nothing written.
  ClientRequest bad;
  bad.op = StorageOp::kUpdate;
  bad.key = k;
  bad.update.actions = {UpdateAction::add("name", number(1)),
                        UpdateAction::add("count", number(1))};
  EXPECT_EQ(w.call(bad).status, StorageStatus::kValidation);
  EXPECT_EQ(w.call(get(k)).item, item);

  // The condition holds: the update is made and ALL_NEW returns the new item.
  update.condition_expression = ConditionExpression::compare(
      Operand::attribute_named("ver"), Comparator::kEqual, Operand::literal(number(1)));
  update.update.actions.push_back(
      UpdateAction::set_plus("ver", Operand::attribute_named("ver"), Operand::literal(number(1))));
  update.return_values = ReturnValues::kAllNew;
  result = w.call(update);
  ASSERT_EQ(result.status, StorageStatus::kOk);
  ASSERT_TRUE(result.item.has_value());
  EXPECT_EQ(integer_of(*result.item, "ver"), 2);
  EXPECT_EQ(integer_of(*result.item, "count"), 1);
  EXPECT_EQ(w.call(get(k)).item, result.item);
  // ALL_OLD returns what was there; an update of a missing item creates it.
  ClientRequest fresh = add_one(key("new"));
  fresh.return_values = ReturnValues::kAllOld;
  result = w.call(fresh);
  EXPECT_EQ(result.status, StorageStatus::kOk);
  EXPECT_FALSE(result.item.has_value());
  result = w.call(fresh);
  ASSERT_TRUE(result.item.has_value());
  EXPECT_EQ(integer_of(*result.item, "count"), 1);
  EXPECT_EQ(integer_of(*w.call(get(key("new"))).item, "count"), 2);
}

// --- Query --------------------------------------------------------------------------------------

constexpr uint32_t kKeyNameBytes = 4;  // "pk" and "sk"
constexpr int kPartitionItems = 300;

std::string sort_name(int i) {
  char text[16];
  std::snprintf(text, sizeof text, "s%04d", i);
  return text;
}

Item query_item(const std::string& partition, int i) {
  Item item(key(partition, sort_name(i)));
  item.set("i", number(i));
  item.set("blob", Payload{10'000, 1, static_cast<uint64_t>(i)});
  return item;
}

// Writes partition "p" (300 items of about 10 KB, 3 MB) between neighbours "o" and "q".
void fill_partitions(ApiWorld& w) {
  for (const std::string partition : {"o", "q"}) {
    for (int i = 0; i < 5; ++i)
      ASSERT_EQ(w.call(put(query_item(partition, i))).status, StorageStatus::kOk);
  }
  for (int i = 0; i < kPartitionItems; ++i) {
    ASSERT_EQ(w.call(put(query_item("p", i))).status, StorageStatus::kOk);
  }
}

ClientRequest query_of(const std::string& partition) {
  ClientRequest request;
  request.op = StorageOp::kQuery;
  request.key = key(partition);
  request.query.key_condition.partition = KeyValue::string(partition);
  request.key_name_bytes = kKeyNameBytes;
  return request;
}

// Keeps the items fill_with_marks marked (every other one).
ConditionExpression even_filter() {
  return ConditionExpression::exists("even");
}

struct Page {
  std::vector<Item> items;
  uint32_t scanned = 0;
  std::optional<PrimaryKey> last_evaluated_key;
  CapacityUnits consumed;
};

std::vector<Page> read_pages(ApiWorld& w, ClientRequest request) {
  std::vector<Page> pages;
  for (int guard = 0; guard < 1000; ++guard) {
    const ClientResult result = w.call(request);
    EXPECT_EQ(result.status, StorageStatus::kOk);
    if (result.status != StorageStatus::kOk) break;
    pages.push_back(
        Page{result.items, result.scanned_count, result.last_evaluated_key, result.consumed});
    if (!result.last_evaluated_key) break;
    request.page.exclusive_start_key = result.last_evaluated_key;
  }
  return pages;
}

// The check Query paging must pass: each page covers, from just after the previous page's
// LastEvaluatedKey through its own (or to the end), items of at most 1 MB before the filter.
// `all` is every item the query's key condition selects, in the order read.
bool pages_respect_page_limit(const std::vector<Page>& pages, const std::vector<Item>& all,
                              bool forward) {
  size_t at = 0;
  for (const Page& page : pages) {
    uint64_t bytes = 0;
    while (at < all.size()) {
      const PrimaryKey& k = all[at].key();
      if (page.last_evaluated_key) {
        const bool beyond = forward ? *page.last_evaluated_key < k : k < *page.last_evaluated_key;
        if (beyond) break;
      }
      bytes += stored_item_size_bytes(all[at], kKeyNameBytes);
      ++at;
    }
    if (bytes > kMaxPageBytes) return false;
  }
  return true;
}

TEST(StorageApiTest, QueryPagesReturnEveryItemOnceInOrderWithin1MB) {
  ApiWorld w(WorldOptions{});
  fill_partitions(w);
  std::vector<Item> all;
  for (int i = 0; i < kPartitionItems; ++i) all.push_back(query_item("p", i));

  const std::vector<Page> pages = read_pages(w, query_of("p"));
  EXPECT_GE(pages.size(), 3u);  // 3 MB in 1 MB pages
  std::vector<Item> seen;
  for (const Page& page : pages) {
    uint64_t bytes = 0;
    for (const Item& item : page.items) bytes += stored_item_size_bytes(item, kKeyNameBytes);
    EXPECT_LE(bytes, kMaxPageBytes);
    EXPECT_EQ(page.scanned, page.items.size());
    // Query: the items read summed, then rounded up to 4 KB (strong: one unit per 4 KB).
    EXPECT_EQ(page.consumed.half_units, read_capacity(bytes, ReadConsistency::kStrong).half_units);
    seen.insert(seen.end(), page.items.begin(), page.items.end());
  }
  EXPECT_EQ(seen, all);
  EXPECT_TRUE(pages_respect_page_limit(pages, all, /*forward=*/true));

  // Reverse, with Limit: descending order, pages of at most 37 items, every item once.
  ClientRequest reverse = query_of("p");
  reverse.query.scan_forward = false;
  reverse.page.limit = 37;
  const std::vector<Page> reverse_pages = read_pages(w, reverse);
  std::vector<Item> reverse_seen;
  for (const Page& page : reverse_pages) {
    EXPECT_LE(page.items.size(), 37u);
    reverse_seen.insert(reverse_seen.end(), page.items.begin(), page.items.end());
  }
  EXPECT_EQ(reverse_seen, std::vector<Item>(all.rbegin(), all.rend()));

  // Sort key conditions.
  ClientRequest between = query_of("p");
  between.query.key_condition.sort_op = KeyCondition::SortOp::kBetween;
  between.query.key_condition.sort_value = KeyValue::string(sort_name(10));
  between.query.key_condition.sort_upper = KeyValue::string(sort_name(19));
  between.max_pages = 10;
  ClientResult result = w.call(between);
  EXPECT_EQ(result.items, std::vector<Item>(all.begin() + 10, all.begin() + 20));
  ClientRequest prefix = query_of("p");
  prefix.query.key_condition.sort_op = KeyCondition::SortOp::kBeginsWith;
  prefix.query.key_condition.sort_value = KeyValue::string("s01");
  prefix.max_pages = 10;
  prefix.consistency = ReadConsistency::kEventual;
  result = w.call(prefix);
  EXPECT_EQ(result.items, std::vector<Item>(all.begin() + 100, all.begin() + 200));
  EXPECT_FALSE(result.last_evaluated_key.has_value());
}

// With a filter, pages still stop at 1 MB read before it, so a page returns less than 1 MB.
void fill_with_marks(ApiWorld& w, std::vector<Item>* all) {
  for (int i = 0; i < kPartitionItems; ++i) {
    Item item = query_item("p", i);
    if (i % 2 == 0) item.set("even", true);
    all->push_back(item);
    ASSERT_EQ(w.call(put(item)).status, StorageStatus::kOk);
  }
}

TEST(StorageApiTest, QueryFilterAppliesAfterThePageIsCut) {
  ApiWorld w(WorldOptions{});
  std::vector<Item> all;
  fill_with_marks(w, &all);
  ClientRequest filtered = query_of("p");
  filtered.page.filter = even_filter();
  const std::vector<Page> pages = read_pages(w, filtered);
  std::vector<Item> seen;
  uint32_t scanned = 0;
  for (const Page& page : pages) {
    seen.insert(seen.end(), page.items.begin(), page.items.end());
    scanned += page.scanned;
  }
  std::vector<Item> even;
  for (const Item& item : all) {
    if (item.find("even") != nullptr) even.push_back(item);
  }
  EXPECT_EQ(seen, even);
  EXPECT_EQ(scanned, static_cast<uint32_t>(kPartitionItems));  // ScannedCount counts all read
  EXPECT_GE(pages.size(), 3u);
  EXPECT_TRUE(pages_respect_page_limit(pages, all, /*forward=*/true));
}

TEST(StorageApiTest, PlantedPageLimitAfterFilterReadsPast1MB) {
  WorldOptions options;
  options.plant_page_limit_after_filter = true;
  ApiWorld w(options);
  std::vector<Item> all;
  fill_with_marks(w, &all);
  ClientRequest filtered = query_of("p");
  filtered.page.filter = even_filter();
  const std::vector<Page> pages = read_pages(w, filtered);
  // The check the test above passes fails: a page covers about 2 MB of items.
  EXPECT_FALSE(pages_respect_page_limit(pages, all, /*forward=*/true));
}

// --- Scan ---------------------------------------------------------------------------------------

TEST(StorageApiTest, ScanSegmentsPartitionTheItemsExactly) {
  ApiWorld w(WorldOptions{});
  std::set<PrimaryKey> written;
  for (int i = 0; i < 200; ++i) {
    Item item(key("u" + std::to_string(i)));
    item.set("n", number(i));
    written.insert(item.key());
    ASSERT_EQ(w.call(put(item)).status, StorageStatus::kOk);
  }
  constexpr uint32_t kSegments = 4;
  std::multiset<PrimaryKey> seen;
  for (uint32_t segment = 0; segment < kSegments; ++segment) {
    const HashRange range = segment_hash_range(segment, kSegments);
    for (const GroupPlacement& group : w.placement.groups) {
      const auto part = intersect(range, HashRange{group.hash_begin, group.hash_end});
      if (!part) continue;
      ClientRequest scan;
      scan.op = StorageOp::kScan;
      scan.scan_group = group.group;
      scan.scan.hash_begin = part->begin;
      scan.scan.hash_end = part->end;
      scan.page.limit = 17;
      scan.max_pages = 100;
      scan.consistency = segment % 2 == 0 ? ReadConsistency::kStrong : ReadConsistency::kEventual;
      const ClientResult result = w.call(scan);
      ASSERT_EQ(result.status, StorageStatus::kOk);
      EXPECT_FALSE(result.last_evaluated_key.has_value());
      for (const Item& item : result.items) {
        const uint64_t hash = partition_hash(item.key().partition);
        EXPECT_TRUE(hash >= part->begin && hash <= part->end);
        seen.insert(item.key());
      }
    }
  }
  EXPECT_EQ(seen.size(), written.size());                              // no duplicates
  EXPECT_EQ(std::set<PrimaryKey>(seen.begin(), seen.end()), written);  // nothing missing
}

// --- Consumed capacity --------------------------------------------------------------------------

TEST(StorageApiTest, ConsumedCapacityForKnownSizes) {
  ApiWorld w(WorldOptions{});
  // Sizes: key name bytes 2 ("pk"), key "k1" 2 bytes, "data" 4 bytes, then the payload.
  const auto sized = [](const std::string& name, uint64_t payload) {
    Item item(key(name));
    item.set("data", Payload{payload, 1, payload});
    return item;
  };
  const auto with_names = [](ClientRequest request) {
    request.key_name_bytes = 2;
    return request;
  };
  // PutItem of a new 1,538-byte item: 2 WCU (4 half units).
  EXPECT_EQ(w.call(with_names(put(sized("k1", 1530)))).consumed.half_units, 4u);
  // Overwrite with 3,008 bytes: 3 WCU; then with 508 bytes: still 3 (the larger of the two).
  EXPECT_EQ(w.call(with_names(put(sized("k1", 3000)))).consumed.half_units, 6u);
  EXPECT_EQ(w.call(with_names(put(sized("k1", 500)))).consumed.half_units, 6u);
  // GetItem of 5,008 bytes: strong 2 RCU, eventual 1 RCU.
  ASSERT_EQ(w.call(with_names(put(sized("k2", 5000)))).status, StorageStatus::kOk);
  EXPECT_EQ(w.call(with_names(get(key("k2")))).consumed.half_units, 4u);
  w.run_for(sim::milliseconds(200));  // every replica applies the put: eventual reads see it
  EXPECT_EQ(w.call(with_names(get(key("k2"), ReadConsistency::kEventual))).consumed.half_units, 2u);
  // A missing item still costs the minimum: 1 RCU strong, 0.5 eventual.
  EXPECT_EQ(w.call(with_names(get(key("none")))).consumed.half_units, 2u);
  EXPECT_EQ(w.call(with_names(get(key("none"), ReadConsistency::kEventual))).consumed.half_units,
            1u);
  // DeleteItem of the 508-byte item: 1 WCU; of a missing item: 1 WCU.
  ClientRequest erase;
  erase.op = StorageOp::kDelete;
  erase.key = key("k1");
  EXPECT_EQ(w.call(with_names(erase)).consumed.half_units, 2u);
  EXPECT_EQ(w.call(with_names(erase)).consumed.half_units, 2u);
  // UpdateItem: the larger of before (5,008) and after (5,008 + "count" + 2): 5 WCU.
  ClientRequest update = with_names(add_one(key("k2")));
  EXPECT_EQ(w.call(update).consumed.half_units, 10u);
  // Query of three 1,515-byte items: 4,545 bytes summed, rounded to 8 KB once: 2 RCU (per-item
  // rounding would give 3).
  for (int i = 0; i < 3; ++i) {
    Item item(key("qp", sort_name(i)));
    item.set("data", Payload{1500, 1, 1});
    ASSERT_EQ(w.call(put(item)).status, StorageStatus::kOk);
  }
  ClientRequest query = query_of("qp");
  query.key_name_bytes = 4;
  ClientResult result = w.call(query);
  ASSERT_EQ(result.items.size(), 3u);
  EXPECT_EQ(result.consumed.half_units, 4u);
  query.consistency = ReadConsistency::kEventual;
  EXPECT_EQ(w.call(query).consumed.half_units, 2u);
  // An empty Query costs the minimum.
  EXPECT_EQ(w.call(query_of("nothing-here")).consumed.half_units, 2u);
}

// --- The log's write commands ------------------------------------------------------------------

WriteCommand update_command() {
  WriteCommand command;
  command.client_id = 3;
  command.request_id = 9;
  command.op = StorageOp::kUpdate;
  command.key = key("c");
  command.update.actions = {UpdateAction::add("count", number(2)),
                            UpdateAction::set("blob", Operand::literal(Payload{5000, 1, 2}))};
  command.condition_expression = ConditionExpression::not_exists("locked");
  return command;
}

TEST(StorageApiTest, UpdateCommandsRoundTripAndKeepThePlainPutFastPath) {
  const WriteCommand update = update_command();
  const std::vector<uint8_t> bytes = update.encode();
  WriteCommand decoded;
  ASSERT_TRUE(WriteCommand::decode(bytes, &decoded));
  EXPECT_EQ(decoded.op, StorageOp::kUpdate);
  EXPECT_EQ(decoded.update, update.update);
  EXPECT_EQ(decoded.condition_expression, update.condition_expression);
  EXPECT_EQ(decoded.encode(), bytes);
  // The Payload literal's stand-in bytes are in the fixed field, for message sizes.
  EXPECT_EQ(WriteCommand::peek_stand_in_bytes(bytes), std::optional<uint64_t>(5000 - 24));
  EXPECT_EQ(WriteCommand::unconditional_put_item(bytes), std::nullopt);
  // A put with a condition expression is not taken for an unconditional put.
  WriteCommand guarded;
  guarded.op = StorageOp::kPut;
  guarded.key = key("g");
  guarded.item = Item(guarded.key);
  guarded.condition_expression = ConditionExpression::not_exists("x");
  EXPECT_EQ(WriteCommand::unconditional_put_item(guarded.encode()), std::nullopt);
  guarded.condition_expression = ConditionExpression{};
  EXPECT_NE(WriteCommand::unconditional_put_item(guarded.encode()), std::nullopt);
  // An update without its actions, or with bytes after them, is not a command.
  std::vector<uint8_t> longer = bytes;
  longer.push_back(0);
  EXPECT_FALSE(WriteCommand::decode(longer, &decoded));
  std::vector<uint8_t> shorter(bytes.begin(), bytes.end() - 1);
  EXPECT_FALSE(WriteCommand::decode(shorter, &decoded));
}

TEST(StorageApiTest, TheArchiveReplaysUpdatesAsReplicasApplyThem) {
  std::map<PrimaryKey, Item> items;
  Command command;
  command.id = 77;
  command.bytes = update_command().encode();
  bool condition_failed = true;
  ASSERT_TRUE(apply_archived_command(command, items, &condition_failed));
  EXPECT_FALSE(condition_failed);
  ASSERT_TRUE(apply_archived_command(command, items, &condition_failed));
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(integer_of(items.begin()->second, "count"), 4);
  // Locked: the condition fails and nothing changes.
  items.begin()->second.set("locked", true);
  const Item before = items.begin()->second;
  ASSERT_TRUE(apply_archived_command(command, items, &condition_failed));
  EXPECT_TRUE(condition_failed);
  EXPECT_EQ(items.begin()->second, before);
}

// --- What history checkers see -----------------------------------------------------------------

// Counts the client's reports by hook.
class CountingObserver final : public ClientObserver {
 public:
  void on_attempt_start(uint64_t, uint64_t, uint64_t, const ClientRequest& request,
                        Address) override {
    ++register_starts;
    EXPECT_TRUE(request.register_shaped());
  }
  void on_attempt_end(uint64_t, uint64_t, StorageStatus, bool,
                      const std::optional<Item>&) override {
    ++register_ends;
  }
  void on_operation_end(uint64_t, uint64_t, const ClientResult&) override { ++register_operations; }
  void on_api_attempt_start(uint64_t, uint64_t, uint64_t, const ClientRequest& request,
                            Address) override {
    ++api_starts;
    EXPECT_FALSE(request.register_shaped());
  }
  void on_api_attempt_end(uint64_t, uint64_t, const StorageResponse* response) override {
    ++api_ends;
    if (response != nullptr) api_capacity += response->consumed.half_units;
  }
  void on_api_operation_end(uint64_t, uint64_t, const ClientResult&) override { ++api_operations; }
  int register_starts = 0, register_ends = 0, register_operations = 0;
  int api_starts = 0, api_ends = 0, api_operations = 0;
  uint64_t api_capacity = 0;
};

TEST(StorageApiTest, OnlyRegisterShapedOperationsReachTheHistoryHooks) {
  CountingObserver observer;
  WorldOptions options;
  options.observer = &observer;
  ApiWorld w(options);
  Item item(key("a"));
  item.set("ver", number(1));
  ASSERT_EQ(w.call(put(item)).status, StorageStatus::kOk);
  ASSERT_EQ(w.call(get(key("a"))).status, StorageStatus::kOk);
  const int register_operations = observer.register_operations;
  EXPECT_EQ(register_operations, 2);
  ASSERT_EQ(w.call(add_one(key("a"))).status, StorageStatus::kOk);
  ClientRequest conditional = put(item);
  conditional.condition_expression = ConditionExpression::exists("ver");
  ASSERT_EQ(w.call(conditional).status, StorageStatus::kOk);
  ASSERT_EQ(w.call(query_of("a")).status, StorageStatus::kOk);
  EXPECT_EQ(observer.register_operations, register_operations);  // none of the three
  EXPECT_EQ(observer.api_operations, 3);
  EXPECT_EQ(observer.api_starts, observer.api_ends);
  EXPECT_EQ(observer.register_starts, observer.register_ends);
  EXPECT_GT(observer.api_capacity, 0u);
}

}  // namespace
}  // namespace dynasim::model
