// A small region for the MemDS and partition-cache tests: MemDS nodes, one storage-side
// publisher and one router, each a process on its own host, spread over three AZs. The router
// process runs a workload: it resolves keys at a fixed rate and counts what it gets back.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/memds.h"
#include "model/partition_cache.h"
#include "sim/check.h"
#include "sim/world.h"

namespace dynasim::model::memds_testing {

class PublisherProcess final : public sim::Process {
 public:
  PublisherProcess(MemdsPublisherOptions options, std::vector<sim::Address> memds)
      : publisher_(options, std::move(memds)) {}
  void on_start(sim::Env& env) override { env_ = &env; }
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override {
    DYN_ASSERT(publisher_.on_message(env, from, message));
  }
  void on_timer(sim::Env& env, uint64_t cookie) override {
    DYN_ASSERT(publisher_.on_timer(env, cookie));
  }
  MemdsPublisher::PublishStatus publish(std::vector<PartitionEntry> entries) {
    return publisher_.publish(*env_, std::move(entries));
  }
  MemdsPublisher& publisher() { return publisher_; }

 private:
  MemdsPublisher publisher_;
  sim::Env* env_ = nullptr;
};

// What the router's workload asks for: `requests_per_second` resolutions, each of a key drawn
// uniformly from `keys` (table, partition hash).
struct RouterWorkload {
  uint32_t requests_per_second = 0;
  std::vector<std::pair<TableId, uint64_t>> keys;
};

class RouterProcess final : public sim::Process {
 public:
  static constexpr uint64_t kWorkloadCookie = 1;
  RouterProcess(PartitionCacheOptions options, std::vector<sim::Address> memds,
                const RouterWorkload* workload)
      : cache_(make_partition_cache(options, std::move(memds))), workload_(workload) {}
  void on_start(sim::Env& env) override {
    env_ = &env;
    if (workload_->requests_per_second > 0) arm(env);
  }
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override {
    DYN_ASSERT(cache_->on_message(env, from, message));
  }
  void on_timer(sim::Env& env, uint64_t cookie) override {
    if (cookie == kWorkloadCookie) {
      const auto& key = workload_->keys[env.random().uniform_u64(workload_->keys.size())];
      resolve(key.first, key.second);
      arm(env);
      return;
    }
    DYN_ASSERT(cache_->on_timer(env, cookie));
  }
  void resolve(TableId table, uint64_t partition_hash) {
    cache_->resolve(*env_, table, partition_hash, [this](const CacheResult& result) {
      ++results[result.status];
      if (result.status == CacheStatus::kOk) last = result;
    });
  }
  PartitionCache& cache() { return *cache_; }
  sim::Env& env() { return *env_; }
  std::map<CacheStatus, uint64_t> results;
  CacheResult last;

 private:
  void arm(sim::Env& env) {
    env.set_timer(sim::Duration(1'000'000'000 / workload_->requests_per_second), kWorkloadCookie);
  }
  std::unique_ptr<PartitionCache> cache_;
  const RouterWorkload* workload_;
  sim::Env* env_ = nullptr;
};

struct RegionOptions {
  uint32_t memds_nodes = 3;
  MemdsOptions memds;
  MemdsPublisherOptions publisher;
  PartitionCacheOptions cache;
  uint64_t seed = 1;
};

struct Region {
  explicit Region(RegionOptions options)
      : simulation(options.seed), world(simulation, sim::WorldOptions{}) {
    std::vector<sim::RackId> racks;
    for (uint32_t az = 0; az < 3; ++az) {
      const std::string name = std::string("az-") + static_cast<char>('a' + az);
      racks.push_back(world.add_rack(world.add_az(name), name + "/r0"));
    }
    for (uint32_t i = 0; i < options.memds_nodes; ++i) {
      const sim::HostId host =
          world.add_host(racks[i % 3], "memds-" + std::to_string(i), sim::HostOptions{});
      memds.push_back(sim::Address{host, kMemdsPort});
    }
    for (const sim::Address& address : memds) {
      world.add_process(address.host, address.port, [this, options] {
        return std::make_unique<model::MemdsProcess>(options.memds, memds);
      });
    }
    const sim::HostId storage_host = world.add_host(racks[0], "storage", sim::HostOptions{});
    storage = sim::Address{storage_host, kStoragePort};
    world.add_process(storage_host, kStoragePort, [this, options] {
      return std::make_unique<PublisherProcess>(options.publisher, memds);
    });
    const sim::HostId router_host = world.add_host(racks[1], "router", sim::HostOptions{});
    router_address = sim::Address{router_host, kClientPort};
    world.add_process(router_host, kClientPort, [this, options] {
      return std::make_unique<RouterProcess>(options.cache, memds, &workload);
    });
    world.start();
    run_for(sim::milliseconds(1));
  }
  MemdsNode& node(size_t index) {
    auto* process = dynamic_cast<model::MemdsProcess*>(world.process_at(memds.at(index)));
    DYN_ASSERT(process != nullptr);
    return process->node();
  }
  PublisherProcess& publisher() {
    auto* process = dynamic_cast<PublisherProcess*>(world.process_at(storage));
    DYN_ASSERT(process != nullptr);
    return *process;
  }
  RouterProcess& router() {
    auto* process = dynamic_cast<RouterProcess*>(world.process_at(router_address));
    DYN_ASSERT(process != nullptr);
    return *process;
  }
  // Lookups answered by the whole MemDS fleet so far (nodes that are down count nothing).
  uint64_t fleet_lookups() {
    uint64_t total = 0;
    for (size_t i = 0; i < memds.size(); ++i) {
      if (world.host_state(memds[i].host) == sim::HostState::kUp) total += node(i).stats().lookups;
    }
    return total;
  }
  void run_for(sim::Duration span) { simulation.run_until(simulation.now() + span); }

  sim::Simulation simulation;
  sim::World world;
  std::vector<sim::Address> memds;
  sim::Address storage;
  sim::Address router_address;
  RouterWorkload workload;
};

// A table's partition map: `partitions` equal ranges of the hash space, each with its group and
// three replicas at made-up addresses, all at `version`.
inline std::vector<PartitionEntry> table_map(TableId table, uint32_t partitions, uint64_t version,
                                             uint32_t first_group = 0) {
  std::vector<PartitionEntry> entries;
  const uint64_t width = UINT64_MAX / partitions;
  for (uint32_t p = 0; p < partitions; ++p) {
    PartitionEntry entry;
    entry.table = table;
    entry.hash_begin = width * p;
    entry.hash_end = p + 1 == partitions ? UINT64_MAX : width * (p + 1) - 1;
    entry.group = GroupId(first_group + p);
    entry.members.epoch = version;
    for (uint32_t r = 0; r < kReplicasPerGroup; ++r) {
      entry.members.replicas.push_back(sim::Address{sim::HostId(1000 + p * 3 + r), kStoragePort});
    }
    entry.leader_hint = entry.members.replicas[0];
    entry.version = version;
    entries.push_back(entry);
  }
  return entries;
}

}  // namespace dynasim::model::memds_testing
