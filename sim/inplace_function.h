// A move-only callable stored inline, without heap allocation.
//
// Closures scheduled on the event queue, disk completions and object-store callbacks use it. The
// capture must fit in `Capacity` bytes; a larger capture is a compile error, which keeps event
// payloads small and allocation-free on the hot path (capture an index or a pointer instead).
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace dynasim::sim {

template <typename Signature, size_t Capacity = 48>
class InplaceFunction;

template <typename Result, typename... Args, size_t Capacity>
class InplaceFunction<Result(Args...), Capacity> {
 public:
  InplaceFunction() = default;

  template <typename Callable,
            typename = std::enable_if_t<!std::is_same_v<std::decay_t<Callable>, InplaceFunction>>>
  InplaceFunction(Callable&& callable) {  // NOLINT: implicit by design, like std::function
    using Stored = std::decay_t<Callable>;
    static_assert(sizeof(Stored) <= Capacity, "closure capture too large for InplaceFunction");
    static_assert(alignof(Stored) <= alignof(std::max_align_t), "closure over-aligned");
    static_assert(std::is_nothrow_move_constructible_v<Stored>,
                  "closure must move without throwing");
    ::new (static_cast<void*>(storage_)) Stored(std::forward<Callable>(callable));
    ops_ = &kOpsFor<Stored>;
  }

  InplaceFunction(InplaceFunction&& other) noexcept { take(std::move(other)); }
  InplaceFunction& operator=(InplaceFunction&& other) noexcept {
    if (this != &other) {
      reset();
      take(std::move(other));
    }
    return *this;
  }
  InplaceFunction(const InplaceFunction&) = delete;
  InplaceFunction& operator=(const InplaceFunction&) = delete;
  ~InplaceFunction() { reset(); }

  explicit operator bool() const { return ops_ != nullptr; }

  Result operator()(Args... args) { return ops_->invoke(storage_, std::forward<Args>(args)...); }

  void reset() {
    if (ops_ != nullptr) {
      ops_->destroy(storage_);
      ops_ = nullptr;
    }
  }

 private:
  struct Ops {
    Result (*invoke)(void*, Args&&...);
    void (*move_to)(void* from, void* to);
    void (*destroy)(void*);
  };

  template <typename Stored>
  static constexpr Ops kOpsFor = {
      [](void* self, Args&&... args) -> Result {
        return (*static_cast<Stored*>(self))(std::forward<Args>(args)...);
      },
      [](void* from, void* to) {
        ::new (to) Stored(std::move(*static_cast<Stored*>(from)));
        static_cast<Stored*>(from)->~Stored();
      },
      [](void* self) { static_cast<Stored*>(self)->~Stored(); },
  };

  void take(InplaceFunction&& other) {
    if (other.ops_ != nullptr) {
      other.ops_->move_to(other.storage_, storage_);
      ops_ = other.ops_;
      other.ops_ = nullptr;
    }
  }

  alignas(std::max_align_t) unsigned char storage_[Capacity];
  const Ops* ops_ = nullptr;
};

}  // namespace dynasim::sim
