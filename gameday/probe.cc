#include "gameday/probe.h"

#include <cstring>

#include "sim/check.h"

namespace dynasim::gameday {

namespace {
constexpr uint64_t kRecordMagic = 0x6479'6e61'7369'6d31ULL;  // "dynasim1"
constexpr size_t kHeaderBytes = 32;                          // magic, index, sector, checksum

struct PingBody final : sim::MessageBody {
  uint64_t id = 0;
  sim::SimTime sent_local;
};

uint64_t read_u64(const uint8_t* bytes) {
  uint64_t value;
  std::memcpy(&value, bytes, sizeof value);
  return value;
}
void write_u64(uint8_t* bytes, uint64_t value) {
  std::memcpy(bytes, &value, sizeof value);
}

// A 64-bit checksum over the payload, seeded with the record's index and its sector address, so a
// record written to the wrong place fails as surely as a torn one.
uint64_t checksum(const uint8_t* bytes, size_t length, uint64_t index, uint64_t sector) {
  return sim::hash_bytes(sim::splitmix64(index) ^ sim::splitmix64(~sector), bytes, length);
}
}  // namespace

Probe::Probe(ProbeOptions options, ProbeObserver* observer)
    : options_(std::move(options)), observer_(observer) {}

std::vector<uint8_t> Probe::encode_record(uint64_t index, uint64_t sector, uint32_t sector_size,
                                          sim::Random& random) {
  std::vector<uint8_t> bytes(sector_size);
  for (size_t i = kHeaderBytes; i + 8 <= bytes.size(); i += 8)
    write_u64(&bytes[i], random.next_u64());
  write_u64(&bytes[0], kRecordMagic);
  write_u64(&bytes[8], index);
  write_u64(&bytes[16], sector);
  write_u64(&bytes[24], checksum(&bytes[kHeaderBytes], sector_size - kHeaderBytes, index, sector));
  return bytes;
}

bool Probe::record_valid(const std::vector<uint8_t>& bytes, size_t offset, uint32_t sector_size,
                         uint64_t index, uint64_t sector) {
  if (offset + sector_size > bytes.size()) return false;
  const uint8_t* record = &bytes[offset];
  return read_u64(record) == kRecordMagic && read_u64(record + 8) == index &&
         read_u64(record + 16) == sector &&
         read_u64(record + 24) ==
             checksum(record + kHeaderBytes, sector_size - kHeaderBytes, index, sector);
}

void Probe::on_start(sim::Env& env) {
  DYN_ASSERT(env.disk_count() > 0);
  recover_from(env, 0);
  env.set_timer(options_.ping_interval, kPingTimer);
}

void Probe::recover_from(sim::Env& env, uint64_t next_index) {
  sim::Disk& disk = env.disk(0);
  const uint32_t sector_size = disk.options().sector_size_bytes;
  const uint64_t batch = options_.recovery_batch_sectors;
  disk.read(next_index * sector_size, batch * sector_size,
            [this, &env, next_index, batch, sector_size](sim::ReadResult result) {
              uint64_t index = next_index;
              if (result.status == sim::IoStatus::kOk) {
                while (index < next_index + batch &&
                       record_valid(result.data, (index - next_index) * sector_size, sector_size,
                                    index, index)) {
                  ++index;
                }
              }
              if (result.status == sim::IoStatus::kOk && index == next_index + batch &&
                  index < options_.max_records) {
                recover_from(env, index);
                return;
              }
              recovered_ = true;
              next_index_ = index;
              env.metrics().add("probe.recoveries", 1);
              if (observer_ != nullptr) observer_->on_recovered(env.self(), index);
              env.set_timer(options_.append_interval, kAppendTimer);
            });
}

void Probe::append(sim::Env& env) {
  if (append_in_flight_ || next_index_ >= options_.max_records) return;
  sim::Disk& disk = env.disk(0);
  const uint32_t sector_size = disk.options().sector_size_bytes;
  const uint64_t index = next_index_;
  append_in_flight_ = true;
  // The payload is the stream's next words, so the disk can keep the record as its header and the
  // stream's state (sim::SectorImage::of_pattern) rather than a sector of random bytes.
  const sim::Random payload_stream = env.random();
  const std::vector<uint8_t> record = encode_record(index, index, sector_size, env.random());
  std::vector<sim::SectorImage> image;
  image.push_back(sim::SectorImage::of_pattern(
      std::span<const uint8_t>(record.data(), kHeaderBytes), payload_stream));
  disk.write_images(index * sector_size, std::move(image),
                    [this, &env, index](sim::IoStatus status) {
                      if (status != sim::IoStatus::kOk) {
                        append_in_flight_ = false;
                        env.metrics().add("probe.write_errors", 1);
                        return;
                      }
                      if (options_.ack_before_fsync) acknowledge(env.self(), index);
                      env.disk(0).fsync([this, &env, index](sim::IoStatus synced) {
                        append_in_flight_ = false;
                        if (synced != sim::IoStatus::kOk) {
                          env.metrics().add("probe.fsync_errors", 1);
                          return;
                        }
                        next_index_ = index + 1;
                        if (!options_.ack_before_fsync) acknowledge(env.self(), index);
                        env.metrics().add("probe.records_durable", 1);
                      });
                    });
}

void Probe::acknowledge(sim::Address self, uint64_t index) {
  if (observer_ != nullptr) observer_->on_acknowledged(self, index);
}

void Probe::send_ping(sim::Env& env) {
  if (options_.peers.empty()) return;
  const sim::Address peer = options_.peers[env.random().uniform_u64(options_.peers.size())];
  auto body = std::make_shared<PingBody>();
  body->id = next_ping_id_++;
  body->sent_local = env.local_now();
  pings_in_flight_.emplace_back(body->id, body->sent_local);
  if (pings_in_flight_.size() > 64) pings_in_flight_.erase(pings_in_flight_.begin());
  env.send(peer, sim::Message{kPing, 64, body->id, body});
}

void Probe::on_message(sim::Env& env, sim::Address from, const sim::Message& message) {
  if (message.type == kPing) {
    env.send(from, sim::Message{kPong, 64, message.digest, message.body});
    return;
  }
  if (message.type != kPong) return;
  const auto& body = static_cast<const PingBody&>(*message.body);
  for (auto it = pings_in_flight_.begin(); it != pings_in_flight_.end(); ++it) {
    if (it->first != body.id) continue;
    const sim::Duration round_trip = env.local_now() - it->second;
    env.metrics().observe("probe.ping_round_trip_ms", static_cast<double>(round_trip.ns) * 1e-6);
    env.metrics().add("probe.pongs", 1);
    pings_in_flight_.erase(it);
    return;
  }
}

void Probe::on_timer(sim::Env& env, uint64_t cookie) {
  if (cookie == kAppendTimer) {
    append(env);
    env.set_timer(options_.append_interval, kAppendTimer);
  } else if (cookie == kPingTimer) {
    send_ping(env);
    env.set_timer(options_.ping_interval, kPingTimer);
  }
}

}  // namespace dynasim::gameday
