#include "sim/faults.h"

#include <algorithm>
#include <set>

namespace dynasim::sim {

namespace {
constexpr EventKind kFaultTimeline = event_kind("fault.timeline");
constexpr EventKind kFaultRandom = event_kind("fault.random");
constexpr EventKind kFaultUndo = event_kind("fault.undo");

struct KindName {
  FaultKind kind;
  const char* name;
};
constexpr KindName kKindNames[] = {
    {FaultKind::kPowerOff, "power_off"},
    {FaultKind::kCrash, "crash"},
    {FaultKind::kIsolate, "isolate"},
    {FaultKind::kClog, "clog"},
    {FaultKind::kPacketLoss, "packet_loss"},
    {FaultKind::kDiskSlow, "disk_slow"},
    {FaultKind::kDiskFull, "disk_full"},
    {FaultKind::kBitRot, "bit_rot"},
    {FaultKind::kLatentErrors, "latent_errors"},
    {FaultKind::kMisdirectedWrites, "misdirected_writes"},
    {FaultKind::kClockDrift, "clock_drift"},
    {FaultKind::kClockJump, "clock_jump"},
    {FaultKind::kObjectStoreOutage, "object_store_outage"},
};

bool takes_hosts_down(FaultKind kind) {
  return kind == FaultKind::kPowerOff || kind == FaultKind::kCrash || kind == FaultKind::kIsolate;
}
}  // namespace

const char* to_string(FaultKind kind) {
  for (const KindName& entry : kKindNames) {
    if (entry.kind == kind) return entry.name;
  }
  return "?";
}

bool parse_fault_kind(const std::string& text, FaultKind* kind) {
  for (const KindName& entry : kKindNames) {
    if (text == entry.name) {
      *kind = entry.kind;
      return true;
    }
  }
  return false;
}

FaultInjector::FaultInjector(World& world, SurvivabilityPolicy policy)
    : world_(world),
      policy_(policy),
      isolated_count_(world.host_count(), 0),
      down_holds_(world.host_count(), 0) {}

void FaultInjector::schedule(const TimelineFault& fault) {
  timeline_.push_back(fault);
  world_.simulation().schedule_at(SimTime::zero() + fault.at, this, kFaultTimeline, 0,
                                  timeline_.size() - 1);
}

void FaultInjector::add_random_process(const RandomFaultProcess& process) {
  DYN_ASSERT(process.rate_per_host_hour >= 0);
  random_processes_.push_back(process);
  const auto index = static_cast<uint32_t>(random_processes_.size() - 1);
  random_streams_.push_back(
      world_.simulation().random_stream("faults/random/" + std::to_string(index)));
  schedule_next_random(index);
}

void FaultInjector::schedule_next_random(uint32_t index) {
  const RandomFaultProcess& process = random_processes_[index];
  const double host_count = static_cast<double>(hosts_of(process.scope).size());
  const double rate_per_second = process.rate_per_host_hour * host_count / 3600.0;
  if (rate_per_second <= 0) return;
  Random& random = random_streams_[index];
  SimTime next = world_.simulation().now() +
                 random.exponential_duration(Duration(static_cast<int64_t>(1e9 / rate_per_second)));
  const SimTime start = SimTime::zero() + process.start;
  if (next < start)
    next =
        start + random.exponential_duration(Duration(static_cast<int64_t>(1e9 / rate_per_second)));
  if (next >= SimTime::zero() + process.end) return;
  world_.simulation().schedule_at(next, this, kFaultRandom, 0, index);
}

std::vector<HostId> FaultInjector::hosts_of(const FaultTarget& target) const {
  std::vector<HostId> hosts = hosts_in_scope(target);
  if (policy_.spared_hosts.empty()) return hosts;
  std::vector<HostId> kept;
  for (HostId host : hosts) {
    if (std::find(policy_.spared_hosts.begin(), policy_.spared_hosts.end(), host) ==
        policy_.spared_hosts.end()) {
      kept.push_back(host);
    }
  }
  return kept;
}

std::vector<HostId> FaultInjector::hosts_in_scope(const FaultTarget& target) const {
  switch (target.scope) {
    case FaultTarget::Scope::kHost:
      return {HostId(target.id)};
    case FaultTarget::Scope::kRack:
      return world_.hosts_in_rack(RackId(target.id));
    case FaultTarget::Scope::kAz:
      return world_.hosts_in_az(AzId(target.id));
    case FaultTarget::Scope::kRegion: {
      std::vector<HostId> all;
      for (uint32_t i = 0; i < world_.host_count(); ++i) all.push_back(HostId(i));
      return all;
    }
  }
  return {};
}

bool FaultInjector::host_impaired(HostId host) const {
  return world_.host_state(host) != HostState::kUp || isolated_count_[host.value] > 0;
}

bool FaultInjector::guard_allows(const std::vector<HostId>& newly_impaired) const {
  if (policy_.unrestricted) return true;
  std::set<uint32_t> impaired_hosts;
  std::set<uint32_t> impaired_azs;
  for (uint32_t i = 0; i < world_.host_count(); ++i) {
    if (host_impaired(HostId(i))) {
      impaired_hosts.insert(i);
      impaired_azs.insert(world_.az_of(HostId(i)).value);
    }
  }
  for (HostId host : newly_impaired) {
    impaired_hosts.insert(host.value);
    impaired_azs.insert(world_.az_of(host).value);
  }
  return impaired_azs.size() <= policy_.max_impaired_azs &&
         impaired_hosts.size() <= policy_.max_impaired_hosts;
}

std::string FaultInjector::describe(const FaultSpec& fault) const {
  std::string where;
  switch (fault.target.scope) {
    case FaultTarget::Scope::kRegion:
      where = "region";
      break;
    case FaultTarget::Scope::kAz:
      where = "az " + world_.az_name(AzId(fault.target.id));
      break;
    case FaultTarget::Scope::kRack:
      where = "rack " + world_.rack_name(RackId(fault.target.id));
      break;
    case FaultTarget::Scope::kHost:
      where = "host " + world_.host_name(HostId(fault.target.id));
      break;
  }
  std::string text = std::string(to_string(fault.kind)) + " " + where;
  if (fault.value != 0) text += " value " + std::to_string(fault.value);
  if (fault.duration.ns != 0) text += " for " + format_duration(fault.duration);
  return text;
}

void FaultInjector::record(const FaultSpec& fault, bool applied) {
  log_.push_back(FaultLogEntry{world_.simulation().now(), describe(fault), applied});
  if (applied) {
    ++stats_.applied;
  } else {
    ++stats_.refused;
  }
}

bool FaultInjector::guard_allows_fault(const FaultSpec& fault,
                                       const std::vector<HostId>& hosts) const {
  if (!takes_hosts_down(fault.kind)) return true;
  std::vector<HostId> newly;
  for (HostId host : hosts) {
    if (!host_impaired(host)) newly.push_back(host);
  }
  return guard_allows(newly);
}

bool FaultInjector::inject(const FaultSpec& fault) {
  std::vector<HostId> hosts = hosts_of(fault.target);
  if (!guard_allows_fault(fault, hosts)) {
    record(fault, false);
    return false;
  }
  Undo undo{fault, hosts, PartitionId()};
  Network& network = world_.network();
  switch (fault.kind) {
    case FaultKind::kPowerOff:
      if (fault.target.scope == FaultTarget::Scope::kAz) ++stats_.az_power_offs;
      for (HostId host : hosts) {
        ++down_holds_[host.value];
        if (world_.host_state(host) == HostState::kPoweredOff) continue;
        world_.power_off(host);
        ++stats_.power_offs;
      }
      break;
    case FaultKind::kCrash:
      for (HostId host : hosts) {
        ++down_holds_[host.value];
        if (world_.host_state(host) != HostState::kUp) continue;
        world_.crash(host);
        ++stats_.crashes;
      }
      break;
    case FaultKind::kIsolate:
      // A spared host inside the AZ keeps every link, so the AZ is cut as a set of hosts then.
      if (fault.target.scope == FaultTarget::Scope::kAz && policy_.spared_hosts.empty()) {
        undo.partition = network.isolate_az(AzId(fault.target.id));
      } else {
        std::vector<HostId> others;
        for (uint32_t i = 0; i < world_.host_count(); ++i) {
          if (std::find(hosts.begin(), hosts.end(), HostId(i)) == hosts.end()) {
            others.push_back(HostId(i));
          }
        }
        undo.partition = network.partition(hosts, others, /*symmetric=*/true);
      }
      for (HostId host : hosts) ++isolated_count_[host.value];
      ++stats_.isolations;
      break;
    case FaultKind::kClog:
      for (HostId host : hosts) network.clog_host(host, fault.duration);
      ++stats_.network_faults;
      break;
    case FaultKind::kPacketLoss:
      network.set_loss_probability(fault.value);
      ++stats_.network_faults;
      break;
    case FaultKind::kDiskSlow:
    case FaultKind::kDiskFull:
    case FaultKind::kBitRot:
    case FaultKind::kLatentErrors:
    case FaultKind::kMisdirectedWrites:
      for (HostId host : hosts) {
        for (uint32_t d = 0; d < world_.disk_count(host); ++d) {
          Disk& disk = world_.disk(host, d);
          switch (fault.kind) {
            case FaultKind::kDiskSlow:
              disk.set_slow_factor(fault.value);
              break;
            case FaultKind::kDiskFull:
              disk.set_full(true);
              break;
            case FaultKind::kBitRot:
              disk.set_bit_rot_per_tb_hour(fault.value);
              break;
            case FaultKind::kLatentErrors:
              disk.set_latent_error_probability(fault.value);
              break;
            default:
              disk.set_misdirected_write_probability(fault.value);
              break;
          }
        }
      }
      ++stats_.disk_faults;
      break;
    case FaultKind::kClockDrift:
      for (HostId host : hosts) world_.set_clock_drift_ppm(host, fault.value);
      ++stats_.clock_faults;
      break;
    case FaultKind::kClockJump:
      for (HostId host : hosts) {
        world_.step_clock(host, fault.value < 0 ? -fault.duration : fault.duration);
      }
      ++stats_.clock_faults;
      record(fault, true);
      return true;  // a jump is instantaneous; nothing to undo
    case FaultKind::kObjectStoreOutage:
      world_.object_store().set_available(false);
      ++stats_.network_faults;
      break;
  }
  record(fault, true);
  if (fault.duration.ns > 0 && fault.kind != FaultKind::kClog) {
    undos_.push_back(std::move(undo));
    world_.simulation().schedule_after(fault.duration, this, kFaultUndo, 0, undos_.size() - 1);
  }
  return true;
}

void FaultInjector::undo(const Undo& undo) {
  Network& network = world_.network();
  switch (undo.fault.kind) {
    case FaultKind::kPowerOff:
    case FaultKind::kCrash:
      for (HostId host : undo.hosts) {
        DYN_ASSERT(down_holds_[host.value] > 0);
        if (--down_holds_[host.value] == 0) world_.restart(host);
      }
      break;
    case FaultKind::kIsolate:
      network.heal(undo.partition);
      for (HostId host : undo.hosts) --isolated_count_[host.value];
      break;
    case FaultKind::kPacketLoss:
      network.set_loss_probability(0);
      break;
    case FaultKind::kDiskSlow:
    case FaultKind::kDiskFull:
    case FaultKind::kBitRot:
    case FaultKind::kLatentErrors:
    case FaultKind::kMisdirectedWrites:
      for (HostId host : undo.hosts) {
        for (uint32_t d = 0; d < world_.disk_count(host); ++d) {
          Disk& disk = world_.disk(host, d);
          // What the disk was built with: options() holds the fault's value by now.
          const DiskOptions& defaults = disk.configured_options();
          switch (undo.fault.kind) {
            case FaultKind::kDiskSlow:
              disk.set_slow_factor(defaults.slow_factor);
              break;
            case FaultKind::kDiskFull:
              disk.set_full(false);
              break;
            case FaultKind::kBitRot:
              disk.set_bit_rot_per_tb_hour(defaults.bit_rot_per_tb_hour);
              break;
            case FaultKind::kLatentErrors:
              disk.set_latent_error_probability(defaults.latent_error_probability_per_read);
              break;
            default:
              disk.set_misdirected_write_probability(defaults.misdirected_write_probability);
              break;
          }
        }
      }
      break;
    case FaultKind::kClockDrift:
      for (HostId host : undo.hosts) world_.set_clock_drift_ppm(host, 0);
      break;
    case FaultKind::kObjectStoreOutage:
      world_.object_store().set_available(true);
      break;
    case FaultKind::kClog:
    case FaultKind::kClockJump:
      break;
  }
}

void FaultInjector::on_event(const Event& event) {
  if (event.kind == &kFaultTimeline) {
    const TimelineFault& planned = timeline_.at(event.payload);
    // A fault planned while an earlier one waits keeps its place behind it.
    if (takes_hosts_down(planned.fault.kind) &&
        (!waiting_.empty() || !guard_allows_fault(planned.fault, hosts_of(planned.fault.target)))) {
      waiting_.push_back(planned);
      ++stats_.waited;
      log_.push_back(FaultLogEntry{world_.simulation().now(),
                                   describe(planned.fault) + " (waits for the guard)", false});
    } else {
      inject(planned.fault);
    }
  } else if (event.kind == &kFaultUndo) {
    undo(undos_.at(event.payload));
    apply_waiting();
  } else {
    const auto index = static_cast<uint32_t>(event.payload);
    const RandomFaultProcess& process = random_processes_[index];
    Random& random = random_streams_[index];
    const std::vector<HostId> hosts = hosts_of(process.scope);
    FaultSpec fault;
    fault.kind = process.kind;
    fault.target =
        FaultTarget{FaultTarget::Scope::kHost, hosts[random.uniform_u64(hosts.size())].value};
    fault.duration = process.duration_ns.sample_duration(random);
    fault.value = process.value;
    if (!waiting_.empty() && takes_hosts_down(fault.kind)) {
      record(fault, false);  // a planned fault waits: nothing random may stand in its way
    } else {
      inject(fault);
    }
    schedule_next_random(index);
  }
}

void FaultInjector::apply_waiting() {
  while (!waiting_.empty()) {
    const TimelineFault next = waiting_.front();
    if (!guard_allows_fault(next.fault, hosts_of(next.fault.target))) return;
    waiting_.erase(waiting_.begin());
    const bool applied = inject(next.fault);
    DYN_ASSERT(applied);
  }
}

void FaultInjector::drop_waiting() {
  for (const TimelineFault& fault : waiting_) record(fault.fault, false);
  waiting_.clear();
}

}  // namespace dynasim::sim
