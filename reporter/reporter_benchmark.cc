// Reporter throughput against the raw Unix-socket floor, in one binary.
//
//   BM_RawUnixSocket_Events      the floor: the same section start/stop frames
//                                written (64 KiB batches) by one process to a
//                                Unix socket, read and discarded by another.
//   BM_Reporter_Events_1Client   one client process -> ReporterServer; counted
//                                when the server has applied them (Sync()).
//   BM_Reporter_Events_8Clients  eight client processes at once.
// Each iteration moves kEventsPerIteration events (start + stop = 2 events).
// Counter `events/s`; the ratios to the floor are printed at the end.
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "glog/logging.h"
#include "reporter/client.h"
#include "reporter/frame.h"
#include "reporter/report.pb.h"
#include "reporter/report_builder.h"
#include "reporter/server.h"

namespace taskfork::reporter {
namespace {

constexpr int kEventsPerIteration = 20000;

std::map<std::string, double>& Rates() {
  static auto* rates = new std::map<std::string, double>;
  return *rates;
}

// A forked worker process driven by one byte per iteration.
struct Worker {
  pid_t pid = -1;
  int go = -1;    // parent writes 1 byte per iteration; close = exit
  int done = -1;  // worker writes 1 byte per finished iteration
};

// All live workers' parent-side pipe ends: a new worker must close its copies,
// or an earlier worker would never see end-of-file on its `go` pipe.
std::vector<int>& ParentEnds() {
  static auto* ends = new std::vector<int>;
  return *ends;
}

Worker Spawn(const std::function<void(int go, int done)>& body) {
  int go[2], done[2];
  PCHECK(::pipe(go) == 0 && ::pipe(done) == 0);
  Worker w;
  w.pid = ::fork();
  PCHECK(w.pid >= 0);
  if (w.pid == 0) {
    for (int fd : ParentEnds()) ::close(fd);
    ::close(go[1]);
    ::close(done[0]);
    body(go[0], done[1]);
    ::_exit(0);
  }
  ::close(go[0]);
  ::close(done[1]);
  w.go = go[1];
  w.done = done[0];
  ParentEnds().push_back(w.go);
  ParentEnds().push_back(w.done);
  return w;
}

void Go(const Worker& w) { PCHECK(::write(w.go, "g", 1) == 1); }
bool WaitDone(const Worker& w) {
  char c;
  return ::read(w.done, &c, 1) == 1;
}
bool WaitGo(int go) {
  char c;
  return ::read(go, &c, 1) == 1;
}
void Signal(int done) { PCHECK(::write(done, "d", 1) == 1); }
void Stop(Worker& w) {
  auto& ends = ParentEnds();
  ends.erase(std::remove_if(ends.begin(), ends.end(),
                            [&](int fd) { return fd == w.go || fd == w.done; }),
             ends.end());
  ::close(w.go);
  int status;
  ::waitpid(w.pid, &status, 0);
  ::close(w.done);
}

// One start/stop pair as the client would encode it.
std::string EncodedPair(uint64_t id) {
  std::string out;
  ClientMessage start;
  SectionStart* s = start.mutable_section_start();
  s->set_id(id);
  s->set_type("Section");
  s->set_name("section");
  s->mutable_source()->set_file("reporter/reporter_benchmark.cc");
  s->mutable_source()->set_line(100);
  *s->mutable_time() = ToProtoTime(absl::Now());
  AppendFrame(start, &out);
  ClientMessage stop;
  stop.mutable_section_stop()->set_id(id);
  *stop.mutable_section_stop()->mutable_time() = ToProtoTime(absl::Now());
  AppendFrame(stop, &out);
  return out;
}

// CPU time a process has used so far, in ns (/proc/PID/schedstat), or 0.
double CpuNs(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/schedstat"));
  double ns = 0;
  in >> ns;
  return ns;
}

double CpuNs(const std::vector<pid_t>& pids) {
  double sum = 0;
  for (pid_t pid : pids) sum += CpuNs(pid);
  return sum;
}

// CPU ns per event of the receiving side (server / reader) and of the
// sending side (clients / writer): robust against a loaded machine, where
// wall-clock events/s is not.
void RecordCpu(benchmark::State& state, int64_t events, double receiver_ns,
               double sender_ns) {
  if (events == 0) return;
  state.counters["recv_cpu_ns/event"] = receiver_ns / events;
  state.counters["send_cpu_ns/event"] = sender_ns / events;
}

void Record(benchmark::State& state, int64_t events) {
  state.counters["events/s"] =
      benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
  state.SetItemsProcessed(events);
}

void BM_RawUnixSocket_Events(benchmark::State& state) {
  std::string batch;
  for (int i = 0; i < kEventsPerIteration / 2; ++i) batch += EncodedPair(i + 1);
  int sv[2];
  PCHECK(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  const size_t bytes_per_iteration = batch.size();
  Worker reader = Spawn([&](int go, int done) {
    ::close(sv[0]);
    std::vector<char> buf(256 * 1024);
    size_t got = 0;
    for (;;) {
      const ssize_t n = ::read(sv[1], buf.data(), buf.size());
      if (n <= 0) return;
      got += static_cast<size_t>(n);
      while (got >= bytes_per_iteration) {
        got -= bytes_per_iteration;
        Signal(done);
      }
    }
  });
  Worker writer = Spawn([&](int go, int done) {
    ::close(sv[1]);
    while (WaitGo(go)) {
      for (size_t off = 0; off < batch.size();) {
        const size_t n = std::min<size_t>(64 * 1024, batch.size() - off);
        const ssize_t w = ::write(sv[0], batch.data() + off, n);
        if (w <= 0) return;
        off += static_cast<size_t>(w);
      }
    }
  });
  ::close(sv[0]);
  ::close(sv[1]);
  int64_t events = 0;
  const double reader0 = CpuNs(reader.pid), writer0 = CpuNs(writer.pid);
  for (auto _ : state) {
    Go(writer);
    if (!WaitDone(reader)) {
      state.SkipWithError("reader died");
      break;
    }
    events += kEventsPerIteration;
  }
  RecordCpu(state, events, CpuNs(reader.pid) - reader0, CpuNs(writer.pid) - writer0);
  Stop(writer);
  Stop(reader);
  Record(state, events);
}

// `tcp`: the clients connect over loopback TCP with the run secret.
void BM_Reporter_Events(benchmark::State& state, int clients, bool tcp = false) {
  char dir[] = "/tmp/reporter_bench_XXXXXX";
  PCHECK(::mkdtemp(dir) != nullptr);
  ReporterServerOptions options;
  options.runinfo_dir = dir;
  options.job_name = "bench";
  if (tcp) options.tcp_listen = "127.0.0.1:0";
  auto server = ReporterServer::Start(options);
  if (!server.ok()) {
    state.SkipWithError(server.status().ToString().c_str());
    return;
  }
  const int pairs_per_client = kEventsPerIteration / 2 / clients;
  std::vector<Worker> workers;
  for (int c = 0; c < clients; ++c) {
    workers.push_back(Spawn([&, c](int go, int done) {
      ReportClientOptions o;
      o.socket_path = tcp ? server->tcp_address() : server->socket_path();
      o.secret_file = server->secret_file();
      o.task_id = absl::StrCat("client", c);
      auto client = ReportClient::Connect(o);
      if (!client.ok()) return;  // the parent sees EOF on `done`
      while (WaitGo(go)) {
        for (int i = 0; i < pairs_per_client; ++i) {
          auto id = client->StartSection("section");
          if (!id.ok() || !client->StopSection(*id).ok()) return;
        }
        if (!client->Sync().ok()) return;
        Signal(done);
      }
    }));
  }
  // Let every client connect before timing.
  std::vector<pid_t> pids;
  for (const Worker& w : workers) pids.push_back(w.pid);
  int64_t events = 0;
  const double server0 = CpuNs(server->pid()), clients0 = CpuNs(pids);
  for (auto _ : state) {
    for (const Worker& w : workers) Go(w);
    bool ok = true;
    for (const Worker& w : workers) ok = WaitDone(w) && ok;
    if (!ok) {
      state.SkipWithError("a client process failed");
      break;
    }
    events += 2 * pairs_per_client * clients;
  }
  RecordCpu(state, events, CpuNs(server->pid()) - server0, CpuNs(pids) - clients0);
  for (Worker& w : workers) Stop(w);
  Record(state, events);
  // Kill the server (destructor); the report is not the point here.
  server = absl::UnknownError("done");
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void BM_Reporter_Events_1Client(benchmark::State& state) {
  BM_Reporter_Events(state, 1);
}
void BM_Reporter_Events_8Clients(benchmark::State& state) {
  BM_Reporter_Events(state, 8);
}
void BM_Reporter_Events_1Client_Tcp(benchmark::State& state) {
  BM_Reporter_Events(state, 1, /*tcp=*/true);
}

BENCHMARK(BM_RawUnixSocket_Events)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Reporter_Events_1Client)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Reporter_Events_8Clients)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Reporter_Events_1Client_Tcp)->UseRealTime()->Unit(benchmark::kMillisecond);

// Collects the events/s of every finished run for the summary.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      auto it = run.counters.find("events/s");
      // With --benchmark_repetitions, keep the median.
      const bool wanted = run.run_type == Run::RT_Iteration ||
                          run.aggregate_name == "median";
      if (it != run.counters.end() && !run.error_occurred && wanted) {
        // kIsRate counters are finalized by the time they are reported.
        const std::string name = run.benchmark_name();
        Rates()[name.substr(0, name.find('/'))] = it->second.value;
      }
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace
}  // namespace taskfork::reporter

int main(int argc, char** argv) {
  using taskfork::reporter::Rates;
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  taskfork::reporter::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  const auto& rates = Rates();
  auto get = [&](const char* name) {
    auto it = rates.find(name);
    return it == rates.end() ? 0.0 : it->second;
  };
  const double raw = get("BM_RawUnixSocket_Events");
  const double one = get("BM_Reporter_Events_1Client");
  const double eight = get("BM_Reporter_Events_8Clients");
  const double tcp = get("BM_Reporter_Events_1Client_Tcp");
  std::printf("\nsummary (events/s): raw floor %.0f, reporter 1 client %.0f, "
              "reporter 8 clients %.0f, reporter 1 client over TCP %.0f\n",
              raw, one, eight, tcp);
  if (one > 0) std::printf("TCP / Unix socket, 1 client: %.2f\n", tcp / one);
  if (raw > 0) {
    std::printf("ratio to raw floor: 1 client %.2f, 8 clients %.2f "
                "(target >= 0.50; 8 clients target >= 200000 events/s)\n",
                one / raw, eight / raw);
  }
  return 0;
}
