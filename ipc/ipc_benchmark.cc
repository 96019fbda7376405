// Throughput and latency of //ipc across two (or four) real processes, next
// to the floor (a minimal shared-memory ring, memcpy) and the peers a user
// would pick instead (Boost.Interprocess message_queue, a kernel pipe).
// A summary with the ratios that matter is printed at the end.
//
//   bazel run -c opt //ipc:ipc_benchmark
//
// Throughput benchmarks: one iteration is a batch of messages from a producer
// to a consumer process, ending with a marker the consumer acknowledges over
// a kernel pipe, so the time covers the consumer having received everything.
#include <emmintrin.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "boost/interprocess/ipc/message_queue.hpp"
#include "ipc/pipe.h"
#include "ipc/queue.h"
#include "ipc/shared_memory.h"

namespace taskfork::ipc {
namespace {

// One byte per acknowledgement over a kernel pipe (child -> parent).
class Acks {
 public:
  Acks() {
    if (::pipe(fds_) != 0) std::abort();
  }
  ~Acks() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  void Post() {
    const char c = 1;
    if (::write(fds_[1], &c, 1) != 1) std::abort();
  }
  void Wait() {
    char c;
    if (::read(fds_[0], &c, 1) != 1) std::abort();
  }

 private:
  int fds_[2];
};

void Reap(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) std::abort();
}

// The round-trip time of one cache line between the two processes of a
// benchmark, measured before it starts (counter line_rtt_ns). On a VM the
// two vCPUs may sit on cores that share a cache or on distant ones, and the
// host may move them: cross-process figures (and their ratios) are only
// comparable between runs with similar round trips.
class LinePingPong {
 public:
  LinePingPong() {
    auto shm = SharedMemory::CreateAnonymous(4096);
    if (!shm.ok()) std::abort();
    shm_ = std::move(*shm);
    ping_ = new (shm_.data()) std::atomic<uint64_t>(0);
    pong_ = new (static_cast<char*>(shm_.data()) + 128) std::atomic<uint64_t>(0);
  }
  // In the child.
  void Answer() {
    for (uint64_t i = 1; i <= kRounds; ++i) {
      while (ping_->load(std::memory_order_acquire) != i) {
      }
      pong_->store(i, std::memory_order_release);
    }
  }
  // In the parent: the median round trip of kRounds / kPerSample samples (ns).
  double Ask() {
    std::vector<double> samples;
    for (uint64_t i = 1; i <= kRounds;) {
      const auto start = std::chrono::steady_clock::now();
      for (uint64_t end = i + kPerSample; i < end; ++i) {
        ping_->store(i, std::memory_order_release);
        while (pong_->load(std::memory_order_acquire) != i) {
        }
      }
      samples.push_back(std::chrono::duration<double, std::nano>(
                            std::chrono::steady_clock::now() - start)
                            .count() /
                        kPerSample);
    }
    std::nth_element(samples.begin(), samples.begin() + samples.size() / 2,
                     samples.end());
    return samples[samples.size() / 2];
  }

 private:
  static constexpr uint64_t kRounds = 5000, kPerSample = 500;
  SharedMemory shm_;
  std::atomic<uint64_t>* ping_;
  std::atomic<uint64_t>* pong_;
};

// Messages of size 0 end a batch (the consumer acknowledges), size 1 stops.
template <typename Send, typename Recv>
void Throughput(benchmark::State& state, size_t size, int batch, Send send,
                Recv recv) {
  LinePingPong pingpong;
  Acks acks;
  const pid_t pid = ::fork();
  if (pid == 0) {
    pingpong.Answer();
    std::string m;
    for (;;) {
      recv(&m);
      if (m.size() == 0) acks.Post();
      if (m.size() == 1) ::_exit(0);
    }
  }
  state.counters["line_rtt_ns"] = pingpong.Ask();
  const std::string message(size, 'x');
  for (auto _ : state) {
    for (int i = 0; i < batch; ++i) send(message);
    send("");
    acks.Wait();
  }
  send("!");
  Reap(pid);
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch * static_cast<int64_t>(size));
}

