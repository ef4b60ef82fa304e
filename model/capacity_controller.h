// The table capacity controller: the control-plane process that turns a table's capacity mode
// (model/capacity_mode.h) into the partitions' allocations on the storage nodes, and the storage
// node's side of that protocol (CapacityAgent).
//
// It follows how DynamoDB runs capacity (Developer Guide, AutoScaling and metrics-dimensions):
// consumption is measured per partition and aggregated into one-minute data points (CloudWatch's
// granularity, AutoScalingPolicy::period); auto scaling's target tracking reads them and issues
// UpdateTable, which takes effect minutes later; the table's capacity is then divided over its
// partitions (P22 section 4: "a table of 3200 WCU gets 4 partitions x 800") and each storage node
// enforces its partitions' shares in their token buckets (P22 section 4.1.1). On-demand tables
// (P22 section 4.5; Developer Guide, on-demand-capacity-mode) instantly accommodate up to twice
// their previous peak, at least the new-table figures; the controller gives the partitions that
// capacity and the partitions' buckets throttle beyond it (ThrottlingException,
// throttling_error_name).
//
// The protocol (message types 121-124, admission's range):
// - Every report_interval each storage node sends the controller a ConsumedCapacityReport: per
//   group, the read and write milli units its admission control admitted since the node process
//   started (cumulative counters, as a leader admits a group's writes and strong reads and any
//   replica its eventual reads). Cumulative counters make lost, duplicated and reordered reports
//   harmless: the controller takes the difference to the newest report it kept, by (incarnation,
//   sequence), and a new incarnation starts from zero.
// - Each report also lists the partitions the node serves (a split's child once it started). The
//   controller counts the table's partitions as the union over the newest reports, never fewer
//   than the table started with (partitions are only split, never merged: BLOG Part 3), and when
//   the count grows it divides the same table capacity over the new count: P22 section 4, "a
//   split for throughput allocated new partitions from the table's provisioned throughput", and
//   its example of a table of 6,000 WCU split to 8 x 750. Each share stays capped at a partition's
//   maximum (allocate_to_partitions), so splitting adds capacity only where that cap binds.
//   That is the provisioned table's allocation. An on-demand table gives every partition its
//   maximum: P22 section 4.5 scales on-demand tables by splitting partitions for consumption,
//   and with GAC (section 4.2) workloads "can execute up to the maximum partition capacity"
//   while the table's capacity is metered centrally. Dividing it instead would hold each split's
//   children below the split threshold, so that a table at its capacity could never split again.
// - Every period the controller closes a data point: the consumption that arrived in it, summed
//   over the table, is fed to the table's ProvisionedCapacity (auto scaling) or OnDemandCapacity.
// - When the table's capacity in effect changes, the controller sends every node an
//   AllocationUpdate with the new per-partition allocation and a version that grows (an older
//   update never wins over a newer one) and resends it every retry_interval to the nodes that have
//   not acknowledged it (AllocationAck).
// - A node that starts (or restarts) asks for the current allocation (AllocationRequest) every
//   retry_interval until an update arrives; meanwhile it enforces the static allocation it was
//   configured with.
// Failure paths: with the controller down, nodes keep enforcing the last allocation they applied
// (static stability: nothing in the data path waits for the control plane); lost messages are
// covered by the resends and the cumulative counters; a (re)started controller first listens for
// recovery_wait to the nodes' reports, which carry the allocation each node enforces, takes the
// table capacity of the newest version as the table's current capacity (or the configured one
// when no node holds a controller's update), and then starts a new epoch of versions (its boot
// time), so its updates win over its predecessor's.
// docs/admission.md, "Capacity modes in a game day", describes it all with its sources.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "model/admission.h"
#include "model/capacity_mode.h"
#include "sim/env.h"
#include "sim/message.h"
#include "sim/time.h"

