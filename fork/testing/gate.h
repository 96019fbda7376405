// Gate for multi-process tests: a pipe one process waits on until another
// opens it (the way a test holds a child at a point, instead of a sleep).
// Made before a fork, it is shared by parent and child.
//
//   taskfork::testing::Gate release;
//   Process child = ...Start([&] { release.Wait(); return 0; });
//   ... check the child while it waits ...
//   release.Open();
#ifndef TASKFORK_FORK_TESTING_GATE_H_
#define TASKFORK_FORK_TESTING_GATE_H_

#include <errno.h>
#include <unistd.h>

#include <utility>

#include "base/fd.h"
#include "glog/logging.h"

namespace taskfork::testing {

struct Gate {
  Gate() {
    auto ends = OwnedFd::Pipe();
    CHECK(ends.ok()) << ends.status();
    read = std::move(ends->read);
    write = std::move(ends->write);
  }
  // Lets every Wait() through (writes one byte: one waiter per Open()).
  void Open() const { CHECK_EQ(::write(write.get(), "x", 1), 1); }
  // Blocks until Open() (or until every write end is closed).
  void Wait() const {
    char c;
    while (::read(read.get(), &c, 1) < 0 && errno == EINTR) {
    }
  }
  OwnedFd read;
  OwnedFd write;
};

}  // namespace taskfork::testing

#endif  // TASKFORK_FORK_TESTING_GATE_H_
