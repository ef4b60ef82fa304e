#include "gameday/workload.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "model/api.h"
#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::gameday {

namespace {

constexpr uint64_t kMaxClientId = uint64_t{1} << 23;
constexpr uint64_t kMaxSequence = uint64_t{1} << 40;
constexpr double kNanosecondsPerSecond = 1e9;

}  // namespace

model::PrimaryKey workload_key(uint64_t key_index) {
  return model::PrimaryKey{model::KeyValue::string("key-" + std::to_string(key_index)),
                           std::nullopt};
}

model::PrimaryKey counter_key(uint64_t index) {
  return model::PrimaryKey{
      model::KeyValue::string(std::string(kCounterKeyPrefix) + std::to_string(index)),
      std::nullopt};
}

WorkloadProcess::WorkloadProcess(WorkloadOptions options, const model::Placement* placement,
                                 uint64_t client_id, HistoryRecorder* recorder)
    : options_(options),
      client_id_(client_id),
      recorder_(recorder),
      client_(
          [&] {
            model::ClientOptions client = options.client;
            client.max_outstanding = options.max_outstanding;
            return client;
          }(),
          placement, client_id, recorder),
      placement_(placement),
      key_picker_(std::max<uint64_t>(options.key_count, 1), client_id) {
  DYN_ASSERT_MSG(client_id < kMaxClientId, "workload client ids must stay below 2^23");
  DYN_ASSERT(options_.key_count > 0);
  DYN_ASSERT(options_.mix.total() > 0);
  DYN_ASSERT(options_.operations_per_second >= 0);
  DYN_ASSERT(options_.verify_parallelism > 0 && options_.verify_rounds > 0);
  DYN_ASSERT(options_.rate_share > 0 && options_.rate_share <= 1);
  DYN_ASSERT(options_.counter_count > 0);
  DYN_ASSERT(options_.query_page_limit > 0 && options_.query_max_pages > 0);
  DYN_ASSERT(options_.scan_page_limit > 0);
  DYN_ASSERT(options_.scan_total_segments >= 1 &&
             options_.scan_total_segments <= model::kMaxScanTotalSegments);
  for (const WorkloadPhase& phase : options_.phases) {
    DYN_ASSERT(phase.duration > sim::Duration(0));
    DYN_ASSERT(phase.mix.total() > 0);
    const double maximum = phase.rate.max_rate(phase.duration) * options_.rate_share;
    DYN_ASSERT(maximum >= 0);
    phase_max_per_second_.push_back(maximum);
  }
}

void WorkloadProcess::on_start(sim::Env& env) {
  env_ = &env;
  start_local_ = env.local_now();
  if (options_.phases.empty()) {
    schedule_arrival(env);
  } else {
    schedule_candidate(env, sim::Duration(0));
  }
}

const OperationMix& WorkloadProcess::current_mix() const {
  if (options_.phases.empty()) return options_.mix;
  return options_.phases[arrival_phase_].mix;
}

const KeyDistribution& WorkloadProcess::current_keys() const {
  if (options_.phases.empty()) return options_.keys;
  return options_.phases[arrival_phase_].keys;
}

void WorkloadProcess::schedule_candidate(sim::Env& env, sim::Duration from) {
  sim::Duration t = from;
  // Each round either sets the timer or moves to the next phase: at most one round per phase.
  while (phase_index_ < options_.phases.size()) {
    const WorkloadPhase& phase = options_.phases[phase_index_];
    const sim::Duration phase_end = phase.duration.ns > INT64_MAX - phase_start_.ns
                                        ? sim::Duration(INT64_MAX)
                                        : phase_start_ + phase.duration;
    const double maximum = phase_max_per_second_[phase_index_];
    if (maximum > 0) {
      const auto mean_ns = static_cast<int64_t>(std::llround(kNanosecondsPerSecond / maximum));
      const sim::Duration gap =
          env.random().exponential_duration(sim::Duration(std::max<int64_t>(1, mean_ns)));
      if (gap.ns < phase_end.ns - t.ns) {
        next_candidate_ = t + gap;
        const sim::Duration elapsed = env.local_now() - start_local_;
        env.set_timer(std::max(sim::Duration(0), next_candidate_ - elapsed), kArrivalCookie);
        return;
      }
    }
    // No candidate left in this phase: the next one starts afresh at its beginning.
    t = phase_end;
    phase_start_ = phase_end;
    ++phase_index_;
  }
}

