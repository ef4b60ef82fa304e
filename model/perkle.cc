#include "model/perkle.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "sim/check.h"
#include "sim/random.h"

namespace dynasim::model {
namespace {

constexpr uint32_t kLeafBit = PerkleKey::kBits;  // a leaf's "branch bit": it does not branch

uint64_t mix(uint64_t state, uint64_t value) {
  return sim::splitmix64(state ^ sim::splitmix64(value));
}

uint64_t address_digest(const sim::Address& address) {
  return (uint64_t{address.host.value} << 32) | address.port;
}

}  // namespace

bool PerkleKey::bit(uint32_t index) const {
  DYN_ASSERT(index < kBits);
  const uint64_t word = index < 64 ? table : hash;
  return ((word >> (63 - (index % 64))) & 1) != 0;
}

PerkleKey PerkleKey::filled_from(uint32_t from, Fill fill) const {
  DYN_ASSERT(from <= kBits);
  // Keeps bits [0, from) of each word's share of the key; the rest become zeros or ones.
  auto keep = [](uint64_t word, uint32_t kept_bits, Fill how) {
    if (kept_bits >= 64) return word;
    const uint64_t low_mask = kept_bits == 0 ? ~uint64_t{0} : (~uint64_t{0} >> kept_bits);
    return how == Fill::kOnes ? (word | low_mask) : (word & ~low_mask);
  };
  PerkleKey out;
  out.table = keep(table, from, fill);
  out.hash = keep(hash, from > 64 ? from - 64 : 0, fill);
  return out;
}

uint32_t PerkleKey::common_prefix_bits(const PerkleKey& a, const PerkleKey& b) {
  if (a.table != b.table) return static_cast<uint32_t>(__builtin_clzll(a.table ^ b.table));
  if (a.hash != b.hash) return 64 + static_cast<uint32_t>(__builtin_clzll(a.hash ^ b.hash));
  return kBits;
}

uint64_t PartitionEntry::digest() const {
  uint64_t h = mix(0x9a27e1, table.value);
  h = mix(h, hash_begin);
  h = mix(h, hash_end);
  h = mix(h, group.value);
  h = mix(h, members.epoch);
  h = mix(h, members.replicas.size());
  for (const sim::Address& replica : members.replicas) h = mix(h, address_digest(replica));
  h = mix(h, leader_hint.has_value() ? address_digest(*leader_hint) + 1 : 0);
  h = mix(h, version);
  return mix(h, retired ? 1 : 0);
}

struct PerkleTree::Node {
  PerkleKey key;  // a leaf's key; an internal node: any key below it (its first `bit` bits count)
  uint32_t bit = kLeafBit;
  uint64_t hash = 0;
  size_t count = 1;  // entries below
  std::unique_ptr<Node> child[2];
  PartitionEntry value;  // leaves only

