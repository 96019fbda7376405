#include "reporter/secret.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/test_util.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

std::string TempDir() {
  std::string tmpl = absl::StrCat(
      std::getenv("TEST_TMPDIR") != nullptr ? std::getenv("TEST_TMPDIR") : "/tmp",
      "/secret_test_XXXXXX");
  CHECK_NOTNULL(::mkdtemp(tmpl.data()));
  return tmpl;
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(SecretFileTest, CreatesA0600FileOfHexDigitsAndReadsItBack) {
  const std::string path = TempDir() + "/reporter.secret";
  auto secret = CreateSecretFile(path);
  ASSERT_THAT(secret, IsOk());
  EXPECT_EQ(secret->size(), 2 * kSecretBytes);
  EXPECT_TRUE(std::all_of(secret->begin(), secret->end(), absl::ascii_isxdigit));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(ReadFile(path), *secret + "\n");
  EXPECT_THAT(ReadSecretFile(path), ::taskfork::testing::IsOkAndHolds(*secret));
  // Fresh randomness each time.
  auto other = CreateSecretFile(path + "2");
  ASSERT_THAT(other, IsOk());
  EXPECT_NE(*other, *secret);
}

TEST(SecretFileTest, NarrowUmaskStillLeavesTheOwnerAReadableFile) {
  const std::string path = TempDir() + "/reporter.secret";
  const mode_t old = ::umask(0277);
  auto secret = CreateSecretFile(path);
  ::umask(old);
  ASSERT_THAT(secret, IsOk());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(SecretFileTest, ExistingFileIsNeverOverwritten) {
  const std::string path = TempDir() + "/reporter.secret";
  WriteFile(path, "precious\n");
  EXPECT_THAT(CreateSecretFile(path),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(path)));
  EXPECT_EQ(ReadFile(path), "precious\n");
  // Nor a symlink's target.
  const std::string target = path + ".target";
  const std::string link = path + ".link";
  ASSERT_EQ(::symlink(target.c_str(), link.c_str()), 0);
  EXPECT_THAT(CreateSecretFile(link),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(link)));
  EXPECT_NE(::access(target.c_str(), F_OK), 0);
}

TEST(SecretFileTest, MissingDirectoryNamesThePath) {
  const std::string path = TempDir() + "/no/such/reporter.secret";
  EXPECT_THAT(CreateSecretFile(path),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
}

TEST(SecretFileTest, ReadErrorsNameThePath) {
  const std::string dir = TempDir();
  EXPECT_THAT(ReadSecretFile(dir + "/missing"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir + "/missing")));
  const std::string shorter = dir + "/short";
  WriteFile(shorter, "abcdef\n");
  EXPECT_THAT(ReadSecretFile(shorter),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(shorter + " does not hold a secret")));
  const std::string longer = dir + "/long";
  WriteFile(longer, std::string(2 * kSecretBytes + 1, 'a'));
  EXPECT_THAT(ReadSecretFile(longer),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(longer)));
  const std::string not_hex = dir + "/not_hex";
  WriteFile(not_hex, std::string(2 * kSecretBytes, 'g'));
  EXPECT_THAT(ReadSecretFile(not_hex),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(not_hex)));
  if (::geteuid() != 0) {
    const std::string unreadable = dir + "/unreadable";
    WriteFile(unreadable, std::string(2 * kSecretBytes, 'a'));
    ASSERT_EQ(::chmod(unreadable.c_str(), 0), 0);
    EXPECT_THAT(ReadSecretFile(unreadable),
                StatusIs(absl::StatusCode::kPermissionDenied,
                         HasSubstr(unreadable)));
  }
}

TEST(SecretsEqualTest, ComparesWholeStrings) {
  EXPECT_TRUE(SecretsEqual("abc", "abc"));
  EXPECT_FALSE(SecretsEqual("abc", "abd"));
  EXPECT_FALSE(SecretsEqual("abc", "xbc"));
  EXPECT_FALSE(SecretsEqual("abc", "abcd"));
  EXPECT_FALSE(SecretsEqual("", "a"));
  EXPECT_TRUE(SecretsEqual("", ""));
}

}  // namespace
}  // namespace taskfork::reporter
