// Task functions for the fault-injection suite (tests/faults/), linked into
// //tests/faults:fault_runner. Each one misbehaves in one way. They
// synchronise with the test through FIFOs named in their arguments, never by
// sleeping: a task writes "<pid>\n" lines to an announce FIFO the test holds
// open, and waits on a "go" FIFO the test opens and closes.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "fork/pcall.h"
#include "fork/process.h"
#include "glog/logging.h"
#include "ipc/queue.h"
#include "ipc/typed.h"
#include "reporter/client.h"
#include "runner/task_function.h"

namespace taskfork::faults {
namespace {

using runner::TaskContext;

// Writes "<pid>\n" to the FIFO at `path` (one write: atomic for a FIFO).
absl::Status Announce(const std::string& path, pid_t pid) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  const std::string line = absl::StrCat(pid, "\n");
  const ssize_t n = RetryOnEintr(
      [&] { return ::write(fd, line.data(), line.size()); });
  const int saved = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size())) {
    return ErrnoError(n < 0 ? saved : EIO, "write", path);
  }
  return absl::OkStatus();
}

// Blocks until the test opens and closes (or writes to) the FIFO at `path`.
absl::Status AwaitGo(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  char byte;
  RetryOnEintr([&] { return ::read(fd, &byte, 1); });
  ::close(fd);
  return absl::OkStatus();
}

[[noreturn]] void PauseForever() {
  while (true) ::pause();
}

absl::StatusOr<int64_t> IntArg(const TaskContext& context, size_t i) {
  int64_t value = 0;
  if (i >= context.args().size() ||
      !absl::SimpleAtoi(context.args()[i], &value)) {
    return absl::InvalidArgumentError(
        absl::StrCat("task ", context.id(), ": argument ", i,
                     " must be an integer"));
  }
  return value;
}

// args: announce_fifo. Reports steps with 8 KiB names in a section, flushing
// after each, forever: a SIGKILL lands in the middle of a section, most
// likely while the client is sending. Announces its pid after 50 steps.
TASKFORK_TASK(fault_report_forever)(TaskContext& context) {
  if (context.reporter() == nullptr) {
    return absl::FailedPreconditionError("no reporter");
  }
  reporter::ScopedSection section = context.reporter()->Section("flooding");
  const std::string padding(8 << 10, 'p');
  for (int64_t i = 0;; ++i) {
    section.Step(absl::StrCat("step ", i, " ", padding));
    (void)context.reporter()->Flush();
    if (i == 50) {
      absl::Status announced = Announce(context.args().at(0), ::getpid());
      if (!announced.ok()) return announced;
    }
  }
}

// A real invalid memory access inside a section (flushed first: events still
// queued in the client when a process dies are lost with it).
TASKFORK_TASK(fault_segv)(TaskContext& context) {
  reporter::ScopedSection section;
  if (context.reporter() != nullptr) {
    section = context.reporter()->Section("crashing");
    (void)context.reporter()->Flush();
  }
  // A store to a page mapped PROT_NONE: a real SIGSEGV, and not undefined
  // behaviour UBSan would stop first (as a null store is, under
  // --config=asan_ubsan).
  void* page = ::mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return ErrnoError(errno, "mmap PROT_NONE page");
  LOG(INFO) << "fault_segv: writing to the PROT_NONE page at " << page;
  *static_cast<volatile int*>(page) = 42;
  return absl::InternalError("the store to a PROT_NONE page did not fault");
}

// Opens a section and never ends (a timeout must stop it).
TASKFORK_TASK(fault_hang)(TaskContext& context) {
  reporter::ScopedSection section;
  if (context.reporter() != nullptr) {
    section = context.reporter()->Section("hanging");
    (void)context.reporter()->Flush();
  }
  LOG(INFO) << "fault_hang: hanging";
  PauseForever();
}

// args: announce_fifo, n. The task and every descendant ignore SIGTERM: n
// children, each with one grandchild; every process (task included)
// announces its pid, then all of them hang.
TASKFORK_TASK(fault_stubborn_family)(TaskContext& context) {
  const std::string fifo = context.args().at(0);
  absl::StatusOr<int64_t> n = IntArg(context, 1);
  if (!n.ok()) return n.status();
  ::signal(SIGTERM, SIG_IGN);
  for (int64_t i = 0; i < *n; ++i) {
    const pid_t child = ::fork();
    if (child < 0) return ErrnoError(errno, "fork");
    if (child == 0) {
      if (::fork() == 0) {
        (void)Announce(fifo, ::getpid());
        PauseForever();
      }
      (void)Announce(fifo, ::getpid());
      PauseForever();
    }
  }
  absl::Status announced = Announce(fifo, ::getpid());
  if (!announced.ok()) return announced;
  PauseForever();
}

