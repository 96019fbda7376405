#include "tasklog/internal/time_gate.h"

#include <dlfcn.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstdlib>

namespace taskfork::tasklog_internal {
namespace {

// Callers inside the gated functions.
std::atomic<int32_t> g_inside{0};
// 1 while a fork is being prepared.
std::atomic<int32_t> g_closed{0};
std::atomic<uint64_t> g_passes{0};

void FutexWait(std::atomic<int32_t>* word, int32_t expected) {
  ::syscall(SYS_futex, reinterpret_cast<int32_t*>(word), FUTEX_WAIT_PRIVATE,
            expected, nullptr, nullptr, 0);
}

void FutexWakeAll(std::atomic<int32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<int32_t*>(word), FUTEX_WAKE_PRIVATE,
            INT_MAX, nullptr, nullptr, 0);
}

// Counts the caller in while the gate is open (seq_cst: a closing thread that
// sees g_inside == 0 after setting g_closed knows every later caller sees
// g_closed).
class Pass {
 public:
  Pass() {
    for (;;) {
      g_inside.fetch_add(1);
      if (g_closed.load() == 0) break;
      Leave();
      while (g_closed.load() != 0) FutexWait(&g_closed, 1);
    }
    g_passes.fetch_add(1, std::memory_order_relaxed);
  }
  ~Pass() { Leave(); }
  Pass(const Pass&) = delete;
  Pass& operator=(const Pass&) = delete;

 private:
  static void Leave() {
    if (g_inside.fetch_sub(1) == 1 && g_closed.load() != 0) {
      FutexWakeAll(&g_inside);
    }
  }
};

// The next definition of `name` after this object (glibc's, or a sanitizer
// runtime's interceptor), looked up once. Races only repeat the lookup.
template <typename Function>
Function Next(std::atomic<Function>* cache, const char* name) {
  Function function = cache->load(std::memory_order_acquire);
  if (function == nullptr) {
    function = reinterpret_cast<Function>(::dlsym(RTLD_NEXT, name));
    if (function == nullptr) std::abort();  // no libc: cannot happen
    cache->store(function, std::memory_order_release);
  }
  return function;
}

using LocaltimeR = struct tm* (*)(const time_t*, struct tm*);
using Localtime = struct tm* (*)(const time_t*);
using Mktime = time_t (*)(struct tm*);
using Tzset = void (*)();

std::atomic<LocaltimeR> g_localtime_r{nullptr};
std::atomic<Localtime> g_localtime{nullptr};
std::atomic<LocaltimeR> g_gmtime_r{nullptr};
std::atomic<Localtime> g_gmtime{nullptr};
std::atomic<Mktime> g_mktime{nullptr};
std::atomic<Mktime> g_timelocal{nullptr};
std::atomic<Mktime> g_timegm{nullptr};
std::atomic<Tzset> g_tzset{nullptr};

}  // namespace

void TimeGate::Resolve() {
  Next(&g_localtime_r, "localtime_r");
  Next(&g_localtime, "localtime");
  Next(&g_gmtime_r, "gmtime_r");
  Next(&g_gmtime, "gmtime");
  Next(&g_mktime, "mktime");
  Next(&g_timelocal, "timelocal");
  Next(&g_timegm, "timegm");
  Next(&g_tzset, "tzset");
}

void TimeGate::CloseForFork() {
  g_closed.store(1);
  for (int32_t inside = g_inside.load(); inside != 0;
       inside = g_inside.load()) {
    FutexWait(&g_inside, inside);
  }
}

void TimeGate::ReopenInParent() {
  g_closed.store(0);
  FutexWakeAll(&g_closed);
}

void TimeGate::ReopenInChild() {
  g_inside.store(0, std::memory_order_relaxed);
  g_closed.store(0, std::memory_order_relaxed);
}

uint64_t TimeGate::passes() { return g_passes.load(std::memory_order_relaxed); }

}  // namespace taskfork::tasklog_internal

// The interposing definitions (see time_gate.h).
namespace tg = ::taskfork::tasklog_internal;

extern "C" {

struct tm* localtime_r(const time_t* __restrict timer,
                       struct tm* __restrict result) noexcept {
  tg::Pass pass;
  return tg::Next(&tg::g_localtime_r, "localtime_r")(timer, result);
}

struct tm* localtime(const time_t* timer) noexcept {
  tg::Pass pass;
  return tg::Next(&tg::g_localtime, "localtime")(timer);
}

struct tm* gmtime_r(const time_t* __restrict timer,
                    struct tm* __restrict result) noexcept {
  tg::Pass pass;
  return tg::Next(&tg::g_gmtime_r, "gmtime_r")(timer, result);
}

struct tm* gmtime(const time_t* timer) noexcept {
  tg::Pass pass;
  return tg::Next(&tg::g_gmtime, "gmtime")(timer);
}

time_t mktime(struct tm* tp) noexcept {
  tg::Pass pass;
  return tg::Next(&tg::g_mktime, "mktime")(tp);
}

time_t timelocal(struct tm* tp) noexcept {
  tg::Pass pass;
  return tg::Next(&tg::g_timelocal, "timelocal")(tp);
}

time_t timegm(struct tm* tp) noexcept {
  tg::Pass pass;
  return tg::Next(&tg::g_timegm, "timegm")(tp);
}

void tzset() noexcept {
  tg::Pass pass;
  tg::Next(&tg::g_tzset, "tzset")();
}

}  // extern "C"