void WorkloadProcess::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  client_.on_message(env, from, message);  // anything else is not for a workload: ignored
}

void WorkloadProcess::on_timer(sim::Env& env, uint64_t cookie) {
  if (client_.on_timer(env, cookie)) return;
  DYN_ASSERT(cookie == kArrivalCookie);
  arrive(env);
}

void WorkloadProcess::schedule_arrival(sim::Env& env) {
  if (options_.operations_per_second <= 0) return;
  const auto mean_ns =
      static_cast<int64_t>(std::llround(kNanosecondsPerSecond / options_.operations_per_second));
  env.set_timer(env.random().exponential_duration(sim::Duration(std::max<int64_t>(1, mean_ns))),
                kArrivalCookie);
}

WorkloadProcess::OperationKind WorkloadProcess::draw_kind(sim::Env& env) const {
  const OperationMix& mix = current_mix();
  uint64_t draw = env.random().uniform_u64(mix.total());
  // One draw whatever the weights: kinds of weight 0 are never chosen, so a mix without update,
  // query and scan draws exactly as it did before they existed.
  const uint32_t weights[kOperationKinds] = {
      mix.put,           mix.get_strong,  mix.get_eventual, mix.put_if_version,
      mix.put_if_absent, mix.delete_item, mix.update,       mix.query,
      mix.scan};
  for (size_t kind = 0; kind < kOperationKinds; ++kind) {
    if (draw < weights[kind]) return static_cast<OperationKind>(kind);
    draw -= weights[kind];
  }
  DYN_ASSERT_MSG(false, "a draw beyond the mix's total weight");
  return OperationKind::kPut;
}

const char* to_string(KeyDistribution::Kind kind) {
  switch (kind) {
    case KeyDistribution::Kind::kUniform:
      return "uniform";
    case KeyDistribution::Kind::kZipf:
      return "zipf";
    case KeyDistribution::Kind::kHotSet:
      return "hot_set";
    case KeyDistribution::Kind::kSequential:
      return "sequential";
  }
  return "?";
}

uint64_t KeyPicker::draw(const KeyDistribution& distribution, sim::Random& random) {
  DYN_ASSERT(keys_ > 0);
  switch (distribution.kind) {
    case KeyDistribution::Kind::kUniform:
      return random.uniform_u64(keys_);
    case KeyDistribution::Kind::kZipf:
      if (!zipf_.has_value() || zipf_->exponent() != distribution.zipf_exponent) {
        zipf_.emplace(keys_, distribution.zipf_exponent);
      }
      return zipf_->sample(random) - 1;
    case KeyDistribution::Kind::kHotSet: {
      // At least one hot key, and at least one cold one when there are two keys or more.
      uint64_t hot =
          static_cast<uint64_t>(static_cast<double>(keys_) * distribution.hot_keys_fraction);
      hot = std::clamp<uint64_t>(hot, 1, keys_ > 1 ? keys_ - 1 : 1);
      if (keys_ == 1 || random.bernoulli(distribution.hot_traffic)) {
        return random.uniform_u64(hot);
      }
      return hot + random.uniform_u64(keys_ - hot);
    }
    case KeyDistribution::Kind::kSequential: {
      if (next_sequential_key_ == 0) next_sequential_key_ = 1 + sim::splitmix64(walk_seed_) % keys_;
      return next_sequential_key_++ % keys_;
    }
  }
  DYN_ASSERT_MSG(false, "an unknown key distribution");
  return 0;
}

uint64_t WorkloadProcess::draw_key(sim::Env& env) {
  return key_picker_.draw(current_keys(), env.random());
}

