// The structural description of a type (Describer), the per-type header
// it yields (TypeInfo), the shared-object graph that refuses shared_ptr
// cycles (SharedGraph), and the non-template helpers in serialize.cc.
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_TYPE_INFO_H_
#define TASKFORK_SERIALIZE_INTERNAL_TYPE_INFO_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <cstddef>
#include <cstdint>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

#include "serialize/internal/traits.h"

namespace taskfork::serialize_internal {

// ---------------------------------------------------------------------------
// Non-template helpers (serialize.cc).

// Aborts with `what` (Encode's precondition failures).
[[noreturn]] void EncodeFatal(const std::string& what);
// Human-readable, namespace-free name of a type_info.
std::string ShortTypeName(const std::type_info& type);
// FNV-1a 64 of `bytes` (stable across processes and builds).
uint64_t Fingerprint(absl::string_view bytes);

// Builds the structural description of a type. `structure` feeds the
// fingerprint; `display` is the same with class names, for error messages.
class Describer {
 public:
  void Both(absl::string_view s) {
    structure_.append(s.data(), s.size());
    display_.append(s.data(), s.size());
  }
  void Label(absl::string_view s) { display_.append(s.data(), s.size()); }
  // Returns the nesting index of `tag` if it is being described (a recursive
  // type), else -1.
  int Find(const void* tag) const {
    for (size_t i = 0; i < stack_.size(); ++i) {
      if (stack_[i] == tag) return static_cast<int>(i);
    }
    return -1;
  }
  void Push(const void* tag) { stack_.push_back(tag); }
  void Pop() { stack_.pop_back(); }
  std::string& structure() { return structure_; }
  std::string& display() { return display_; }

 private:
  std::string structure_;
  std::string display_;
  std::vector<const void*> stack_;
};

// What the header of an encoding of one type holds (built once per type).
struct TypeInfo {
  std::string display;    // printable structure, e.g. "Hero{str,[i64]}"
  uint64_t fingerprint;   // Fingerprint() of the structure
  std::string header;     // the complete encoded header
};
// Fills `info` from a finished Describer.
void FinishTypeInfo(Describer& describer, TypeInfo* info);

// The shared objects of one Encode or Decode call (memo ids) and the strong
// (shared_ptr, not weak_ptr) references between them, to refuse cycles of
// shared_ptrs, which would own themselves and leak.
class SharedGraph {
 public:
  // The contents of shared object `id` are being coded / are done.
  void Enter(uint64_t id) { stack_.push_back(id); }
  void Leave() { stack_.pop_back(); }
  // A shared_ptr to object `id` is coded here (inside the innermost entered
  // object, if any).
  void StrongRef(uint64_t id) {
    if (!stack_.empty()) edges_.emplace_back(stack_.back(), id);
  }
  // Returns an object on a cycle of strong references among `objects`
  // objects, or -1. Linear in objects + references.
  int64_t FindCycle(size_t objects) const;

 private:
  std::vector<uint64_t> stack_;
  std::vector<std::pair<uint64_t, uint64_t>> edges_;
};

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_INTERNAL_TYPE_INFO_H_
