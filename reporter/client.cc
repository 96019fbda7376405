#include "reporter/client.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>  // NOLINT: see mu_
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/fd.h"
#include "base/status_macros.h"
#include "fork/at_fork.h"
#include "glog/logging.h"
#include "reporter/address.h"
#include "reporter/internal/io.h"
#include "reporter/report_builder.h"
#include "reporter/secret.h"

namespace taskfork::reporter {
namespace {

using reporter_internal::ConnectTcp;
using reporter_internal::ConnectUnix;
using reporter_internal::ReadFrame;
using reporter_internal::RetryPolicy;
using reporter_internal::SendAll;

// Connects and says hello; returns the connected socket and the decoder with
// any bytes read past the answer.
absl::StatusOr<OwnedFd> Handshake(const std::string& path, const Hello& hello,
                                  const RetryPolicy& retry,
                                  absl::Duration io_timeout,
                                  FrameDecoder* decoder) {
  TASKFORK_ASSIGN_OR_RETURN(ReporterAddress address, ParseReporterAddress(path));
  OwnedFd fd;
  if (address.kind == ReporterAddress::Kind::kTcp) {
    TASKFORK_ASSIGN_OR_RETURN(
        fd, ConnectTcp(address.host, address.port, retry, io_timeout));
  } else {
    TASKFORK_ASSIGN_OR_RETURN(fd, ConnectUnix(address.path, retry));
  }
  const std::string what = absl::StrCat("reporter server at ", path);
  const absl::Time deadline = absl::Now() + io_timeout;
  ClientMessage m;
  *m.mutable_hello() = hello;
  std::string frame;
  AppendFrame(m, &frame);
  const absl::Status sent = SendAll(fd.get(), frame, deadline, what);
  ServerMessage reply;
  auto got = ReadFrame(fd.get(), decoder, &reply, deadline, what);
  // A refusing server may close before our hello arrived (send: EPIPE); its
  // Refusal frame is still readable, and says more than EPIPE.
  if (!sent.ok() && !(got.ok() && *got && reply.has_refusal())) return sent;
  if (!got.ok()) return got.status();
  if (!*got) {
    return absl::UnavailableError(
        absl::StrCat(what, " closed the connection during the handshake"));
  }
  if (reply.has_refusal()) {
    return absl::PermissionDeniedError(reply.refusal().reason());
  }
  if (!reply.has_welcome()) {
    return absl::DataLossError(
        absl::StrCat(what, " answered hello with frame kind ", reply.kind_case()));
  }
  return fd;
}

}  // namespace

class ReportClient::Impl {
 public:
  Impl(ReportClientOptions options, std::string secret)
      : options_(std::move(options)),
        secret_(std::move(secret)),
        decoder_(kDefaultMaxFrameSize),
        pid_(::getpid()) {}

  ~Impl() {
    at_fork_.Reset();
    std::lock_guard<std::mutex> lock(mu_);
    if (fd_ && status_.ok() && !buffer_.empty()) {
      const absl::Status s = FlushLocked();
      if (!s.ok()) LOG(WARNING) << "ReportClient: " << s;
    }
  }

  void RegisterForkHandlers() {
    AtForkHandlers h;
    h.prepare = [this]() {
      mu_.lock();
      // Send what is queued so the child never repeats it.
      if (fd_ && status_.ok() && !buffer_.empty()) {
        const absl::Status s = FlushLocked();
        if (!s.ok()) LOG(WARNING) << "ReportClient: flush before fork: " << s;
      }
    };
    h.parent = [this]() { mu_.unlock(); };
    // Async-signal-safe apart from the state mu_ protects (locked by
    // prepare): close(), getpid(), and clearing without freeing.
    h.child = [this]() {
      if (fd_.valid()) ::close(fd_.Release());
      parent_pid_ = pid_;
      pid_ = ::getpid();
      buffer_.clear();
      decoder_ = FrameDecoder(kDefaultMaxFrameSize);
      if (!closed_) status_ = absl::OkStatus();
      mu_.unlock();
    };
    // A forked child (Process, Pcall, the runner's task process) _exit()s
    // without destructors: send what it queued. Bounded by io_timeout; never
    // connects (a child that did not report has nothing queued) and never
    // retries after a failure (sticky: the call that failed returned it).
    h.child_exit = [this]() { FlushAtChildExit(); };
    at_fork_ = RegisterAtFork(kAtForkPriorityReporter, std::move(h));
  }

  void FlushAtChildExit() {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_ || !fd_ || !status_.ok() || buffer_.empty()) return;
    const size_t queued = buffer_.size();
    const absl::Status s = FlushLocked();
    if (!s.ok()) {
      LOG(WARNING) << "ReportClient of task " << options_.task_id << ": "
                   << queued << " bytes of events not sent at exit of pid "
                   << pid_ << ": " << s;
    }
  }

