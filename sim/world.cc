#include "sim/world.h"

namespace dynasim::sim {

namespace {
constexpr EventKind kProcessStart = event_kind("process.start");
constexpr EventKind kProcessTimer = event_kind("process.timer");
constexpr uint32_t kMaxTimersPerProcess = 1u << 20;
}  // namespace

const char* to_string(HostState state) {
  switch (state) {
    case HostState::kUp:
      return "up";
    case HostState::kPoweredOff:
      return "powered_off";
    case HostState::kCrashed:
      return "crashed";
  }
  return "?";
}

// One place a process lives on a host. The slot outlives the process: it keeps the factory, the
// random stream and the incarnation number, and it is the Env the process sees.
class World::ProcessSlot final : public Env, public EventSink {
 public:
  ProcessSlot(World& world, HostId host, uint32_t port, ProcessFactory factory)
      : world_(world),
        address_{host, port},
        factory_(std::move(factory)),
        random_(world.simulation_.random_stream("process/" + world.host_name(host) + ":" +
                                                std::to_string(port))) {}

  void boot() {
    DYN_ASSERT(process_ == nullptr);
    process_ = factory_();
    DYN_ASSERT_MSG(process_ != nullptr, "a process factory returned nothing");
    ++incarnation_;
    // Start through the event queue, never inside the fault that restarted the host.
    world_.simulation_.schedule_after(Duration(0), this, kProcessStart, address_.host.value,
                                      incarnation_ << 32);
  }

  void kill() {
    for (TimerSlot& timer : timers_) {
      if (timer.armed) world_.simulation_.cancel(timer.event);
    }
    timers_.clear();
    free_timers_.clear();
    process_.reset();
    ++incarnation_;  // anything still holding the old incarnation is now stale
  }

  Process* process() { return process_.get(); }
  uint64_t incarnation() const { return incarnation_; }

  // EventSink: starts and timers.
  void on_event(const Event& event) override {
    if (event.kind == &kProcessStart) {
      if (process_ != nullptr && (event.payload >> 32) == incarnation_) process_->on_start(*this);
      return;
    }
    const auto slot = static_cast<uint32_t>(event.payload);
    const auto generation = static_cast<uint32_t>(event.payload >> 32);
    if (slot >= timers_.size()) return;
    TimerSlot& timer = timers_[slot];
    if (!timer.armed || timer.generation != generation) return;
    const uint64_t cookie = timer.cookie;
    release_timer(slot);
    simulation().fold_digest(cookie);
    process_->on_timer(*this, cookie);
  }

  // Env
  Address self() const override { return address_; }
  AzId az() const override { return world_.az_of(address_.host); }
  SimTime local_now() const override { return world_.local_now(address_.host); }

  TimerHandle set_timer(Duration local_delay, uint64_t cookie) override {
    DYN_ASSERT(process_ != nullptr);
    DYN_ASSERT(local_delay.ns >= 0);
    uint32_t slot;
    if (!free_timers_.empty()) {
      slot = free_timers_.back();
      free_timers_.pop_back();
    } else {
      DYN_ASSERT_MSG(timers_.size() < kMaxTimersPerProcess, "a process holds too many timers");
      slot = static_cast<uint32_t>(timers_.size());
      timers_.emplace_back();
    }
    TimerSlot& timer = timers_[slot];
    timer.armed = true;
    timer.cookie = cookie;
    const Duration true_delay = world_.host_at(address_.host).clock.true_delay_for(local_delay);
    timer.event =
        world_.simulation_.schedule_after(true_delay, this, kProcessTimer, address_.host.value,
                                          (uint64_t{timer.generation} << 32) | slot);
    return TimerHandle{slot, timer.generation};
  }

  bool cancel_timer(TimerHandle handle) override {
    if (!handle.valid() || handle.slot >= timers_.size()) return false;
    TimerSlot& timer = timers_[handle.slot];
    if (!timer.armed || timer.generation != handle.generation) return false;
    world_.simulation_.cancel(timer.event);
    release_timer(handle.slot);
    return true;
  }

  void send(Address to, Message message) override {
    DYN_ASSERT(process_ != nullptr);
    world_.network_->send(address_, to, std::move(message));
  }

  uint32_t disk_count() const override { return world_.disk_count(address_.host); }
  Disk& disk(uint32_t index) override { return world_.disk(address_.host, index); }