// args: bytes. Writes that many bytes of text to stdout in 1 MiB writes.
TASKFORK_TASK(fault_stdout_flood)(TaskContext& context) {
  absl::StatusOr<int64_t> total = IntArg(context, 0);
  if (!total.ok()) return total.status();
  std::string chunk(1 << 20, 'x');
  for (size_t i = 127; i < chunk.size(); i += 128) chunk[i] = '\n';
  int64_t written = 0;
  while (written < *total) {
    const size_t want =
        static_cast<size_t>(std::min<int64_t>(chunk.size(), *total - written));
    const ssize_t n =
        RetryOnEintr([&] { return ::write(STDOUT_FILENO, chunk.data(), want); });
    if (n <= 0) return ErrnoError(n < 0 ? errno : EIO, "write", "stdout");
    written += n;
  }
  LOG(INFO) << "fault_stdout_flood: wrote " << written << " bytes to stdout";
  return absl::OkStatus();
}

// args: n, pids_file. Forks n children: the even ones exit at once and are
// reaped, the odd ones ignore SIGTERM and hang. Writes every child's pid to
// pids_file, then passes while the hanging half still runs.
TASKFORK_TASK(fault_fork_many)(TaskContext& context) {
  absl::StatusOr<int64_t> n = IntArg(context, 0);
  if (!n.ok()) return n.status();
  std::vector<pid_t> exiting;
  std::string pids;
  for (int64_t i = 0; i < *n; ++i) {
    const pid_t child = ::fork();
    if (child < 0) return ErrnoError(errno, "fork");
    if (child == 0) {
      if (i % 2 == 0) ::_exit(0);
      ::signal(SIGTERM, SIG_IGN);
      PauseForever();
    }
    if (i % 2 == 0) exiting.push_back(child);
    absl::StrAppend(&pids, child, "\n");
  }
  for (pid_t child : exiting) {
    int status = 0;
    if (RetryOnEintr([&] { return ::waitpid(child, &status, 0); }) != child) {
      return ErrnoError(errno, "waitpid");
    }
  }
  const std::string path = context.args().at(1);
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return ErrnoError(errno, "fopen", path);
  std::fputs(pids.c_str(), file);
  std::fclose(file);
  LOG(INFO) << "fault_fork_many: " << *n << " children, " << exiting.size()
            << " reaped, the rest still running";
  return absl::OkStatus();
}

// args: announce_fifo, go_fifo. A section with a step before and after
// waiting for the test: the test acts while the task is mid-section.
TASKFORK_TASK(fault_block)(TaskContext& context) {
  if (context.reporter() == nullptr) {
    return absl::FailedPreconditionError("no reporter");
  }
  reporter::ScopedSection section = context.reporter()->Section("guarded");
  section.Step("before");
  absl::Status synced = context.reporter()->Sync();
  if (!synced.ok()) return synced;
  absl::Status announced = Announce(context.args().at(0), ::getpid());
  if (!announced.ok()) return announced;
  absl::Status go = AwaitGo(context.args().at(1));
  if (!go.ok()) return go;
  section.Step("after");
  return absl::OkStatus();
}

// args: capacity_bytes. Creates an anonymous ipc::Queue of that capacity and
// moves one value through it from a forked child. A queue that cannot be
// created fails the task with the queue's status (e.g. RESOURCE_EXHAUSTED).
TASKFORK_TASK(fault_shm_queue)(TaskContext& context) {
  absl::StatusOr<int64_t> capacity = IntArg(context, 0);
  if (!capacity.ok()) return capacity.status();
  absl::StatusOr<ipc::Queue> queue =
      ipc::Queue::Create({.capacity_bytes = static_cast<size_t>(*capacity)});
  if (!queue.ok()) return queue.status();
  absl::StatusOr<Process> child = Process::Start({}, [&queue]() -> int {
    return ipc::PutValue(*queue, std::string("hello through /dev/shm")).ok() ? 0 : 1;
  });
  if (!child.ok()) return child.status();
  absl::StatusOr<std::string> got = ipc::GetValue<std::string>(*queue);
  if (!got.ok()) return got.status();
  absl::StatusOr<ExitStatus> joined = child->Join();
  if (!joined.ok()) return joined.status();
  if (!joined->success() || *got != "hello through /dev/shm") {
    return absl::InternalError(absl::StrCat("queue child: ", joined->ToString(),
                                            ", got \"", *got, "\""));
  }
  return absl::OkStatus();
}

// args: path. Writes into `path` until the file system is full, then passes
// (the file system stays full for the rest of the job).
TASKFORK_TASK(fault_fill_disk)(TaskContext& context) {
  const std::string path = context.args().at(0);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                        0644);
  if (fd < 0) return ErrnoError(errno, "open", path);
  const std::string chunk(64 << 10, 'b');
  int64_t total = 0;
  int error = 0;
  while (error == 0) {
    const ssize_t n =
        RetryOnEintr([&] { return ::write(fd, chunk.data(), chunk.size()); });
    if (n < 0) {
      error = errno;
    } else if (n == 0) {
      error = ENOSPC;
    } else {
      total += n;
    }
  }
  ::close(fd);
  if (error != ENOSPC) return ErrnoError(error, "write", path);
  LOG(INFO) << "fault_fill_disk: " << path << " full after " << total
            << " bytes";
  return absl::OkStatus();
}

