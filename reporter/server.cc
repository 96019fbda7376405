#include "reporter/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <optional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/errno.h"
#include "base/status_macros.h"
#include "fork/at_fork.h"
#include "fork/process.h"
#include "glog/logging.h"
#include "reporter/address.h"
#include "reporter/internal/io.h"
#include "reporter/report_builder.h"
#include "reporter/result.h"
#include "reporter/secret.h"

namespace taskfork::reporter {
namespace {

using reporter_internal::kMaxSunPath;
using reporter_internal::SendAll;
using reporter_internal::WaitFd;

constexpr uint64_t kListenKey = 0;
constexpr uint64_t kControlKey = 1;
constexpr uint64_t kTcpListenKey = 2;
constexpr size_t kReadChunk = 256 * 1024;
// Bytes read from one connection per wake-up, so one busy client cannot
// starve the others.
constexpr size_t kReadBudget = 1 << 20;
// How long the server waits for slow subscribers when it finalizes.
constexpr absl::Duration kSubscriberFlushTimeout = absl::Seconds(2);

// Posted requests pending beyond this are sent without waiting for
// FlushPosted().
constexpr size_t kPostedFlushBytes = 64 * 1024;

absl::Status StatusFromReply(const ControlReply& reply) {
  return absl::Status(static_cast<absl::StatusCode>(reply.status_code()),
                      reply.status_message());
}

void SetStatus(const absl::Status& status, ControlReply* reply) {
  reply->set_status_code(static_cast<int>(status.code()));
  reply->set_status_message(std::string(status.message()));
}

// "HOST:PORT" of a peer or bound socket address.
std::string SockaddrToString(const sockaddr_storage& addr) {
  char host[NI_MAXHOST];
  char port[NI_MAXSERV];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), sizeof(addr),
                    host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return "an unknown address";
  }
  if (addr.ss_family == AF_INET6) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

// The TCP listening socket for `listen` ("HOST:PORT"), and the address
// clients connect to ("tcp:HOST:PORT", the bound port).
absl::StatusOr<OwnedFd> ListenTcp(const std::string& listen,
                                  std::string* client_address) {
  TASKFORK_ASSIGN_OR_RETURN(ReporterAddress where, ParseListenAddress(listen));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* list = nullptr;
  const std::string service = absl::StrCat(where.port);
  const int rc =
      ::getaddrinfo(where.host.c_str(), service.c_str(), &hints, &list);
  if (rc != 0) {
    if (rc == EAI_SYSTEM) return ErrnoError(errno, "getaddrinfo", where.host);
    return absl::NotFoundError(
        absl::StrCat("cannot resolve reporter listen host \"", where.host,
                     "\" (of ", listen, "): ", ::gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> owned(list, ::freeaddrinfo);
  absl::Status last = absl::NotFoundError(
      absl::StrCat("no address to listen on for ", listen));
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    OwnedFd fd(::socket(ai->ai_family,
                        SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        ai->ai_protocol));
    if (!fd) {
      last = ErrnoError(errno, "socket for reporter listen address", listen);
      continue;
    }
    const int one = 1;
    (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      last = ErrnoError(errno, "bind reporter TCP listener to", listen);
      continue;
    }
    if (::listen(fd.get(), SOMAXCONN) != 0) {
      last = ErrnoError(errno, "listen on reporter TCP address", listen);
      continue;
    }
    sockaddr_storage bound{};
    socklen_t len = sizeof(bound);
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) !=
        0) {
      return ErrnoError(errno, "getsockname of reporter TCP listener", listen);
    }
    const uint16_t port =
        bound.ss_family == AF_INET6
            ? ntohs(reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port)
            : ntohs(reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
    ReporterAddress client;
    client.kind = ReporterAddress::Kind::kTcp;
    client.port = port;
    client.host = where.host;
    if (where.host == "0.0.0.0" || where.host == "::") {
      // Every interface: other hosts reach it by this host's name.
      char name[256] = {};
      if (::gethostname(name, sizeof(name) - 1) != 0) {
        return ErrnoError(errno, "gethostname for the reporter's TCP address");
      }
      client.host = name;
    }
    *client_address = client.ToString();
    return fd;
  }
  return last;
}

// ---------------------------------------------------------------------------
// The server process.

class ServerLoop {
 public:
  ServerLoop(ReporterServerOptions options, OwnedFd listen_fd,
             OwnedFd tcp_listen_fd, std::string secret, OwnedFd control,
             std::string bound_path, std::string short_dir)
      : options_(std::move(options)),
        listen_(std::move(listen_fd)),
        tcp_listen_(std::move(tcp_listen_fd)),
        secret_(std::move(secret)),
        control_(std::move(control)),
        control_decoder_(~0u >> 1),
        bound_path_(std::move(bound_path)),
        short_dir_(std::move(short_dir)),
        builder_(MakeBuilderOptions(options_)),
        uid_(::geteuid()) {}

  int Run() {
    epoll_.Reset(::epoll_create1(EPOLL_CLOEXEC));
    PCHECK(epoll_.valid()) << "epoll_create1";
    Watch(listen_.get(), kListenKey, EPOLLIN);
    if (tcp_listen_) Watch(tcp_listen_.get(), kTcpListenKey, EPOLLIN);
    Watch(control_.get(), kControlKey, EPOLLIN);
    PCHECK(::fcntl(control_.get(), F_SETFL, O_NONBLOCK) == 0);
    LOG(INFO) << "reporter server (pid " << ::getpid() << ") listening on "
              << bound_path_
              << (tcp_listen_ ? " and " + options_.tcp_listen : "")
              << " for job " << options_.job_name;
    epoll_event events[64];
    while (!done_) {
      const int n = ::epoll_wait(epoll_.get(), events, 64, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        PLOG(FATAL) << "epoll_wait";
      }
      for (int i = 0; i < n && !done_; ++i) {
        const uint64_t key = events[i].data.u64;
        if (key == kListenKey) {
          Accept();
        } else if (key == kTcpListenKey) {
          AcceptTcp();
        } else if (key == kControlKey) {
          OnControl();
        } else {
          auto it = conns_.find(key);
          if (it == conns_.end()) continue;  // closed earlier in this batch
          Conn* conn = it->second.get();
          if (events[i].events & EPOLLOUT) {
            if (!FlushOut(conn)) continue;
          }
          if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) OnReadable(conn);
        }
      }
    }
    return exit_code_;
  }

 private:
  struct Conn {
    uint64_t key = 0;
    OwnedFd fd;
    enum Kind { kNew, kClient, kSubscriber } kind = kNew;
    std::string task_id;
    int64_t pid = 0;
    pid_t peer_pid = 0;
    // "HOST:PORT" of a TCP peer; empty on the Unix socket.
    std::string peer_address;
    FrameDecoder decoder;
    std::string out;
    size_t out_begin = 0;
    bool watching_out = false;
    explicit Conn(uint32_t max) : decoder(max) {}
  };

  static ReportBuilderOptions MakeBuilderOptions(const ReporterServerOptions& o) {
    ReportBuilderOptions b;
    b.job_name = o.job_name;
    b.job_id = o.job_id;
    b.extra = o.extra;
    return b;
  }

  void Watch(int fd, uint64_t key, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = key;
    PCHECK(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0) << "epoll_ctl";
  }

  void SetWatchOut(Conn* conn, bool on) {
    if (conn->watching_out == on) return;
    epoll_event ev{};
    ev.events = EPOLLIN | (on ? static_cast<uint32_t>(EPOLLOUT) : 0u);
    ev.data.u64 = conn->key;
    PCHECK(::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, conn->fd.get(), &ev) == 0);
    conn->watching_out = on;
  }

