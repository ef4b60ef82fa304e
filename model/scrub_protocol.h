// The messages of scrub repair (P22 section 5.3; docs/scrub.md): a replica whose B-tree lists a
// damaged key range asks a healthy full peer of its group for the items of that range, and
// replaces the range with them (BTree::repair_range).
//
// Consistency: the items are the peer's state of the range at its applied index `as_of`. A write
// command touches one key and its condition reads only that key, so the requester, once it has
// installed the items, skips every log entry with index <= as_of whose key lies in the range (its
// effect is already in the items) and applies every later entry normally. A requester whose own
// applied index is already above as_of drops the reply and asks again later; to make that rare,
// the requester pauses its applies while it waits and names its applied index (`at_least`), and
// the peer answers only once it has applied that far.
#pragma once

#include <cstdint>
#include <vector>

#include "model/btree.h"
#include "model/item.h"
#include "model/paxos.h"
#include "model/storage_protocol.h"
#include "sim/message.h"

namespace dynasim::model {

// kRangeRequest: replica `from_replica` of `group` asks replica `to_replica` for its items in
// `range`. `request_id` is unique per requester incarnation.
struct RangeRequestBody final : sim::MessageBody {
  GroupId group;
  uint32_t from_replica = 0;
  uint32_t to_replica = 0;
  uint64_t request_id = 0;
  KeyRangeBounds range;
  // The requester's applied index (it holds its apply pipeline until the answer): a peer behind
  // it waits until it has applied this far, since older items would undo entries.
  LogIndex at_least;
};

// kRangeItems: the answer. `ok` false: the peer cannot serve the range now (not recovered,
// damaged itself, busy with its own repair); the requester asks another peer. Otherwise `items`
// are every item of the range at the peer's applied index `as_of`, in key order.
struct RangeItemsBody final : sim::MessageBody {
  GroupId group;
  uint32_t from_replica = 0;
  uint32_t to_replica = 0;
  uint64_t request_id = 0;
  bool ok = false;
  KeyRangeBounds range;
  LogIndex as_of;
  std::vector<Item> items;
};

}  // namespace dynasim::model