// args: rounds, children. Busy work for the random kill test: the task and
// `children` forked children each report `rounds` sections of steps (the
// children through the client that reconnects after fork), each child sends
// a value to the task through an anonymous ipc::Queue; the task fails if a
// child did not finish cleanly.
TASKFORK_TASK(fault_busy)(TaskContext& context) {
  absl::StatusOr<int64_t> rounds = IntArg(context, 0);
  if (!rounds.ok()) return rounds.status();
  absl::StatusOr<int64_t> children = IntArg(context, 1);
  if (!children.ok()) return children.status();
  absl::StatusOr<ipc::Queue> queue =
      ipc::Queue::Create({.capacity_bytes = 64 << 10});
  if (!queue.ok()) return queue.status();
  // Each round is 1 ms of "work" (a sleep: this is the load, not a
  // synchronisation), a log line, and every 10th round a reported section
  // with a step.
  auto work = [&context](const std::string& who, int64_t n) {
    reporter::ReportClient* client = context.reporter();
    for (int64_t i = 0; i < n; ++i) {
      absl::SleepFor(absl::Milliseconds(1));
      LOG(INFO) << who << " round " << i;
      if (client == nullptr || i % 10 != 0) continue;
      reporter::ScopedSection section =
          client->Section(absl::StrCat(who, " round ", i));
      section.Step("step");
      // No Flush(): what a child queued goes out when it returns (the
      // client's child-exit handler); a killed one loses it.
    }
  };
  std::vector<Process> kids;
  for (int64_t c = 0; c < *children; ++c) {
    absl::StatusOr<Process> child =
        Process::Start({.own_process_group = false}, [&, c]() -> int {
          work(absl::StrCat("child ", c), *rounds);
          return ipc::PutValue(*queue, c).ok() ? 0 : 1;
        });
    if (!child.ok()) return child.status();
    kids.push_back(std::move(*child));
  }
  work("task", *rounds);
  // Each child put its value before exiting: join first, so a killed child
  // never makes the task wait.
  for (Process& kid : kids) {
    absl::StatusOr<ExitStatus> joined = kid.Join();
    if (!joined.ok()) return joined.status();
    if (!joined->success()) {
      return absl::AbortedError(absl::StrCat("child ", joined->ToString()));
    }
  }
  for (int64_t c = 0; c < *children; ++c) {
    absl::StatusOr<int64_t> got = ipc::GetValue<int64_t>(*queue, absl::ZeroDuration());
    if (!got.ok()) return got.status();
  }
  return absl::OkStatus();
}

// No args. A Process child and two Pcall children each stop sections and
// return without Flush(): one section queued whole, one whose start was
// flushed and whose stop was still queued when the child returned, and a
// step under the task's own section. The task itself returns with its last
// section queued too. Every one must reach results.json as passed (the
// report client's child-exit handler sends them; before it, the first kind
// was missing and the second Errored "... disconnected").
TASKFORK_TASK(fault_children_report)(TaskContext& context) {
  reporter::ReportClient* client = context.reporter();
  if (client == nullptr) return absl::FailedPreconditionError("no reporter");
  reporter::ScopedSection parent = client->Section("task section");
  auto report = [client, &parent](const std::string& who) {
    { reporter::ScopedSection queued = client->Section(who + " queued"); }
    reporter::ScopedSection flushed = client->Section(who + " flushed start");
    if (!client->Flush().ok()) return false;
    { reporter::ScopedSection step = parent.Step(who + " step"); }
    return flushed.Stop().ok();
  };
  absl::StatusOr<Process> child = Process::Start(
      {}, [&report] { return report("process child") ? 0 : 1; });
  if (!child.ok()) return child.status();
  absl::StatusOr<ExitStatus> joined = child->Join();
  if (!joined.ok()) return joined.status();
  if (!joined->success()) {
    return absl::InternalError(absl::StrCat("child ", joined->ToString()));
  }
  absl::StatusOr<std::vector<bool>> calls = Pcall(
      [&report](int i) { return report(absl::StrCat("pcall child ", i)); },
      std::vector<int>{0, 1});
  if (!calls.ok()) return calls.status();
  for (bool ok : *calls) {
    if (!ok) return absl::InternalError("a Pcall child could not report");
  }
  { reporter::ScopedSection last = client->Section("task queued"); }
  return absl::OkStatus();
}

}  // namespace
}  // namespace taskfork::faults