  std::string Describe(const Conn& c) const {
    if (c.kind == Conn::kClient) {
      return absl::StrCat("reporter client of task ", c.task_id, " (pid ", c.pid, ")");
    }
    if (c.kind == Conn::kSubscriber) {
      return c.peer_address.empty()
                 ? absl::StrCat("reporter subscriber (pid ", c.peer_pid, ")")
                 : absl::StrCat("reporter subscriber at ", c.peer_address,
                                " (pid ", c.pid, ")");
    }
    if (!c.peer_address.empty()) {
      return absl::StrCat("reporter connection from ", c.peer_address);
    }
    return absl::StrCat("reporter connection from pid ", c.peer_pid);
  }

  void Accept() {
    for (;;) {
      OwnedFd fd(::accept4(listen_.get(), nullptr, nullptr,
                           SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) PLOG(WARNING) << "reporter server: accept4";
        return;
      }
      ucred cred{};
      socklen_t len = sizeof(cred);
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        PLOG(WARNING) << "reporter server: SO_PEERCRED; closing the connection";
        continue;
      }
      if (cred.uid != uid_) {
        const std::string reason = absl::StrCat(
            "reporter server refuses pid ", cred.pid, " of uid ", cred.uid,
            ": only uid ", uid_, " may connect");
        LOG(WARNING) << reason;
        ServerMessage refusal;
        refusal.mutable_refusal()->set_reason(reason);
        std::string frame;
        AppendFrame(refusal, &frame);
        // Best effort: the socket buffer of a new connection is empty.
        (void)!::send(fd.get(), frame.data(), frame.size(),
                      MSG_NOSIGNAL | MSG_DONTWAIT);
        continue;
      }
      auto conn = std::make_unique<Conn>(options_.max_frame_size);
      conn->key = next_key_++;
      conn->peer_pid = cred.pid;
      conn->fd = std::move(fd);
      Watch(conn->fd.get(), conn->key, EPOLLIN);
      conns_.emplace(conn->key, std::move(conn));
    }
  }

  // TCP peers: no uid to check; the hello must carry the secret (Apply).
  void AcceptTcp() {
    for (;;) {
      sockaddr_storage peer{};
      socklen_t len = sizeof(peer);
      OwnedFd fd(::accept4(tcp_listen_.get(), reinterpret_cast<sockaddr*>(&peer),
                           &len, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno != EAGAIN) PLOG(WARNING) << "reporter server: accept4 (TCP)";
        return;
      }
      const int one = 1;
      (void)::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto conn = std::make_unique<Conn>(options_.max_frame_size);
      conn->key = next_key_++;
      conn->peer_address = SockaddrToString(peer);
      conn->fd = std::move(fd);
      Watch(conn->fd.get(), conn->key, EPOLLIN);
      conns_.emplace(conn->key, std::move(conn));
    }
  }

  // Sends a Refusal (best effort: the socket buffer of a new connection is
  // empty) and returns the error that closes the connection.
  absl::Status Refuse(Conn* conn, const std::string& reason) {
    ServerMessage refusal;
    refusal.mutable_refusal()->set_reason(reason);
    std::string frame;
    AppendFrame(refusal, &frame);
    (void)!::send(conn->fd.get(), frame.data(), frame.size(),
                  MSG_NOSIGNAL | MSG_DONTWAIT);
    return absl::PermissionDeniedError(reason);
  }

  // Reads what is available (up to the budget), applies complete frames, and
  // handles end of stream. Returns false if the connection was closed.
  bool OnReadable(Conn* conn, bool drain_all = false) {
    size_t budget = drain_all ? SIZE_MAX : kReadBudget;
    bool eof = false;
    while (budget > 0) {
      absl::Span<char> space = conn->decoder.WritableSpace(kReadChunk);
      const ssize_t n = ::recv(conn->fd.get(), space.data(),
                               std::min(space.size(), kReadChunk), MSG_DONTWAIT);
      if (n > 0) {
        conn->decoder.Commit(static_cast<size_t>(n));
        budget -= std::min(budget, static_cast<size_t>(n));
        if (!ProcessFrames(conn)) return false;
        continue;
      }
      if (n == 0) {
        eof = true;
        break;
      }
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      if (errno == ECONNRESET) {
        eof = true;
        break;
      }
      Fail(conn, ErrnoError(errno, "recv from", Describe(*conn)));
      return false;
    }
    if (eof) {
      const absl::Status finished = conn->decoder.Finish();
      if (!finished.ok()) {
        Fail(conn, finished);
      } else {
        CloseClean(conn);
      }
      return false;
    }
    return true;
  }

  // Applies every complete frame in the decoder. False: connection closed.
  bool ProcessFrames(Conn* conn) {
    for (;;) {
      auto got = conn->decoder.Next(&message_);
      if (!got.ok()) {
        Fail(conn, got.status());
        return false;
      }
      if (!*got) return true;
      const absl::Status applied = Apply(conn, message_);
      if (!applied.ok()) {
        Fail(conn, applied);
        return false;
      }
    }
  }

  absl::Status Apply(Conn* conn, ClientMessage& m) {
    if (conn->kind == Conn::kNew) {
      if (m.kind_case() != ClientMessage::kHello) {
        return absl::InvalidArgumentError(
            absl::StrCat("protocol error: the first frame must be a hello, "
                         "got frame kind ", m.kind_case()));
      }
      const Hello& hello = m.hello();
      conn->pid = hello.pid() != 0 ? hello.pid() : conn->peer_pid;
      if (!conn->peer_address.empty()) {
        // Over TCP the secret stands in for the uid check.
        if (hello.secret().empty() || !SecretsEqual(hello.secret(), secret_)) {
          return Refuse(
              conn, absl::StrCat("reporter server refuses the TCP connection "
                                 "from ", conn->peer_address, ": ",
                                 hello.secret().empty() ? "no secret"
                                                        : "wrong secret",
                                 " (read it from the run's ", kSecretFileName,
                                 ")"));
        }
      }
      if (hello.role() == Hello::ROLE_SUBSCRIBER) {
        conn->kind = Conn::kSubscriber;
        subscribers_.push_back(conn->key);
      } else if (hello.role() == Hello::ROLE_CLIENT) {
        if (hello.task_id().empty()) {
          return absl::InvalidArgumentError("protocol error: hello without a task id");
        }
        if (options_.registered_tasks_only &&
            !registered_.contains(hello.task_id())) {
          return Refuse(
              conn, absl::StrCat("reporter server refuses ",
                                 conn->peer_address.empty()
                                     ? absl::StrCat("pid ", conn->peer_pid)
                                     : conn->peer_address,
                                 ": task \"", hello.task_id(),
                                 "\" is not registered with this job"));
        }
        conn->kind = Conn::kClient;
        conn->task_id = hello.task_id();
        VLOG(1) << Describe(*conn) << " connected (parent pid "
                << hello.parent_pid() << ")";
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("protocol error: hello with unknown role ", hello.role()));
      }
      ServerMessage welcome;
      welcome.mutable_welcome()->set_server_pid(::getpid());
      welcome.mutable_welcome()->set_max_frame_size(options_.max_frame_size);
      Send(conn, welcome);
      return absl::OkStatus();
    }
    if (conn->kind == Conn::kSubscriber) {
      return absl::InvalidArgumentError(
          "protocol error: subscribers may only send a hello");
    }
    switch (m.kind_case()) {
      case ClientMessage::kTaskStart:
        TASKFORK_RETURN_IF_ERROR(
            builder_.StartTask(conn->task_id, conn->pid, m.task_start()));
        if (HasSubscribers()) *NewEvent(*conn)->mutable_task_start() = m.task_start();
        break;
      case ClientMessage::kTaskStop:
        TASKFORK_RETURN_IF_ERROR(
            builder_.StopTask(conn->task_id, conn->pid, m.task_stop()));
        if (HasSubscribers()) *NewEvent(*conn)->mutable_task_stop() = m.task_stop();
        break;
      case ClientMessage::kSectionStart:
        if (HasSubscribers()) {
          *NewEvent(*conn)->mutable_section_start() = m.section_start();
        }
        if (absl::Status s = builder_.StartSection(
                conn->task_id, conn->pid, std::move(*m.mutable_section_start()));
            !s.ok()) {
          has_pending_event_ = false;
          return s;
        }
        break;
      case ClientMessage::kSectionStop:
        if (HasSubscribers()) {
          *NewEvent(*conn)->mutable_section_stop() = m.section_stop();
        }
        if (absl::Status s = builder_.StopSection(
                conn->task_id, conn->pid, std::move(*m.mutable_section_stop()));
            !s.ok()) {
          has_pending_event_ = false;
          return s;
        }
        break;
      case ClientMessage::kSync: {
        ServerMessage reply;
        reply.mutable_sync_reply()->set_token(m.sync().token());
        Send(conn, reply);
        break;
      }
      case ClientMessage::kHello:
        return absl::InvalidArgumentError("protocol error: a second hello");
      case ClientMessage::KIND_NOT_SET:
        return absl::InvalidArgumentError(
            "protocol error: a frame with no event in it");
    }
    Broadcast();
    return absl::OkStatus();
  }

  bool HasSubscribers() const { return !subscribers_.empty(); }

  // Starts an event for subscribers (sent by Broadcast()).
  Event* NewEvent(const Conn& conn) { return NewEvent(conn.task_id, conn.pid); }
  Event* NewEvent(const std::string& task_id, int64_t pid) {
    pending_event_.Clear();
    Event* e = pending_event_.mutable_event();
    e->set_seq(++seq_);
    e->set_task_id(task_id);
    e->set_pid(pid);
    *e->mutable_time() = ToProtoTime(absl::Now());
    has_pending_event_ = true;
    return e;
  }

  void Broadcast() {
    if (!has_pending_event_) return;
    has_pending_event_ = false;
    if (subscribers_.empty()) return;
    frame_.clear();
    AppendFrame(pending_event_, &frame_);
    std::vector<uint64_t> keys = subscribers_;
    for (uint64_t key : keys) {
      auto it = conns_.find(key);
      if (it == conns_.end()) continue;
      Conn* sub = it->second.get();
      if (sub->out.size() - sub->out_begin + frame_.size() >
          options_.max_subscriber_backlog) {
        LOG(WARNING) << Describe(*sub) << " is too slow (over "
                     << options_.max_subscriber_backlog
                     << " bytes queued); disconnecting it";
        Close(sub);
        continue;
      }
      sub->out.append(frame_);
      FlushOut(sub);
    }
  }

  void Send(Conn* conn, const ServerMessage& m) {
    AppendFrame(m, &conn->out);
    FlushOut(conn);
  }

  // Writes queued bytes without blocking. False: the connection was closed.
  bool FlushOut(Conn* conn) {
    while (conn->out_begin < conn->out.size()) {
      const ssize_t n = ::send(conn->fd.get(), conn->out.data() + conn->out_begin,
                               conn->out.size() - conn->out_begin,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        conn->out_begin += static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        SetWatchOut(conn, true);
        return true;
      }
      // The peer is gone; reading will see the end of stream.
      conn->out.clear();
      conn->out_begin = 0;
      SetWatchOut(conn, false);
      return true;
    }
    conn->out.clear();
    conn->out_begin = 0;
    SetWatchOut(conn, false);
    return true;
  }

  // End of stream at a frame boundary.
  void CloseClean(Conn* conn) {
    if (conn->kind == Conn::kClient) {
      const std::string reason = absl::StrCat(Describe(*conn), " disconnected");
      const int closed = builder_.CloseOpenSections(
          conn->task_id, conn->pid, MakeResultInfo(Result::kErrored, reason),
          absl::Now());
      if (closed > 0) {
        LOG(WARNING) << reason << " with " << closed
                     << " section(s) open; they are Errored";
        if (HasSubscribers()) {
          *NewEvent(*conn)->mutable_client_error() =
              MakeResultInfo(Result::kErrored, reason);
          Broadcast();
        }
      }
    }
    Close(conn);
  }

  // A broken connection: log, mark the task Errored, close.
  void Fail(Conn* conn, const absl::Status& why) {
    LOG(ERROR) << Describe(*conn) << ": " << why << "; closing the connection";
    if (conn->kind == Conn::kClient) {
      const std::string reason =
          absl::StrCat(Describe(*conn), " disconnected: ", why.message());
      builder_.CloseOpenSections(conn->task_id, conn->pid,
                                 MakeResultInfo(Result::kErrored, reason),
                                 absl::Now());
      const ResultInfo task_result = MakeResultInfo(
          Result::kErrored, absl::StrCat(Describe(*conn), ": ", why.message()));
      builder_.RecordTaskResult(conn->task_id, task_result);
      if (HasSubscribers()) {
        *NewEvent(*conn)->mutable_client_error() = task_result;
        Broadcast();
      }
    }
    Close(conn);
  }

  void Close(Conn* conn) {
    if (conn->kind == Conn::kSubscriber) {
      subscribers_.erase(
          std::remove(subscribers_.begin(), subscribers_.end(), conn->key),
          subscribers_.end());
    }
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, conn->fd.get(), nullptr);
    conns_.erase(conn->key);  // closes the fd
  }

  // Control channel (the runner). -------------------------------------------

  void OnControl() {
    for (;;) {
      absl::Span<char> space = control_decoder_.WritableSpace(4096);
      const ssize_t n = ::recv(control_.get(), space.data(), space.size(),
                               MSG_DONTWAIT);
      if (n > 0) {
        control_decoder_.Commit(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) break;
      // The runner is gone (or the channel broke): write what we have.
      LOG(WARNING) << "reporter server: the runner closed the control channel; "
                      "writing the report and exiting";
      auto written = FinalizeReport();
      if (!written.ok()) LOG(ERROR) << "reporter server: " << written.status();
      exit_code_ = 0;
      done_ = true;
      return;
    }
    ControlRequest request;
    for (;;) {
      auto got = control_decoder_.Next(&request);
      if (!got.ok()) {
        LOG(ERROR) << "reporter server: control channel: " << got.status();
        exit_code_ = 1;
        done_ = true;
        return;
      }
      if (!*got) return;
      ControlReply reply;
      switch (request.kind_case()) {
        case ControlRequest::kRegisterTask: {
          const absl::Status s = builder_.RegisterTask(request.register_task());
          if (s.ok()) registered_.insert(request.register_task().id());
          SetStatus(s, &reply);
          if (s.ok() && HasSubscribers()) {
            *NewEvent(request.register_task().id(), 0)->mutable_task_registered() =
                request.register_task();
            Broadcast();
          }
          break;
        }
        case ControlRequest::kRecordTaskResult: {
          const auto& r = request.record_task_result();
          if (r.task_id().empty()) {
            SetStatus(absl::InvalidArgumentError("RecordTaskResult: empty task id"),
                      &reply);
            break;
          }
          builder_.RecordTaskResult(r.task_id(), r.result());
          if (HasSubscribers()) {
            *NewEvent(r.task_id(), 0)->mutable_task_result() = r.result();
            Broadcast();
          }
          SetStatus(absl::OkStatus(), &reply);
          break;
        }
        case ControlRequest::kTaskStarted: {
          const auto& r = request.task_started();
          const absl::Status s =
              r.task_id().empty()
                  ? absl::InvalidArgumentError("TaskStarted: empty task id")
                  : builder_.StartTask(r.task_id(), r.pid(), r.start());
          if (s.ok() && HasSubscribers()) {
            *NewEvent(r.task_id(), r.pid())->mutable_task_start() = r.start();
            Broadcast();
          }
          SetStatus(s, &reply);
          break;
        }
        case ControlRequest::kTaskEnded: {
          const auto& r = request.task_ended();
          if (r.task_id().empty()) {
            SetStatus(absl::InvalidArgumentError("TaskEnded: empty task id"),
                      &reply);
            break;
          }
          builder_.RecordTaskResult(r.task_id(), r.result());
          if (r.pid() != 0) {
            TaskStop stop;
            *stop.mutable_time() = r.time();
            // FailedPrecondition: the task's client stopped it already.
            (void)builder_.StopTask(r.task_id(), r.pid(), stop);
          }
          if (HasSubscribers()) {
            *NewEvent(r.task_id(), r.pid())->mutable_task_result() = r.result();
            Broadcast();
          }
          SetStatus(absl::OkStatus(), &reply);
          break;
        }
        case ControlRequest::kBeginAttempt: {
          const auto& r = request.begin_attempt();
          if (!r.task_id().empty()) DrainClientsOf(r.task_id());
          SetStatus(builder_.BeginAttempt(r.task_id(), r.logfile()), &reply);
          break;
        }
        case ControlRequest::kSync:
          SetStatus(absl::OkStatus(), &reply);
          break;
        case ControlRequest::kFinalize: {
          auto written = FinalizeReport();
          if (written.ok()) {
            reply.set_results_json_path(written->paths.results_json);
            reply.set_xunit_xml_path(written->paths.xunit_xml);
            reply.set_report_html_path(written->paths.report_html);
            *reply.mutable_report() = std::move(written->report);
          }
          SetStatus(written.status(), &reply);
          done_ = true;
          break;
        }
        case ControlRequest::KIND_NOT_SET:
          SetStatus(absl::InvalidArgumentError("empty control request"), &reply);
          break;
      }
      if (request.no_reply() && !done_) {
        if (reply.status_code() != 0) {
          LOG(WARNING) << "reporter server: control request "
                       << request.kind_case() << ": "
                       << StatusFromReply(reply);
        }
        continue;
      }
      std::string frame;
      AppendFrame(reply, &frame);
      const absl::Status sent =
          SendAll(control_.get(), frame, absl::Now() + absl::Seconds(60), "the runner");
      if (!sent.ok()) LOG(ERROR) << "reporter server: " << sent;
      if (done_) {
        FlushSubscribers();
        return;
      }
    }
  }

  void RemoveSocketFiles() {
    listen_.Reset();
    tcp_listen_.Reset();
    ::unlink(bound_path_.c_str());
    if (!short_dir_.empty()) {
      ::unlink(options_.socket_path.c_str());
      ::rmdir(short_dir_.c_str());
    }
  }

  // Applies every frame already sent on the connections `wanted` selects.
  template <typename Predicate>
  void DrainConnections(Predicate wanted) {
    std::vector<uint64_t> keys;
    for (const auto& [key, conn] : conns_) {
      if (wanted(*conn)) keys.push_back(key);
    }
    for (uint64_t key : keys) {
      auto it = conns_.find(key);
      if (it != conns_.end()) OnReadable(it->second.get(), /*drain_all=*/true);
    }
  }

  // Applies what the (ended) processes of task `task_id` sent before now:
  // pending connections and every frame of its clients and of connections
  // that did not say hello yet.
  void DrainClientsOf(const std::string& task_id) {
    Accept();
    if (tcp_listen_) AcceptTcp();
    DrainConnections([&task_id](const Conn& conn) {
      return conn.kind == Conn::kNew ||
             (conn.kind == Conn::kClient && conn.task_id == task_id);
    });
  }

  absl::StatusOr<FinalizeResult> FinalizeReport() {
    RemoveSocketFiles();
    // Apply everything clients sent before now.
    DrainConnections(
        [](const Conn& conn) { return conn.kind != Conn::kSubscriber; });
    FinalizeResult result;
    result.report = builder_.Build(absl::Now());
    TASKFORK_ASSIGN_OR_RETURN(result.paths,
                              WriteReport(result.report, options_.runinfo_dir));
    LOG(INFO) << "reporter server wrote " << result.paths.results_json << " and "
              << result.paths.xunit_xml;
    if (HasSubscribers()) {
      NewEvent("", 0)->set_finalized(result.paths.results_json);
      Broadcast();
    }
    return result;
  }

  void FlushSubscribers() {
    const absl::Time deadline = absl::Now() + kSubscriberFlushTimeout;
    for (uint64_t key : subscribers_) {
      auto it = conns_.find(key);
      if (it == conns_.end()) continue;
      Conn* sub = it->second.get();
      const absl::Status s = SendAll(
          sub->fd.get(),
          absl::string_view(sub->out).substr(sub->out_begin), deadline,
          Describe(*sub));
      if (!s.ok()) LOG(WARNING) << "reporter server: " << s;
    }
  }

  ReporterServerOptions options_;
  OwnedFd listen_;
  OwnedFd tcp_listen_;  // invalid without TCP
  std::string secret_;  // hex; the TCP hello must carry it
  OwnedFd control_;
  FrameDecoder control_decoder_;
  std::string bound_path_;
  std::string short_dir_;
  ReportBuilder builder_;
  uid_t uid_;
  OwnedFd epoll_;
  absl::flat_hash_map<uint64_t, std::unique_ptr<Conn>> conns_;
  absl::flat_hash_set<std::string> registered_;  // task ids of RegisterTask
  std::vector<uint64_t> subscribers_;
  uint64_t next_key_ = 3;
  ClientMessage message_;  // reused for parsing
  ServerMessage pending_event_;
  bool has_pending_event_ = false;
  std::string frame_;
  uint64_t seq_ = 0;
  bool done_ = false;
  int exit_code_ = 0;
};

}  // namespace