uint64_t WorkloadProcess::draw_target(sim::Env& env, OperationKind kind) {
  switch (kind) {
    case OperationKind::kUpdate:
      return env.random().uniform_u64(options_.counter_count);
    case OperationKind::kScan:
      return env.random().uniform_u64(options_.scan_total_segments);
    default:
      return draw_key(env);
  }
}

model::Item WorkloadProcess::make_item(const model::PrimaryKey& key) {
  DYN_ASSERT(next_sequence_ < kMaxSequence);
  const uint64_t sequence = next_sequence_++;
  const uint64_t version = client_id_ << 40 | sequence;
  model::Item item(key);
  // The payload's checksum stands for its bytes, derived from the key and the write, so two
  // writes of one key never carry the same bytes.
  const uint64_t checksum = sim::splitmix64(sim::stable_hash(key.partition.bytes) ^ version);
  const uint64_t size_bytes = options_.item_sizes.has_value()
                                  ? options_.item_sizes->draw(env_->random())
                                  : options_.item_size_bytes;
  stats_.payload_bytes_written += size_bytes;
  item.set("data", model::Payload{size_bytes, sequence, checksum});
  item.set(kVersionAttribute, model::Decimal::from_int(static_cast<int64_t>(version)));
  return item;
}

// A parallel Scan's segment, intersected with one group's range: the groups are sorted by hash and
// cover the space (model::Placement), so those the segment meets are a run of them, and one is
// drawn. A router scans each of them (model/api.h); a page of one is what this operation reads.
void WorkloadProcess::build_scan(sim::Env& env, uint64_t segment, model::ClientRequest* request) {
  const model::HashRange range =
      model::segment_hash_range(static_cast<uint32_t>(segment), options_.scan_total_segments);
  const std::vector<model::GroupPlacement>& groups = placement_->groups;
  size_t first = 0;
  while (first + 1 < groups.size() && groups[first].hash_end < range.begin) ++first;
  size_t last = first;
  while (last + 1 < groups.size() && groups[last + 1].hash_begin <= range.end) ++last;
  const model::GroupPlacement& group = groups[first + env.random().uniform_u64(last - first + 1)];
  const std::optional<model::HashRange> part =
      model::intersect(range, model::HashRange{group.hash_begin, group.hash_end});
  DYN_ASSERT_MSG(part.has_value(), "a scan segment's group does not meet the segment");
  request->op = model::StorageOp::kScan;
  request->scan_group = group.group;
  request->scan.hash_begin = part->begin;
  request->scan.hash_end = part->end;
  request->page.limit = options_.scan_page_limit;
  request->max_pages = 1;
  // Scan's default is eventually consistent (API reference, Scan: ConsistentRead); every other
  // scan asks for a strong one, so both paths are exercised.
  request->consistency =
      scans_sent_++ % 2 == 1 ? model::ReadConsistency::kStrong : model::ReadConsistency::kEventual;
}