// ---------------------------------------------------------------------------
// The floor: minimal SPSC rings of 64-byte messages, each message visible to
// the consumer as soon as it is written (as in any queue), spinning.

struct alignas(64) RawRing {
  static constexpr uint64_t kSlots = 16384;
  alignas(64) std::atomic<uint64_t> tail{0};
  alignas(64) uint64_t cached_head = 0;
  alignas(64) std::atomic<uint64_t> head{0};
  alignas(64) uint64_t cached_tail = 0;
  alignas(64) char slots[kSlots][128];
};

inline void Pause(int n) {
  for (int i = 0; i < n; ++i) __builtin_ia32_pause();
}

// memcpy with non-temporal (streaming) stores; `size` a multiple of 64 and
// `to` 64-byte aligned.
void StreamingCopy(char* to, const char* from, size_t size) {
  for (size_t i = 0; i < size; i += 16) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(to + i),
                     _mm_loadu_si128(reinterpret_cast<const __m128i*>(from + i)));
  }
  _mm_sfence();
}

enum class RingKind {
  kNaive,     // reads the other side's index for every message
  kCached,    // cached indices; the consumer re-reads tail when it runs dry
  kCachedBackoff,  // the same, but a dry consumer re-reads tail only after
                   // 1, 2, 4, ... 64 pauses
  kStamped,   // no tail: each 64-byte message is followed by its sequence
              // number, which the consumer polls (slots of 72 bytes)
  kStampedBackoff,  // the same, polling after 1, 2, 4, ... 32 pauses
};

template <RingKind kKind, int kMaxGap = 64>
void RawRingBenchmark(benchmark::State& state) {
  auto shm = SharedMemory::CreateAnonymous(sizeof(RawRing));
  if (!shm.ok()) return state.SkipWithError(shm.status().ToString().c_str());
  RawRing* ring = new (shm->data()) RawRing;
  constexpr bool kStampedKind =
      kKind == RingKind::kStamped || kKind == RingKind::kStampedBackoff;
  constexpr size_t kStride = kStampedKind ? 72 : 64;
  char* const base = &ring->slots[0][0];
  auto slot = [base](uint64_t i) { return base + (i % RawRing::kSlots) * kStride; };
  auto push = [ring, slot](const char* message) {
    const uint64_t t = ring->tail.load(std::memory_order_relaxed);
    if (kKind == RingKind::kNaive) {
      while (t - ring->head.load(std::memory_order_acquire) == RawRing::kSlots) {
      }
    } else {
      for (int gap = 1; t - ring->cached_head == RawRing::kSlots;) {
        ring->cached_head = ring->head.load(std::memory_order_acquire);
        if (kKind != RingKind::kCached && kKind != RingKind::kStamped) {
          Pause(gap);
          if (gap < kMaxGap) gap *= 2;
        }
      }
    }
    if (kStampedKind) {
      std::memcpy(slot(t), message, 64);
      reinterpret_cast<std::atomic<uint64_t>*>(slot(t) + 64)
          ->store(t + 1, std::memory_order_release);
      ring->tail.store(t + 1, std::memory_order_relaxed);  // producer-private
    } else {
      std::memcpy(slot(t), message, 64);
      ring->tail.store(t + 1, std::memory_order_release);
    }
  };
  auto pop = [ring, slot](char* message) {
    const uint64_t h = ring->head.load(std::memory_order_relaxed);
    if (kKind == RingKind::kNaive) {
      while (h == ring->tail.load(std::memory_order_acquire)) {
      }
    } else if (kStampedKind) {
      auto* seq = reinterpret_cast<std::atomic<uint64_t>*>(slot(h) + 64);
      for (int gap = 1; seq->load(std::memory_order_acquire) != h + 1;) {
        if (kKind == RingKind::kStampedBackoff) {
          Pause(gap);
          if (gap < kMaxGap) gap *= 2;
        }
      }
    } else {
      for (int gap = 1; h == ring->cached_tail;) {
        ring->cached_tail = ring->tail.load(std::memory_order_acquire);
        if (kKind == RingKind::kCachedBackoff && h == ring->cached_tail) {
          Pause(gap);
          if (gap < kMaxGap) gap *= 2;
        }
      }
    }
    std::memcpy(message, slot(h), 64);
    ring->head.store(h + 1, std::memory_order_release);
  };
  constexpr int kBatch = 100000;
  LinePingPong pingpong;
  Acks acks;
  const pid_t pid = ::fork();
  if (pid == 0) {
    pingpong.Answer();
    char message[64];
    for (;;) {
      pop(message);
      benchmark::DoNotOptimize(message);
      if (message[0] == 0) acks.Post();
      if (message[0] == 1) ::_exit(0);
    }
  }
  state.counters["line_rtt_ns"] = pingpong.Ask();
  char data[64], marker[64] = {0}, stop[64] = {1};
  std::memset(data, 'x', sizeof(data));
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) push(data);
    push(marker);
    acks.Wait();
  }
  push(stop);
  Reap(pid);
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * kBatch * 64);
}

