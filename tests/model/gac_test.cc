// Global admission control (model/gac.h, docs/gac.md) in a simulated world: GAC server processes
// and request-router processes that drive an open-loop demand through GacClient::try_consume.
//
// What the tests prove:
// - GacRing: deterministic placement, a preference list naming every server once, failover to the
//   next server, a fair spread of buckets.
// - fair_shares: max-min fairness with the unused capacity spread evenly.
// - skewed demand on one table: total admitted tracks the table's capacity, a hot router gets
//   more, and a single hot router can use the whole capacity.
// - over random seeds (router counts, demands, server restarts and power-offs, loss,
//   duplication, reordering): the vending bound of docs/gac.md holds for every window, and every
//   router's admissions are covered by unexpired grants the servers vended to it.
// - a dead home server: routers move to the next server on the ring with no admission gap longer
//   than the stated bound; with every server dead, routers spend their tokens, then the static
//   fallback for its period, then throttle; they recover when GAC returns.
// - the planted bugs: ignoring outstanding grants breaks the vending bound; spending expired tokens
//   or crediting a duplicated answer twice breaks granted-versus-admitted.
// - GacServerProcess: asks the capacity controller for the allocation until an update arrives,
//   applies only newer versions, acknowledges every update, and vends the capacity in force.
#include "model/gac.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "model/capacity_controller.h"
#include "sim/world.h"

namespace dynasim::model {
namespace {

constexpr uint32_t kRouterPort = 9100;
constexpr uint64_t kTickCookie = 1;
// Our assumption for the harness: routers offer their demand in 10 ms ticks.
constexpr sim::Duration kTick = sim::milliseconds(10);

GacBucketId bucket_of(uint32_t table, CapacityKind kind = CapacityKind::kWrite) {
  return GacBucketId{TableId(table), kind};
}

// ---------------------------------------------------------------------------------------------
// What the checkers see, stamped with true time.

struct VendEvent {
  sim::SimTime true_time;
  GacVendRecord record;
};

struct AdmissionEvent {
  sim::SimTime true_time;
  GacRouterId router;
  GacBucketId bucket;
  uint64_t cost_milli_units = 0;
  GacAdmission admission = GacAdmission::kThrottled;
};

struct Journal final : GacServerObserver, GacClientObserver {
  explicit Journal(const sim::Simulation* simulation) : simulation_(simulation) {}
  void on_vend(const GacVendRecord& record) override {
    vends.push_back(VendEvent{simulation_->now(), record});
  }
  void on_admission(GacRouterId router, GacBucketId bucket, uint64_t cost,
                    GacAdmission admission) override {
    admissions.push_back(AdmissionEvent{simulation_->now(), router, bucket, cost, admission});
  }
  std::vector<VendEvent> vends;
  std::vector<AdmissionEvent> admissions;

 private:
  const sim::Simulation* simulation_;
};

// ---------------------------------------------------------------------------------------------
// Processes.

class ServerProcess final : public sim::Process {
 public:
  ServerProcess(GacServerOptions options, const GacCapacityTable* capacities, Journal* journal)
      : server_(options, capacities, journal) {}
  void on_start(sim::Env& env) override { server_.start(env); }
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override {
    EXPECT_TRUE(server_.on_message(env, from, message));
  }
  void on_timer(sim::Env& env, uint64_t cookie) override {
    EXPECT_TRUE(server_.on_timer(env, cookie));
  }
  GacServer& server() { return server_; }

 private:
  GacServer server_;
};

// A router's offered load on one bucket: from `from` (true time) on, `units_per_second` in
// requests of `cost_milli_units` each, until the next phase.
struct DemandPhase {
  sim::SimTime from;
  uint64_t units_per_second = 0;
};
struct RouterScript {
  GacBucketId bucket;
  uint64_t cost_milli_units = 1000;
  std::vector<DemandPhase> phases;  // by `from`, ascending
};

class RouterProcess final : public sim::Process {
 public:
  RouterProcess(GacClientOptions options, const GacRing* ring, GacRouterId id, Journal* journal,
                std::vector<RouterScript> scripts, const sim::Simulation* simulation)
      : client_(options, ring, id, journal),
        scripts_(std::move(scripts)),
        owed_(scripts_.size(), 0),
        simulation_(simulation) {}
  void on_start(sim::Env& env) override { env.set_timer(kTick, kTickCookie); }
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override {
    EXPECT_TRUE(client_.on_message(env, from, message));
  }
  void on_timer(sim::Env& env, uint64_t cookie) override {
    if (cookie != kTickCookie) {
      EXPECT_TRUE(client_.on_timer(env, cookie));
      return;
    }
    env.set_timer(kTick, kTickCookie);
    // Open loop: what the tick owes is offered, admitted or not (a throttled request is not
    // retried here; the SDK's retries are another layer's).
    for (size_t i = 0; i < scripts_.size(); ++i) {
      const uint64_t rate = rate_now(scripts_[i]);
      owed_[i] += rate * kMilliUnitsPerUnit * static_cast<uint64_t>(kTick.ns) / 1'000'000'000;
      for (uint32_t n = 0; owed_[i] >= scripts_[i].cost_milli_units && n < 10'000; ++n) {
        owed_[i] -= scripts_[i].cost_milli_units;
        client_.try_consume(env, scripts_[i].bucket, scripts_[i].cost_milli_units);
      }
    }
  }
  GacClient& client() { return client_; }

