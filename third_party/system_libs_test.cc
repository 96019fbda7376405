// The Debian system libraries, used through their upstream Bazel labels:
// Abseil, glog, protobuf (generated code importing well-known types).
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "third_party/system_libs_test.pb.h"

namespace taskfork {
namespace {

TEST(SystemLibs, ProtobufWithWellKnownTypesRoundTrips) {
  third_party::Probe probe;
  probe.set_name("tony stark");
  *probe.mutable_at() = google::protobuf::util::TimeUtil::SecondsToTimestamp(42);
  probe.mutable_took()->set_nanos(7);
  probe.add_values(-3);
  std::string wire;
  ASSERT_TRUE(probe.SerializeToString(&wire));
  third_party::Probe back;
  ASSERT_TRUE(back.ParseFromString(wire));
  EXPECT_EQ(back.name(), "tony stark");
  EXPECT_EQ(back.at().seconds(), 42);
  EXPECT_EQ(back.took().nanos(), 7);
  EXPECT_EQ(back.values(0), -3);
}

TEST(SystemLibs, AbseilComponentsLink) {
  absl::flat_hash_map<std::string, int> map = {{"a", 1}};
  absl::Mutex mu;
  absl::MutexLock lock(&mu);
  absl::StatusOr<int> value = map["a"];
  EXPECT_EQ(absl::StrFormat("%d %s", *value,
                            absl::FormatDuration(absl::Milliseconds(1500))),
            "1 1.5s");
}

TEST(SystemLibs, GlogLogs) {
  LOG(INFO) << "glog from Debian works";
  EXPECT_DEATH(LOG(FATAL) << "fatal reaches stderr", "fatal reaches stderr");
}

}  // namespace
}  // namespace taskfork