// ---------------------------------------------------------------------------
// The runner's handle.

struct ReporterServer::Impl {
  pid_t owner_pid = -1;  // the process that started the server
  bool finalized = false;
  // The server process. Its handle is inert in forked children (a task
  // process's copy neither kills nor waits for it).
  std::optional<Process> server;
  // Set when someone else (a runner's waitpid(-1)) reaped the server.
  bool reaped_elsewhere = false;
  OwnedFd control;
  FrameDecoder control_decoder{~0u >> 1};
  absl::Duration control_timeout;
  std::string socket_path;
  std::string bound_path;
  std::string short_dir;  // fallback directory, if any
  std::string tcp_address;  // "tcp:HOST:PORT", or empty
  std::string secret_file;  // created by Start, or empty
  // Frames of posted (no-reply) requests not sent yet.
  std::string posted;
  ControlRequest posted_register, posted_started, posted_ended;
  AtForkRegistration at_fork;

  ~Impl() { KillAndCleanUp(); }

  bool InOwner() const { return ::getpid() == owner_pid; }
  bool Ended() const {
    return reaped_elsewhere || (server.has_value() && server->reaped());
  }
  pid_t pid() const { return server.has_value() ? server->pid() : -1; }

  // How the server ended, once Ended().
  std::string HowItEnded() const {
    if (reaped_elsewhere) {
      return "ended and was reaped by another waitpid() (ECHILD)";
    }
    const ExitStatus& exit = *server->exit_status();
    return exit.signaled() ? absl::StrCat("killed by ", exit.signal_name())
                           : absl::StrCat("exited with code ", exit.exit_code);
  }