void BM_RawRing_64B(benchmark::State& state) {
  RawRingBenchmark<RingKind::kStampedBackoff, 32>(state);
}
void BM_CachedBackoffRing_64B(benchmark::State& state) {
  RawRingBenchmark<RingKind::kCachedBackoff, 64>(state);
}
void BM_CachedRing_64B(benchmark::State& state) {
  RawRingBenchmark<RingKind::kCached>(state);
}
void BM_StampedRing_64B(benchmark::State& state) {
  RawRingBenchmark<RingKind::kStamped>(state);
}
void BM_NaiveRing_64B(benchmark::State& state) {
  RawRingBenchmark<RingKind::kNaive>(state);
}

void BM_Memcpy_1M(benchmark::State& state) {
  std::string from(1 << 20, 'x'), to(1 << 20, 'y');
  for (auto _ : state) {
    std::memcpy(to.data(), from.data(), from.size());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * (int64_t{1} << 20));
}

// memcpy of 1 MiB blocks cycling through 32 MiB twice over (64 MiB in all, twice the L3), so
// every copy reads and writes memory: the bandwidth a copy between processes
// can hope for once the data has left the cache.
void BM_Memcpy_1M_Uncached(benchmark::State& state) {
  constexpr size_t kBlock = 1 << 20, kBlocks = 32;
  std::string from(kBlocks * kBlock, 'x'), to(kBlocks * kBlock, 'y');
  size_t i = 0;
  for (auto _ : state) {
    std::memcpy(to.data() + i * kBlock, from.data() + i * kBlock, kBlock);
    benchmark::ClobberMemory();
    i = (i + 1) % kBlocks;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * int64_t{kBlock});
}

// The floor for large messages between processes: a ring of kSlots 1 MiB
// slots in shared memory; the producer copies a message into a slot and
// publishes its sequence number, the consumer copies it out into its own
// buffer and frees the slot. Two copies, like any queue that hands the
// consumer its own bytes, and nothing else.
template <bool kStreamingStores>
void RawCopyBenchmark(benchmark::State& state) {
  constexpr size_t kSize = 1 << 20;
  constexpr size_t slots = 8;  // 8 MiB, as BM_Queue_1M
  struct Indices {
    alignas(64) std::atomic<uint64_t> tail{0};
    alignas(64) std::atomic<uint64_t> head{0};
  };
  auto shm = SharedMemory::CreateAnonymous(4096 + slots * kSize);
  if (!shm.ok()) return state.SkipWithError(shm.status().ToString().c_str());
  auto* ix = new (shm->data()) Indices;
  char* const data = static_cast<char*>(shm->data()) + 4096;
  constexpr int kBatch = 64;
  LinePingPong pingpong;
  Acks acks;
  const pid_t pid = ::fork();
  if (pid == 0) {
    pingpong.Answer();
    std::string out(kSize, 'y');
    for (uint64_t h = 0;; ++h) {
      for (int gap = 1; ix->tail.load(std::memory_order_acquire) == h;) {
        Pause(gap);
        if (gap < 64) gap *= 2;
      }
      const char* slot = data + (h % slots) * kSize;
      std::memcpy(out.data(), slot, kSize);
      const char kind = slot[0];
      ix->head.store(h + 1, std::memory_order_release);
      benchmark::DoNotOptimize(out.data());
      if (kind == 0) acks.Post();
      if (kind == 1) ::_exit(0);
    }
  }
  state.counters["line_rtt_ns"] = pingpong.Ask();
  std::string message(kSize, 'x'), marker(kSize, '\0'), stop(kSize, '\1');
  uint64_t t = 0;
  auto push = [&](const std::string& m) {
    for (int gap = 1; t - ix->head.load(std::memory_order_acquire) == slots;) {
      Pause(gap);
      if (gap < 64) gap *= 2;
    }
    char* slot = data + (t % slots) * kSize;
    if (kStreamingStores) {
      StreamingCopy(slot, m.data(), kSize);
    } else {
      std::memcpy(slot, m.data(), kSize);
    }
    ix->tail.store(++t, std::memory_order_release);
  };
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) push(message);
    push(marker);
    acks.Wait();
  }
  push(stop);
  Reap(pid);
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * kBatch * int64_t{kSize});
}
void BM_RawCopy_1M(benchmark::State& state) { RawCopyBenchmark<true>(state); }
void BM_RawCopyCached_1M(benchmark::State& state) {
  RawCopyBenchmark<false>(state);
}