  absl::Status ConnectLocked() /* requires mu_ */ {
    Hello hello;
    hello.set_role(Hello::ROLE_CLIENT);
    hello.set_task_id(options_.task_id);
    hello.set_pid(pid_);
    hello.set_parent_pid(parent_pid_);
    hello.set_secret(secret_);
    RetryPolicy retry{options_.connect_attempts, options_.initial_backoff,
                      options_.max_backoff};
    decoder_ = FrameDecoder(kDefaultMaxFrameSize);
    auto fd = Handshake(options_.socket_path, hello, retry, options_.io_timeout,
                        &decoder_);
    if (!fd.ok()) {
      status_ = fd.status();
      return status_;
    }
    fd_ = std::move(*fd);
    return absl::OkStatus();
  }

  // Ready to queue an event: connected (reconnecting after fork), not closed,
  // no sticky error.
  absl::Status ReadyLocked() /* requires mu_ */ {
    if (closed_) {
      return absl::FailedPreconditionError(
          absl::StrCat("ReportClient of task ", options_.task_id, " is closed"));
    }
    TASKFORK_RETURN_IF_ERROR(status_);
    if (!fd_) return ConnectLocked();
    return absl::OkStatus();
  }

  absl::Status QueueLocked(const ClientMessage& m) /* requires mu_ */ {
    const size_t size = m.ByteSizeLong();
    if (size > options_.max_frame_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "reporter event of task ", options_.task_id, " is ", size,
          " bytes, more than the maximum frame size ", options_.max_frame_size,
          "; shorten its reason / data / description"));
    }
    TASKFORK_RETURN_IF_ERROR(ReadyLocked());
    AppendFrame(m, &buffer_);
    if (buffer_.size() >= options_.buffer_bytes) return FlushLocked();
    return absl::OkStatus();
  }

  absl::Status FlushLocked() /* requires mu_ */ {
    if (buffer_.empty()) return absl::OkStatus();
    const absl::Status s =
        SendAll(fd_.get(), buffer_, absl::Now() + options_.io_timeout,
                absl::StrCat("reporter server at ", options_.socket_path));
    buffer_.clear();
    if (!s.ok()) {
      status_ = s;
      fd_.Reset();
    }
    return s;
  }

  absl::Status Queue(const ClientMessage& m) {
    std::lock_guard<std::mutex> lock(mu_);
    return QueueLocked(m);
  }

  absl::StatusOr<uint64_t> StartSection(absl::string_view name,
                                        const SectionOptions& options,
                                        const char* file, int line) {
    if (name.empty()) {
      return absl::InvalidArgumentError("StartSection: the name is empty");
    }
    ClientMessage m;
    SectionStart* s = m.mutable_section_start();
    s->set_parent_id(options.parent_id);
    s->set_type(options.type);
    s->set_name(std::string(name));
    s->set_description(options.description);
    if (file != nullptr) {
      s->mutable_source()->set_file(file);
      s->mutable_source()->set_line(line);
    }
    if (options_.log_position) {
      if (auto pos = options_.log_position()) {
        s->mutable_log()->set_file(pos->file);
        s->mutable_log()->set_begin(pos->offset);
      }
    }
    *s->mutable_time() = ToProtoTime(absl::Now());
    std::lock_guard<std::mutex> lock(mu_);
    TASKFORK_RETURN_IF_ERROR(ReadyLocked());
    const uint64_t id = (static_cast<uint64_t>(pid_) << 32) |
                        (++counter_ & 0xffffffffu);
    s->set_id(id);
    TASKFORK_RETURN_IF_ERROR(QueueLocked(m));
    if (options_.log_position) log_begin_[id] = s->log().begin();
    return id;
  }

  absl::Status StopSection(uint64_t id, std::optional<Result> result,
                           absl::string_view reason,
                           const google::protobuf::Map<std::string, std::string>* data) {
    ClientMessage m;
    SectionStop* s = m.mutable_section_stop();
    s->set_id(id);
    if (result) {
      *s->mutable_result() = MakeResultInfo(*result, reason);
    } else if (!reason.empty()) {
      s->mutable_result()->set_reason(std::string(reason));
    }
    if (data != nullptr) *s->mutable_result()->mutable_data() = *data;
    std::optional<LogPosition> pos;
    if (options_.log_position) pos = options_.log_position();
    *s->mutable_time() = ToProtoTime(absl::Now());
    std::lock_guard<std::mutex> lock(mu_);
    if (pos) {
      auto it = log_begin_.find(id);
      if (it != log_begin_.end()) {
        if (pos->offset >= it->second) s->set_log_size(pos->offset - it->second);
        log_begin_.erase(it);
      }
    }
    return QueueLocked(m);
  }

  absl::Status Flush() {
    std::lock_guard<std::mutex> lock(mu_);
    TASKFORK_RETURN_IF_ERROR(ReadyLocked());
    return FlushLocked();
  }

  absl::Status Sync() {
    std::lock_guard<std::mutex> lock(mu_);
    TASKFORK_RETURN_IF_ERROR(ReadyLocked());
    ClientMessage m;
    m.mutable_sync()->set_token(++sync_token_);
    AppendFrame(m, &buffer_);
    TASKFORK_RETURN_IF_ERROR(FlushLocked());
    const std::string what =
        absl::StrCat("reporter server at ", options_.socket_path);
    const absl::Time deadline = absl::Now() + options_.io_timeout;
    ServerMessage reply;
    for (;;) {
      auto got = ReadFrame(fd_.get(), &decoder_, &reply, deadline, what);
      absl::Status s = got.status();
      if (s.ok() && !*got) {
        s = absl::UnavailableError(absl::StrCat(what, " closed the connection"));
      }
      if (!s.ok()) {
        if (!absl::IsDeadlineExceeded(s)) {
          status_ = s;
          fd_.Reset();
        }
        return s;
      }
      if (reply.has_sync_reply() && reply.sync_reply().token() == sync_token_) {
        return absl::OkStatus();
      }
    }
  }

  absl::Status Close() {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return absl::OkStatus();
    absl::Status s = status_;
    if (s.ok() && fd_) s = FlushLocked();
    closed_ = true;
    fd_.Reset();
    return s;
  }

  absl::Status status() const {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

  const ReportClientOptions& options() const { return options_; }

 private:
  const ReportClientOptions options_;
  const std::string secret_;  // from secret_file; empty without one
  // std::mutex (a pthread mutex) rather than absl::Mutex: unlockable in the
  // at-fork child handler, and visible to ThreadSanitizer (Debian's Abseil is
  // not instrumented). Guards every member below but at_fork_.
  mutable std::mutex mu_;
  OwnedFd fd_;
  FrameDecoder decoder_;
  std::string buffer_;
  absl::Status status_;
  bool closed_ = false;
  pid_t pid_;
  pid_t parent_pid_ = 0;
  uint64_t counter_ = 0;
  uint64_t sync_token_ = 0;
  absl::flat_hash_map<uint64_t, uint64_t> log_begin_;
  AtForkRegistration at_fork_;
};