  // Notes the outcome of a Join() or Kill() of the server.
  void Noted(const absl::Status& status) {
    if (absl::IsInternal(status) && !server->reaped()) reaped_elsewhere = true;
  }

  // Waits until the server process exits or `deadline`, then reaps it;
  // SIGKILLs it at the deadline.
  void Reap(absl::Time deadline) {
    if (!server.has_value() || Ended()) return;
    absl::Status joined =
        server->Join(std::max(deadline - absl::Now(), absl::ZeroDuration()))
            .status();
    if (absl::IsDeadlineExceeded(joined)) {
      LOG(WARNING) << "reporter server (pid " << pid()
                   << ") did not exit in time; killing it";
      joined = server->Kill();
    }
    Noted(joined);
  }

  void KillAndCleanUp() {
    if (!InOwner()) return;  // a forked copy: not ours to kill
    if (server.has_value() && !Ended()) Noted(server->Kill());
    control.Reset();
    if (!finalized) {
      if (!secret_file.empty()) ::unlink(secret_file.c_str());
      if (!bound_path.empty()) ::unlink(bound_path.c_str());
      if (!short_dir.empty()) {
        ::unlink(socket_path.c_str());
        ::rmdir(short_dir.c_str());
      }
    }
    bound_path.clear();
    short_dir.clear();
  }