// ---------------------------------------------------------------------------
// taskfork::ipc

void QueueThroughput(benchmark::State& state, size_t size, int batch,
                     size_t capacity) {
  QueueOptions options;
  options.capacity_bytes = capacity;
  auto queue = Queue::Create(options);
  if (!queue.ok()) return state.SkipWithError(queue.status().ToString().c_str());
  Throughput(
      state, size, batch,
      [&](absl::string_view m) {
        if (!queue->Put(m).ok()) std::abort();
      },
      [&](std::string* m) {
        if (!queue->GetInto(m).ok()) ::_exit(1);
      });
}

// Queue 1 MiB through the zero-copy Consume(): the consumer gets a view of
// each message in shared memory. kRead: it reads every byte of it (sums the
// 8-byte words), as a consumer that uses the whole message does; otherwise
// it only looks at its size (the Throughput markers are told apart by size).
template <bool kRead>
void QueueConsume1M(benchmark::State& state) {
  QueueOptions options;
  options.capacity_bytes = 8 << 20;  // as BM_Queue_1M
  auto queue = Queue::Create(options);
  if (!queue.ok()) return state.SkipWithError(queue.status().ToString().c_str());
  Throughput(
      state, 1 << 20, 64,
      [&](absl::string_view m) {
        if (!queue->Put(m).ok()) std::abort();
      },
      [&](std::string* m) {
        const absl::Status status =
            queue->Consume([&](const MessageView& view) {
              if (kRead) {
                uint64_t sum = 0;
                for (absl::string_view piece : {view.first(), view.second()}) {
                  const char* p = piece.data();
                  size_t n = piece.size();
                  for (; n >= 8; p += 8, n -= 8) {
                    uint64_t word;
                    std::memcpy(&word, p, 8);
                    sum += word;
                  }
                  for (; n > 0; ++p, --n) sum += static_cast<unsigned char>(*p);
                }
                benchmark::DoNotOptimize(sum);
              }
              m->assign(std::min<size_t>(view.size(), 2), 'x');
              return absl::OkStatus();
            });
        if (!status.ok()) ::_exit(1);
      });
}
void BM_Queue_1M_Consume(benchmark::State& state) {
  QueueConsume1M<false>(state);
}
void BM_Queue_1M_ConsumeRead(benchmark::State& state) {
  QueueConsume1M<true>(state);
}

void BM_Queue_64B(benchmark::State& state) {
  QueueThroughput(state, 64, 100000, 1 << 20);
}
void BM_Queue_4K(benchmark::State& state) {
  QueueThroughput(state, 4096, 10000, 4 << 20);
}
void BM_Queue_1M(benchmark::State& state) {
  QueueThroughput(state, 1 << 20, 64, 8 << 20);
}


// One process, no contention: the fixed cost of a Put plus a Get.
void BM_Queue_PutGet_OneProcess_64B(benchmark::State& state) {
  auto queue = Queue::Create(QueueOptions());
  if (!queue.ok()) return state.SkipWithError(queue.status().ToString().c_str());
  const std::string message(64, 'x');
  std::string out;
  for (auto _ : state) {
    if (!queue->Put(message).ok() || !queue->GetInto(&out).ok()) std::abort();
  }
  state.SetItemsProcessed(state.iterations());
}

