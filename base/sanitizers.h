// Whether this code is built with AddressSanitizer or ThreadSanitizer, as
// constants for code and tests that must behave differently under them.
//
//   if constexpr (taskfork::kThreadSanitizer) { /* a path TSan models */ }
//   constexpr int kRuns = taskfork::kAddressSanitizer ? 200 : 1000;
//
// Use these instead of testing __SANITIZE_THREAD__ directly: .bazelrc's
// --config=tsan undefines that macro (Debian's protobuf headers change an
// object layout under it) and defines TASKFORK_THREAD_SANITIZER instead.
// GCC defines __SANITIZE_ADDRESS__ / __SANITIZE_THREAD__; clang also answers
// __has_feature.
#ifndef TASKFORK_BASE_SANITIZERS_H_
#define TASKFORK_BASE_SANITIZERS_H_

#if defined(__SANITIZE_ADDRESS__)
#define TASKFORK_INTERNAL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TASKFORK_INTERNAL_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__) || defined(TASKFORK_THREAD_SANITIZER)
#define TASKFORK_INTERNAL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TASKFORK_INTERNAL_TSAN 1
#endif
#endif

namespace taskfork {

#ifdef TASKFORK_INTERNAL_ASAN
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif

#ifdef TASKFORK_INTERNAL_TSAN
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif

}  // namespace taskfork

#undef TASKFORK_INTERNAL_ASAN
#undef TASKFORK_INTERNAL_TSAN

#endif  // TASKFORK_BASE_SANITIZERS_H_