  absl::Status DiedError() {
    // The server closed its end: it is exiting. Reap it (bounded).
    Reap(absl::Now() + absl::Seconds(5));
    return absl::UnavailableError(absl::StrCat(
        "reporter server (pid ", pid(), ") ",
        Ended() ? HowItEnded() : "is not answering"));
  }

  absl::Status Usable() {
    CHECK(InOwner()) << "ReporterServer used in a forked child";
    if (finalized) {
      return absl::FailedPreconditionError("the reporter server was finalized");
    }
    if (Ended()) return DiedError();
    return absl::OkStatus();
  }

  // Queues a request the server does not answer (no_reply).
  absl::Status Post(ControlRequest& request) {
    TASKFORK_RETURN_IF_ERROR(Usable());
    request.set_no_reply(true);
    AppendFrame(request, &posted);
    if (posted.size() >= kPostedFlushBytes) return FlushPosted();
    return absl::OkStatus();
  }

  absl::Status FlushPosted() {
    if (posted.empty()) return absl::OkStatus();
    TASKFORK_RETURN_IF_ERROR(Usable());
    const absl::Status sent =
        SendAll(control.get(), posted, absl::Now() + control_timeout,
                "the reporter server");
    posted.clear();
    if (absl::IsUnavailable(sent)) return DiedError();
    return sent;
  }

