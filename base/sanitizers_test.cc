#include "base/sanitizers.h"

#include "gtest/gtest.h"

// The sanitizer runtimes define these; a weak reference is null without them.
extern "C" void __asan_init() __attribute__((weak));
extern "C" void __tsan_init() __attribute__((weak));

namespace taskfork {
namespace {

// The constants agree with the runtime actually linked in, under every
// configuration (plain, --config=asan, asan_ubsan, tsan, fuzz): a
// configuration that hides the compiler's macro must define the project's.
TEST(Sanitizers, ConstantsMatchTheLinkedRuntime) {
  EXPECT_EQ(kAddressSanitizer, &__asan_init != nullptr);
  EXPECT_EQ(kThreadSanitizer, &__tsan_init != nullptr);
}

}  // namespace
}  // namespace taskfork
