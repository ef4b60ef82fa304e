// Fault injection: one API for the scenario's timeline ("at 5m power off az-b for 2m") and for
// random fault processes (a rate per host-hour), guarded by a survivability policy.
//
// Every fault acts on the world the model runs in: host power and crashes, network isolation,
// packet loss and clogging, disk slowness, fullness, bit rot and latent errors, clock drift and
// jumps, object-store outages. A fault with a duration is undone when it ends.
//
// The survivability guard keeps a run inside a stated fault model: by default at most one AZ may
// hold impaired hosts (down or cut off) at any moment, which keeps two of every three
// AZ-spread replicas alive, so liveness can be checked. A fault that would break the policy is
// refused and logged. A scenario can lift the guard for safety-only runs.
//
// A timeline fault is the plan of the game day ("power off az-b at 12m"), so the guard never
// drops it for being in the way of a random fault: it waits, and is applied as soon as the
// impairments in its way end (its duration counts from then). While one waits, random faults
// that would take hosts down are refused, so they cannot keep it out. Whatever still waits when
// the heal phase begins is dropped (drop_waiting()) and logged as refused.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sim/distribution.h"
#include "sim/world.h"

namespace dynasim::sim {

enum class FaultKind {
  kPowerOff,           // power returns after `duration` (or never, if zero)
  kCrash,              // processes die; the host restarts after `duration`
  kIsolate,            // network: cut every link to and from the target's hosts (an AZ: its border)
  kClog,               // network: messages to and from the target wait until the clog ends
  kPacketLoss,         // network-wide loss probability = value, for `duration`
  kDiskSlow,           // latency multiplied by value
  kDiskFull,           // writes to new sectors fail with kNoSpace
  kBitRot,             // bit flips per TB-hour = value
  kLatentErrors,       // per-sector-read probability of a latent sector error = value
  kMisdirectedWrites,  // per-write probability = value
  kClockDrift,         // drift in ppm = value
  kClockJump,          // step by `duration` (value = -1 steps backwards)
  kObjectStoreOutage,  // the object store fails every call
};
const char* to_string(FaultKind kind);
bool parse_fault_kind(const std::string& text, FaultKind* kind);

struct FaultTarget {
  enum class Scope { kRegion, kAz, kRack, kHost };
  Scope scope = Scope::kRegion;
  uint32_t id = 0;
};

struct FaultSpec {
  FaultKind kind = FaultKind::kPowerOff;
  FaultTarget target;
  Duration duration;  // zero: permanent (for reversible faults)
  double value = 0;
};

struct TimelineFault {
  Duration at;
  FaultSpec fault;
};

// A Poisson process of faults: `rate_per_host_hour` times the number of hosts in scope per hour;
// each occurrence hits one host of the scope chosen uniformly, for a duration drawn from
// `duration_ns`, between `start` and `end` of the run.
struct RandomFaultProcess {
  FaultKind kind = FaultKind::kPowerOff;
  FaultTarget scope;
  double rate_per_host_hour = 0;
  DistributionSpec duration_ns = DistributionSpec::constant(60e9);
  double value = 0;
  Duration start;
  Duration end = hours(1'000'000);
};

struct SurvivabilityPolicy {
  bool unrestricted = false;
  uint32_t max_impaired_azs = 1;
  uint32_t max_impaired_hosts = UINT32_MAX;
  // Hosts no fault ever touches, whatever its scope: a game day's clients, which stand outside
  // the system under test the way a Jepsen control node does. They also do not count toward a
  // random process's rate.
  std::vector<HostId> spared_hosts;
};

struct FaultLogEntry {
  SimTime time;
  std::string description;
  bool applied = false;  // false: refused by the survivability guard
};

class FaultInjector final : public EventSink {
 public:
  FaultInjector(World& world, SurvivabilityPolicy policy);

  void schedule(const TimelineFault& fault);
  void add_random_process(const RandomFaultProcess& process);

  // Applies a fault now. False if the survivability guard refused it.
  bool inject(const FaultSpec& fault);
  // The heal phase began: timeline faults still waiting for the guard will not run.
  void drop_waiting();

  struct Stats {
    uint64_t applied = 0;
    uint64_t refused = 0;
    uint64_t waited = 0;  // timeline faults that waited for the guard (applied later, or dropped)
    uint64_t power_offs = 0;      // hosts powered off
    uint64_t az_power_offs = 0;   // power-off faults whose target was a whole AZ
    uint64_t crashes = 0;
    uint64_t isolations = 0;
    uint64_t disk_faults = 0;
    uint64_t clock_faults = 0;
    uint64_t network_faults = 0;
  };
  const Stats& stats() const { return stats_; }
  const std::vector<FaultLogEntry>& log() const { return log_; }
  std::string describe(const FaultSpec& fault) const;

  void on_event(const Event& event) override;

 private:
  struct Undo {
    FaultSpec fault;
    std::vector<HostId> hosts;
    PartitionId partition;
  };
  std::vector<HostId> hosts_of(const FaultTarget& target) const;
  std::vector<HostId> hosts_in_scope(const FaultTarget& target) const;
  bool guard_allows(const std::vector<HostId>& newly_impaired) const;
  // Whether the guard lets `fault` impair `hosts` (the hosts its target covers).
  bool guard_allows_fault(const FaultSpec& fault, const std::vector<HostId>& hosts) const;
  bool host_impaired(HostId host) const;
  void undo(const Undo& undo);
  void schedule_next_random(uint32_t process_index);
  void apply_waiting();
  void record(const FaultSpec& fault, bool applied);

  World& world_;
  SurvivabilityPolicy policy_;
  std::vector<TimelineFault> timeline_;
  std::vector<RandomFaultProcess> random_processes_;
  std::vector<Random> random_streams_;
  std::vector<Undo> undos_;
  std::vector<TimelineFault> waiting_;  // refused timeline faults, in their planned order
  std::vector<uint32_t> isolated_count_;  // per host: active isolations that cut it off
  // Per host: power-off and crash faults still holding it down (a permanent one never lets go).
  // A host comes back only when the last of them ends, so overlapping faults keep their lengths.
  std::vector<uint32_t> down_holds_;
  Stats stats_;
  std::vector<FaultLogEntry> log_;
};

}  // namespace dynasim::sim