absl::StatusOr<ReportClient> ReportClient::Connect(ReportClientOptions options) {
  if (options.socket_path.empty()) {
    return absl::InvalidArgumentError("ReportClient: socket_path is empty");
  }
  if (options.task_id.empty()) {
    return absl::InvalidArgumentError("ReportClient: task_id is empty");
  }
  TASKFORK_RETURN_IF_ERROR(ParseReporterAddress(options.socket_path).status());
  std::string secret;
  if (!options.secret_file.empty()) {
    TASKFORK_ASSIGN_OR_RETURN(secret, ReadSecretFile(options.secret_file));
  }
  auto impl = std::make_unique<Impl>(std::move(options), std::move(secret));
  TASKFORK_RETURN_IF_ERROR(impl->Flush());  // connects
  impl->RegisterForkHandlers();
  return ReportClient(std::move(impl));
}

ReportClient::ReportClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ReportClient::ReportClient(ReportClient&&) noexcept = default;
ReportClient& ReportClient::operator=(ReportClient&&) noexcept = default;
ReportClient::~ReportClient() = default;

absl::Status ReportClient::StartTask(TaskStart start) {
  if (start.time().seconds() == 0) *start.mutable_time() = ToProtoTime(absl::Now());
  ClientMessage m;
  *m.mutable_task_start() = std::move(start);
  return impl_->Queue(m);
}

absl::Status ReportClient::StopTask(Result result, absl::string_view reason) {
  ClientMessage m;
  *m.mutable_task_stop()->mutable_result() = MakeResultInfo(result, reason);
  *m.mutable_task_stop()->mutable_time() = ToProtoTime(absl::Now());
  return impl_->Queue(m);
}

absl::StatusOr<uint64_t> ReportClient::StartSection(absl::string_view name,
                                                    const SectionOptions& options,
                                                    const char* file, int line) {
  return impl_->StartSection(name, options, file, line);
}

absl::Status ReportClient::StopSection(
    uint64_t id, std::optional<Result> result, absl::string_view reason,
    const google::protobuf::Map<std::string, std::string>* data) {
  return impl_->StopSection(id, result, reason, data);
}

ScopedSection ReportClient::Section(std::string name, SectionOptions options,
                                    const char* file, int line) {
  ScopedSection s;
  s.client_ = this;
  s.owner_pid_ = ::getpid();
  auto id = StartSection(name, options, file, line);
  if (id.ok()) {
    s.id_ = *id;
    s.active_ = true;
  } else {
    s.status_ = id.status();
  }
  return s;
}

