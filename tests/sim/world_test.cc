// The world: processes through the Env, power-off and crash semantics, timers on drifting clocks,
// the object store, and the fault injector with its survivability guard.
#include "sim/world.h"

#include <gtest/gtest.h>

#include <vector>

#include "sim/faults.h"

namespace dynasim::sim {
namespace {

// A small test process: counts starts, keeps a volatile counter, writes and syncs one sector.
struct Journal {
  int starts = 0;
  int timers = 0;
  std::vector<std::pair<Address, uint32_t>> messages;
  std::vector<SimTime> timer_local_times;
};

class TestProcess final : public Process {
 public:
  explicit TestProcess(Journal* journal) : journal_(journal) {}
  void on_start(Env& env) override {
    ++journal_->starts;
    env.set_timer(seconds(1), 7);
  }
  void on_message(Env&, Address from, const Message& message) override {
    journal_->messages.emplace_back(from, message.type);
  }
  void on_timer(Env& env, uint64_t cookie) override {
    EXPECT_EQ(cookie, 7u);
    ++journal_->timers;
    journal_->timer_local_times.push_back(env.local_now());
    env.set_timer(seconds(1), 7);
  }

 private:
  Journal* journal_;
};

struct SmallWorld {
  explicit SmallWorld(uint64_t seed = 1) : simulation(seed), world(simulation, WorldOptions{}) {
    for (const char* az_name : {"az-a", "az-b", "az-c"}) {
      const AzId az = world.add_az(az_name);
      const RackId rack = world.add_rack(az, std::string(az_name) + "/r0");
      for (int h = 0; h < 2; ++h) {
        HostOptions options;
        options.disks = {DiskOptions{}};
        options.disks[0].capacity_bytes = 1 << 30;
        const HostId host =
            world.add_host(rack, std::string(az_name) + "/h" + std::to_string(h), options);
        journals.emplace_back();
        hosts.push_back(host);
      }
    }
    for (size_t i = 0; i < hosts.size(); ++i) {
      Journal* journal = &journals[i];
      world.add_process(hosts[i], 1, [journal] { return std::make_unique<TestProcess>(journal); });
    }
    world.start();
  }
  Simulation simulation;
  World world;
  std::vector<HostId> hosts;
  std::vector<Journal> journals;
};

TEST(WorldTest, ProcessesStartAndTimersFire) {
  SmallWorld w;
  w.simulation.run_until(SimTime(0) + seconds(5) + milliseconds(1));
  for (const Journal& journal : w.journals) {
    EXPECT_EQ(journal.starts, 1);
    EXPECT_EQ(journal.timers, 5);
  }
}

TEST(WorldTest, PowerOffDestroysTheProcessAndItsTimersAndPowerOnRebuildsIt) {
  SmallWorld w;
  w.simulation.run_until(SimTime(0) + milliseconds(2500));
  w.world.power_off(w.hosts[0]);
  EXPECT_EQ(w.world.process_at(Address{w.hosts[0], 1}), nullptr);
  w.simulation.run_until(SimTime(0) + seconds(10));
  EXPECT_EQ(w.journals[0].timers, 2);  // none while off
  w.world.power_on(w.hosts[0]);
  w.simulation.run_until(SimTime(0) + seconds(12) + milliseconds(1));
  EXPECT_EQ(w.journals[0].starts, 2);
  EXPECT_EQ(w.journals[0].timers, 4);
  EXPECT_EQ(w.journals[1].timers, 12);  // the other hosts ran on
}

TEST(WorldTest, MessagesToADownHostAreDropped) {
  SmallWorld w;
  w.simulation.run_until(SimTime(0) + milliseconds(10));
  w.world.crash(w.hosts[1]);
  struct Sender final : Process {
    void on_start(Env&) override {}
    void on_message(Env&, Address, const Message&) override {}
    void on_timer(Env&, uint64_t) override {}
  };
  // Send through the network directly, as a process on host 0 would.
  w.world.network().send(Address{w.hosts[0], 1}, Address{w.hosts[1], 1}, Message{9, 100, 0, {}});
  w.world.network().send(Address{w.hosts[0], 1}, Address{w.hosts[2], 1}, Message{9, 100, 0, {}});
  w.simulation.run_until(SimTime(0) + milliseconds(100));
  EXPECT_TRUE(w.journals[1].messages.empty());
  ASSERT_EQ(w.journals[2].messages.size(), 1u);
  EXPECT_EQ(w.world.stats().messages_dropped_host_down, 1u);
}

TEST(WorldTest, DriftMovesAHostsClockAndNothingElse) {
  SmallWorld w;
  w.world.set_clock_drift_ppm(w.hosts[0], 20000);  // 2% fast
  w.simulation.run_until(SimTime(0) + seconds(100));
  EXPECT_EQ(w.world.local_now(w.hosts[0]), SimTime(0) + seconds(102));
  EXPECT_EQ(w.world.local_now(w.hosts[1]), SimTime(0) + seconds(100));
  // Timer delays round up to whole nanoseconds, so the 102nd lands a few ns after 100 s.
  w.simulation.run_until(SimTime(0) + seconds(100) + microseconds(1));
  // The drifting host's 1 s timers fire faster in true time: 102 of them in 100 s, against 100.
  EXPECT_EQ(w.journals[0].timers, 102);
  EXPECT_EQ(w.journals[1].timers, 100);
  // Each timer fired at a whole local second on its own clock (plus at most 1 ns of rounding
  // up per timer, which never lets a timer fire early).
  for (size_t i = 0; i < 5; ++i) {
    const SimTime local = w.journals[0].timer_local_times[i];
    EXPECT_GE(local.ns, static_cast<int64_t>(i + 1) * 1'000'000'000);
    EXPECT_LE(local.ns, static_cast<int64_t>(i + 1) * 1'000'000'001);
  }
}

TEST(WorldTest, SyncedDataSurvivesPowerOffThroughTheWorld) {
  SmallWorld w;
  Disk& disk = w.world.disk(w.hosts[0], 0);
  std::vector<uint8_t> synced(4096, 0xaa), unsynced(4096, 0xbb);
  disk.write(0, synced, [](IoStatus status) { EXPECT_EQ(status, IoStatus::kOk); });
  disk.fsync([](IoStatus status) { EXPECT_EQ(status, IoStatus::kOk); });
  w.simulation.run_until(SimTime(0) + milliseconds(10));
  disk.write(4096, unsynced, [](IoStatus status) { EXPECT_EQ(status, IoStatus::kOk); });
  w.simulation.run_until(SimTime(0) + milliseconds(20));
  w.world.power_off(w.hosts[0]);
  EXPECT_EQ(disk.durable_sector(0), synced);
  EXPECT_EQ(disk.durable_sector(1), std::vector<uint8_t>(4096, 0));
}

TEST(ObjectStoreTest, PutThenGetAndListWithLatencyAndOutage) {
  Simulation simulation(3);
  ObjectStore store(simulation, ObjectStoreOptions{});
  auto data = std::make_shared<const std::vector<uint8_t>>(1000, 7);
  ObjectStatus put_status = ObjectStatus::kUnavailable;
  store.put("wal/p1/0001", data, [&](ObjectStatus status) { put_status = status; });
  store.put("wal/p1/0002", data, [](ObjectStatus) {});
  store.put("snap/p1", data, [](ObjectStatus) {});
  simulation.run();
  EXPECT_EQ(put_status, ObjectStatus::kOk);
  EXPECT_GT(simulation.now(), SimTime(0) + milliseconds(15));  // S3-like latency, not instant
  std::vector<std::string> listed;
  store.list("wal/p1/", [&](ObjectStatus, std::vector<std::string> keys) { listed = keys; });
  ObjectResult got;
  store.get("wal/p1/0002", [&](ObjectResult result) { got = result; });
  simulation.run();
  EXPECT_EQ(listed, (std::vector<std::string>{"wal/p1/0001", "wal/p1/0002"}));
  ASSERT_EQ(got.status, ObjectStatus::kOk);
  EXPECT_EQ(*got.data, *data);
  store.set_available(false);
  store.get("wal/p1/0001", [&](ObjectResult result) { got = result; });
  simulation.run();
  EXPECT_EQ(got.status, ObjectStatus::kUnavailable);
}

TEST(FaultInjectorTest, TimelinePowerOffOfAnAzForAWhile) {
  SmallWorld w;
  FaultInjector faults(w.world, SurvivabilityPolicy{});
  faults.schedule(TimelineFault{
      seconds(5), FaultSpec{FaultKind::kPowerOff, {FaultTarget::Scope::kAz, 1}, seconds(10), 0}});
  w.simulation.run_until(SimTime(0) + seconds(6));
  EXPECT_EQ(w.world.host_state(w.hosts[2]), HostState::kPoweredOff);
  EXPECT_EQ(w.world.host_state(w.hosts[3]), HostState::kPoweredOff);
  EXPECT_EQ(w.world.host_state(w.hosts[0]), HostState::kUp);
  w.simulation.run_until(SimTime(0) + seconds(16));
  EXPECT_EQ(w.world.host_state(w.hosts[2]), HostState::kUp);
  EXPECT_EQ(faults.stats().power_offs, 2u);
  EXPECT_EQ(w.journals[2].starts, 2);
}

// A disk fault with a duration ends: the disk goes back to the options it was built with. (The
// end once restored options(), which the fault had already overwritten, so bit rot, slowness,
// latent errors and misdirected writes never ended.)
TEST(FaultInjectorTest, DiskFaultsEndAfterTheirDuration) {
  SmallWorld w;
  FaultInjector faults(w.world, SurvivabilityPolicy{});
  const FaultTarget host0{FaultTarget::Scope::kHost, 0};
  faults.schedule(TimelineFault{seconds(1), FaultSpec{FaultKind::kBitRot, host0, seconds(5), 1e9}});
  faults.schedule(TimelineFault{seconds(1), FaultSpec{FaultKind::kDiskSlow, host0, seconds(5), 8}});
  Disk& disk = w.world.disk(w.hosts[0], 0);
  const double slow_before = disk.options().slow_factor;
  w.simulation.run_until(SimTime(0) + seconds(3));
  EXPECT_EQ(disk.options().bit_rot_per_tb_hour, 1e9);
  EXPECT_EQ(disk.options().slow_factor, 8);
  w.simulation.run_until(SimTime(0) + seconds(7));
  EXPECT_EQ(disk.options().bit_rot_per_tb_hour, 0);
  EXPECT_EQ(disk.options().slow_factor, slow_before);
  // No flip after the end: the ledger's last injection is inside [1 s, 6 s].
  const size_t flips = disk.corruption_ledger().records().size();
  EXPECT_GT(flips, 0u);
  w.simulation.run_until(SimTime(0) + seconds(60));
  EXPECT_EQ(disk.corruption_ledger().records().size(), flips);
}

TEST(FaultInjectorTest, OverlappingDownFaultsKeepTheHostDownUntilTheLastEnds) {
  SmallWorld w;
  FaultInjector faults(w.world, SurvivabilityPolicy{});
  const FaultTarget host0{FaultTarget::Scope::kHost, 0};
  faults.schedule(
      TimelineFault{seconds(1), FaultSpec{FaultKind::kPowerOff, host0, seconds(10), 0}});
  faults.schedule(TimelineFault{seconds(2), FaultSpec{FaultKind::kCrash, host0, seconds(3), 0}});
  w.simulation.run_until(SimTime(0) + seconds(6));  // the crash's 3 s are over
  EXPECT_EQ(w.world.host_state(w.hosts[0]), HostState::kPoweredOff);
  w.simulation.run_until(SimTime(0) + seconds(12));  // the power-off's 10 s are over
  EXPECT_EQ(w.world.host_state(w.hosts[0]), HostState::kUp);
  EXPECT_EQ(w.journals[0].starts, 2);
}

TEST(FaultInjectorTest, GuardRefusesASecondImpairedAzUnlessLifted) {
  for (bool unrestricted : {false, true}) {
    SmallWorld w;
    SurvivabilityPolicy policy;
    policy.unrestricted = unrestricted;
    FaultInjector faults(w.world, policy);
    EXPECT_TRUE(faults.inject(
        FaultSpec{FaultKind::kPowerOff, {FaultTarget::Scope::kHost, 0}, seconds(60), 0}));
    // Another host in the same AZ is allowed: still one impaired AZ.
    EXPECT_TRUE(faults.inject(
        FaultSpec{FaultKind::kCrash, {FaultTarget::Scope::kHost, 1}, seconds(60), 0}));
    // A host in a second AZ would leave some replica groups with one copy.
    const bool second = faults.inject(
        FaultSpec{FaultKind::kPowerOff, {FaultTarget::Scope::kHost, 2}, seconds(60), 0});
    EXPECT_EQ(second, unrestricted);
    EXPECT_EQ(w.world.host_state(w.hosts[2]),
              unrestricted ? HostState::kPoweredOff : HostState::kUp);
    EXPECT_EQ(faults.stats().refused, unrestricted ? 0u : 1u);
  }
}

TEST(FaultInjectorTest, APlannedAzPowerOffWaitsForTheGuardInsteadOfBeingDropped) {
  SmallWorld w;
  FaultInjector faults(w.world, SurvivabilityPolicy{});
  // Host 0 (AZ 0) is down from 1 s to 11 s; az 1 is planned off at 5 s for 10 s.
  ASSERT_TRUE(faults.inject(
      FaultSpec{FaultKind::kPowerOff, {FaultTarget::Scope::kHost, 0}, seconds(10), 0}));
  faults.schedule(TimelineFault{
      seconds(5), FaultSpec{FaultKind::kPowerOff, {FaultTarget::Scope::kAz, 1}, seconds(10), 0}});
  // A random power-off in AZ 0 while the plan waits would keep it out: refused.
  RandomFaultProcess process;
  process.kind = FaultKind::kPowerOff;
  process.scope = FaultTarget{FaultTarget::Scope::kAz, 0};
  process.rate_per_host_hour = 3600;  // about one a second per host
  process.duration_ns = DistributionSpec::constant(30e9);
  process.start = seconds(6);
  process.end = seconds(10);
  faults.add_random_process(process);
  w.simulation.run_until(SimTime(0) + seconds(8));
  EXPECT_EQ(w.world.host_state(w.hosts[2]), HostState::kUp);  // waiting
  EXPECT_EQ(faults.stats().waited, 1u);
  w.simulation.run_until(SimTime(0) + seconds(12));  // host 0 is back: the plan runs now
  EXPECT_EQ(w.world.host_state(w.hosts[0]), HostState::kUp);
  EXPECT_EQ(w.world.host_state(w.hosts[2]), HostState::kPoweredOff);
  EXPECT_EQ(w.world.host_state(w.hosts[3]), HostState::kPoweredOff);
  EXPECT_EQ(faults.stats().az_power_offs, 1u);
  EXPECT_GT(faults.stats().refused, 0u);  // the random ones in its way
  w.simulation.run_until(SimTime(0) + seconds(22));  // its 10 s count from when it ran
  EXPECT_EQ(w.world.host_state(w.hosts[2]), HostState::kUp);

  // What still waits when the heal phase begins is dropped and logged as refused.
  SmallWorld late;
  FaultInjector late_faults(late.world, SurvivabilityPolicy{});
  ASSERT_TRUE(late_faults.inject(
      FaultSpec{FaultKind::kPowerOff, {FaultTarget::Scope::kHost, 0}, seconds(100), 0}));
  late_faults.schedule(TimelineFault{
      seconds(5), FaultSpec{FaultKind::kPowerOff, {FaultTarget::Scope::kAz, 1}, seconds(10), 0}});
  late.simulation.run_until(SimTime(0) + seconds(6));
  const uint64_t refused_before = late_faults.stats().refused;
  late_faults.drop_waiting();
  EXPECT_EQ(late_faults.stats().refused, refused_before + 1);
  late.simulation.run_until(SimTime(0) + seconds(120));
  EXPECT_EQ(late.world.host_state(late.hosts[2]), HostState::kUp);  // never powered off
  EXPECT_EQ(late_faults.stats().power_offs, 1u);
}

TEST(FaultInjectorTest, RandomPowerOffsFollowTheirRate) {
  SmallWorld w;
  SurvivabilityPolicy policy;
  policy.unrestricted = true;
  FaultInjector faults(w.world, policy);
  RandomFaultProcess process;
  process.kind = FaultKind::kPowerOff;
  process.rate_per_host_hour = 10;
  process.duration_ns = DistributionSpec::constant(1e9);
  faults.add_random_process(process);
  w.simulation.run_until(SimTime(0) + hours(10));
  // 6 hosts * 10 per host-hour * 10 h = 600 expected; Poisson sd about 24.
  EXPECT_NEAR(static_cast<double>(faults.stats().applied), 600.0, 120.0);
}

TEST(FaultInjectorTest, IsolationCutsTheHostAndHeals) {
  SmallWorld w;
  FaultInjector faults(w.world, SurvivabilityPolicy{});
  EXPECT_TRUE(
      faults.inject(FaultSpec{FaultKind::kIsolate, {FaultTarget::Scope::kHost, 0}, seconds(1), 0}));
  EXPECT_FALSE(w.world.network().can_reach(w.hosts[0], w.hosts[1]));
  EXPECT_FALSE(w.world.network().can_reach(w.hosts[2], w.hosts[0]));
  EXPECT_TRUE(w.world.network().can_reach(w.hosts[1], w.hosts[2]));
  w.simulation.run_until(SimTime(0) + seconds(2));
  EXPECT_TRUE(w.world.network().can_reach(w.hosts[0], w.hosts[1]));
}

}  // namespace
}  // namespace dynasim::sim
