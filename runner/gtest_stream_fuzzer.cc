// libFuzzer target for GTestStream (runner/gtest_stream.h): arbitrary bytes
// as a GoogleTest binary's stream. Besides "no crash, no leak, no UB" it
// checks that
//   - the bytes split in two Append() calls (at a point the first byte
//     chooses) parse exactly as in one call;
//   - no more tests end than there are lines, and every reason stays near
//     kMaxGTestReason.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "glog/logging.h"
#include "reporter/result.h"
#include "runner/gtest_sections.h"
#include "runner/gtest_stream.h"

namespace {

using ::taskfork::runner::GTestSection;
using ::taskfork::runner::GTestStream;

[[noreturn]] void Fail(absl::string_view what) {
  std::cerr << "gtest_stream_fuzzer: " << what << "\n";
  std::abort();
}

bool Same(const std::vector<GTestSection>& a,
          const std::vector<GTestSection>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].result != b[i].result ||
        a[i].reason != b[i].reason || a[i].time != b[i].time) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The malformed-line warnings would be most of the run's time.
  static const bool quiet = [] {
    FLAGS_minloglevel = google::GLOG_ERROR;
    return true;
  }();
  (void)quiet;
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  GTestStream whole;
  whole.Append(bytes);
  GTestStream split;
  const size_t at = size == 0 ? 0 : data[0] % (size + 1);
  split.Append(bytes.substr(0, at));
  split.Append(bytes.substr(at));
  if (!Same(whole.finished(), split.finished()) ||
      whole.running() != split.running() ||
      whole.malformed_lines() != split.malformed_lines() ||
      whole.started() != split.started() ||
      whole.program_ended() != split.program_ended()) {
    Fail("a split input parses differently");
  }
  size_t lines = 0;
  for (char c : bytes) lines += c == '\n';
  if (whole.finished().size() > lines) Fail("more tests than lines");
  const std::vector<GTestSection> sections =
      whole.Sections(taskfork::reporter::Result::kErrored, "crashed");
  for (const GTestSection& test : sections) {
    if (test.reason.size() > taskfork::runner::kMaxGTestReason + 64) {
      Fail("a reason longer than the limit");
    }
  }
  return 0;
}