model::ClientRequest WorkloadProcess::build_request(sim::Env& env, OperationKind kind,
                                                    uint64_t key_index) {
  model::ClientRequest request;
  switch (kind) {
    case OperationKind::kUpdate:
      // API reference, UpdateItem: ADD on a number attribute adds to it; on an attribute (or an
      // item) that does not exist yet it starts from 0, so the first ADD creates the counter.
      request.op = model::StorageOp::kUpdate;
      request.key = counter_key(key_index);
      request.update.actions.push_back(
          model::UpdateAction::add(kCounterAttribute, model::Decimal::from_int(1)));
      return request;
    case OperationKind::kQuery:
      request.op = model::StorageOp::kQuery;
      request.key = workload_key(key_index);
      request.consistency = model::ReadConsistency::kStrong;
      request.query.key_condition.partition = request.key.partition;
      request.page.limit = options_.query_page_limit;
      request.max_pages = options_.query_max_pages;
      return request;
    case OperationKind::kScan:
      build_scan(env, key_index, &request);
      return request;
    default:
      break;
  }
  request.key = workload_key(key_index);
  switch (kind) {
    case OperationKind::kGetStrong:
    case OperationKind::kGetEventual:
      request.op = model::StorageOp::kGet;
      request.consistency = kind == OperationKind::kGetStrong ? model::ReadConsistency::kStrong
                                                              : model::ReadConsistency::kEventual;
      return request;
    case OperationKind::kDelete:
      request.op = model::StorageOp::kDelete;
      return request;
    case OperationKind::kPut:
    case OperationKind::kPutIfVersion:
    case OperationKind::kPutIfAbsent:
    case OperationKind::kUpdate:
    case OperationKind::kQuery:
    case OperationKind::kScan:
      break;
  }
  request.op = model::StorageOp::kPut;
  request.item = make_item(request.key);
  auto known = last_version_.find(key_index);
  if (kind == OperationKind::kPutIfVersion && known != last_version_.end()) {
    // Optimistic locking: write only over the version this client last saw.
    request.condition.kind = model::Condition::Kind::kAttributeEquals;
    request.condition.attribute = kVersionAttribute;
    request.condition.value = model::Decimal::from_int(static_cast<int64_t>(known->second));
  } else if (kind != OperationKind::kPut) {
    // put_if_absent, and put_if_version with nothing read yet.
    request.condition.kind = model::Condition::Kind::kAttributeNotExists;
    request.condition.attribute = kVersionAttribute;
  }
  return request;
}

void WorkloadProcess::arrive(sim::Env& env) {
  if (options_.phases.empty()) {
    schedule_arrival(env);
    if (stopped_) return;
  } else {
    if (stopped_) return;  // nothing more is drawn once stopped
    const sim::Duration at = next_candidate_;
    const WorkloadPhase& phase = options_.phases[phase_index_];
    const double maximum = phase_max_per_second_[phase_index_];
    const double rate = phase.rate.rate_at(at - phase_start_) * options_.rate_share;
    // Thinning: keep the candidate with probability rate / maximum (no draw when it is 1, so a
    // constant shape draws exactly what a homogeneous process does).
    const bool keep = options_.plant_keep_every_candidate || rate >= maximum ||
                      env.random().bernoulli(rate / maximum);
    arrival_phase_ = phase_index_;
    schedule_candidate(env, at);
    if (!keep) {
      ++stats_.thinned;
      return;
    }
  }
  ++stats_.arrivals;
  const OperationKind kind = draw_kind(env);
  const uint64_t key_index = draw_target(env, kind);
  if (client_.outstanding() >= options_.max_outstanding) {
    ++stats_.refused;
    return;
  }
  model::ClientRequest request = build_request(env, kind, key_index);
  if (request.op == model::StorageOp::kPut || request.op == model::StorageOp::kDelete) {
    if (written_keys_.insert(key_index).second) ++stats_.keys_written;
  } else if (request.op == model::StorageOp::kUpdate) {
    if (updated_counters_.insert(key_index).second) ++stats_.counters_updated;
  }
  // The done callback keeps only what it needs of the request: kind, and the "ver" written.
  model::ClientRequest summary;
  summary.op = request.op;
  summary.consistency = request.consistency;
  if (request.op == model::StorageOp::kPut) {
    summary.item.set(kVersionAttribute, *request.item.find(kVersionAttribute));
  }
  const sim::SimTime started_local = env.local_now();
  const uint64_t id = client_.submit(env, std::move(request),
                                     [this, key_index, summary = std::move(summary),
                                      started_local](const model::ClientResult& result) {
                                       on_done(key_index, summary, result, started_local);
                                     });
  DYN_ASSERT(id != 0);  // outstanding was checked above
  ++stats_.submitted;
  ++stats_.by_kind[static_cast<int>(kind)];
}

