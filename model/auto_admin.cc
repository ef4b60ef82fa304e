#include "model/auto_admin.h"

#include <algorithm>
#include <memory>
#include <tuple>

#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {

namespace {

using u128 = unsigned __int128;

uint64_t share_per_million(uint64_t used, uint64_t capacity) {
  if (capacity == 0) return 0;
  return static_cast<uint64_t>(static_cast<u128>(used) * 1'000'000 / capacity);
}

uint64_t share_per_mille(uint64_t used, uint64_t capacity) {
  if (capacity == 0) return 0;
  return static_cast<uint64_t>(static_cast<u128>(used) * 1'000 / capacity);
}

bool contains(std::span<const sim::Address> nodes, sim::Address node) {
  return std::find(nodes.begin(), nodes.end(), node) != nodes.end();
}

bool contains(const std::vector<sim::AzId>& azs, sim::AzId az) {
  return std::find(azs.begin(), azs.end(), az) != azs.end();
}

uint64_t address_digest(sim::Address node) {
  return sim::splitmix64((uint64_t{node.host.value} << 32) | node.port);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The node's side: what to offer for moving.

std::vector<ReplicaLoad> choose_move_candidates(const NodeCapacity& capacity,
                                                std::span<const ReplicaLoad> replicas,
                                                const NodeBalanceOptions& options) {
  uint64_t size_bytes = 0;
  uint64_t load_per_second = 0;
  for (const ReplicaLoad& replica : replicas) {
    size_bytes += replica.size_bytes;
    load_per_second += replica.load_per_second;
  }
  auto fuller = [&] {
    return std::max(share_per_mille(size_bytes, capacity.size_bytes),
                    share_per_mille(load_per_second, capacity.load_per_second));
  };
  std::vector<ReplicaLoad> chosen;
  if (fuller() <= options.threshold_per_mille) return chosen;
  std::vector<bool> taken(replicas.size(), false);
  while (chosen.size() < kMaxMoveCandidates && fuller() > options.target_per_mille) {
    // Shed from the dimension that is fuller, relative to capacity.
    const bool by_size = share_per_million(size_bytes, capacity.size_bytes) >=
                         share_per_million(load_per_second, capacity.load_per_second);
    std::optional<size_t> best;
    for (size_t i = 0; i < replicas.size(); ++i) {
      if (taken[i]) continue;
      const ReplicaLoad& r = replicas[i];
      const uint64_t contribution = by_size ? r.size_bytes : r.load_per_second;
      if (contribution == 0) continue;
      if (!best) {
        best = i;
        continue;
      }
      const ReplicaLoad& b = replicas[*best];
      const uint64_t best_contribution = by_size ? b.size_bytes : b.load_per_second;
      if (contribution > best_contribution ||
          (contribution == best_contribution &&
           std::tie(r.group, r.replica) < std::tie(b.group, b.replica))) {
        best = i;
      }
    }
    if (!best) break;
    taken[*best] = true;
    chosen.push_back(replicas[*best]);
    size_bytes -= replicas[*best].size_bytes;
    load_per_second -= replicas[*best].load_per_second;
  }
  return chosen;
}

// ---------------------------------------------------------------------------------------------
// PlacementPlanner

void PlacementPlanner::on_heartbeat(sim::Address node, sim::AzId az, uint32_t replicas,
                                    sim::SimTime now) {
  NodeRecord& record = nodes_[node];
  record.az = az;
  record.replicas = replicas;
  record.last_heard = now;
}

void PlacementPlanner::on_load_report(sim::Address node, const NodeLoadReportBody& report,
                                      sim::SimTime now) {
  NodeRecord& record = nodes_[node];
  record.az = report.az;
  record.last_heard = now;
  record.capacity = report.capacity;
  const size_t count = std::min(report.replicas.size(), kMaxReplicasPerLoadReport);
  record.replicas = static_cast<uint32_t>(count);
  record.size_bytes = 0;
  record.load_per_second = 0;
  for (size_t i = 0; i < count; ++i) {
    record.size_bytes += report.replicas[i].size_bytes;
    record.load_per_second += report.replicas[i].load_per_second;
  }
}

bool PlacementPlanner::alive(const NodeRecord& node, sim::SimTime now) const {
  return now - node.last_heard <= options_.node_dead_after;
}

void PlacementPlanner::expire(NodeRecord& node, sim::SimTime now) {
  while (!node.recent_placements.empty() && node.recent_placements.begin()->first <= now) {
    node.recent_placements.erase(node.recent_placements.begin());
  }
}

PlacementPlanner::Score PlacementPlanner::score(sim::Address address, NodeRecord& node, int tier,
                                                const Pending& extra, sim::SimTime now) {
  expire(node, now);
  uint64_t replicas = uint64_t{node.replicas} + extra.replicas;
  uint64_t size_bytes = node.size_bytes + extra.size_bytes;
  uint64_t load_per_second = node.load_per_second + extra.load_per_second;
  for (const auto& [until, pending] : node.recent_placements) {
    replicas += pending.replicas;
    size_bytes += pending.size_bytes;
    load_per_second += pending.load_per_second;
  }
  Score result;
  result.tier = tier;
  result.address = address;
  if (options_.plant_ignore_load) return result;  // the planted bug: the lowest address wins
  result.load_per_million =
      std::max(share_per_million(size_bytes, node.capacity.size_bytes),
               share_per_million(load_per_second, node.capacity.load_per_second));
  result.replicas = replicas;
  return result;
}

void PlacementPlanner::record(sim::Address node, const Pending& placed, sim::SimTime now) {
  Pending& pending = nodes_[node].recent_placements[now + options_.placement_counts_for];
  pending.replicas += placed.replicas;
  pending.size_bytes += placed.size_bytes;
  pending.load_per_second += placed.load_per_second;
}

std::vector<sim::AzId> PlacementPlanner::azs_of(std::span<const sim::Address> nodes) const {
  std::vector<sim::AzId> azs;
  if (options_.plant_allow_same_az) return azs;  // the planted bug: members' AZs are not seen
  for (const sim::Address& node : nodes) {
    auto found = nodes_.find(node);
    if (found != nodes_.end()) azs.push_back(found->second.az);
  }
  return azs;
}

uint64_t PlacementPlanner::load_per_million(sim::Address node, sim::SimTime now) {
  auto found = nodes_.find(node);
  if (found == nodes_.end()) return 0;
  return score(node, found->second, 0, Pending{}, now).load_per_million;
}

std::optional<sim::AzId> PlacementPlanner::az_of(sim::Address node) const {
  auto found = nodes_.find(node);
  if (found == nodes_.end()) return std::nullopt;
  return found->second.az;
}

// Candidates: nodes heard from within node_dead_after that hold no member of the group. First
// the replaced replica's AZ if no other member is there, then any AZ holding no other member (one
// copy per AZ), then any AZ unless the request forbids sharing one. The replaced replica's AZ is
// not enough by itself: a log replica placed outside its AZ while that AZ was down shares one
// with another member, and the full replica replacing it must go back to the missing AZ. Within
// the chosen tier, the least loaded by space and throughput (counting recent placements), then
// the fewest replicas, then the lowest address: deterministic, and spread. The new replica is
// counted as the mean replica of the nodes that reported loads (its group's own figures are on
// the node that lost it).
std::optional<sim::Address> PlacementPlanner::place_replica(const PlaceRequestBody& request,
                                                            sim::SimTime now) {
  std::optional<sim::AzId> preferred_az;
  if (request.replacing) {
    auto found = nodes_.find(*request.replacing);
    if (found != nodes_.end()) preferred_az = found->second.az;
  }
  std::vector<sim::Address> others;
  for (const sim::Address& member : request.exclude) {
    if (member != request.replacing) others.push_back(member);
  }
  const std::vector<sim::AzId> member_azs = azs_of(others);

  Pending extra{1, 0, 0};
  uint64_t reported_replicas = 0;
  uint64_t reported_size = 0;
  uint64_t reported_load = 0;
  for (const auto& [address, node] : nodes_) {
    if (!alive(node, now) || node.capacity.size_bytes + node.capacity.load_per_second == 0) {
      continue;
    }
    reported_replicas += node.replicas;
    reported_size += node.size_bytes;
    reported_load += node.load_per_second;
  }
  if (reported_replicas > 0) {
    extra.size_bytes = reported_size / reported_replicas;
    extra.load_per_second = reported_load / reported_replicas;
  }

  std::optional<Score> best;
  for (auto& [address, node] : nodes_) {
    if (!alive(node, now) || contains(request.exclude, address)) continue;
    const bool az_without_member = !contains(member_azs, node.az);
    if (!az_without_member && !request.may_share_az) continue;
    int tier = 2;
    if (az_without_member) tier = preferred_az && node.az == *preferred_az ? 0 : 1;
    const Score candidate = score(address, node, tier, extra, now);
    if (!best || candidate.key() < best->key()) best = candidate;
  }
  if (!best) return std::nullopt;
  record(best->address, extra, now);
  return best->address;
}

std::vector<sim::Address> PlacementPlanner::place_group(const PlaceGroupRequestBody& request,
                                                        sim::SimTime now) {
  const Pending extra{1, request.size_bytes, request.load_per_second};
  std::vector<sim::Address> chosen;
  for (uint32_t r = 0; r < request.replica_count; ++r) {
    const std::vector<sim::AzId> chosen_azs = azs_of(chosen);
    std::optional<Score> best;
    for (auto& [address, node] : nodes_) {
      if (!alive(node, now) || contains(request.exclude, address) || contains(chosen, address)) {
        continue;
      }
      if (contains(chosen_azs, node.az)) continue;
      const Score candidate = score(address, node, 0, extra, now);
      if (!best || candidate.key() < best->key()) best = candidate;
    }
    if (!best) return {};
    chosen.push_back(best->address);
  }
  for (const sim::Address& node : chosen) record(node, extra, now);
  return chosen;
}

std::optional<sim::Address> PlacementPlanner::place_move(sim::Address source,
                                                         const MoveCandidate& candidate,
                                                         sim::SimTime now) {
  const Pending extra{1, candidate.replica.size_bytes, candidate.replica.load_per_second};
  const std::vector<sim::AzId> member_azs = azs_of(candidate.other_members);
  const uint64_t limit_per_million = options_.balance_threshold_per_mille * 1'000;
  std::optional<Score> best;
  for (auto& [address, node] : nodes_) {
    if (address == source || !alive(node, now) || contains(candidate.other_members, address)) {
      continue;
    }
    if (contains(member_azs, node.az)) continue;
    const Score with_it = score(address, node, 0, extra, now);
    if (!options_.plant_ignore_load && with_it.load_per_million > limit_per_million) continue;
    if (!best || with_it.key() < best->key()) best = with_it;
  }
  if (!best) return std::nullopt;
  record(best->address, extra, now);
  return best->address;
}

// ---------------------------------------------------------------------------------------------
// AutoAdmin

void AutoAdmin::on_start(sim::Env& env) {
  (void)env;
}

void AutoAdmin::on_timer(sim::Env& env, uint64_t cookie) {
  (void)env;
  (void)cookie;
}

void AutoAdmin::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  const sim::SimTime now = env.local_now();
  switch (message.type) {
    case static_cast<uint32_t>(StorageMessageType::kNodeHeartbeat): {
      const auto* body = dynamic_cast<const NodeHeartbeatBody*>(message.body.get());
      if (body != nullptr) planner_.on_heartbeat(from, body->az, body->replicas, now);
      return;
    }
    case static_cast<uint32_t>(StorageMessageType::kPlaceRequest): {
      const auto* body = dynamic_cast<const PlaceRequestBody*>(message.body.get());
      if (body != nullptr) on_place_request(env, from, *body);
      return;
    }
    case static_cast<uint32_t>(PlacementMessageType::kNodeLoadReport): {
      const auto* body = dynamic_cast<const NodeLoadReportBody*>(message.body.get());
      if (body != nullptr) planner_.on_load_report(from, *body, now);
      return;
    }
    case static_cast<uint32_t>(PlacementMessageType::kPlaceGroupRequest): {
      const auto* body = dynamic_cast<const PlaceGroupRequestBody*>(message.body.get());
      if (body != nullptr) on_place_group(env, from, *body);
      return;
    }
    case static_cast<uint32_t>(PlacementMessageType::kMoveCandidates): {
      const auto* body = dynamic_cast<const MoveCandidatesBody*>(message.body.get());
      if (body != nullptr) on_move_candidates(env, from, *body);
      return;
    }
    default:
      return;
  }
}

void AutoAdmin::on_place_request(sim::Env& env, sim::Address from, const PlaceRequestBody& body) {
  auto reply = std::make_shared<PlaceReplyBody>();
  reply->request_id = body.request_id;
  reply->group = body.group;
  reply->node = planner_.place_replica(body, env.local_now());
  if (reply->node) {
    ++placements_;
    env.metrics().add("healing.placements", 1);
  } else {
    ++refusals_;
    env.metrics().add("healing.placements_refused", 1);
  }
  sim::Message out;
  out.type = static_cast<uint32_t>(StorageMessageType::kPlaceReply);
  out.size_bytes = 64;
  out.digest = body.request_id ^ (reply->node ? (uint64_t{reply->node->host.value} << 20) : 0);
  out.body = std::move(reply);
  env.send(from, std::move(out));
}

void AutoAdmin::on_place_group(sim::Env& env, sim::Address from,
                               const PlaceGroupRequestBody& body) {
  auto reply = std::make_shared<PlaceGroupReplyBody>();
  reply->request_id = body.request_id;
  reply->group = body.group;
  reply->nodes = planner_.place_group(body, env.local_now());
  uint64_t digest = sim::splitmix64(body.request_id);
  for (const sim::Address& node : reply->nodes)
    digest = sim::splitmix64(digest ^ address_digest(node));
  if (reply->nodes.empty()) {
    ++group_refusals_;
    env.metrics().add("placement.group_refused", 1);
  } else {
    ++group_placements_;
    env.metrics().add("placement.groups", 1);
  }
  sim::Message out;
  out.type = static_cast<uint32_t>(PlacementMessageType::kPlaceGroupReply);
  out.size_bytes = static_cast<uint32_t>(64 + 8 * reply->nodes.size());
  out.digest = digest;
  out.body = std::move(reply);
  env.send(from, std::move(out));
}

void AutoAdmin::on_move_candidates(sim::Env& env, sim::Address from,
                                   const MoveCandidatesBody& body) {
  auto reply = std::make_shared<MoveDecisionBody>();
  reply->report_id = body.report_id;
  uint64_t digest = sim::splitmix64(body.report_id);
  const size_t count = std::min(body.candidates.size(), kMaxMoveCandidates);
  for (size_t i = 0; i < count; ++i) {
    const MoveCandidate& candidate = body.candidates[i];
    MoveDestination move{candidate.replica.group, candidate.replica.replica,
                         planner_.place_move(from, candidate, env.local_now())};
    if (move.node) {
      ++moves_placed_;
      env.metrics().add("placement.moves", 1);
      digest = sim::splitmix64(digest ^ address_digest(*move.node));
    } else {
      env.metrics().add("placement.moves_refused", 1);
      digest = sim::splitmix64(digest);
    }
    reply->moves.push_back(move);
  }
  sim::Message out;
  out.type = static_cast<uint32_t>(PlacementMessageType::kMoveDecision);
  out.size_bytes = static_cast<uint32_t>(64 + 16 * reply->moves.size());
  out.digest = digest;
  out.body = std::move(reply);
  env.send(from, std::move(out));
}

}  // namespace dynasim::model