  void object_put(std::string key, ObjectBytes data,
                  InplaceFunction<void(ObjectStatus), 48> done) override {
    world_.object_store_->put(
        std::move(key), std::move(data),
        [this, incarnation = incarnation_, done = std::move(done)](ObjectStatus status) mutable {
          if (incarnation_ == incarnation) done(status);
        });
  }
  void object_put_with_checksum(std::string key, ObjectBytes data, uint64_t content_checksum,
                                InplaceFunction<void(ObjectStatus), 48> done) override {
    world_.object_store_->put_with_checksum(
        std::move(key), std::move(data), content_checksum,
        [this, incarnation = incarnation_, done = std::move(done)](ObjectStatus status) mutable {
          if (incarnation_ == incarnation) done(status);
        });
  }
  void object_get(std::string key, InplaceFunction<void(ObjectResult), 48> done) override {
    world_.object_store_->get(
        std::move(key),
        [this, incarnation = incarnation_, done = std::move(done)](ObjectResult result) mutable {
          if (incarnation_ == incarnation) done(std::move(result));
        });
  }
  void object_list(
      std::string prefix,
      InplaceFunction<void(ObjectStatus, std::vector<std::string>), 48> done) override {
    world_.object_store_->list(std::move(prefix),
                               [this, incarnation = incarnation_, done = std::move(done)](
                                   ObjectStatus status, std::vector<std::string> keys) mutable {
                                 if (incarnation_ == incarnation) done(status, std::move(keys));
                               });
  }

  Random& random() override { return random_; }
  MetricSink& metrics() override { return world_; }

 private:
  struct TimerSlot {
    EventHandle event;
    uint64_t cookie = 0;
    uint32_t generation = 0;
    bool armed = false;
  };

  Simulation& simulation() { return world_.simulation_; }
  void release_timer(uint32_t slot) {
    TimerSlot& timer = timers_[slot];
    timer.armed = false;
    ++timer.generation;
    free_timers_.push_back(slot);
  }

