// BM_PaxosGroupWrites: one replication group of three StorageNode replicas on three hosts in three
// AZs, no faults, and a client process that keeps `in_flight` writes outstanding at the leader.
// Each iteration runs the simulation until `writes` more writes were acknowledged (kOk);
// items_per_second is acknowledged writes per wall second: the cost of the whole write path in the
// simulator (request, Paxos Accept/Accepted, WAL append and fsync on the simulated disk, apply to
// the B-tree, response), kernel included.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/storage_node.h"
#include "sim/world.h"

namespace dynasim::model {
namespace {

// Keeps `in_flight` puts outstanding, each to the replica last known to lead; on any answer but
// kOk it resends (following a leader hint when there is one).
class BenchClient final : public sim::Process {
 public:
  void on_start(sim::Env& env) override { env_ = &env; }
  void on_message(sim::Env&, sim::Address, const sim::Message& message) override {
    const auto* response = dynamic_cast<const StorageResponse*>(message.body.get());
    if (response == nullptr) return;
    if (response->status == StorageStatus::kOk) {
      ++acknowledged;
    } else {
      ++refused;
    }
    if (response->status == StorageStatus::kNotLeader && response->leader_hint) {
      leader = *response->leader_hint;
    }
    send_one();
  }
  void on_timer(sim::Env&, uint64_t) override {}

  void start(sim::Address target, uint32_t in_flight) {
    leader = target;
    for (uint32_t i = 0; i < in_flight; ++i) send_one();
  }

  uint64_t acknowledged = 0;
  uint64_t refused = 0;  // answered, but not kOk (kBusy when the pipeline is full, kNotLeader)
  sim::Address leader;

 private:
  void send_one() {
    auto request = std::make_shared<StorageRequest>();
    request->group = GroupId(0);
    request->client_id = 1;
    request->request_id = next_request_id_++;
    request->op = StorageOp::kPut;
    // 10,000 distinct keys, 100-byte values: the B-tree stays resident, as a hot partition's.
    // The items are built once; the storage node's work, not the bench's, is what is measured.
    if (items_.empty()) {
      for (int k = 0; k < 10'000; ++k) {
        Item item(PrimaryKey{KeyValue::string("key-" + std::to_string(k)), {}});
        item.set("value", std::string(100, 'v'));
        items_.push_back(std::move(item));
      }
    }
    const Item& item = items_[next_key_++ % items_.size()];
    request->key = item.key();
    request->item = item;
    sim::Message message;
    message.type = static_cast<uint32_t>(StorageMessageType::kRequest);
    message.size_bytes = 200;
    message.digest = request->request_id;
    message.body = std::move(request);
    env_->send(leader, std::move(message));
  }

  sim::Env* env_ = nullptr;
  std::vector<Item> items_;
  uint64_t next_request_id_ = 1;
  uint64_t next_key_ = 0;
};

struct Group {
  Group() : simulation(1), world(simulation, sim::WorldOptions{}) {
    const char* az_names[] = {"az-a", "az-b", "az-c"};
    for (int i = 0; i < 3; ++i) {
      const sim::AzId az = world.add_az(az_names[i]);
      const sim::RackId rack = world.add_rack(az, std::string(az_names[i]) + "/r0");
      hosts[i] = world.add_host(rack, std::string(az_names[i]) + "/storage", sim::HostOptions{});
      nodes[i] = sim::Address{hosts[i], kStoragePort};
      if (i == 0) client_host = world.add_host(rack, "az-a/client", sim::HostOptions{});
    }
    for (int i = 0; i < 3; ++i) {
      StorageNodeOptions options;
      ReplicaAssignment assignment;
      assignment.group = GroupId(0);
      assignment.replica = static_cast<uint32_t>(i + 1);
      for (int m = 0; m < 3; ++m) assignment.members[m] = nodes[m];
      options.replicas = {assignment};
      // The whole tree (10,000 items) stays in the page cache, as a hot partition's would.
      options.btree_cache_pages = 4096;
      world.add_process(hosts[i], kStoragePort,
                        [options] { return std::make_unique<StorageNode>(options); });
    }
    world.add_process(client_host, kClientPort, [] { return std::make_unique<BenchClient>(); });
    world.start();
    // Elect a leader and wait out the lease before the clock starts.
    simulation.run_until(sim::SimTime(0) + sim::seconds(6));
  }

  BenchClient* client() {
    return dynamic_cast<BenchClient*>(world.process_at(sim::Address{client_host, kClientPort}));
  }
  sim::Address leader() {
    for (const sim::Address& node : nodes) {
      auto* storage = dynamic_cast<StorageNode*>(world.process_at(node));
      if (storage != nullptr && storage->inspect()[0].role == PaxosRole::kLeader) return node;
    }
    return nodes[0];
  }

  sim::Simulation simulation;
  sim::World world;
  sim::Address nodes[3];
  sim::HostId hosts[3];
  sim::HostId client_host;
};

void BM_PaxosGroupWrites(benchmark::State& state) {
  const auto in_flight = static_cast<uint32_t>(state.range(0));
  const uint64_t writes_per_iteration = 20'000;
  Group group;
  BenchClient* client = group.client();
  client->start(group.leader(), in_flight);
  uint64_t acknowledged = 0;
  const sim::SimTime started = group.simulation.now();
  const uint64_t acknowledged_before = client->acknowledged;
  for (auto _ : state) {
    const uint64_t target = client->acknowledged + writes_per_iteration;
    // Bounded: a stalled group would stop the benchmark with an error, not spin.
    for (int slice = 0; slice < 1'000'000 && client->acknowledged < target; ++slice) {
      group.simulation.run_until(group.simulation.now() + sim::milliseconds(1));
    }
    if (client->acknowledged < target) {
      state.SkipWithError("the group stopped acknowledging writes");
      break;
    }
    acknowledged += writes_per_iteration;
  }
  state.SetItemsProcessed(static_cast<int64_t>(acknowledged));
  uint64_t fsyncs = 0;
  uint64_t writes = 0;
  uint64_t bytes = 0;
  for (const sim::HostId host : group.hosts) {
    fsyncs += group.world.disk(host, 0).stats().fsyncs;
    writes += group.world.disk(host, 0).stats().writes;
    bytes += group.world.disk(host, 0).stats().bytes_written;
  }
  const double total = static_cast<double>(client->acknowledged);
  state.counters["refused_per_write"] = static_cast<double>(client->refused) / total;
  state.counters["events_per_write"] =
      static_cast<double>(group.simulation.events_executed()) / total;
  state.counters["messages_per_write"] =
      static_cast<double>(group.world.network().stats().sent) / total;
  state.counters["fsyncs_per_write"] = static_cast<double>(fsyncs) / total;
  state.counters["disk_writes_per_write"] = static_cast<double>(writes) / total;
  state.counters["disk_bytes_per_write"] = static_cast<double>(bytes) / total;
  state.counters["simulated_writes_per_second"] =
      static_cast<double>(client->acknowledged - acknowledged_before) /
      sim::to_seconds(group.simulation.now() - started);
}
BENCHMARK(BM_PaxosGroupWrites)->Arg(256)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace dynasim::model