  bool leaf() const { return bit == kLeafBit; }
  uint64_t computed_hash() const {
    if (leaf()) return mix(mix(mix(0x1eaf, key.table), key.hash), value.digest());
    return mix(mix(mix(0xb4a2c4, bit), child[0]->hash), child[1]->hash);
  }
  void refresh() {
    if (!leaf()) count = child[0]->count + child[1]->count;
    hash = computed_hash();
  }
};

namespace {

using Node = PerkleTree::Node;

std::unique_ptr<Node> make_leaf(const PartitionEntry& entry) {
  auto node = std::make_unique<Node>();
  node->key = entry.key();
  node->value = entry;
  node->refresh();
  return node;
}

// Inserts below `slot`; returns true if the key was new.
bool insert_at(std::unique_ptr<Node>& slot, const PartitionEntry& entry, const PerkleKey& key,
               const PerkleOptions& options) {
  if (!slot) {
    slot = make_leaf(entry);
    return true;
  }
  Node& node = *slot;
  const uint32_t shared = PerkleKey::common_prefix_bits(node.key, key);
  if (shared < node.bit) {
    // The key leaves this subtree's common prefix at bit `shared`: a new branch there.
    auto branch = std::make_unique<Node>();
    branch->key = key;
    branch->bit = shared;
    const bool key_side = key.bit(shared);
    branch->child[key_side ? 1 : 0] = make_leaf(entry);
    branch->child[key_side ? 0 : 1] = std::move(slot);
    branch->refresh();
    slot = std::move(branch);
    return true;
  }
  if (node.leaf()) {
    node.value = entry;
    if (!options.plant_skip_hash_update) node.refresh();
    return false;
  }
  const bool added = insert_at(node.child[key.bit(node.bit) ? 1 : 0], entry, key, options);
  node.refresh();
  return added;
}

bool erase_at(std::unique_ptr<Node>& slot, const PerkleKey& key) {
  if (!slot) return false;
  Node& node = *slot;
  if (node.leaf()) {
    if (node.key != key) return false;
    slot.reset();
    return true;
  }
  if (PerkleKey::common_prefix_bits(node.key, key) < node.bit) return false;
  const int side = key.bit(node.bit) ? 1 : 0;
  if (!erase_at(node.child[side], key)) return false;
  if (!node.child[side]) {
    // One child left: the branch is no longer needed (path compression).
    std::unique_ptr<Node> other = std::move(node.child[1 - side]);
    slot = std::move(other);
  } else {
    node.refresh();
  }
  return true;
}

const Node* min_leaf(const Node* node) {
  while (node != nullptr && !node->leaf()) node = node->child[0].get();
  return node;
}
const Node* max_leaf(const Node* node) {
  while (node != nullptr && !node->leaf()) node = node->child[1].get();
  return node;
}

const Node* floor_at(const Node* node, const PerkleKey& key) {
  if (node == nullptr) return nullptr;
  if (node->leaf()) return node->key <= key ? node : nullptr;
  const uint32_t shared = PerkleKey::common_prefix_bits(node->key, key);
  if (shared < node->bit) {
    // Every key below is on one side of `key`.
    return key.bit(shared) ? max_leaf(node) : nullptr;
  }
  if (key.bit(node->bit)) {
    if (const Node* found = floor_at(node->child[1].get(), key)) return found;
    return max_leaf(node->child[0].get());
  }
  return floor_at(node->child[0].get(), key);
}

const Node* ceiling_at(const Node* node, const PerkleKey& key) {
  if (node == nullptr) return nullptr;
  if (node->leaf()) return node->key >= key ? node : nullptr;
  const uint32_t shared = PerkleKey::common_prefix_bits(node->key, key);
  if (shared < node->bit) return key.bit(shared) ? nullptr : min_leaf(node);
  if (!key.bit(node->bit)) {
    if (const Node* found = ceiling_at(node->child[0].get(), key)) return found;
    return min_leaf(node->child[1].get());
  }
  return ceiling_at(node->child[1].get(), key);
}

void range_at(const Node* node, const PerkleKey& lo, const PerkleKey& hi, size_t max_entries,
              std::vector<PartitionEntry>& out) {
  if (node == nullptr || out.size() >= max_entries) return;
  if (node->leaf()) {
    if (lo <= node->key && node->key <= hi) out.push_back(node->value);
    return;
  }
  // Every key below lies within [smallest, largest].
  const PerkleKey smallest = node->key.filled_from(node->bit, PerkleKey::Fill::kZeros);
  const PerkleKey largest = node->key.filled_from(node->bit, PerkleKey::Fill::kOnes);
  if (largest < lo || hi < smallest) return;
  range_at(node->child[0].get(), lo, hi, max_entries, out);
  range_at(node->child[1].get(), lo, hi, max_entries, out);
}

bool verify_at(const Node* node, uint32_t parent_bit, const PerkleKey* parent_key, int side) {
  if (node == nullptr) return false;  // an internal node always has two children
  if (parent_key != nullptr) {
    if (node->bit <= parent_bit) return false;
    if (PerkleKey::common_prefix_bits(node->key, *parent_key) < parent_bit) return false;
    if (node->key.bit(parent_bit) != (side == 1)) return false;
  }
  if (!node->leaf()) {
    if (!verify_at(node->child[0].get(), node->bit, &node->key, 0)) return false;
    if (!verify_at(node->child[1].get(), node->bit, &node->key, 1)) return false;
    if (node->count != node->child[0]->count + node->child[1]->count) return false;
  } else {
    if (node->count != 1 || node->value.key() != node->key) return false;
  }
  return node->hash == node->computed_hash();
}

// Collects the keys of the entries that differ under a prefix, by hash descent.
void diff_at(const PerkleTree& a, const PerkleTree& b, const PerkleKey& prefix, uint32_t bits,
             size_t max_keys, std::vector<PerkleKey>& out, uint64_t& compares) {
  if (out.size() >= max_keys) return;
  ++compares;
  if (a.prefix_hash(prefix, bits) == b.prefix_hash(prefix, bits)) return;
  const auto split_a = a.split_of(prefix, bits);
  const auto split_b = b.split_of(prefix, bits);
  if (!split_a.has_value() || !split_b.has_value()) {
    // One side holds at most one entry here: compare the entries themselves.
    const size_t limit = SIZE_MAX;
    const std::vector<PartitionEntry> left = a.with_prefix(prefix, bits, limit);
    const std::vector<PartitionEntry> right = b.with_prefix(prefix, bits, limit);
    size_t i = 0;
    size_t j = 0;
    while ((i < left.size() || j < right.size()) && out.size() < max_keys) {
      if (j == right.size() || (i < left.size() && left[i].key() < right[j].key())) {
        out.push_back(left[i++].key());
      } else if (i == left.size() || right[j].key() < left[i].key()) {
        out.push_back(right[j++].key());
      } else {
        if (!(left[i] == right[j])) out.push_back(left[i].key());
        ++i;
        ++j;
      }
    }
    return;
  }
  // Split on the first bit where either side branches or the two sides part: every key of both
  // sides shares the bits before it.
  uint32_t split_bit = std::min(split_a->branch_bit, split_b->branch_bit);
  split_bit = std::min(split_bit, PerkleKey::common_prefix_bits(split_a->key, split_b->key));
  DYN_ASSERT(split_bit >= bits);
  const PerkleKey zero_side = split_a->key.filled_from(split_bit, PerkleKey::Fill::kZeros);
  const PerkleKey one_side = split_a->key.filled_from(split_bit, PerkleKey::Fill::kOnes);
  diff_at(a, b, zero_side, split_bit + 1, max_keys, out, compares);
  diff_at(a, b, one_side, split_bit + 1, max_keys, out, compares);
}

}  // namespace

PerkleTree::PerkleTree(PerkleOptions options) : options_(options) {}
PerkleTree::~PerkleTree() = default;
PerkleTree::PerkleTree(PerkleTree&&) noexcept = default;
PerkleTree& PerkleTree::operator=(PerkleTree&&) noexcept = default;

bool PerkleTree::insert(const PartitionEntry& entry) {
  const bool added = insert_at(root_, entry, entry.key(), options_);
  if (added) ++size_;
  DYN_ASSERT(root_ != nullptr && root_->count == size_);
  return added;
}

bool PerkleTree::erase(const PerkleKey& key) {
  const bool removed = erase_at(root_, key);
  if (removed) --size_;
  DYN_ASSERT((root_ == nullptr ? 0 : root_->count) == size_);
  return removed;
}

void PerkleTree::clear() {
  root_.reset();
  size_ = 0;
}

const PartitionEntry* PerkleTree::find(const PerkleKey& key) const {
  const Node* node = covering(key, PerkleKey::kBits);
  return node != nullptr && node->leaf() ? &node->value : nullptr;
}

const PartitionEntry* PerkleTree::floor(const PerkleKey& key) const {
  const Node* node = floor_at(root_.get(), key);
  return node == nullptr ? nullptr : &node->value;
}

const PartitionEntry* PerkleTree::ceiling(const PerkleKey& key) const {
  const Node* node = ceiling_at(root_.get(), key);
  return node == nullptr ? nullptr : &node->value;
}

std::vector<PartitionEntry> PerkleTree::range(const PerkleKey& lo, const PerkleKey& hi,
                                              size_t max_entries) const {
  std::vector<PartitionEntry> out;
  if (lo <= hi) range_at(root_.get(), lo, hi, max_entries, out);
  return out;
}

std::vector<PartitionEntry> PerkleTree::with_prefix(const PerkleKey& prefix, uint32_t prefix_bits,
                                                    size_t max_entries) const {
  std::vector<PartitionEntry> out;
  const Node* node = covering(prefix, prefix_bits);
  if (node != nullptr) {
    range_at(node, PerkleKey{0, 0}, PerkleKey{UINT64_MAX, UINT64_MAX}, max_entries, out);
  }
  return out;
}

size_t PerkleTree::count_with_prefix(const PerkleKey& prefix, uint32_t prefix_bits) const {
  const Node* node = covering(prefix, prefix_bits);
  return node == nullptr ? 0 : node->count;
}

uint64_t PerkleTree::root_hash() const {
  return root_ == nullptr ? 0 : root_->hash;
}

uint64_t PerkleTree::prefix_hash(const PerkleKey& prefix, uint32_t prefix_bits) const {
  const Node* node = covering(prefix, prefix_bits);
  return node == nullptr ? 0 : node->hash;
}

std::optional<PerkleTree::Split> PerkleTree::split_of(const PerkleKey& prefix,
                                                      uint32_t prefix_bits) const {
  const Node* node = covering(prefix, prefix_bits);
  if (node == nullptr || node->leaf()) return std::nullopt;
  Split split;
  split.key = node->key;
  split.branch_bit = node->bit;
  split.child_hash[0] = node->child[0]->hash;
  split.child_hash[1] = node->child[1]->hash;
  return split;
}

bool PerkleTree::verify() const {
  if (root_ == nullptr) return size_ == 0;
  return verify_at(root_.get(), 0, nullptr, 0) && root_->count == size_;
}

std::vector<PerkleKey> PerkleTree::diff(const PerkleTree& a, const PerkleTree& b, size_t max_keys,
                                        uint64_t* hash_compares) {
  std::vector<PerkleKey> out;
  uint64_t compares = 0;
  diff_at(a, b, PerkleKey{0, 0}, 0, max_keys, out, compares);
  if (hash_compares != nullptr) *hash_compares = compares;
  return out;
}

std::vector<PartitionEntry> PerkleTree::entries() const {
  return with_prefix(PerkleKey{0, 0}, 0, SIZE_MAX);
}

const PerkleTree::Node* PerkleTree::covering(const PerkleKey& prefix, uint32_t prefix_bits) const {
  DYN_ASSERT(prefix_bits <= PerkleKey::kBits);
  const Node* node = root_.get();
  // Descends while the node branches inside the prefix; the depth is at most 129.
  while (node != nullptr && node->bit < prefix_bits) {
    node = node->child[prefix.bit(node->bit) ? 1 : 0].get();
  }
  if (node == nullptr) return nullptr;
  // The path checked only the branching bits: the node's key must share the whole prefix.
  return PerkleKey::common_prefix_bits(node->key, prefix) >= prefix_bits ? node : nullptr;
}

}  // namespace dynasim::model
