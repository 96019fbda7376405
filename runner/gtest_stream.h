// GTestStream: the test events a GoogleTest binary sends while it runs with
// --gtest_stream_result_to=HOST:PORT (GoogleTest's own StreamingListener, in
// every GoogleTest binary), parsed as they arrive, so the tests that finished
// before a crash or a hang are known although no JSON output was written.
//
//   GTestStream stream;
//   stream.Append(bytes_read_from_the_socket);  // any split, many times
//   if (!stream.running().empty()) LOG(ERROR) << stream.running();
//   std::vector<GTestSection> tests =
//       stream.Sections(Result::kErrored, "killed by SIGSEGV while running");
//
// The protocol (GoogleTest 1.12, googletest/src/gtest-internal-inl.h): one
// line per event, fields `key=value` joined by '&', the first line
// "gtest_streaming_protocol_version=1.0", then
//   event=TestProgramStart
//   event=TestIterationStart&iteration=N
//   event=TestCaseStart&name=SUITE
//   event=TestStart&name=TEST
//   event=TestPartResult&file=F&line=N&message=M    (0..n per test)
//   event=TestEnd&passed=0|1&elapsed_time=Nms
//   event=TestCaseEnd&passed=0|1&elapsed_time=Nms
//   event=TestIterationEnd&passed=0|1&elapsed_time=Nms
//   event=TestProgramEnd&passed=0|1
// where `file` and `message` have '%', '=', '&' and '\n' encoded as %XX.
//
// What the stream does not say: whether a test was skipped (GTEST_SKIP is a
// TestPartResult and passed=0, like a failure: such a test is Failed here,
// its reason the skip message), the type of a TestPartResult (a SUCCEED()
// message counts as one), a test's file and line, disabled tests (not sent).
#ifndef TASKFORK_RUNNER_GTEST_STREAM_H_
#define TASKFORK_RUNNER_GTEST_STREAM_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "reporter/result.h"
#include "runner/gtest_sections.h"

namespace taskfork::runner {

// Thread-compatible. Malformed lines (no "event=", an unknown event, a bad
// %XX, a TestEnd without a TestStart, a number that is not one, a line
// longer than kMaxLine) are counted, logged (the first few, glog WARNING)
// and ignored: the events around them still count.
class GTestStream {
 public:
  static constexpr size_t kMaxLine = 1 << 20;

  // Parses every complete line in what was buffered plus `bytes`; keeps an
  // unfinished last line for the next call.
  void Append(absl::string_view bytes);

  // The tests that ended (TestEnd), in order: Passed for passed=1, else
  // Failed with the first TestPartResult as "file:line\nmessage" (as in
  // GoogleTest's JSON) and how many more there were.
  const std::vector<GTestSection>& finished() const { return finished_; }
  // "Suite.Test" of the test that started and has not ended; "" if none.
  const std::string& running() const { return running_.name; }
  // Whether the protocol line or any event arrived.
  bool started() const { return started_; }
  // Whether TestProgramEnd arrived (the binary ran all its tests).
  bool program_ended() const { return program_ended_; }
  int malformed_lines() const { return malformed_lines_; }

  // finished(), then the running test (if any) with `running_result` and
  // `running_reason`.
  std::vector<GTestSection> Sections(reporter::Result running_result,
                                     absl::string_view running_reason) const;

 private:
  void ParseLine(absl::string_view line);
  void Malformed(absl::string_view line, absl::string_view why);

  std::string buffer_;
  bool skipping_long_line_ = false;
  bool started_ = false;
  bool program_ended_ = false;
  int malformed_lines_ = 0;
  std::string suite_;
  GTestSection running_;       // name empty: none
  int running_failures_ = 0;
  std::vector<GTestSection> finished_;
};

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_GTEST_STREAM_H_
