// A separate program for //ipc tests that need an unrelated process (one that
// shares nothing with the test but a segment's name):
//
//   shm_test_helper shm /name         # expects "ping" at 0, writes "pong" at 4096
//   shm_test_helper queue-echo /in /out  # 100 times: Get from /in, Put "echo <m>" to /out
//
// Exit status: 0 success, 2 unexpected contents, 3 an ipc call failed, 64 usage.
#include <cstdio>
#include <cstring>
#include <string>

#include "ipc/queue.h"
#include "ipc/shared_memory.h"

namespace taskfork::ipc {
namespace {

int Shm(const std::string& name) {
  auto shm = SharedMemory::OpenNamed(name);
  if (!shm.ok()) {
    std::fprintf(stderr, "%s\n", shm.status().ToString().c_str());
    return 3;
  }
  char* bytes = static_cast<char*>(shm->data());
  if (shm->size() < 8192 || std::strcmp(bytes, "ping") != 0) return 2;
  std::strcpy(bytes + 4096, "pong");
  return 0;
}

int QueueEcho(const std::string& in_name, const std::string& out_name) {
  auto in = Queue::Open(in_name);
  auto out = Queue::Open(out_name);
  if (!in.ok() || !out.ok()) {
    std::fprintf(stderr, "%s %s\n", in.status().ToString().c_str(),
                 out.status().ToString().c_str());
    return 3;
  }
  for (int i = 0; i < 100; ++i) {
    auto m = in->Get(absl::Seconds(30));
    if (!m.ok() || !out->Put("echo " + *m).ok()) return 3;
  }
  return 0;
}

}  // namespace
}  // namespace taskfork::ipc

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "shm") {
    return taskfork::ipc::Shm(argv[2]);
  }
  if (argc == 4 && std::string(argv[1]) == "queue-echo") {
    return taskfork::ipc::QueueEcho(argv[2], argv[3]);
  }
  std::fprintf(stderr, "usage: %s shm /name | queue-echo /in /out\n", argv[0]);
  return 64;
}