void WorkloadProcess::on_done(uint64_t key_index, const model::ClientRequest& request,
                              const model::ClientResult& result, sim::SimTime started_local) {
  const bool success = result.succeeded();
  if (success) {
    ++stats_.succeeded;
  } else {
    ++stats_.failed;
  }
  if (recorder_ != nullptr) {
    recorder_->record_operation_end(success ? OperationEnd::kSucceeded : OperationEnd::kFailed);
  }
  env_->metrics().observe("workload.latency_ms",
                          static_cast<double>((env_->local_now() - started_local).ns) / 1e6);
  if (success && request.op == model::StorageOp::kQuery) stats_.query_items += result.items.size();
  if (success && request.op == model::StorageOp::kScan) stats_.scan_items += result.items.size();
  // What this client now knows of the key's "ver", for its next put_if_version. Updates go to
  // counters and scans to no one key: neither says anything of a register key's "ver".
  const bool register_key =
      request.op != model::StorageOp::kUpdate && request.op != model::StorageOp::kScan;
  if (success && register_key && result.status != model::StorageStatus::kConditionFailed) {
    // A query of the key found its one item or none (the items have no sort key).
    const model::Item* found = nullptr;
    if (request.op == model::StorageOp::kQuery) {
      found = result.items.empty() ? nullptr : &result.items.front();
    } else if (request.op == model::StorageOp::kPut) {
      found = &request.item;
    } else if (result.item) {
      found = &*result.item;
    }
    const bool absent = request.op == model::StorageOp::kDelete ||
                        result.status == model::StorageStatus::kNotFound ||
                        (request.op == model::StorageOp::kQuery && found == nullptr);
    if (absent) {
      last_version_.erase(key_index);
    } else {
      const model::AttributeValue* version =
          found == nullptr ? nullptr : found->find(kVersionAttribute);
      const std::optional<uint64_t> value =
          version == nullptr ? std::nullopt : integer_value(*version);
      if (value.has_value()) last_version_[key_index] = *value;
    }
  }
  pump_verification();
}

void WorkloadProcess::verify_all() {
  DYN_ASSERT_MSG(env_ != nullptr, "verify_all() before the workload process started");
  stopped_ = true;
  if (verifying_) return;
  verifying_ = true;
  for (uint64_t key_index : written_keys_)
    verify_queue_.push_back(VerifyTarget{key_index, false, 0});
  for (uint64_t counter : updated_counters_)
    verify_queue_.push_back(VerifyTarget{counter, true, 0});
  pump_verification();
}

void WorkloadProcess::pump_verification() {
  if (!verifying_) return;
  while (verify_in_flight_ < options_.verify_parallelism && !verify_queue_.empty()) {
    const VerifyTarget target = verify_queue_.front();
    model::ClientRequest request;
    request.op = model::StorageOp::kGet;
    request.consistency = model::ReadConsistency::kStrong;
    request.key = target.counter ? counter_key(target.index) : workload_key(target.index);
    const uint64_t id = client_.submit(
        *env_, std::move(request), [this, target](const model::ClientResult& result) {
          --verify_in_flight_;
          if (result.succeeded()) {
            ++(target.counter ? stats_.counters_verified : stats_.keys_verified);
          } else if (!result.timed_out && result.status == model::StorageStatus::kThrottled) {
            // Every attempt was refused for capacity (a partition's bucket or, with GAC, the
            // router's tokens): the service is up and says so. Not a round: the key goes to the
            // back of the queue and is read again when the capacity allows; the run's end bounds
            // the wait (a key still unread then is unverified).
            ++stats_.verify_throttled;
            verify_queue_.push_back(target);
          } else if (target.tries + 1 < options_.verify_rounds) {
            verify_queue_.push_back(VerifyTarget{target.index, target.counter, target.tries + 1});
          } else {
            ++(target.counter ? stats_.counters_unverified : stats_.keys_unverified);
          }
          pump_verification();
        });
    if (id == 0) return;  // the client is full; the next completion pumps again
    verify_queue_.pop_front();
    ++verify_in_flight_;
    ++stats_.verify_reads;
  }
}

}  // namespace dynasim::gameday