// One process: the fixed cost of a Send plus a Recv (no locks).
void BM_Pipe_SendRecv_OneProcess_64B(benchmark::State& state) {
  auto ends = Pipe::Create(PipeOptions());
  if (!ends.ok()) return state.SkipWithError(ends.status().ToString().c_str());
  const std::string message(64, 'x');
  std::string out;
  for (auto _ : state) {
    if (!ends->first.Send(message).ok() || !ends->second.RecvInto(&out).ok()) {
      std::abort();
    }
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Pipe_64B(benchmark::State& state) {
  PipeOptions options;
  options.capacity_bytes = 1 << 20;
  auto ends = Pipe::Create(options);
  if (!ends.ok()) return state.SkipWithError(ends.status().ToString().c_str());
  Throughput(
      state, 64, 100000,
      [&](absl::string_view m) {
        if (!ends->first.Send(m).ok()) std::abort();
      },
      [&](std::string* m) {
        if (!ends->second.RecvInto(m).ok()) ::_exit(1);
      });
}

// Two producer processes and two consumer processes on one queue. Per
// iteration each producer puts a batch; then the parent puts one marker per
// consumer and waits for both acknowledgements.
void BM_Queue_2x2_64B(benchmark::State& state) {
  QueueOptions options;
  options.capacity_bytes = 1 << 20;
  auto queue = Queue::Create(options);
  auto go = Queue::Create(options);
  auto done = Queue::Create(options);
  if (!queue.ok() || !go.ok() || !done.ok()) {
    return state.SkipWithError("Queue::Create failed");
  }
  constexpr int kBatch = 50000;
  std::vector<pid_t> pids;
  for (int p = 0; p < 2; ++p) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const std::string message(64, 'x');
      std::string command;
      for (;;) {
        if (!go->GetInto(&command).ok()) ::_exit(1);
        if (command == "stop") ::_exit(0);
        for (int i = 0; i < kBatch; ++i) {
          if (!queue->Put(message).ok()) ::_exit(1);
        }
        if (!done->Put("produced").ok()) ::_exit(1);
      }
    }
    pids.push_back(pid);
  }
  for (int c = 0; c < 2; ++c) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::string m;
      for (;;) {
        if (!queue->GetInto(&m).ok()) ::_exit(1);
        if (m.size() == 0 && !done->Put("consumed").ok()) ::_exit(1);
        if (m.size() == 1) ::_exit(0);
      }
    }
    pids.push_back(pid);
  }
  std::string ack;
  for (auto _ : state) {
    // Each producer takes exactly one "go": it puts its batch before it
    // asks for the next command, and the parent waits for both batches.
    (void)go->Put("go");
    (void)go->Put("go");
    for (int i = 0; i < 2; ++i) (void)done->GetInto(&ack);
    (void)queue->Put("");
    (void)queue->Put("");
    for (int i = 0; i < 2; ++i) (void)done->GetInto(&ack);
  }
  (void)go->Put("stop");
  (void)go->Put("stop");
  (void)queue->Put("!");
  (void)queue->Put("!");
  for (pid_t pid : pids) Reap(pid);
  state.SetItemsProcessed(state.iterations() * 2 * kBatch);
  state.SetBytesProcessed(state.iterations() * 2 * kBatch * 64);
}

void BM_Pipe_RoundTrip_64B(benchmark::State& state) {
  PipeOptions options;
  options.capacity_bytes = 1 << 16;
  auto ends = Pipe::Create(options);
  if (!ends.ok()) return state.SkipWithError(ends.status().ToString().c_str());
  auto& [parent, child] = *ends;
  LinePingPong pingpong;
  const pid_t pid = ::fork();
  if (pid == 0) {
    pingpong.Answer();
    parent.Close();
    std::string m;
    for (;;) {
      if (!child.RecvInto(&m).ok()) ::_exit(1);
      if (m.size() == 1) ::_exit(0);
      if (!child.Send(m).ok()) ::_exit(1);
    }
  }
  child.Close();
  state.counters["line_rtt_ns"] = pingpong.Ask();
  const std::string message(64, 'x');
  std::string reply;
  for (auto _ : state) {
    if (!parent.Send(message).ok() || !parent.RecvInto(&reply).ok()) std::abort();
  }
  (void)parent.Send("!");
  Reap(pid);
  state.SetItemsProcessed(state.iterations());
}