 private:
  uint64_t rate_now(const RouterScript& script) const {
    uint64_t rate = 0;
    for (const DemandPhase& phase : script.phases) {
      if (phase.from <= simulation_->now()) rate = phase.units_per_second;
    }
    return rate;
  }
  GacClient client_;
  std::vector<RouterScript> scripts_;
  std::vector<uint64_t> owed_;  // milli-units not yet offered, per script
  const sim::Simulation* simulation_;
};

// ---------------------------------------------------------------------------------------------
// The world: GAC servers and routers spread over three AZs, no clock drift.

struct HarnessOptions {
  uint32_t servers = 3;
  GacServerOptions server;
  GacClientOptions client;
  sim::NetworkOptions network;
  uint64_t seed = 1;
};

struct Harness {
  Harness(HarnessOptions options, std::vector<std::vector<RouterScript>> router_scripts)
      : simulation(options.seed),
        world(simulation, sim::WorldOptions{options.network, {}}),
        journal(&simulation) {
    std::vector<sim::RackId> racks;
    for (uint32_t az = 0; az < 3; ++az) {
      const std::string name = std::string("az-") + static_cast<char>('a' + az);
      racks.push_back(world.add_rack(world.add_az(name), name + "/r0"));
    }
    std::vector<sim::Address> addresses;
    for (uint32_t s = 0; s < options.servers; ++s) {
      const sim::HostId host =
          world.add_host(racks[s % 3], "gac-" + std::to_string(s), sim::HostOptions{});
      addresses.push_back(sim::Address{host, kGacPort});
      world.add_process(host, kGacPort, [this, options] {
        return std::make_unique<ServerProcess>(options.server, &capacities, &journal);
      });
    }
    ring = std::make_unique<GacRing>(addresses);
    for (uint32_t r = 0; r < router_scripts.size(); ++r) {
      const sim::HostId host =
          world.add_host(racks[r % 3], "router-" + std::to_string(r), sim::HostOptions{});
      routers.push_back(sim::Address{host, kRouterPort});
      std::vector<RouterScript> scripts = router_scripts[r];
      world.add_process(host, kRouterPort, [this, options, r, scripts] {
        return std::make_unique<RouterProcess>(options.client, ring.get(), GacRouterId(r + 1),
                                               &journal, scripts, &simulation);
      });
    }
    server_options = options.server;
    client_options = options.client;
  }
  void start() { world.start(); }
  void run_until(sim::SimTime until) { simulation.run_until(until); }
  RouterProcess& router(uint32_t index) {
    auto* process = dynamic_cast<RouterProcess*>(world.process_at(routers.at(index)));
    DYN_ASSERT(process != nullptr);
    return *process;
  }
  sim::HostId server_host(GacServerId server) const { return ring->address(server).host; }

