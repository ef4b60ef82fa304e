// The Perkle tree: the ordered, self-verifying map each MemDS node keeps its partition map in.
//
// P22 section 6.6: every MemDS node stores its data in a Perkle tree, "a hybrid of a Patricia tree
// and a Merkle tree". It answers lookups by full key or by prefix, sorted range queries, and floor
// and ceiling lookups; a floor lookup is how a key hash maps to the partition whose range holds it.
//
// Structure: a path-compressed binary trie (Patricia) over 128-bit keys. A key is a table id
// followed by the 64-bit partition hash at which a partition's range begins, so one table's
// entries are one subtree and sort by hash. An internal node branches on the first bit in which
// the keys below it differ; a leaf holds one entry. For a given set of keys the shape is unique,
// so the Merkle hash of each node (a leaf: key and value; an internal node: its branching bit and
// its children's hashes) depends on the contents only, never on the order of the operations that
// built the tree. Two trees have equal root hashes when their contents are equal (and, up to
// 64-bit hash collisions, only then), and the hash of the smallest subtree covering any prefix is
// comparable between two trees the same way: that is what anti-entropy walks (model/memds.h).
//
// The hash is our own 64-bit mix (sim::splitmix64 over the fields), the same on every machine.
#pragma once

#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "model/archive.h"
#include "model/storage_protocol.h"
#include "sim/ids.h"

namespace dynasim::model {

// 128 bits: bit 0 is the most significant bit of `table`, bit 127 the least significant of `hash`.
struct PerkleKey {
  uint64_t table = 0;
  uint64_t hash = 0;
  static constexpr uint32_t kBits = 128;
  constexpr auto operator<=>(const PerkleKey&) const = default;
  // Bit `index` (0..127), counted from the most significant bit of `table`.
  bool bit(uint32_t index) const;
  // The key with bits `from`..127 all zero (`ones` false) or all one (`ones` true).
  enum class Fill : uint8_t { kZeros, kOnes };
  PerkleKey filled_from(uint32_t from, Fill fill) const;
  // How many leading bits `a` and `b` share (128 when equal).
  static uint32_t common_prefix_bits(const PerkleKey& a, const PerkleKey& b);
};

// A table's partition-map entry: which group serves the partition hashes in
// [hash_begin, hash_end] and where its replicas are.
struct PartitionEntry {
  TableId table{0};
  uint64_t hash_begin = 0;
  uint64_t hash_end = UINT64_MAX;
  GroupId group;
  GroupMembers members;  // the configuration's epoch and its full voters
  std::optional<sim::Address> leader_hint;
  // The entry's map version, raised by the storage side on every change of the entry (members,
  // leader, range). A holder replaces its copy only with a higher version.
  uint64_t version = 0;
  // The range no longer exists (merged into its left neighbour): kept as a tombstone so that
  // anti-entropy copies the removal like any other newer version.
  bool retired = false;

  PerkleKey key() const { return PerkleKey{table.value, hash_begin}; }
  bool covers(uint64_t partition_hash) const {
    return !retired && hash_begin <= partition_hash && partition_hash <= hash_end;
  }
  uint64_t digest() const;
  bool operator==(const PartitionEntry&) const = default;
};

struct PerkleOptions {
  // Planted bug for the Merkle verification and anti-entropy tests: overwriting an existing key
  // leaves the leaf's hash (and so every ancestor's) as it was. Never set outside tests.
  bool plant_skip_hash_update = false;
};

class PerkleTree {
 public:
  explicit PerkleTree(PerkleOptions options = {});
  ~PerkleTree();
  PerkleTree(PerkleTree&&) noexcept;
  PerkleTree& operator=(PerkleTree&&) noexcept;
  PerkleTree(const PerkleTree&) = delete;
  PerkleTree& operator=(const PerkleTree&) = delete;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Inserts or overwrites the entry at `entry.key()`. Returns true if the key was new.
  bool insert(const PartitionEntry& entry);
  // Returns true if the key was present.
  bool erase(const PerkleKey& key);
  void clear();

  const PartitionEntry* find(const PerkleKey& key) const;
  // The entry with the greatest key <= `key` / the least key >= `key`, or null.
  const PartitionEntry* floor(const PerkleKey& key) const;
  const PartitionEntry* ceiling(const PerkleKey& key) const;
  // Entries with lo <= key <= hi, in key order, at most `max_entries` of them.
  std::vector<PartitionEntry> range(const PerkleKey& lo, const PerkleKey& hi,
                                    size_t max_entries) const;
  // Entries whose first `prefix_bits` bits equal those of `prefix`, in key order, at most
  // `max_entries` of them. REQUIRES: prefix_bits <= 128.
  std::vector<PartitionEntry> with_prefix(const PerkleKey& prefix, uint32_t prefix_bits,
                                          size_t max_entries) const;
  size_t count_with_prefix(const PerkleKey& prefix, uint32_t prefix_bits) const;

  // Merkle hashes. The empty set hashes to 0.
  uint64_t root_hash() const;
  // The hash of the entries under a prefix (the smallest subtree holding all of them): equal in
  // two trees iff those entries are equal, whatever else the trees hold.
  uint64_t prefix_hash(const PerkleKey& prefix, uint32_t prefix_bits) const;
  // How the entries under a prefix split: the smallest subtree covering the prefix branches on
  // bit `branch_bit`, and its two halves are the prefixes (key, branch_bit + 1) with that bit 0
  // and 1. Empty when the prefix holds fewer than two entries.
  struct Split {
    PerkleKey key;  // shares the covering subtree's first branch_bit bits
    uint32_t branch_bit = 0;
    uint64_t child_hash[2] = {0, 0};
  };
  std::optional<Split> split_of(const PerkleKey& prefix, uint32_t prefix_bits) const;

  // Recomputes every hash from the entries and compares with the stored ones; also checks the
  // Patricia shape (branch bits increase downwards, children sit on their side). True if sound.
  bool verify() const;

  // The keys whose entries differ between two trees (present in one only, or with different
  // values), in key order, found by descending only into subtrees whose hashes differ. At most
  // `max_keys`. `hash_compares` (optional) counts the subtree hash comparisons made.
  static std::vector<PerkleKey> diff(const PerkleTree& a, const PerkleTree& b, size_t max_keys,
                                     uint64_t* hash_compares = nullptr);

  // Every entry in key order (for tests and dumps).
  std::vector<PartitionEntry> entries() const;

  struct Node;

 private:
  const Node* covering(const PerkleKey& prefix, uint32_t prefix_bits) const;

  PerkleOptions options_;
  std::unique_ptr<Node> root_;
  size_t size_ = 0;
};

}  // namespace dynasim::model
