// The messages of healing (docs/healing.md): storage nodes report to auto-admin, a group's leader
// asks auto-admin where a new replica should go, and tells the chosen node to create it; a node
// is told to delete a replica that left its group.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "model/paxos.h"
#include "model/storage_protocol.h"
#include "sim/ids.h"
#include "sim/message.h"

namespace dynasim::model {

inline constexpr uint32_t kAutoAdminPort = 8100;

// kNodeHeartbeat: a storage node is alive, in `az`, hosting `replicas` replicas.
struct NodeHeartbeatBody final : sim::MessageBody {
  sim::AzId az;
  uint32_t replicas = 0;
};

// kPlaceRequest: a new replica of `group` is needed. `exclude` are the group's current members'
// nodes; `replacing` is the node of the replica it replaces, if any. Auto-admin prefers an AZ
// that holds no other member, the replaced replica's first, to keep one replica per AZ.
struct PlaceRequestBody final : sim::MessageBody {
  uint64_t request_id = 0;
  GroupId group;
  MemberKind kind = MemberKind::kFull;
  std::vector<sim::Address> exclude;
  std::optional<sim::Address> replacing;
  // False: place only in an AZ that holds no other member, or nowhere. A replica that restores
  // the write quorum may share an AZ (it is needed now); the full replica that replaces a log
  // replica waits for a node in the missing AZ, since nothing moves a replica back later.
  bool may_share_az = true;
};

// kPlaceReply: where to put it, or nothing when no live node qualifies.
struct PlaceReplyBody final : sim::MessageBody {
  uint64_t request_id = 0;
  GroupId group;
  std::optional<sim::Address> node;
};

// kEnsureReplica: host replica `replica` of `group`, starting from `base` (every entry up to it
// is chosen; a log replica keeps none of them, a full replica gets a snapshot) with the
// configuration in effect there. Idempotent: a node already hosting it does nothing.
struct EnsureReplicaBody final : sim::MessageBody {
  GroupId group;
  uint32_t replica = 0;
  MemberKind kind = MemberKind::kFull;
  LogIndex base;
  Configuration configuration;
};

// kDropReplica: replica `replica` of `group` is not in the group's committed configuration
// `epoch`; its node deletes it.
struct DropReplicaBody final : sim::MessageBody {
  GroupId group;
  uint32_t replica = 0;
  uint64_t epoch = 0;
};

}  // namespace dynasim::model
