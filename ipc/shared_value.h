// SharedValue<T> and SharedArray<T>: trivially copyable values in shared
// memory that forked children share (multiprocessing.Value / Array with
// lock=True), lock-free where T is a lock-free atomic, and safe against a
// process killed while it holds the lock.
//
//   TASKFORK_ASSIGN_OR_RETURN(auto done, SharedValue<int64_t>::Create(0));
//   if (::fork() == 0) { done.FetchAdd(1); ::_exit(0); }
//   ... done.Load() ...   // 1 once the child ran
//
// T must be trivially copyable. When std::atomic<T> is always lock-free (int,
// pointers, small PODs on x86-64: sizes 1, 2, 4, 8 and 16 with cx16), the
// value lives in a std::atomic<T> (address-free, so it works across
// processes) and no lock is used. Otherwise a robust process-shared mutex
// guards two copies of the value: an update writes the inactive copy and then
// flips one index, so a process killed in the middle of an update leaves the
// old value intact and the next locker recovers the mutex (EOWNERDEAD).
//
// Ownership and fork: move-only handles over an anonymous segment; a handle
// created before fork() is usable in the child (both see one value). The
// memory lives while any process maps it. Thread-safe. Not
// async-signal-safe (the locked variant takes a mutex).
#ifndef TASKFORK_IPC_SHARED_VALUE_H_
#define TASKFORK_IPC_SHARED_VALUE_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "ipc/internal/sync.h"
#include "ipc/shared_memory.h"

namespace taskfork::ipc {

// A T in shared memory.
template <typename T>
class SharedValue {
  static_assert(std::is_trivially_copyable_v<T>,
                "SharedValue<T> needs a trivially copyable T");

 public:
  // Whether operations are lock-free (then no mutex exists).
  static constexpr bool kLockFree = std::atomic<T>::is_always_lock_free;

  SharedValue() = default;  // an empty handle: only assignment/destruction
  SharedValue(SharedValue&&) noexcept = default;
  SharedValue& operator=(SharedValue&&) noexcept = default;

  // A new value initialised to `initial`, shared with processes forked
  // later. Errors: those of SharedMemory::CreateAnonymous
  // (kResourceExhausted for a full /dev/shm, kPermissionDenied, ...).
  static absl::StatusOr<SharedValue> Create(const T& initial = T{}) {
    TASKFORK_ASSIGN_OR_RETURN(SharedMemory shm,
                              SharedMemory::CreateAnonymous(sizeof(Storage)));
    auto* storage = new (shm.data()) Storage;
    if constexpr (kLockFree) {
      storage->value.store(initial, std::memory_order_relaxed);
    } else {
      storage->mu.Init();
      storage->slots[0] = initial;
    }
    return SharedValue(std::move(shm));
  }

  // The current value.
  T Load() const {
    if constexpr (kLockFree) {
      return storage()->value.load(std::memory_order_seq_cst);
    } else {
      ipc_internal::RobustLock lock(storage()->mu);
      return storage()->slots[storage()->active.load(std::memory_order_relaxed)];
    }
  }

  // Replaces the value.
  void Store(const T& value) {
    if constexpr (kLockFree) {
      storage()->value.store(value, std::memory_order_seq_cst);
    } else {
      Update([&](T& v) { v = value; });
    }
  }

  // Applies `f(T&)` to the value atomically (under the lock, or as a
  // compare-and-swap loop that may call `f` more than once) and returns the
  // new value. `f` must not touch this SharedValue.
  template <typename F>
  T Update(F&& f) {
    if constexpr (kLockFree) {
      T old = storage()->value.load(std::memory_order_relaxed);
      T next;
      do {
        next = old;
        f(next);
      } while (!storage()->value.compare_exchange_weak(
          old, next, std::memory_order_seq_cst, std::memory_order_relaxed));
      return next;
    } else {
      Storage* s = storage();
      ipc_internal::RobustLock lock(s->mu);
      const uint32_t active = s->active.load(std::memory_order_relaxed);
      s->slots[1 - active] = s->slots[active];
      f(s->slots[1 - active]);
      // One aligned 32-bit store publishes the new copy: a process killed
      // before it leaves the old value.
      s->active.store(1 - active, std::memory_order_release);
      return s->slots[1 - active];
    }
  }

  // Lock-free only: exchange, compare-exchange, and (integral T) fetch-add.
  template <bool B = kLockFree, typename = std::enable_if_t<B>>
  T Exchange(const T& value) {
    return storage()->value.exchange(value);
  }
  template <bool B = kLockFree, typename = std::enable_if_t<B>>
  bool CompareExchange(T& expected, const T& desired) {
    return storage()->value.compare_exchange_strong(expected, desired);
  }
  template <typename U = T,
            typename = std::enable_if_t<std::is_integral_v<U> && kLockFree>>
  T FetchAdd(U delta) {
    return storage()->value.fetch_add(delta);
  }

 private:
  struct LockFreeStorage {
    std::atomic<T> value;
  };
  struct LockedStorage {
    ipc_internal::RobustMutex mu;
    std::atomic<uint32_t> active{0};  // which slot holds the value
    T slots[2];
  };
  using Storage = std::conditional_t<kLockFree, LockFreeStorage, LockedStorage>;

  explicit SharedValue(SharedMemory shm) : shm_(std::move(shm)) {}
  Storage* storage() const {
    CHECK(shm_.data() != nullptr) << "use of an empty SharedValue";
    return static_cast<Storage*>(shm_.data());
  }