namespace dynasim::model {

// Our assumption: a port no other process uses.
inline constexpr uint32_t kCapacityControllerPort = 8210;

enum class CapacityMessageType : uint32_t {
  kConsumedCapacityReport = 121,  // storage node -> controller
  kAllocationUpdate = 122,        // controller -> storage node
  kAllocationAck = 123,           // storage node -> controller
  kAllocationRequest = 124,       // storage node -> controller, at start
};

// An allocation's version: the controller's epoch (its boot time on its clock, so a restarted
// controller's versions are newer) and a number that grows with each change within the epoch.
struct AllocationVersion {
  uint64_t epoch = 0;
  uint64_t number = 0;
  auto operator<=>(const AllocationVersion&) const = default;
};

struct GroupConsumption {
  GroupId group;
  int64_t read_milli_units = 0;   // admitted since the node process started
  int64_t write_milli_units = 0;  // idem
};

struct ConsumedCapacityReport final : sim::MessageBody {
  sim::Address reporter;
  uint64_t incarnation = 0;              // grows across restarts of the node process
  uint64_t sequence = 0;                 // grows with each report of one incarnation
  std::vector<GroupConsumption> groups;  // by group id
  std::vector<GroupId> serving;          // the partitions the node serves, ascending
  // The allocation the node enforces: its version ({0, 0}: the static one) and the table
  // capacity it came from, so a restarted controller can recover the table's capacity.
  AllocationVersion allocation_version;
  TableCapacity allocation_capacity;
};

struct AllocationUpdate final : sim::MessageBody {
  AllocationVersion version;
  TableCapacity capacity;          // the table's, for the record
  uint32_t partitions = 1;         // the count it was divided over, for the record
  PartitionAllocation allocation;  // every partition's share (allocate_to_partitions)
};

struct AllocationAck final : sim::MessageBody {
  sim::Address node;
  AllocationVersion version;  // the newest version the node holds
};

struct AllocationRequest final : sim::MessageBody {
  sim::Address node;
  uint64_t incarnation = 0;
};

sim::Message make_message(const ConsumedCapacityReport& report);
sim::Message make_message(const AllocationUpdate& update);
sim::Message make_message(const AllocationAck& ack);
sim::Message make_message(const AllocationRequest& request);

// ---------------------------------------------------------------------------------------------
// CapacityAgent: the storage node's side. A state machine: admissions, updates and timer ticks
// in; the messages to send and the allocation to apply out. No I/O.

class CapacityAgent {
 public:
  struct Options {
    sim::Address controller;
    // Our assumption: six reports per one-minute data point, so one lost report moves a sixth of
    // a minute's consumption into the next point rather than a whole minute's.
    sim::Duration report_interval = sim::seconds(10);
    // Our assumption: a node without its allocation asks again every second.
    sim::Duration request_retry = sim::seconds(1);
    uint32_t max_groups = 20'000;  // AdmissionOptions::max_partitions
    // Planted bug for CapacityControllerTest.StaleUpdateNeverLowersANewerOne. Never set outside
    // tests. Any update whose version differs from the one held is applied, older ones included.
    bool plant_accept_older_version = false;
  };

  // `initial` is the static allocation the node enforces until the controller's first update.
  CapacityAgent(Options options, sim::Address self, uint64_t incarnation,
                PartitionAllocation initial);

  // Each admission (NodeAdmission said kAdmitted or kAdmittedUsingBurst).
  void on_admitted(GroupId group, int64_t milli_units, bool write);

  // Every report_interval; `serving` lists the partitions the node serves, ascending.
  ConsumedCapacityReport make_report(std::vector<GroupId> serving);
  // At start and every request_retry while awaiting(): the request to send.
  AllocationRequest make_request() const;
  bool awaiting() const { return awaiting_; }

  // An update arrived. The ack to send back (always: a duplicate is acknowledged again) and, when
  // the update is newer than the allocation held, the allocation to apply to every partition.
  struct UpdateResult {
    AllocationAck ack;
    std::optional<PartitionAllocation> apply;
  };
  UpdateResult on_update(const AllocationUpdate& update);

  PartitionAllocation allocation() const { return allocation_; }
  AllocationVersion version() const { return version_; }
  const Options& options() const { return options_; }