  sim::Simulation simulation;
  sim::World world;
  Journal journal;
  GacCapacityTable capacities;
  std::unique_ptr<GacRing> ring;
  std::vector<sim::Address> routers;
  GacServerOptions server_options;
  GacClientOptions client_options;
};

sim::SimTime at(sim::Duration since_zero) {
  return sim::SimTime::zero() + since_zero;
}

// Admitted milli-units (granted or fallback) of `router` (invalid: all) on `bucket` in [from, to).
uint64_t admitted_between(const Journal& journal, GacBucketId bucket, sim::SimTime from,
                          sim::SimTime to, GacRouterId router = GacRouterId(),
                          bool include_fallback = true) {
  uint64_t total = 0;
  for (const AdmissionEvent& event : journal.admissions) {
    if (event.bucket != bucket || event.true_time < from || event.true_time >= to) continue;
    if (router.valid() && event.router != router) continue;
    if (event.admission == GacAdmission::kAdmitted ||
        (include_fallback && event.admission == GacAdmission::kAdmittedFallback)) {
      total += event.cost_milli_units;
    }
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// The checkers.

// The vending bound of docs/gac.md: for every window [a, a + W] (a at every vend, W from
// `windows`), the milli-units vended for a bucket by all servers together are at most
//   C * (W + U + H) + C * U * E
// where C is the largest capacity the bucket had, U the slot length, H the horizon and E the
// extra ledger-slots: over the grants vended in the window, the sum over ledgers (server
// incarnation) of the slots each drew from, minus the slots any drew from. E is 0 while one server
// serves the bucket; a restart, or a failover away from a dead server, adds at most horizon_slots.
struct BoundViolation {
  GacBucketId bucket;
  sim::SimTime window_start;
  sim::Duration window;
  uint64_t vended = 0;
  uint64_t bound = 0;
  uint64_t extra_slots = 0;
};

uint64_t milli_over(uint64_t capacity_units, sim::Duration span) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(capacity_units) * kMilliUnitsPerUnit *
                               static_cast<uint64_t>(span.ns) / 1'000'000'000);
}

// E of the vends for `bucket` in [from, to]: ledger-slots minus distinct slots.
uint64_t extra_ledger_slots(const Journal& journal, GacBucketId bucket, sim::SimTime from,
                            sim::SimTime to) {
  std::map<uint64_t, std::set<int64_t>> slots_by_ledger;
  for (const VendEvent& vend : journal.vends) {
    if (vend.record.bucket != bucket || vend.true_time < from || vend.true_time > to) continue;
    for (int64_t slot = vend.record.first_slot; slot <= vend.record.last_slot; ++slot) {
      slots_by_ledger[vend.record.server_nonce].insert(slot);
    }
  }
  std::set<int64_t> all;
  uint64_t sum = 0;
  for (const auto& [ledger, slots] : slots_by_ledger) {
    sum += slots.size();
    all.insert(slots.begin(), slots.end());
  }
  return sum - all.size();
}

std::vector<BoundViolation> check_vending_bound(const Journal& journal,
                                                const GacServerOptions& options,
                                                const std::vector<sim::Duration>& windows) {
  std::vector<BoundViolation> violations;
  std::map<GacBucketId, std::vector<const VendEvent*>> by_bucket;
  for (const VendEvent& vend : journal.vends) by_bucket[vend.record.bucket].push_back(&vend);
  const sim::Duration horizon = options.slot_length * options.horizon_slots;
  for (const auto& [bucket, vends] : by_bucket) {
    uint64_t capacity = 0;
    for (const VendEvent* vend : vends) {
      capacity = std::max(capacity, vend->record.capacity_units_per_second);
    }
    for (size_t start = 0; start < vends.size(); ++start) {
      const sim::SimTime a = vends[start]->true_time;
      for (sim::Duration window : windows) {
        uint64_t vended = 0;
        std::map<uint64_t, std::set<int64_t>> slots_by_ledger;
        for (size_t i = start; i < vends.size() && vends[i]->true_time <= a + window; ++i) {
          const GacVendRecord& record = vends[i]->record;
          vended += record.amount_milli_units;
          for (int64_t slot = record.first_slot; slot <= record.last_slot; ++slot) {
            slots_by_ledger[record.server_nonce].insert(slot);
          }
        }
        std::set<int64_t> all;
        uint64_t sum = 0;
        for (const auto& [ledger, slots] : slots_by_ledger) {
          sum += slots.size();
          all.insert(slots.begin(), slots.end());
        }
        const uint64_t extra = sum - all.size();
        const uint64_t bound = milli_over(capacity, window + options.slot_length + horizon) +
                               extra * milli_over(capacity, options.slot_length);
        if (vended > bound) {
          violations.push_back(BoundViolation{bucket, a, window, vended, bound, extra});
        }
      }
    }
  }
  return violations;
}

// Granted versus admitted: every granted admission of a router must be payable, at its true time,
// from grants the servers vended to that router for that bucket, each valid from its vending for
// its lifetime (the router counts the lifetime from its request, earlier still). Grants are spent
// earliest expiry first, which pays for every sequence any spending order could. Returns the
// number of admissions that could not be paid.
uint64_t check_granted_covers_admitted(const Journal& journal) {
  struct Event {
    sim::SimTime time;
    int kind;  // 0 grant, 1 admission (a grant vended at the same instant comes first)
    size_t index;
  };
  std::map<std::pair<uint32_t, GacBucketId>, std::vector<Event>> events;
  for (size_t i = 0; i < journal.vends.size(); ++i) {
    const GacVendRecord& record = journal.vends[i].record;
    events[{record.router.value, record.bucket}].push_back(Event{journal.vends[i].true_time, 0, i});
  }
  for (size_t i = 0; i < journal.admissions.size(); ++i) {
    const AdmissionEvent& admission = journal.admissions[i];
    if (admission.admission != GacAdmission::kAdmitted) continue;
    events[{admission.router.value, admission.bucket}].push_back(Event{admission.true_time, 1, i});
  }
  uint64_t unpaid = 0;
  for (auto& [key, list] : events) {
    std::stable_sort(list.begin(), list.end(), [](const Event& a, const Event& b) {
      return a.time != b.time ? a.time < b.time : a.kind < b.kind;
    });
    std::multimap<sim::SimTime, uint64_t> pool;  // expiry -> remaining
    for (const Event& event : list) {
      if (event.kind == 0) {
        const VendEvent& vend = journal.vends[event.index];
        if (vend.record.amount_milli_units > 0) {
          pool.emplace(vend.true_time + vend.record.lifetime, vend.record.amount_milli_units);
        }
        continue;
      }
      pool.erase(pool.begin(), pool.upper_bound(event.time));  // expired at or before now
      uint64_t left = journal.admissions[event.index].cost_milli_units;
      for (auto it = pool.begin(); it != pool.end() && left > 0;) {
        const uint64_t take = std::min(left, it->second);
        it->second -= take;
        left -= take;
        it = it->second == 0 ? pool.erase(it) : std::next(it);
      }
      if (left > 0) ++unpaid;
    }
  }
  return unpaid;
}

// The longest span in [from, to) during which `router` admitted nothing on `bucket`.
sim::Duration longest_admission_gap(const Journal& journal, GacRouterId router, GacBucketId bucket,
                                    sim::SimTime from, sim::SimTime to) {
  sim::SimTime previous = from;
  sim::Duration longest{0};
  for (const AdmissionEvent& event : journal.admissions) {
    if (event.router != router || event.bucket != bucket) continue;
    if (event.admission == GacAdmission::kThrottled) continue;
    if (event.true_time < from || event.true_time >= to) continue;
    longest = std::max(longest, event.true_time - previous);
    previous = event.true_time;
  }
  return std::max(longest, to - previous);
}

const std::vector<sim::Duration> kWindows = {sim::milliseconds(500), sim::seconds(1),
                                             sim::seconds(2),        sim::seconds(5),
                                             sim::seconds(10),       sim::seconds(30)};

// ---------------------------------------------------------------------------------------------
// The ring and the share rule.

std::vector<sim::Address> server_addresses(uint32_t count) {
  std::vector<sim::Address> addresses;
  for (uint32_t i = 0; i < count; ++i) addresses.push_back(sim::Address{sim::HostId(i), kGacPort});
  return addresses;
}

TEST(GacRing, IsDeterministicAndNamesEveryServerOnce) {
  const GacRing ring(server_addresses(5));
  const GacRing again(server_addresses(5));
  for (uint32_t table = 0; table < 200; ++table) {
    const GacBucketId bucket =
        bucket_of(table, table % 2 == 0 ? CapacityKind::kRead : CapacityKind::kWrite);
    const std::vector<GacServerId> list = ring.preference_list(bucket);
    EXPECT_EQ(list, again.preference_list(bucket));
    ASSERT_EQ(list.size(), 5u);
    std::set<uint32_t> distinct;
    for (GacServerId server : list) distinct.insert(server.value);
    EXPECT_EQ(distinct.size(), 5u);
  }
  // Pinned: the hash is ours (splitmix64, FNV-1a), so these never change across machines.
  EXPECT_EQ(GacRing::bucket_point(bucket_of(7)), GacRing::bucket_point(bucket_of(7)));
  EXPECT_NE(GacRing::bucket_point(bucket_of(7, CapacityKind::kRead)),
            GacRing::bucket_point(bucket_of(7, CapacityKind::kWrite)));
}

TEST(GacRing, ADownServersBucketsMoveToTheirNextServer) {
  const GacRing ring(server_addresses(4));
  std::map<uint32_t, uint32_t> moved_to;
  for (uint32_t table = 0; table < 400; ++table) {
    const GacBucketId bucket = bucket_of(table);
    const std::vector<GacServerId> list = ring.preference_list(bucket);
    const GacServerId home = ring.owner(bucket, [](GacServerId) { return false; });
    EXPECT_EQ(home, list[0]);
    // Server 2 is down: its buckets go to their second server, the others stay.
    const GacServerId owner =
        ring.owner(bucket, [](GacServerId server) { return server.value == 2; });
    EXPECT_EQ(owner, list[0].value == 2 ? list[1] : list[0]);
    if (list[0].value == 2) ++moved_to[owner.value];
    EXPECT_FALSE(ring.owner(bucket, [](GacServerId) { return true; }).valid());
  }
  // The buckets of the down server spread over more than one survivor.
  EXPECT_GE(moved_to.size(), 2u);
}

TEST(GacRing, SpreadsBuckets) {
  const GacRing ring(server_addresses(4));
  std::map<uint32_t, uint32_t> homes;
  for (uint32_t table = 0; table < 4000; ++table) {
    ++homes[ring.preference_list(bucket_of(table))[0].value];
  }
  ASSERT_EQ(homes.size(), 4u);
  for (const auto& [server, count] : homes) {
    EXPECT_GT(count, 600u) << "server " << server;
    EXPECT_LT(count, 1400u) << "server " << server;
  }
}

TEST(GacShares, MaxMinFairWithSpareSpreadEvenly) {
  // Saturated: the small demands are met, the large ones split what is left.
  EXPECT_EQ(GacServer::fair_shares(1000, {2000, 100, 100, 100}),
            (std::vector<uint64_t>{700, 100, 100, 100}));
  EXPECT_EQ(GacServer::fair_shares(1000, {600, 600, 100}), (std::vector<uint64_t>{450, 450, 100}));
  // Not saturated: every demand met, the spare spread evenly (remainder to the first).
  EXPECT_EQ(GacServer::fair_shares(1000, {100, 200}), (std::vector<uint64_t>{450, 550}));
  EXPECT_EQ(GacServer::fair_shares(1000, {0, 0, 0}), (std::vector<uint64_t>{334, 333, 333}));
  EXPECT_TRUE(GacServer::fair_shares(1000, {}).empty());
}

// ---------------------------------------------------------------------------------------------
// Skewed demand.

std::vector<RouterScript> steady(GacBucketId bucket, uint64_t units_per_second,
                                 uint64_t cost_milli_units = 1000) {
  return {RouterScript{
      bucket, cost_milli_units, {DemandPhase{sim::SimTime::zero(), units_per_second}}}};
}

TEST(GacSkew, TotalAdmittedTracksCapacityAndTheHotRouterGetsMore) {
  const GacBucketId bucket = bucket_of(1);
  Harness h(HarnessOptions{},
            {steady(bucket, 2000), steady(bucket, 100), steady(bucket, 100), steady(bucket, 100)});
  h.capacities.capacity_units_per_second[bucket] = 1000;
  h.start();
  h.run_until(at(sim::seconds(60)));
  // After a warm-up of a few refreshes, the table runs at its capacity: within 5% below it and
  // never above capacity x window + the bound's slack.
  const uint64_t total =
      admitted_between(h.journal, bucket, at(sim::seconds(10)), at(sim::seconds(60)));
  EXPECT_GE(total, 50u * 1000 * 1000 * 95 / 100);
  EXPECT_LE(total, 50u * 1000 * 1000 + milli_over(1000, sim::seconds(4)));
  // The hot router takes what the others leave (700 of 1000), the others are served in full.
  const uint64_t hot = admitted_between(h.journal, bucket, at(sim::seconds(10)),
                                        at(sim::seconds(60)), GacRouterId(1));
  EXPECT_GE(hot, 50u * 700 * 1000 * 90 / 100);
  for (uint32_t r = 2; r <= 4; ++r) {
    const uint64_t cold = admitted_between(h.journal, bucket, at(sim::seconds(10)),
                                           at(sim::seconds(60)), GacRouterId(r));
    EXPECT_GE(cold, 50u * 100 * 1000 * 95 / 100) << "router " << r;
    EXPECT_LT(cold, hot);
  }
  EXPECT_TRUE(check_vending_bound(h.journal, h.server_options, kWindows).empty());
  EXPECT_EQ(check_granted_covers_admitted(h.journal), 0u);
}

TEST(GacSkew, ANonUniformWorkloadUsesTheWholeTableCapacity) {
  // One router carries all the table's traffic (a hot key range behind one router): it gets the
  // whole capacity, not a per-router slice; the idle routers hold only the unused spare.
  const GacBucketId bucket = bucket_of(2);
  Harness h(HarnessOptions{}, {steady(bucket, 3000), steady(bucket, 1), steady(bucket, 1)});
  h.capacities.capacity_units_per_second[bucket] = 2000;
  h.start();
  h.run_until(at(sim::seconds(40)));
  const uint64_t hot = admitted_between(h.journal, bucket, at(sim::seconds(10)),
                                        at(sim::seconds(40)), GacRouterId(1));
  EXPECT_GE(hot, 30u * 2000 * 1000 * 95 / 100);
  EXPECT_TRUE(check_vending_bound(h.journal, h.server_options, kWindows).empty());
  EXPECT_EQ(check_granted_covers_admitted(h.journal), 0u);
}

TEST(GacSkew, DemandThatMovesBetweenRoutersIsFollowed) {
  const GacBucketId bucket = bucket_of(3);
  auto phased = [&](uint64_t first, uint64_t second) {
    return std::vector<RouterScript>{RouterScript{
        bucket,
        1000,
        {DemandPhase{sim::SimTime::zero(), first}, DemandPhase{at(sim::seconds(30)), second}}}};
  };
  Harness h(HarnessOptions{}, {phased(1500, 50), phased(50, 1500)});
  h.capacities.capacity_units_per_second[bucket] = 1000;
  h.start();
  h.run_until(at(sim::seconds(60)));
  const uint64_t early_first = admitted_between(h.journal, bucket, at(sim::seconds(10)),
                                                at(sim::seconds(30)), GacRouterId(1));
  const uint64_t late_second = admitted_between(h.journal, bucket, at(sim::seconds(40)),
                                                at(sim::seconds(60)), GacRouterId(2));
  EXPECT_GE(early_first, 20u * 950 * 1000 * 90 / 100);
  EXPECT_GE(late_second, 20u * 950 * 1000 * 90 / 100);
  EXPECT_EQ(check_granted_covers_admitted(h.journal), 0u);
}

TEST(GacSkew, ACapacityChangeTakesEffectWithinOneHorizon) {
  const GacBucketId bucket = bucket_of(4);
  Harness h(HarnessOptions{}, {steady(bucket, 1500), steady(bucket, 1500)});
  h.capacities.capacity_units_per_second[bucket] = 1000;
  h.start();
  h.run_until(at(sim::seconds(20)));
  // The control plane lowers the table's capacity; servers read it at every request.
  h.capacities.capacity_units_per_second[bucket] = 400;
  h.run_until(at(sim::seconds(40)));
  h.capacities.capacity_units_per_second[bucket] = 1600;
  h.run_until(at(sim::seconds(60)));
  const sim::Duration settle = h.server_options.slot_length * (h.server_options.horizon_slots + 1) +
                               h.client_options.refresh_interval;
  const uint64_t low =
      admitted_between(h.journal, bucket, at(sim::seconds(20)) + settle, at(sim::seconds(40)));
  const uint64_t high =
      admitted_between(h.journal, bucket, at(sim::seconds(40)) + settle, at(sim::seconds(60)));
  const sim::Duration low_span = sim::seconds(20) - settle;
  EXPECT_LE(low, milli_over(400, low_span + h.server_options.token_lifetime));
  EXPECT_GE(low, milli_over(400, low_span) * 95 / 100);
  EXPECT_GE(high, milli_over(1600, low_span) * 95 / 100);
  EXPECT_TRUE(check_vending_bound(h.journal, h.server_options, kWindows).empty());
  EXPECT_EQ(check_granted_covers_admitted(h.journal), 0u);
}

// ---------------------------------------------------------------------------------------------
// Property test over random seeds.

struct CaseResult {
  size_t bound_violations = 0;
  uint64_t unpaid_admissions = 0;
  uint64_t admitted = 0;
  uint64_t vends = 0;
  uint64_t trace_hash = 0;
};

struct Plants {
  bool ignore_outstanding_grants = false;
  bool spend_expired_tokens = false;
  bool credit_duplicate_answers = false;
};

CaseResult run_random_case(uint64_t seed, Plants plants = {}) {
  sim::Random random(sim::splitmix64(seed ^ 0x6ac));
  HarnessOptions options;
  options.seed = seed;
  options.servers = static_cast<uint32_t>(random.uniform_int(1, 4));
  options.network.loss_probability = random.bernoulli(0.5) ? random.uniform_real(0, 0.15) : 0;
  options.network.duplicate_probability = random.bernoulli(0.5) ? random.uniform_real(0, 0.1) : 0;
  options.network.reorder_probability = random.bernoulli(0.5) ? random.uniform_real(0, 0.2) : 0;
  options.network.reorder_window = sim::milliseconds(random.uniform_int(1, 400));
  options.server.plant_ignore_outstanding_grants = plants.ignore_outstanding_grants;
  options.client.plant_spend_expired_tokens = plants.spend_expired_tokens;
  options.client.plant_credit_duplicate_answers = plants.credit_duplicate_answers;
  if (plants.credit_duplicate_answers) options.network.duplicate_probability = 0.1;
  const uint32_t tables = static_cast<uint32_t>(random.uniform_int(1, 2));
  std::vector<uint64_t> capacity(tables);
  for (uint32_t t = 0; t < tables; ++t)
    capacity[t] = static_cast<uint64_t>(random.uniform_int(50, 3000));
  const uint32_t router_count = static_cast<uint32_t>(random.uniform_int(2, 8));
  const sim::Duration length = sim::seconds(60);
  std::vector<std::vector<RouterScript>> scripts(router_count);
  for (uint32_t r = 0; r < router_count; ++r) {
    for (uint32_t t = 0; t < tables; ++t) {
      if (t > 0 && random.bernoulli(0.5)) continue;
      RouterScript script;
      script.bucket = bucket_of(t + 1);
      script.cost_milli_units = random.bernoulli(0.5) ? 1000 : 500;
      // Skewed phases: mostly small demands, some above the whole capacity.
      sim::SimTime from = sim::SimTime::zero();
      while (from < at(length)) {
        const uint64_t rate = random.bernoulli(0.3)
                                  ? static_cast<uint64_t>(random.uniform_int(0, 2 * capacity[t]))
                                  : static_cast<uint64_t>(random.uniform_int(0, capacity[t] / 4));
        script.phases.push_back(DemandPhase{from, rate});
        from += sim::seconds(random.uniform_int(3, 20));
      }
      scripts[r].push_back(script);
    }
  }
  Harness h(options, scripts);
  for (uint32_t t = 0; t < tables; ++t)
    h.capacities.capacity_units_per_second[bucket_of(t + 1)] = capacity[t];
  h.start();
  // Faults: restarts (ephemeral state lost) and power-offs of random length.
  sim::SimTime now = sim::SimTime::zero();
  const int faults = static_cast<int>(random.uniform_int(0, 3));
  std::vector<sim::SimTime> fault_times;
  for (int f = 0; f < faults; ++f)
    fault_times.push_back(at(sim::milliseconds(random.uniform_int(5'000, 50'000))));
  std::sort(fault_times.begin(), fault_times.end());
  for (sim::SimTime fault_time : fault_times) {
    h.run_until(std::max(now, fault_time));
    now = h.simulation.now();
    const sim::HostId host =
        h.server_host(GacServerId(static_cast<uint32_t>(random.uniform_u64(options.servers))));
    if (h.world.host_state(host) != sim::HostState::kUp) continue;
    h.world.power_off(host);
    h.run_until(now + sim::milliseconds(random.uniform_int(0, 6'000)));
    now = h.simulation.now();
    h.world.power_on(host);
  }
  h.run_until(at(length));
  CaseResult result;
  result.bound_violations = check_vending_bound(h.journal, h.server_options, kWindows).size();
  result.unpaid_admissions = check_granted_covers_admitted(h.journal);
  result.vends = h.journal.vends.size();
  result.trace_hash = h.simulation.trace_hash();
  for (const AdmissionEvent& event : h.journal.admissions) {
    if (event.admission != GacAdmission::kThrottled) result.admitted += event.cost_milli_units;
  }
  return result;
}

TEST(GacProperty, VendingBoundAndGrantedCoversAdmittedOverRandomSeeds) {
  for (uint64_t seed = 1; seed <= 16; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const CaseResult result = run_random_case(seed);
    EXPECT_EQ(result.bound_violations, 0u);
    EXPECT_EQ(result.unpaid_admissions, 0u);
    EXPECT_GT(result.vends, 0u);
    EXPECT_GT(result.admitted, 0u);
  }
}

TEST(GacProperty, OneSeedReplaysTheSameRun) {
  const CaseResult first = run_random_case(7);
  const CaseResult second = run_random_case(7);
  EXPECT_EQ(first.trace_hash, second.trace_hash);
  EXPECT_EQ(first.admitted, second.admitted);
  EXPECT_EQ(first.vends, second.vends);
}

TEST(GacProperty, PlantedIgnoreOutstandingGrantsBreaksTheVendingBound) {
  size_t caught = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    if (run_random_case(seed, Plants{.ignore_outstanding_grants = true}).bound_violations > 0)
      ++caught;
  }
  EXPECT_EQ(caught, 6u);
}

TEST(GacProperty, PlantedSpendExpiredTokensBreaksGrantedVersusAdmitted) {
  size_t caught = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    if (run_random_case(seed, Plants{.spend_expired_tokens = true}).unpaid_admissions > 0) ++caught;
  }
  EXPECT_EQ(caught, 6u);
}

TEST(GacProperty, PlantedCreditDuplicateAnswersBreaksGrantedVersusAdmitted) {
  size_t caught = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    if (run_random_case(seed, Plants{.credit_duplicate_answers = true}).unpaid_admissions > 0) {
      ++caught;
    }
  }
  EXPECT_EQ(caught, 6u);
}

// ---------------------------------------------------------------------------------------------
// Failover and static stability.

TEST(GacFailover, RoutersMoveToTheNextServerWithoutAStall) {
  const GacBucketId bucket = bucket_of(5);
  Harness h(HarnessOptions{}, {steady(bucket, 300), steady(bucket, 300), steady(bucket, 300)});
  h.capacities.capacity_units_per_second[bucket] = 1000;
  h.start();
  h.run_until(at(sim::seconds(20)));
  const std::vector<GacServerId> list = h.ring->preference_list(bucket);
  h.world.power_off(h.server_host(list[0]));
  h.run_until(at(sim::seconds(40)));
  // Every router went on admitting: the longest gap is within one attempt timeout and one
  // slot (docs/gac.md, "Failover"), far below a refresh interval.
  const sim::Duration bound = h.client_options.attempt_timeout + h.server_options.slot_length;
  for (uint32_t r = 0; r < 3; ++r) {
    const GacRouterId router(r + 1);
    EXPECT_LE(longest_admission_gap(h.journal, router, bucket, at(sim::seconds(15)),
                                    at(sim::seconds(40))),
              bound)
        << "router " << r;
    EXPECT_GE(
        admitted_between(h.journal, bucket, at(sim::seconds(25)), at(sim::seconds(40)), router),
        15u * 300 * 1000 * 95 / 100);
    EXPECT_GT(h.router(r).client().stats().failovers, 0u);
  }
  // The second server of the ring now serves the bucket.
  uint64_t vends_after = 0;
  for (const VendEvent& vend : h.journal.vends) {
    if (vend.true_time < at(sim::seconds(21))) continue;
    EXPECT_EQ(vend.record.server, h.ring->address(list[1]));
    ++vends_after;
  }
  EXPECT_GT(vends_after, 0u);
  // The move away from the dead home server overlapped only the slots it had sold ahead.
  EXPECT_LE(extra_ledger_slots(h.journal, bucket, at(sim::seconds(0)), at(sim::seconds(40))),
            h.server_options.horizon_slots);
  // The home server comes back empty; after their probation the routers return to it.
  h.world.power_on(h.server_host(list[0]));
  h.run_until(at(sim::seconds(60)));
  uint64_t home_vends = 0;
  for (const VendEvent& vend : h.journal.vends) {
    if (vend.true_time >= at(sim::seconds(45)) && vend.record.server == h.ring->address(list[0])) {
      ++home_vends;
    }
  }
  EXPECT_GT(home_vends, 0u);
  EXPECT_TRUE(check_vending_bound(h.journal, h.server_options, kWindows).empty());
  EXPECT_EQ(check_granted_covers_admitted(h.journal), 0u);
}

TEST(GacFailover, ARestartedServerRebuildsFromRequests) {
  const GacBucketId bucket = bucket_of(6);
  HarnessOptions options;
  options.servers = 1;
  Harness h(options, {steady(bucket, 800), steady(bucket, 100)});
  h.capacities.capacity_units_per_second[bucket] = 600;
  h.start();
  h.run_until(at(sim::seconds(20)));
  const sim::HostId host = h.server_host(GacServerId(0));
  h.world.crash(host);
  h.world.restart(host);
  h.run_until(at(sim::seconds(40)));
  // Shares are back to max-min fair within a few refreshes: 500 and 100.
  EXPECT_GE(admitted_between(h.journal, bucket, at(sim::seconds(30)), at(sim::seconds(40)),
                             GacRouterId(1)),
            10u * 500 * 1000 * 95 / 100);
  EXPECT_GE(admitted_between(h.journal, bucket, at(sim::seconds(30)), at(sim::seconds(40)),
                             GacRouterId(2)),
            10u * 100 * 1000 * 95 / 100);
  // One restart: the new incarnation's ledger overlaps only the slots the old one sold ahead.
  EXPECT_LE(extra_ledger_slots(h.journal, bucket, at(sim::seconds(0)), at(sim::seconds(40))),
            h.server_options.horizon_slots);
  EXPECT_TRUE(check_vending_bound(h.journal, h.server_options, kWindows).empty());
  EXPECT_EQ(check_granted_covers_admitted(h.journal), 0u);
}

TEST(GacFailover, WithGacUnreachableRoutersSpendTokensThenTheFallbackThenThrottle) {
  const GacBucketId bucket = bucket_of(7);
  HarnessOptions options;
  options.servers = 2;
  options.client.static_stability_period = sim::seconds(20);
  Harness h(options, {steady(bucket, 400), steady(bucket, 400)});
  h.capacities.capacity_units_per_second[bucket] = 1000;
  h.start();
  h.run_until(at(sim::seconds(20)));
  for (uint32_t s = 0; s < 2; ++s) h.world.power_off(h.server_host(GacServerId(s)));
  h.run_until(at(sim::seconds(60)));
  for (uint32_t r = 0; r < 2; ++r) {
    const GacRouterId router(r + 1);
    EXPECT_TRUE(h.router(r).client().unreachable(bucket));
    // Granted tokens carry the router a little past the outage's start, and never past one
    // lifetime from its last request.
    EXPECT_EQ(
        admitted_between(h.journal, bucket, at(sim::seconds(20)) + h.server_options.token_lifetime,
                         at(sim::seconds(60)), router, false),
        0u);
    // Then the fallback at the last share (500 units/s) for its period, then nothing.
    const uint64_t fallback =
        admitted_between(h.journal, bucket, at(sim::seconds(20)), at(sim::seconds(60)), router) -
        admitted_between(h.journal, bucket, at(sim::seconds(20)), at(sim::seconds(60)), router,
                         false);
    EXPECT_GT(fallback, 0u);
    EXPECT_LE(fallback, milli_over(500, sim::seconds(21)));
    EXPECT_EQ(
        admitted_between(h.journal, bucket, at(sim::seconds(46)), at(sim::seconds(60)), router),
        0u);
  }
  // GAC returns: grants resume.
  for (uint32_t s = 0; s < 2; ++s) h.world.power_on(h.server_host(GacServerId(s)));
  h.run_until(at(sim::seconds(90)));
  for (uint32_t r = 0; r < 2; ++r) {
    EXPECT_FALSE(h.router(r).client().unreachable(bucket));
    EXPECT_GE(admitted_between(h.journal, bucket, at(sim::seconds(80)), at(sim::seconds(90)),
                               GacRouterId(r + 1), false),
              10u * 400 * 1000 * 95 / 100);
  }
  EXPECT_EQ(check_granted_covers_admitted(h.journal), 0u);
}

TEST(GacFailover, PlantedSpendExpiredTokensIsCaughtWhenGacIsUnreachable) {
  const GacBucketId bucket = bucket_of(8);
  HarnessOptions options;
  options.servers = 1;
  options.client.static_stability_period = sim::Duration(0);
  options.client.plant_spend_expired_tokens = true;
  // A low demand leaves tokens unspent (the idle share is spread), which expire in the outage.
  Harness h(options, {steady(bucket, 50), steady(bucket, 50)});
  h.capacities.capacity_units_per_second[bucket] = 1000;
  h.start();
  h.run_until(at(sim::seconds(10)));
  h.world.power_off(h.server_host(GacServerId(0)));
  h.run_until(at(sim::seconds(30)));
  EXPECT_GT(check_granted_covers_admitted(h.journal), 0u);
}

// ---------------------------------------------------------------------------------------------
// GacServerProcess and the capacity controller's updates.

// Stands in for the capacity controller's side of the protocol: records what the GAC server
// sends, and sends the updates it is told to, when told to.
class ControllerStub final : public sim::Process {
 public:
  struct Scheduled {
    sim::Duration at;
    AllocationUpdate update;
  };
  explicit ControllerStub(std::vector<Scheduled> script) : script_(std::move(script)) {}
  void on_start(sim::Env& env) override {
    for (uint64_t i = 0; i < script_.size(); ++i) env.set_timer(script_[i].at, i);
  }
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override {
    (void)env;
    server = from;
    if (message.type == static_cast<uint32_t>(CapacityMessageType::kAllocationRequest)) {
      ++requests;
    } else if (message.type == static_cast<uint32_t>(CapacityMessageType::kAllocationAck)) {
      acks.push_back(dynamic_cast<const AllocationAck&>(*message.body).version);
    }
  }
  void on_timer(sim::Env& env, uint64_t cookie) override {
    env.send(server, make_message(script_.at(cookie).update));
  }
  sim::Address server;
  uint32_t requests = 0;
  std::vector<AllocationVersion> acks;

 private:
  std::vector<Scheduled> script_;
};

AllocationUpdate update_of(uint64_t number, int64_t read_units, int64_t write_units) {
  AllocationUpdate update;
  update.version = AllocationVersion{7, number};
  update.capacity = TableCapacity{read_units, write_units};
  return update;
}

TEST(GacServerProcess, FollowsTheControllersNewestUpdateAndAcknowledgesEach) {
  sim::Simulation simulation(1);
  sim::World world(simulation, sim::WorldOptions{});
  const sim::RackId rack = world.add_rack(world.add_az("az-a"), "az-a/r0");
  const sim::HostId server_host = world.add_host(rack, "gac-0", sim::HostOptions{});
  const sim::HostId controller_host = world.add_host(rack, "controller", sim::HostOptions{});
  const sim::Address controller{controller_host, kCapacityControllerPort};
  GacServerProcessOptions options;
  options.table = TableId(3);
  options.read_capacity_units = 100;
  options.write_capacity_units = 50;
  options.capacity_controller = controller;
  world.add_process(server_host, kGacPort,
                    [options] { return std::make_unique<GacServerProcess>(options); });
  // The first update comes after 2.5 s (the server asks every second until then); a newer one
  // raises the capacity; an older one, arriving later, must not lower it.
  world.add_process(controller_host, kCapacityControllerPort, [] {
    return std::make_unique<ControllerStub>(
        std::vector<ControllerStub::Scheduled>{{sim::milliseconds(2500), update_of(1, 200, 60)},
                                               {sim::seconds(4), update_of(3, 300, 90)},
                                               {sim::seconds(5), update_of(2, 5, 5)}});
  });
  world.start();
  const auto capacities = [&] {
    const auto* process = dynamic_cast<const GacServerProcess*>(
        world.process_at(sim::Address{server_host, kGacPort}));
    const GacBucketId read{TableId(3), CapacityKind::kRead};
    const GacBucketId write{TableId(3), CapacityKind::kWrite};
    return std::make_pair(*process->capacities().capacity(read),
                          *process->capacities().capacity(write));
  };
  simulation.run_until(at(sim::seconds(2)));
  EXPECT_EQ(capacities(), std::make_pair(uint64_t{100}, uint64_t{50}));  // the configured one
  simulation.run_until(at(sim::seconds(3)));
  EXPECT_EQ(capacities(), std::make_pair(uint64_t{200}, uint64_t{60}));
  simulation.run_until(at(sim::seconds(10)));
  EXPECT_EQ(capacities(), std::make_pair(uint64_t{300}, uint64_t{90}));

  const auto* stub = dynamic_cast<const ControllerStub*>(world.process_at(controller));
  // Asked at 0, 1 and 2 s; no more once the first update arrived.
  EXPECT_EQ(stub->requests, 3u);
  ASSERT_EQ(stub->acks.size(), 3u);
  EXPECT_EQ(stub->acks[0], (AllocationVersion{7, 1}));
  EXPECT_EQ(stub->acks[1], (AllocationVersion{7, 3}));
  EXPECT_EQ(stub->acks[2], (AllocationVersion{7, 3}));  // the older update: the newest held
}

}  // namespace
}  // namespace dynasim::model