  SharedMemory shm_;
};

// A fixed-size array of T in shared memory.
//
// Lock-free T: elements are std::atomic<T>; Get/Set/FetchAdd are lock-free,
// Update/Snapshot/Assign take the lock (so they are atomic with respect to
// each other, but a concurrent Set may interleave with them).
// Other T: every operation takes the lock; Update and Assign write a second
// copy of the array and flip to it (all-or-nothing even if the process is
// killed, O(size)); Set writes in place (O(1); a process killed during that
// one copy may leave that one element torn).
template <typename T>
class SharedArray {
  static_assert(std::is_trivially_copyable_v<T>,
                "SharedArray<T> needs a trivially copyable T");

 public:
  static constexpr bool kLockFree = std::atomic<T>::is_always_lock_free;
  using Element = std::conditional_t<kLockFree, std::atomic<T>, T>;

  SharedArray() = default;
  SharedArray(SharedArray&&) noexcept = default;
  SharedArray& operator=(SharedArray&&) noexcept = default;

  // `size` elements set to `fill`. Errors: kInvalidArgument (size 0 or too
  // large), those of SharedMemory::CreateAnonymous.
  static absl::StatusOr<SharedArray> Create(size_t size, const T& fill = T{}) {
    if (size == 0 || size > (size_t{1} << 40) / sizeof(T)) {
      return absl::InvalidArgumentError("SharedArray size must be 1 to 2^40 bytes");
    }
    const size_t copies = kLockFree ? 1 : 2;
    TASKFORK_ASSIGN_OR_RETURN(
        SharedMemory shm, SharedMemory::CreateAnonymous(
                              kDataOffset + copies * size * sizeof(Element)));
    auto* header = new (shm.data()) Header;
    header->mu.Init();
    header->size = size;
    SharedArray array(std::move(shm));
    for (size_t i = 0; i < size; ++i) new (&array.elements(0)[i]) Element(fill);
    return array;
  }

  size_t size() const { return header()->size; }

  // Element i (CHECK-fails if i >= size()).
  T Get(size_t i) const {
    CHECK_LT(i, size());
    if constexpr (kLockFree) {
      return elements(0)[i].load(std::memory_order_seq_cst);
    } else {
      ipc_internal::RobustLock lock(header()->mu);
      return elements(header()->active.load(std::memory_order_relaxed))[i];
    }
  }

  void Set(size_t i, const T& value) {
    CHECK_LT(i, size());
    if constexpr (kLockFree) {
      elements(0)[i].store(value, std::memory_order_seq_cst);
    } else {
      ipc_internal::RobustLock lock(header()->mu);
      elements(header()->active.load(std::memory_order_relaxed))[i] = value;
    }
  }

  template <typename U = T,
            typename = std::enable_if_t<std::is_integral_v<U> && kLockFree>>
  T FetchAdd(size_t i, U delta) {
    CHECK_LT(i, size());
    return elements(0)[i].fetch_add(delta);
  }

  // A consistent copy of the whole array.
  std::vector<T> Snapshot() const {
    ipc_internal::RobustLock lock(header()->mu);
    std::vector<T> out(size());
    const Element* e =
        elements(kLockFree ? 0 : header()->active.load(std::memory_order_relaxed));
    for (size_t i = 0; i < out.size(); ++i) out[i] = Read(e[i]);
    return out;
  }

  // Replaces every element (CHECK-fails unless values.size() == size()).
  void Assign(absl::Span<const T> values) {
    CHECK_EQ(values.size(), size());
    Update([&](absl::Span<T> v) { std::copy(values.begin(), values.end(), v.begin()); });
  }

  // Calls `f(absl::Span<T>)` on the array under the lock; the change is
  // published as a whole when `f` returns. `f` must not touch this array.
  template <typename F>
  void Update(F&& f) {
    Header* h = header();
    ipc_internal::RobustLock lock(h->mu);
    if constexpr (kLockFree) {
      std::vector<T> copy = SnapshotLocked();
      f(absl::MakeSpan(copy));
      for (size_t i = 0; i < copy.size(); ++i) elements(0)[i].store(copy[i]);
    } else {
      const uint32_t active = h->active.load(std::memory_order_relaxed);
      T* from = elements(active);
      T* to = elements(1 - active);
      std::copy(from, from + h->size, to);
      f(absl::MakeSpan(to, h->size));
      h->active.store(1 - active, std::memory_order_release);
    }
  }

 private:
  struct Header {
    ipc_internal::RobustMutex mu;
    size_t size = 0;
    std::atomic<uint32_t> active{0};  // which copy holds the array
  };
  static constexpr size_t kDataOffset =
      (sizeof(Header) + alignof(Element) + 63) & ~size_t{63};

  explicit SharedArray(SharedMemory shm) : shm_(std::move(shm)) {}
  Header* header() const {
    CHECK(shm_.data() != nullptr) << "use of an empty SharedArray";
    return static_cast<Header*>(shm_.data());
  }
  Element* elements(uint32_t copy) const {
    return reinterpret_cast<Element*>(static_cast<char*>(shm_.data()) +
                                      kDataOffset) +
           copy * header()->size;
  }
  static T Read(const Element& e) {
    if constexpr (kLockFree) {
      return e.load(std::memory_order_seq_cst);
    } else {
      return e;
    }
  }
  std::vector<T> SnapshotLocked() const {
    std::vector<T> out(size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = Read(elements(0)[i]);
    return out;
  }

  SharedMemory shm_;
};

}  // namespace taskfork::ipc

#endif  // TASKFORK_IPC_SHARED_VALUE_H_