 private:
  struct Consumed {
    int64_t read_milli_units = 0;
    int64_t write_milli_units = 0;
  };
  Options options_;
  sim::Address self_;
  uint64_t incarnation_ = 0;
  uint64_t next_sequence_ = 1;
  PartitionAllocation allocation_;
  AllocationVersion version_;  // {0, 0}: the static allocation
  TableCapacity capacity_;     // the table capacity of the update applied
  bool awaiting_ = true;
  std::map<GroupId, Consumed> consumed_;
};

// ---------------------------------------------------------------------------------------------
// CapacityController: the control-plane process for one table.

// What the controller did, for the game day's summary (never read by model code).
class CapacityObserver {
 public:
  virtual ~CapacityObserver() = default;
  // The table's capacity in effect changed (and at start: the initial one).
  virtual void on_capacity(sim::SimTime local_now, TableCapacity capacity,
                           AllocationVersion version) = 0;
  // A data point closed: the table's consumption in the period that ended at `local_now`.
  virtual void on_data_point(sim::SimTime local_now, int64_t consumed_read_milli_units,
                             int64_t consumed_write_milli_units) = 0;
};

// Storage nodes tell it which allocation their buckets enforce from when (for the admission
// check; never read by model code).
class AllocationObserver {
 public:
  virtual ~AllocationObserver() = default;
  virtual void on_allocation_set(sim::Address node, sim::SimTime local_now,
                                 PartitionAllocation allocation) = 0;
};

struct CapacityControllerOptions {
  CapacityMode mode = CapacityMode::kProvisioned;
  // Provisioned: reads and writes, each with its own auto scaling policy (or none).
  ProvisionedCapacity::Options read_provisioned;
  ProvisionedCapacity::Options write_provisioned;
  // On-demand: a new table (Developer Guide, HowItWorks.ReadWriteCapacityMode).
  OnDemandCapacity::Options read_on_demand = OnDemandCapacity::new_table_reads();
  OnDemandCapacity::Options write_on_demand = OnDemandCapacity::new_table_writes();
  uint32_t partitions = 1;  // the table's count at start; it grows as reports show splits
  std::vector<sim::Address> storage_nodes;
  // One data point per period: CloudWatch's one minute (AutoScalingPolicy::period).
  sim::Duration period = sim::minutes(1);
  // Our assumption: an unacknowledged update is sent again every second.
  sim::Duration retry_interval = sim::seconds(1);
  // Listening to reports at start before announcing. Our assumption: longer than the nodes'
  // report interval (CapacityAgent::Options, 10 s), so every live node has reported once.
  sim::Duration recovery_wait = sim::seconds(15);
  uint32_t max_nodes = 4096;
  uint32_t max_groups_per_report = 20'000;  // AdmissionOptions::max_partitions
  CapacityObserver* observer = nullptr;     // may be null
  // Planted bug for CapacityControllerTest.PlantedReuseOfThePreviousPeriodScalesOutWrongly.
  // Never set outside tests. A data point is not cleared when it closes, so each period's
  // consumption is fed again with the next ones.
  bool plant_reuse_previous_period = false;
  // Planted bug for CapacityControllerTest.SplitChildrenShareTheTableCapacity. Never set outside
  // tests. The reports' serving partitions are ignored: the table's capacity stays divided over
  // the partitions it started with, and a split's children add capacity it does not have.
  bool plant_ignore_serving_partitions = false;
};

class CapacityController final : public sim::Process {
 public:
  explicit CapacityController(CapacityControllerOptions options);

  void on_start(sim::Env& env) override;
  void on_message(sim::Env& env, sim::Address from, const sim::Message& message) override;
  void on_timer(sim::Env& env, uint64_t cookie) override;

  // For tests.
  TableCapacity capacity() const { return announced_; }
  AllocationVersion version() const { return version_; }
  uint64_t reports_accepted() const { return reports_accepted_; }
  uint64_t updates_sent() const { return updates_sent_; }
  uint32_t nodes_behind() const;
  bool recovered() const { return recovered_; }
  uint32_t partition_count() const { return partition_count_; }

 private:
  struct NodeState {
    uint64_t incarnation = 0;
    uint64_t sequence = 0;
    bool reported = false;
    std::map<GroupId, GroupConsumption> last;  // cumulative, from the newest report kept
    std::vector<GroupId> serving;              // from the newest report kept
    AllocationVersion acked;
  };
  void on_report(const ConsumedCapacityReport& report);
  void finish_recovery();
  void close_period();
  TableCapacity capacity_in_effect(sim::SimTime now);
  void announce(TableCapacity capacity);
  void recount_partitions();
  AllocationUpdate current_update() const;
  void send_updates(bool only_behind);
  void arm_retry();

  CapacityControllerOptions options_;
  sim::Env* env_ = nullptr;
  std::optional<ProvisionedCapacity> read_provisioned_;
  std::optional<ProvisionedCapacity> write_provisioned_;
  std::optional<OnDemandCapacity> read_on_demand_;
  std::optional<OnDemandCapacity> write_on_demand_;
  std::map<sim::Address, NodeState> nodes_;
  bool recovered_ = false;
  AllocationVersion recovered_version_;  // the newest a node reported holding
  TableCapacity recovered_capacity_;
  sim::SimTime period_start_;
  int64_t period_read_milli_ = 0;
  int64_t period_write_milli_ = 0;
  TableCapacity announced_;
  uint32_t partition_count_ = 1;
  AllocationVersion version_;
  bool retry_armed_ = false;
  uint64_t reports_accepted_ = 0;
  uint64_t updates_sent_ = 0;
};

}  // namespace dynasim::model