absl::Status ReportClient::Flush() { return impl_->Flush(); }
absl::Status ReportClient::Sync() { return impl_->Sync(); }
absl::Status ReportClient::Close() { return impl_->Close(); }
const std::string& ReportClient::task_id() const {
  return impl_->options().task_id;
}
absl::Status ReportClient::status() const { return impl_->status(); }

// ScopedSection --------------------------------------------------------------

ScopedSection::ScopedSection(ScopedSection&& other) noexcept
    : client_(other.client_),
      id_(other.id_),
      owner_pid_(other.owner_pid_),
      active_(std::exchange(other.active_, false)),
      result_(other.result_),
      reason_(std::move(other.reason_)),
      status_(other.status_) {}

ScopedSection& ScopedSection::operator=(ScopedSection&& other) noexcept {
  if (this != &other) {
    if (active_) (void)Stop();
    client_ = other.client_;
    id_ = other.id_;
    owner_pid_ = other.owner_pid_;
    active_ = std::exchange(other.active_, false);
    result_ = other.result_;
    reason_ = std::move(other.reason_);
    status_ = other.status_;
  }
  return *this;
}

ScopedSection::~ScopedSection() {
  if (!active_ || ::getpid() != owner_pid_) return;
  const absl::Status s = Stop();
  if (!s.ok()) LOG(WARNING) << "stopping reporter section " << id_ << ": " << s;
}

void ScopedSection::SetResult(Result result, absl::string_view reason) {
  if (!result_ || static_cast<int>(result) > static_cast<int>(*result_)) {
    result_ = result;
    reason_ = std::string(reason);
  }
}

ScopedSection ScopedSection::Step(std::string name, const char* file, int line) {
  if (client_ == nullptr || !status_.ok()) {
    ScopedSection s;
    s.status_ = client_ == nullptr
                    ? absl::FailedPreconditionError("Step() on an empty section")
                    : status_;
    return s;
  }
  SectionOptions options;
  options.type = "Step";
  options.parent_id = id_;
  return client_->Section(std::move(name), options, file, line);
}

absl::Status ScopedSection::Stop() {
  TASKFORK_RETURN_IF_ERROR(status_);
  if (!active_) {
    return absl::FailedPreconditionError(
        absl::StrCat("section ", id_, " is not running"));
  }
  if (::getpid() != owner_pid_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "section ", id_, " belongs to pid ", owner_pid_, ", not ", ::getpid()));
  }
  active_ = false;
  return client_->StopSection(id_, result_, reason_);
}

// ReportSubscriber -------------------------------------------------------------

absl::StatusOr<ReportSubscriber> ReportSubscriber::Connect(
    const std::string& socket_path, absl::Duration timeout,
    const std::string& secret_file) {
  if (socket_path.empty()) {
    return absl::InvalidArgumentError("ReportSubscriber: socket_path is empty");
  }
  TASKFORK_RETURN_IF_ERROR(ParseReporterAddress(socket_path).status());
  std::string secret;
  if (!secret_file.empty()) {
    TASKFORK_ASSIGN_OR_RETURN(secret, ReadSecretFile(secret_file));
  }
  ReportSubscriber sub;
  sub.path_ = socket_path;
  sub.decoder_ = std::make_unique<FrameDecoder>(~0u >> 1);
  Hello hello;
  hello.set_role(Hello::ROLE_SUBSCRIBER);
  hello.set_pid(::getpid());
  hello.set_secret(secret);
  TASKFORK_ASSIGN_OR_RETURN(
      sub.fd_, Handshake(socket_path, hello, RetryPolicy{}, timeout,
                         sub.decoder_.get()));
  return sub;
}

absl::StatusOr<Event> ReportSubscriber::Next(absl::Duration timeout) {
  if (!fd_) {
    return absl::OutOfRangeError(
        absl::StrCat("reporter server at ", path_, " ended the event stream"));
  }
  ServerMessage m;
  const std::string what = absl::StrCat("reporter server at ", path_);
  auto got = ReadFrame(fd_.get(), decoder_.get(), &m, absl::Now() + timeout, what);
  if (got.ok() && !*got) {
    fd_.Reset();
    return absl::OutOfRangeError(absl::StrCat(what, " ended the event stream"));
  }
  if (!got.ok()) {
    if (absl::IsUnavailable(got.status())) {
      fd_.Reset();
      return absl::OutOfRangeError(absl::StrCat(what, " ended the event stream: ",
                                                got.status().message()));
    }
    return got.status();
  }
  if (!m.has_event()) {
    return absl::DataLossError(
        absl::StrCat(what, " sent frame kind ", m.kind_case(), " to a subscriber"));
  }
  return std::move(*m.mutable_event());
}

int ReportSubscriber::fd() const { return fd_.get(); }

}  // namespace taskfork::reporter
