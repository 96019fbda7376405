// A separate program for //ipc tests that need an unrelated process (one that
// shares nothing with the test but a segment's name):
//
//   shm_test_helper shm /name        # expects "ping" at 0, writes "pong" at 4096
//
// Exit status: 0 success, 2 unexpected contents, 3 an ipc call failed, 64 usage.
#include <cstdio>
#include <cstring>
#include <string>

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

}  // namespace
}  // namespace taskfork::ipc

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "shm") {
    return taskfork::ipc::Shm(argv[2]);
  }
  std::fprintf(stderr, "usage: %s shm /name\n", argv[0]);
  return 64;
}