  absl::StatusOr<ControlReply> Call(const ControlRequest& request,
                                    absl::Duration timeout) {
    TASKFORK_RETURN_IF_ERROR(Usable());
    const absl::Time deadline = absl::Now() + timeout;
    // Posted requests go first, in one send with this one: the server
    // applies them in order.
    std::string frame = std::move(posted);
    posted.clear();
    AppendFrame(request, &frame);
    const absl::Status sent =
        SendAll(control.get(), frame, deadline, "the reporter server");
    if (absl::IsUnavailable(sent)) return DiedError();
    TASKFORK_RETURN_IF_ERROR(sent);
    ControlReply reply;
    auto got = reporter_internal::ReadFrame(control.get(), &control_decoder,
                                            &reply, deadline,
                                            "the reporter server");
    if (!got.ok()) {
      if (absl::IsUnavailable(got.status()) || absl::IsDataLoss(got.status())) {
        return DiedError();
      }
      return got.status();
    }
    if (!*got) return DiedError();
    return reply;
  }
};

ReporterServer::ReporterServer(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
ReporterServer::ReporterServer(ReporterServer&& other) noexcept = default;
ReporterServer& ReporterServer::operator=(ReporterServer&& other) noexcept =
    default;
ReporterServer::~ReporterServer() = default;

pid_t ReporterServer::pid() const { return impl_->pid(); }
const std::string& ReporterServer::socket_path() const {
  return impl_->socket_path;
}
const std::string& ReporterServer::tcp_address() const {
  return impl_->tcp_address;
}
const std::string& ReporterServer::secret_file() const {
  return impl_->secret_file;
}
const std::string& ReporterServer::bound_path() const {
  return impl_->bound_path;
}
int ReporterServer::control_fd() const { return impl_->control.get(); }

absl::StatusOr<ReporterServer> ReporterServer::Start(
    ReporterServerOptions options) {
  if (options.job_name.empty()) {
    return absl::InvalidArgumentError("ReporterServer: job_name is empty");
  }
  if (options.runinfo_dir.empty()) {
    return absl::InvalidArgumentError("ReporterServer: runinfo_dir is empty");
  }
  struct stat st;
  if (::stat(options.runinfo_dir.c_str(), &st) != 0) {
    return ErrnoError(errno, "stat runinfo directory", options.runinfo_dir);
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "runinfo_dir ", options.runinfo_dir, " is not a directory"));
  }
  if (options.socket_path.empty()) {
    options.socket_path = options.runinfo_dir + "/reporter.sock";
  }
  if (::lstat(options.socket_path.c_str(), &st) == 0) {
    return absl::AlreadyExistsError(absl::StrCat(
        "reporter socket path ", options.socket_path,
        " exists (another reporter server?); remove it or use another "
        "runinfo directory"));
  }

  auto impl = std::make_unique<Impl>();
  impl->owner_pid = ::getpid();
  impl->control_timeout = options.control_timeout;
  impl->socket_path = options.socket_path;
  OwnedFd tcp_listen_fd;
  std::string secret;
  if (!options.tcp_listen.empty()) {
    TASKFORK_ASSIGN_OR_RETURN(
        tcp_listen_fd, ListenTcp(options.tcp_listen, &impl->tcp_address));
    if (options.secret_file.empty()) {
      options.secret_file =
          absl::StrCat(options.runinfo_dir, "/", kSecretFileName);
    }
    TASKFORK_ASSIGN_OR_RETURN(secret, CreateSecretFile(options.secret_file));
    impl->secret_file = options.secret_file;  // the Impl removes it on failure
    options.tcp_listen = impl->tcp_address;  // for the server's log
  }
  if (options.socket_path.size() > kMaxSunPath) {
    std::string tmpl = options.short_socket_dir + "/taskfork-reporter-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) {
      return ErrnoError(errno, "mkdtemp", tmpl);
    }
    impl->short_dir = tmpl;
    if (tmpl.size() + 14 > kMaxSunPath) {
      return absl::InvalidArgumentError(absl::StrCat(
          "short_socket_dir ", options.short_socket_dir,
          " is too long for sun_path too"));
    }
  }
  const std::string bound = impl->short_dir.empty()
                                ? options.socket_path
                                : impl->short_dir + "/reporter.sock";
  OwnedFd listen_fd(
      ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listen_fd) return ErrnoError(errno, "socket(AF_UNIX)");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, bound.data(), bound.size());
  if (::bind(listen_fd.get(), reinterpret_cast<const sockaddr*>(&addr),
             sizeof(addr)) != 0) {
    return ErrnoError(errno, "bind reporter socket", bound);
  }
  impl->bound_path = bound;  // from here on, the Impl removes it on failure
  // SO_PEERCRED also guards the moment between bind and chmod.
  if (::chmod(bound.c_str(), 0600) != 0) {
    return ErrnoError(errno, "chmod 0600", bound);
  }
  if (!impl->short_dir.empty() &&
      ::symlink(bound.c_str(), options.socket_path.c_str()) != 0) {
    return ErrnoError(errno, "symlink " + bound + " at", options.socket_path);
  }
  if (::listen(listen_fd.get(), SOMAXCONN) != 0) {
    return ErrnoError(errno, "listen", bound);
  }
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return ErrnoError(errno, "socketpair");
  }
  impl->control.Reset(pair[0]);
  OwnedFd child_end(pair[1]);

  Impl* raw = impl.get();
  ProcessOptions process_options;
  // Its own name in ps/top and /proc/<pid>/comm, not the runner's: a tool
  // (or a fault test) can tell it from the runner and from helper processes
  // that share the runner's name. Its own group: Ctrl-C at the terminal
  // goes to the runner, not here.
  process_options.name = kServerProcessName;
  process_options.own_process_group = true;
  auto server = Process::Start(std::move(process_options), [&]() -> int {
    ::signal(SIGPIPE, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    raw->control.Reset();
    raw->owner_pid = -1;  // never clean up the parent's files from here
    ServerLoop loop(std::move(options), std::move(listen_fd),
                    std::move(tcp_listen_fd), std::move(secret),
                    std::move(child_end), raw->bound_path, raw->short_dir);
    return loop.Run();
  });
  if (!server.ok()) {
    return absl::Status(server.status().code(),
                        absl::StrCat("fork reporter server: ",
                                     server.status().message()));
  }
  impl->server.emplace(*std::move(server));
  // Children forked from the runner later must not keep the control channel
  // open, or the server could not see the runner die.
  AtForkHandlers handlers;
  handlers.child = [raw] {
    if (raw->control.valid()) ::close(raw->control.Release());
  };
  impl->at_fork = RegisterAtFork(kAtForkPriorityReporter, std::move(handlers));
  return ReporterServer(std::move(impl));
}

