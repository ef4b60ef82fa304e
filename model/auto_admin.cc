#include "model/auto_admin.h"

#include <algorithm>
#include <memory>

namespace dynasim::model {

void AutoAdmin::on_start(sim::Env& env) {
  (void)env;
}

void AutoAdmin::on_timer(sim::Env& env, uint64_t cookie) {
  (void)env;
  (void)cookie;
}

void AutoAdmin::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  const sim::SimTime now = env.local_now();
  switch (static_cast<StorageMessageType>(message.type)) {
    case StorageMessageType::kNodeHeartbeat: {
      const auto* body = dynamic_cast<const NodeHeartbeatBody*>(message.body.get());
      if (body == nullptr) return;
      NodeRecord& node = nodes_[from];
      node.az = body->az;
      node.replicas = body->replicas;
      node.last_heard = now;
      return;
    }
    case StorageMessageType::kPlaceRequest: {
      const auto* body = dynamic_cast<const PlaceRequestBody*>(message.body.get());
      if (body == nullptr) return;
      auto reply = std::make_shared<PlaceReplyBody>();
      reply->request_id = body->request_id;
      reply->group = body->group;
      reply->node = place(*body, now);
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
      out.digest = body->request_id ^ (reply->node ? (uint64_t{reply->node->host.value} << 20) : 0);
      out.body = std::move(reply);
      env.send(from, std::move(out));
      return;
    }
    default:
      return;
  }
}

// Candidates: nodes heard from within node_dead_after that hold no member of the group. First
// the replaced replica's AZ if no other member is there, then any AZ holding no other member (one
// copy per AZ), then any AZ unless the request forbids sharing one. The replaced replica's AZ is
// not enough by itself: a log replica placed outside its AZ while that AZ was down shares one
// with another member, and the full replica replacing it must go back to the missing AZ. Within
// the chosen tier, the fewest replicas (counting recent placements), then the lowest address:
// deterministic, and spread.
std::optional<sim::Address> AutoAdmin::place(const PlaceRequestBody& request, sim::SimTime now) {
  std::optional<sim::AzId> preferred_az;
  if (request.replacing) {
    auto found = nodes_.find(*request.replacing);
    if (found != nodes_.end()) preferred_az = found->second.az;
  }
  std::vector<sim::AzId> member_azs;
  for (const sim::Address& member : request.exclude) {
    auto found = nodes_.find(member);
    if (found != nodes_.end() && member != request.replacing) member_azs.push_back(found->second.az);
  }
  struct Candidate {
    int tier = 0;
    uint64_t load = 0;
    sim::Address address;
  };
  std::optional<Candidate> best;
  for (auto& [address, node] : nodes_) {
    if (now - node.last_heard > options_.node_dead_after) continue;
    if (std::find(request.exclude.begin(), request.exclude.end(), address) !=
        request.exclude.end()) {
      continue;
    }
    while (!node.recent_placements.empty() && node.recent_placements.begin()->first <= now) {
      node.recent_placements.erase(node.recent_placements.begin());
    }
    uint64_t load = node.replicas;
    for (const auto& [until, count] : node.recent_placements) load += count;
    const bool az_without_member =
        std::find(member_azs.begin(), member_azs.end(), node.az) == member_azs.end();
    if (!az_without_member && !request.may_share_az) continue;
    int tier = 2;
    if (az_without_member) tier = preferred_az && node.az == *preferred_az ? 0 : 1;
    const Candidate candidate{tier, load, address};
    if (!best || std::tie(candidate.tier, candidate.load, candidate.address) <
                     std::tie(best->tier, best->load, best->address)) {
      best = candidate;
    }
  }
  if (!best) return std::nullopt;
  ++nodes_[best->address].recent_placements[now + options_.placement_counts_for];
  return best->address;
}

}  // namespace dynasim::model
