// A GoogleTest binary for the gtest task tests: four tests in order
// (Order.First, Order.Second, Order.Third, Order.Fourth); an argument
// --mode=MODE[,MODE...] says what they do, --announce=FIFO that Order.Third
// writes "<pid>\n" to FIFO before it hangs:
//   pass       all pass (the default)
//   crash      Order.Third raises SIGSEGV
//   abort      Order.Third calls abort()
//   exit       Order.Third calls exit(3)
//   hang       Order.Third blocks forever reading a pipe nobody writes
//   ignore_term  with hang: Order.Third ignores SIGTERM first
//   utf8       Order.Fourth fails with a non-ASCII message
//   no_stream  all pass, but --gtest_stream_result_to is dropped before
//              GoogleTest sees it (a binary that never connects)
//   garbage    like pass, and Order.Second writes a malformed line into
//              the stream socket first
//   stranger   before GoogleTest connects, a child process connects to the
//              stream port, sends a test Evil.Intruder and stays connected
//              (blocked until the task's process group is killed)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace {

std::vector<std::string>& Modes() {
  static auto* modes = new std::vector<std::string>{"pass"};
  return *modes;
}

std::string& Announce() {
  static auto* path = new std::string;
  return *path;
}

bool Mode(absl::string_view mode) {
  return std::find(Modes().begin(), Modes().end(), mode) != Modes().end();
}

TEST(Order, First) { EXPECT_EQ(1 + 1, 2); }

TEST(Order, Second) {
  if (Mode("garbage")) {
    // The stream socket is the lowest descriptor above stdio that is a
    // socket; write a line GoogleTest would never send.
    for (int fd = 3; fd < 64; ++fd) {
      char link[64];
      const std::string path = "/proc/self/fd/" + std::to_string(fd);
      const ssize_t n = ::readlink(path.c_str(), link, sizeof(link));
      if (n > 0 && absl::StartsWith(std::string(link, n), "socket:")) {
        constexpr char kGarbage[] = "event=TestEnd&passed=maybe\nnot a line\n";
        ASSERT_EQ(::write(fd, kGarbage, sizeof(kGarbage) - 1),
                  static_cast<ssize_t>(sizeof(kGarbage) - 1));
        break;
      }
    }
  }
  EXPECT_EQ(std::string("a") + "b", "ab");
}

TEST(Order, Third) {
  if (Mode("crash")) {
    // Without a sanitizer's SEGV handler, which would report and abort.
    ::signal(SIGSEGV, SIG_DFL);
    ::raise(SIGSEGV);
  }
  if (Mode("abort")) std::abort();
  if (Mode("exit")) std::exit(3);
  if (Mode("ignore_term")) ::signal(SIGTERM, SIG_IGN);
  if (Mode("hang")) {
    if (!Announce().empty()) {
      const int fifo = ::open(Announce().c_str(), O_WRONLY | O_CLOEXEC);
      ASSERT_GE(fifo, 0) << Announce();
      const std::string line = std::to_string(::getpid()) + "\n";
      ASSERT_EQ(::write(fifo, line.data(), line.size()),
                static_cast<ssize_t>(line.size()));
      ::close(fifo);
    }
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    char byte;
    // Blocks: this process holds the write end and never writes.
    (void)::read(fds[0], &byte, 1);
  }
}

TEST(Order, Fourth) {
  if (Mode("utf8")) {
    ADD_FAILURE() << "Grüße: ä ö ü ß, party \xF0\x9F\x8E\x89";
  }
}

// Forks the process that connects first (mode "stranger") and waits until
// it has connected and sent its lines.
void StartStranger(const std::vector<char*>& args) {
  int port = 0;
  for (const char* arg : args) {
    if (std::strncmp(arg, "--gtest_stream_result_to=127.0.0.1:", 35) == 0) {
      port = std::atoi(arg + 35);
    }
  }
  if (port == 0) return;
  int hold[2];  // never written: the stranger blocks reading it
  int ready[2];
  if (::pipe(hold) != 0 || ::pipe(ready) != 0) std::abort();
  const pid_t pid = ::fork();
  if (pid < 0) std::abort();
  if (pid == 0) {
    ::close(ready[0]);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address),
                  sizeof(address)) != 0) {
      ::_exit(1);
    }
    constexpr char kLines[] =
        "gtest_streaming_protocol_version=1.0\n"
        "event=TestCaseStart&name=Evil\n"
        "event=TestStart&name=Intruder\n"
        "event=TestEnd&passed=1&elapsed_time=0ms\n";
    (void)::write(fd, kLines, sizeof(kLines) - 1);
    (void)::write(ready[1], "x", 1);
    char byte;
    (void)::read(hold[0], &byte, 1);
    ::_exit(0);
  }
  ::close(hold[0]);
  ::close(hold[1]);
  ::close(ready[1]);
  char byte;
  if (::read(ready[0], &byte, 1) != 1) std::abort();
  ::close(ready[0]);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--mode=", 7) == 0) {
      Modes() = absl::StrSplit(argv[i] + 7, ',');
      continue;
    }
    if (std::strncmp(argv[i], "--announce=", 11) == 0) {
      Announce() = argv[i] + 11;
      continue;
    }
    args.push_back(argv[i]);
  }
  if (Mode("stranger")) StartStranger(args);
  if (Mode("no_stream")) {
    for (auto it = args.begin(); it != args.end();) {
      it = std::strncmp(*it, "--gtest_stream_result_to=", 25) == 0
               ? args.erase(it)
               : it + 1;
    }
  }
  // Run under a `bazel test`: its four tests, whatever the outer test's
  // filter (GoogleTest took it from TESTBRIDGE_TEST_ONLY at static
  // initialization), and without touching the outer test's premature-exit
  // file.
  GTEST_FLAG_SET(filter, "*");
  ::unsetenv("TEST_PREMATURE_EXIT_FILE");
  int count = static_cast<int>(args.size());
  args.push_back(nullptr);
  ::testing::InitGoogleTest(&count, args.data());
  return RUN_ALL_TESTS();
}