  World& world_;
  Address address_;
  ProcessFactory factory_;
  Random random_;
  std::unique_ptr<Process> process_;
  uint64_t incarnation_ = 0;
  std::vector<TimerSlot> timers_;
  std::vector<uint32_t> free_timers_;
};

World::World(Simulation& simulation, WorldOptions options)
    : simulation_(simulation), options_(std::move(options)) {
  network_ = std::make_unique<Network>(simulation_, options_.network, this);
  object_store_ = std::make_unique<ObjectStore>(simulation_, options_.object_store);
}

World::~World() = default;

AzId World::add_az(std::string name) {
  DYN_ASSERT_MSG(!started_, "the topology is fixed once the world has started");
  DYN_ASSERT_MSG(!find_az(name).valid(), "duplicate AZ name " + name);
  azs_.push_back(AzRecord{std::move(name), {}});
  return AzId(static_cast<uint32_t>(azs_.size() - 1));
}

RackId World::add_rack(AzId az, std::string name) {
  DYN_ASSERT(!started_ && az.value < azs_.size());
  DYN_ASSERT_MSG(!find_rack(name).valid(), "duplicate rack name " + name);
  racks_.push_back(RackRecord{std::move(name), az, {}});
  return RackId(static_cast<uint32_t>(racks_.size() - 1));
}

HostId World::add_host(RackId rack, std::string name, HostOptions options) {
  DYN_ASSERT(!started_ && rack.value < racks_.size());
  DYN_ASSERT_MSG(!find_host(name).valid(), "duplicate host name " + name);
  const HostId id(static_cast<uint32_t>(hosts_.size()));
  HostRecord record;
  record.name = std::move(name);
  record.rack = rack;
  record.az = racks_[rack.value].az;
  record.clock.set_drift_ppm(options.clock_drift_ppm, simulation_.now());
  for (size_t i = 0; i < options.disks.size(); ++i) {
    record.disks.push_back(std::make_unique<Disk>(simulation_, DiskId(next_disk_id_++),
                                                  record.name + "/" + std::to_string(i),
                                                  options.disks[i]));
  }
  racks_[rack.value].hosts.push_back(id);
  azs_[record.az.value].hosts.push_back(id);
  network_->add_host(id, record.az);
  hosts_.push_back(std::move(record));
  return id;
}

void World::add_process(HostId host, uint32_t port, ProcessFactory factory) {
  DYN_ASSERT(!started_);
  HostRecord& record = host_at(host);
  DYN_ASSERT_MSG(!record.processes.contains(port), "two processes on one port");
  record.processes.emplace(port,
                           std::make_unique<ProcessSlot>(*this, host, port, std::move(factory)));
}

void World::start() {
  DYN_ASSERT(!started_);
  started_ = true;
  for (uint32_t i = 0; i < hosts_.size(); ++i) {
    host_at(HostId(i)).state = HostState::kUp;
    boot_processes(HostId(i));
  }
}

void World::set_state(HostId host, HostState state) {
  host_at(host).state = state;
  for (WorldObserver* observer : observers_)
    observer->on_host_state(host, state, simulation_.now());
}

void World::boot_processes(HostId host) {
  for (auto& [port, slot] : host_at(host).processes) slot->boot();
}

void World::kill_processes(HostId host) {
  for (auto& [port, slot] : host_at(host).processes) slot->kill();
}

void World::power_off(HostId host) {
  HostRecord& record = host_at(host);
  if (record.state == HostState::kPoweredOff) return;
  if (record.state == HostState::kUp) kill_processes(host);
  for (auto& disk : record.disks) disk->power_off();
  ++stats_.power_offs;
  set_state(host, HostState::kPoweredOff);
}

void World::power_on(HostId host) {
  HostRecord& record = host_at(host);
  if (record.state != HostState::kPoweredOff) return;
  for (auto& disk : record.disks) disk->power_on();
  ++stats_.restarts;
  set_state(host, HostState::kUp);
  boot_processes(host);
}

void World::crash(HostId host) {
  HostRecord& record = host_at(host);
  if (record.state != HostState::kUp) return;
  kill_processes(host);
  // The processes die; the disks keep power, so their write caches survive. Their completions
  // would reach code that no longer exists, so they are dropped.
  for (auto& disk : record.disks) disk->abort_pending_io();
  ++stats_.crashes;
  set_state(host, HostState::kCrashed);
}

void World::restart(HostId host) {
  HostRecord& record = host_at(host);
  if (record.state == HostState::kPoweredOff) {
    power_on(host);
    return;
  }
  if (record.state != HostState::kCrashed) return;
  ++stats_.restarts;
  set_state(host, HostState::kUp);
  boot_processes(host);
}

void World::set_clock_drift_ppm(HostId host, double drift_ppm) {
  host_at(host).clock.set_drift_ppm(drift_ppm, simulation_.now());
}

void World::step_clock(HostId host, Duration jump) {
  host_at(host).clock.step(jump, simulation_.now());
}

Process* World::process_at(Address address) {
  if (address.host.value >= hosts_.size()) return nullptr;
  HostRecord& record = host_at(address.host);
  if (record.state != HostState::kUp) return nullptr;
  auto found = record.processes.find(address.port);
  return found == record.processes.end() ? nullptr : found->second->process();
}

uint64_t World::incarnation(Address address) const {
  const HostRecord& record = host_at(address.host);
  auto found = record.processes.find(address.port);
  return found == record.processes.end() ? 0 : found->second->incarnation();
}

AzId World::find_az(const std::string& name) const {
  for (uint32_t i = 0; i < azs_.size(); ++i) {
    if (azs_[i].name == name) return AzId(i);
  }
  return AzId();
}

RackId World::find_rack(const std::string& name) const {
  for (uint32_t i = 0; i < racks_.size(); ++i) {
    if (racks_[i].name == name) return RackId(i);
  }
  return RackId();
}

HostId World::find_host(const std::string& name) const {
  for (uint32_t i = 0; i < hosts_.size(); ++i) {
    if (hosts_[i].name == name) return HostId(i);
  }
  return HostId();
}

void World::set_disk_observer(DiskObserver* observer) {
  for (auto& host : hosts_) {
    for (auto& disk : host.disks) disk->set_observer(observer);
  }
}

void World::deliver(Address from, Address to, const Message& message) {
  HostRecord& record = host_at(to.host);
  auto found = record.processes.find(to.port);
  if (record.state != HostState::kUp || found == record.processes.end() ||
      found->second->process() == nullptr) {
    ++stats_.messages_dropped_host_down;
    return;
  }
  ProcessSlot& slot = *found->second;
  slot.process()->on_message(slot, from, message);
}

void World::add(std::string_view counter, int64_t delta) {
  auto found = counters_.find(counter);
  if (found == counters_.end()) {
    counters_.emplace(std::string(counter), delta);
  } else {
    found->second += delta;
  }
}

void World::observe(std::string_view name, double value) {
  auto found = series_.find(name);
  if (found == series_.end()) {
    series_.emplace(std::string(name), Series{1, value, value, value});
    return;
  }
  Series& series = found->second;
  ++series.count;
  series.sum += value;
  if (value < series.min) series.min = value;
  if (value > series.max) series.max = value;
}

}  // namespace dynasim::sim