// ---------------------------------------------------------------------------
// Peers.

void BM_KernelPipe_RoundTrip_64B(benchmark::State& state) {
  int down[2], up[2];
  if (::pipe(down) != 0 || ::pipe(up) != 0) std::abort();
  auto read_all = [](int fd, char* buffer, size_t size) {
    while (size > 0) {
      const ssize_t n = ::read(fd, buffer, size);
      if (n <= 0) return false;
      buffer += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  };
  LinePingPong pingpong;
  const pid_t pid = ::fork();
  if (pid == 0) {
    pingpong.Answer();
    ::close(down[1]);
    ::close(up[0]);
    char buffer[64];
    while (read_all(down[0], buffer, 64)) {
      if (::write(up[1], buffer, 64) != 64) ::_exit(1);
    }
    ::_exit(0);
  }
  ::close(down[0]);
  ::close(up[1]);
  state.counters["line_rtt_ns"] = pingpong.Ask();
  char message[64], reply[64];
  std::memset(message, 'x', sizeof(message));
  for (auto _ : state) {
    if (::write(down[1], message, 64) != 64 || !read_all(up[0], reply, 64)) {
      std::abort();
    }
  }
  ::close(down[1]);
  Reap(pid);
  ::close(up[0]);
  state.SetItemsProcessed(state.iterations());
}

void BM_BoostMessageQueue_64B(benchmark::State& state) {
  namespace bip = boost::interprocess;
  const std::string name =
      SharedMemory::UniqueName("bench-boost").substr(1);  // no leading '/'
  bip::message_queue::remove(name.c_str());
  {
    bip::message_queue mq(bip::create_only, name.c_str(), 16384, 64);
    Throughput(
        state, 64, 100000,
        [&](absl::string_view m) { mq.send(m.data(), m.size(), 0); },
        [&](std::string* m) {
          char buffer[64];
          size_t received = 0;
          unsigned int priority = 0;
          mq.receive(buffer, sizeof(buffer), received, priority);
          m->assign(buffer, received);
        });
  }
  bip::message_queue::remove(name.c_str());
}

BENCHMARK(BM_RawRing_64B)->UseRealTime();
BENCHMARK(BM_CachedRing_64B)->UseRealTime();
BENCHMARK(BM_StampedRing_64B)->UseRealTime();
BENCHMARK(BM_CachedBackoffRing_64B)->UseRealTime();
BENCHMARK(BM_NaiveRing_64B)->UseRealTime();
BENCHMARK(BM_Pipe_64B)->UseRealTime();
BENCHMARK(BM_Queue_64B)->UseRealTime();
BENCHMARK(BM_BoostMessageQueue_64B)->UseRealTime();
BENCHMARK(BM_Queue_PutGet_OneProcess_64B);
BENCHMARK(BM_Pipe_SendRecv_OneProcess_64B);
BENCHMARK(BM_Queue_4K)->UseRealTime();
BENCHMARK(BM_Queue_1M)->UseRealTime();
BENCHMARK(BM_Queue_1M_Consume)->UseRealTime();
BENCHMARK(BM_Queue_1M_ConsumeRead)->UseRealTime();
BENCHMARK(BM_Memcpy_1M)->UseRealTime();
BENCHMARK(BM_Memcpy_1M_Uncached)->UseRealTime();
BENCHMARK(BM_RawCopy_1M)->UseRealTime();
BENCHMARK(BM_RawCopyCached_1M)->UseRealTime();
BENCHMARK(BM_Queue_2x2_64B)->UseRealTime();
BENCHMARK(BM_Pipe_RoundTrip_64B)->UseRealTime();
BENCHMARK(BM_KernelPipe_RoundTrip_64B)->UseRealTime();

// Console output plus a summary of the ratios docs/BENCHMARKS.md tracks.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      // One run per benchmark, or the median of --benchmark_repetitions.
      const bool use = run.run_type == Run::RT_Iteration
                           ? run.repetitions <= 1
                           : run.aggregate_name == "median";
      if (run.error_occurred || !use) continue;
      const std::string name = run.run_name.function_name;
      auto rtt = run.counters.find("line_rtt_ns");
      if (rtt != run.counters.end()) rtt_[name] = rtt->second.value;
      auto items = run.counters.find("items_per_second");
      auto bytes = run.counters.find("bytes_per_second");
      if (items != run.counters.end()) items_[name] = items->second.value;
      if (bytes != run.counters.end()) bytes_[name] = bytes->second.value;
    }
  }

  void PrintSummary() {
    std::printf("\nSummary (ratio, target):\n");
    Ratio("Queue_64B / RawRing_64B (floor)", items_, "BM_Queue_64B",
          "BM_RawRing_64B", ">= 0.25");
    Ratio("Queue_64B / BoostMessageQueue_64B", items_, "BM_Queue_64B",
          "BM_BoostMessageQueue_64B", ">= 2");
    Ratio("Pipe_64B / RawRing_64B (floor)", items_, "BM_Pipe_64B",
          "BM_RawRing_64B", ">= 0.5");
    Ratio("Queue_1M bytes/s / memcpy 1 MiB (hot) bytes/s", bytes_,
          "BM_Queue_1M", "BM_Memcpy_1M", ">= 0.5");
    Ratio("Queue_1M bytes/s / memcpy 1 MiB (64 MiB set)", bytes_,
          "BM_Queue_1M", "BM_Memcpy_1M_Uncached", ">= 0.5");
    Ratio("Queue_1M bytes/s / RawCopy_1M (shm floor)", bytes_, "BM_Queue_1M",
          "BM_RawCopy_1M", "(two copies)");
    Ratio("Queue_1M_Consume bytes/s / memcpy (hot)", bytes_,
          "BM_Queue_1M_Consume", "BM_Memcpy_1M", ">= 0.5, zero-copy Get");
    Ratio("Queue_1M_ConsumeRead bytes/s / memcpy (hot)", bytes_,
          "BM_Queue_1M_ConsumeRead", "BM_Memcpy_1M", "(consumer reads all)");
    Ratio("Pipe round trips/s / kernel pipe round trips/s", items_,
          "BM_Pipe_RoundTrip_64B", "BM_KernelPipe_RoundTrip_64B", ">= 10");
    Ratio("RawRing_64B / CachedRing_64B", items_, "BM_RawRing_64B",
          "BM_CachedRing_64B", "(floor vs textbook ring)");
    Ratio("RawRing_64B / NaiveRing_64B", items_, "BM_RawRing_64B",
          "BM_NaiveRing_64B", "(floor vs uncached indices)");
    if (!rtt_.empty()) {
      double low = rtt_.begin()->second, high = low;
      for (const auto& [name, ns] : rtt_) {
        low = std::min(low, ns);
        high = std::max(high, ns);
      }
      std::printf(
          "Cache-line round trip between the two processes (line_rtt_ns): "
          "%.0f..%.0f ns\n",
          low, high);
      if (high > 2 * low) {
        std::printf(
            "WARNING: the round trip changed by more than 2x during the run "
            "(the VM's vCPUs moved between near and distant cores): "
            "cross-process ratios mix two machines; re-run.\n");
      }
    }
    std::printf("Python multiprocessing: run tools/bench/ipc_multiprocessing.py\n");
  }

 private:
  static void Ratio(const char* what, const std::map<std::string, double>& m,
                    const std::string& a, const std::string& b,
                    const char* target) {
    auto ia = m.find(a), ib = m.find(b);
    if (ia == m.end() || ib == m.end() || ib->second == 0) return;
    std::printf("  %-48s %8.2f  (%s)\n", what, ia->second / ib->second, target);
  }

  std::map<std::string, double> items_, bytes_, rtt_;
};

}  // namespace
}  // namespace taskfork::ipc

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  taskfork::ipc::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintSummary();
  benchmark::Shutdown();
  return 0;
}
