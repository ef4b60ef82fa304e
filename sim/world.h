// The simulated world: a region of AZs, racks and hosts, with the processes placed on them, their
// disks and clocks, the network between them and the object store beside them.
//
// The world is where faults happen (CONVENTIONS.md rule 9). Host power and crash change what a
// process is: power_off destroys every process on the host with all its volatile state and drops
// the disks' unsynced writes; crash destroys the processes but leaves the disks' caches; a
// restarted host builds its processes again from their factories, and they recover from disk in
// on_start() as real code would. Messages to a host that is down are dropped on arrival.
//
// Ids are assigned in build order, so one scenario always yields the same ids and streams.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sim/clock.h"
#include "sim/disk.h"
#include "sim/env.h"
#include "sim/network.h"
#include "sim/object_store.h"
#include "sim/simulation.h"

namespace dynasim::sim {

enum class HostState { kUp, kPoweredOff, kCrashed };
const char* to_string(HostState state);

struct HostOptions {
  std::vector<DiskOptions> disks{DiskOptions{}};
  double clock_drift_ppm = 0;
};

struct WorldOptions {
  NetworkOptions network;
  ObjectStoreOptions object_store;
};

using ProcessFactory = std::function<std::unique_ptr<Process>()>;

// Watches host state changes (for checkers and fault accounting). Must not change the run.
class WorldObserver {
 public:
  virtual void on_host_state(HostId host, HostState state, SimTime when) = 0;

 protected:
  ~WorldObserver() = default;
};

class World final : public NetworkReceiver, public MetricSink {
 public:
  World(Simulation& simulation, WorldOptions options);
  ~World();
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  // Topology. Names must be unique within their kind; they name random streams and reports.
  AzId add_az(std::string name);
  RackId add_rack(AzId az, std::string name);
  HostId add_host(RackId rack, std::string name, HostOptions options);
  // Places a process on a host at `port`. The factory runs at every boot of the host.
  void add_process(HostId host, uint32_t port, ProcessFactory factory);
  // Boots every host. Call once, after building the topology.
  void start();

  // Faults on one host.
  void power_off(HostId host);
  void power_on(HostId host);
  void crash(HostId host);
  void restart(HostId host);  // after crash (or power_off: then like power_on)
  void set_clock_drift_ppm(HostId host, double drift_ppm);
  void step_clock(HostId host, Duration jump);

  // Queries.
  Simulation& simulation() { return simulation_; }
  Network& network() { return *network_; }
  ObjectStore& object_store() { return *object_store_; }
  uint32_t az_count() const { return static_cast<uint32_t>(azs_.size()); }
  uint32_t rack_count() const { return static_cast<uint32_t>(racks_.size()); }
  uint32_t host_count() const { return static_cast<uint32_t>(hosts_.size()); }
  const std::string& az_name(AzId az) const { return azs_.at(az.value).name; }
  const std::string& rack_name(RackId rack) const { return racks_.at(rack.value).name; }
  const std::string& host_name(HostId host) const { return host_at(host).name; }
  AzId az_of(HostId host) const { return host_at(host).az; }
  RackId rack_of(HostId host) const { return host_at(host).rack; }
  AzId az_of_rack(RackId rack) const { return racks_.at(rack.value).az; }
  const std::vector<HostId>& hosts_in_az(AzId az) const { return azs_.at(az.value).hosts; }
  const std::vector<HostId>& hosts_in_rack(RackId rack) const {
    return racks_.at(rack.value).hosts;
  }
  HostState host_state(HostId host) const { return host_at(host).state; }
  Disk& disk(HostId host, uint32_t index) { return *host_at(host).disks.at(index); }
  uint32_t disk_count(HostId host) const {
    return static_cast<uint32_t>(host_at(host).disks.size());
  }
  const HostClock& clock(HostId host) const { return host_at(host).clock; }
  SimTime local_now(HostId host) const { return host_at(host).clock.local_now(simulation_.now()); }
  // The live process at an address, or null (host down, nothing placed there).
  Process* process_at(Address address);
  uint64_t incarnation(Address address) const;
  // Finds an AZ, rack or host by name; an invalid id if there is none.
  AzId find_az(const std::string& name) const;
  RackId find_rack(const std::string& name) const;
  HostId find_host(const std::string& name) const;

  void add_observer(WorldObserver* observer) { observers_.push_back(observer); }
  void set_disk_observer(DiskObserver* observer);

  struct Stats {
    uint64_t messages_dropped_host_down = 0;
    uint64_t power_offs = 0;
    uint64_t crashes = 0;
    uint64_t restarts = 0;
  };
  const Stats& stats() const { return stats_; }
  const std::map<std::string, int64_t, std::less<>>& counters() const { return counters_; }
  struct Series {
    uint64_t count = 0;
    double sum = 0;
    double min = 0;
    double max = 0;
  };
  const std::map<std::string, Series, std::less<>>& series() const { return series_; }

  // NetworkReceiver
  void deliver(Address from, Address to, const Message& message) override;
  // MetricSink
  void add(std::string_view counter, int64_t delta) override;
  void observe(std::string_view series, double value) override;

 private:
  class ProcessSlot;
  struct AzRecord {
    std::string name;
    std::vector<HostId> hosts;
  };
  struct RackRecord {
    std::string name;
    AzId az;
    std::vector<HostId> hosts;
  };
  struct HostRecord {
    std::string name;
    AzId az;
    RackId rack;
    HostState state = HostState::kPoweredOff;
    HostClock clock;
    std::vector<std::unique_ptr<Disk>> disks;
    std::map<uint32_t, std::unique_ptr<ProcessSlot>> processes;  // by port
  };

  HostRecord& host_at(HostId host) { return hosts_.at(host.value); }
  const HostRecord& host_at(HostId host) const { return hosts_.at(host.value); }
  void boot_processes(HostId host);
  void kill_processes(HostId host);
  void set_state(HostId host, HostState state);

  Simulation& simulation_;
  WorldOptions options_;
  std::unique_ptr<Network> network_;
  std::unique_ptr<ObjectStore> object_store_;
  std::vector<AzRecord> azs_;
  std::vector<RackRecord> racks_;
  std::vector<HostRecord> hosts_;
  std::vector<WorldObserver*> observers_;
  uint32_t next_disk_id_ = 0;
  bool started_ = false;
  Stats stats_;
  std::map<std::string, int64_t, std::less<>> counters_;
  std::map<std::string, Series, std::less<>> series_;
};

}  // namespace dynasim::sim