absl::Status ReporterServer::CheckAlive() {
  CHECK(impl_->InOwner()) << "ReporterServer used in a forked child";
  if (!impl_->server.has_value()) {
    return absl::FailedPreconditionError("no server process");
  }
  if (!impl_->Ended()) {
    if (!impl_->server->is_alive()) {
      impl_->Noted(impl_->server->Join(absl::ZeroDuration()).status());
    } else if (impl_->control.valid()) {
      // The server closes its end only as it dies; a dying process is not
      // reapable for a moment, so wait for it then (bounded).
      pollfd p{impl_->control.get(), POLLIN, 0};
      char c;
      if (::poll(&p, 1, 0) == 1 &&
          ::recv(impl_->control.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT) <= 0) {
        return impl_->DiedError();
      }
    }
  }
  if (!impl_->Ended()) return absl::OkStatus();
  if (impl_->finalized && !impl_->reaped_elsewhere &&
      impl_->server->exit_status()->success()) {
    return absl::OkStatus();
  }
  return absl::UnavailableError(absl::StrCat("reporter server (pid ",
                                             impl_->pid(), ") ",
                                             impl_->HowItEnded()));
}

absl::Status ReporterServer::RegisterTask(const TaskInfo& task) {
  ControlRequest request;
  *request.mutable_register_task() = task;
  TASKFORK_ASSIGN_OR_RETURN(ControlReply reply,
                            impl_->Call(request, impl_->control_timeout));
  return StatusFromReply(reply);
}

