// libFuzzer target: decodes arbitrary bytes as one of 16 value types (with
// the right header prepended, or as a whole encoding) and checks that what
// decodes re-encodes stably; see fuzz_types.h.
#include <cstddef>
#include <cstdint>

#include "serialize/fuzz_types.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  taskfork::serialize::fuzz::FuzzOne(data, size);
  return 0;
}