// The posted requests are built in messages kept in the Impl, one per kind:
// their strings and submessages are reused, not allocated per task (each
// heap page a runner writes after a task's fork is a copy-on-write fault).
absl::Status ReporterServer::PostRegisterTask(const TaskInfo& task) {
  ControlRequest& request = impl_->posted_register;
  *request.mutable_register_task() = task;
  return impl_->Post(request);
}

absl::Status ReporterServer::PostTaskStarted(absl::string_view task_id,
                                             pid_t pid,
                                             const TaskStart& start) {
  ControlRequest& request = impl_->posted_started;
  auto* started = request.mutable_task_started();
  started->mutable_task_id()->assign(task_id.data(), task_id.size());
  started->set_pid(pid);
  *started->mutable_start() = start;
  return impl_->Post(request);
}

absl::Status ReporterServer::PostTaskEnded(absl::string_view task_id, pid_t pid,
                                           const ResultInfo& result,
                                           absl::Time time) {
  ControlRequest& request = impl_->posted_ended;
  auto* ended = request.mutable_task_ended();
  ended->mutable_task_id()->assign(task_id.data(), task_id.size());
  ended->set_pid(pid);
  *ended->mutable_result() = result;
  *ended->mutable_time() = ToProtoTime(time);
  return impl_->Post(request);
}

absl::Status ReporterServer::PostBeginAttempt(absl::string_view task_id,
                                              absl::string_view logfile) {
  ControlRequest request;
  auto* begin = request.mutable_begin_attempt();
  begin->set_task_id(std::string(task_id));
  begin->set_logfile(std::string(logfile));
  return impl_->Post(request);
}

absl::Status ReporterServer::FlushPosted() { return impl_->FlushPosted(); }

absl::Status ReporterServer::SyncPosted() {
  ControlRequest request;
  request.mutable_sync();
  TASKFORK_ASSIGN_OR_RETURN(ControlReply reply,
                            impl_->Call(request, impl_->control_timeout));
  return StatusFromReply(reply);
}

absl::Status ReporterServer::RecordTaskResult(absl::string_view task_id,
                                              const ResultInfo& result) {
  ControlRequest request;
  request.mutable_record_task_result()->set_task_id(std::string(task_id));
  *request.mutable_record_task_result()->mutable_result() = result;
  TASKFORK_ASSIGN_OR_RETURN(ControlReply reply,
                            impl_->Call(request, impl_->control_timeout));
  return StatusFromReply(reply);
}

absl::StatusOr<FinalizeResult> ReporterServer::Finalize(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  ControlRequest request;
  request.mutable_finalize();
  auto reply = impl_->Call(request, timeout);
  if (!reply.ok()) {
    if (absl::IsDeadlineExceeded(reply.status())) impl_->KillAndCleanUp();
    return reply.status();
  }
  impl_->finalized = true;
  impl_->control.Reset();
  impl_->Reap(std::max(deadline, absl::Now() + absl::Seconds(5)));
  TASKFORK_RETURN_IF_ERROR(StatusFromReply(*reply));
  FinalizeResult result;
  result.paths.results_json = reply->results_json_path();
  result.paths.xunit_xml = reply->xunit_xml_path();
  result.paths.report_html = reply->report_html_path();
  result.report = std::move(*reply->mutable_report());
  return result;
}

}  // namespace taskfork::reporter
