#include "serialize/serialize.h"

#include <cxxabi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace taskfork::serialize_internal {
namespace {

constexpr char kMagic[4] = {'\x89', 'T', 'F', 'S'};
// Longest type name written in a header (longer ones are cut); decoders
// refuse longer ones.
constexpr size_t kMaxTypeNameBytes = 240;
constexpr uint32_t kInfiniteQuarters = 0xFFFFFFFFu;
constexpr uint32_t kQuartersPerSecond = 4000000000u;

}  // namespace

void EncodeFatal(const std::string& what) {
  std::fprintf(stderr, "taskfork::serialize fatal: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string ShortTypeName(const std::type_info& type) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string name = (status == 0 && demangled != nullptr) ? demangled : type.name();
  std::free(demangled);
  // Drop namespace qualifiers outside template arguments:
  // "a::b::Foo<c::D>" -> "Foo<c::D>".
  int angle = 0;
  size_t start = 0;
  for (size_t i = 0; i + 1 < name.size(); ++i) {
    const char c = name[i];
    if (c == '<' || c == '(') ++angle;
    if (c == '>' || c == ')') --angle;
    if (angle == 0 && c == ':' && name[i + 1] == ':') start = i + 2;
  }
  return name.substr(start);
}

uint64_t Fingerprint(absl::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

void FinishTypeInfo(Describer& describer, TypeInfo* info) {
  info->display = describer.display();
  if (info->display.size() > kMaxTypeNameBytes) {
    info->display.resize(kMaxTypeNameBytes - 3);
    info->display.append("...");
  }
  info->fingerprint = Fingerprint(describer.structure());
  std::string& h = info->header;
  h.append(kMagic, sizeof(kMagic));
  h.push_back(static_cast<char>(serialize::kFormatVersion));
  Writer w(&h);
  w.Fixed(info->fingerprint);
  w.Varint(info->display.size());
  w.Bytes(info->display.data(), info->display.size());
  w.Finish();
}

// --- Writer ----------------------------------------------------------------

namespace {
// Runs at least this long are appended straight from the source.
constexpr size_t kDirectAppendBytes = 4096;
constexpr size_t kMinSlack = 256;
// At most this much of a reused buffer's spare capacity is taken at once:
// resize zero-fills what it takes, and a small value encoded into a buffer
// that once held a large one would otherwise pay for zeroing up to all of
// it (the record into a 1 MiB buffer: 958 ns with 64 KiB, 191 ns with
// 2 KiB; BM_Encode_Record_LargeBuffer). Beyond it the slack doubles with
// the bytes written, still without reallocating inside the capacity.
constexpr size_t kMaxCapacitySlack = 2048;
}  // namespace

void Writer::Grow(size_t n) {
  const size_t used = static_cast<size_t>(cur_ - out_->data());
  size_t slack = used > kMinSlack ? used : kMinSlack;
  if (slack < n) slack = n;
  // A reused buffer (EncodeTo into a cleared string) usually has room for
  // a small encoding already: take up to kMaxCapacitySlack of its spare
  // capacity in one resize, with no reallocation, instead of growing step
  // by step. Only ever raises the slack (which must stay >= n).
  const size_t spare = out_->capacity() - used;
  const size_t take = spare < kMaxCapacitySlack ? spare : kMaxCapacitySlack;
  if (take > slack) slack = take;
  out_->resize(used + slack);
  cur_ = out_->data() + used;
  end_ = out_->data() + out_->size();
}

void Writer::BytesSlow(const void* data, size_t n) {
  if (n >= kDirectAppendBytes) {
    Finish();
    out_->append(static_cast<const char*>(data), n);
    cur_ = end_ = out_->data() + out_->size();
    return;
  }
  Grow(n);
  std::memcpy(cur_, data, n);
  cur_ += n;
}

void Writer::TooDeep() {
  EncodeFatal(absl::StrCat(
      "serialize::Encode: the value nests deeper than kMaxDepth = ", kMaxDepth,
      " levels (a long linked list or a deep tree?); flatten it"));
}

bool Writer::Memo(const void* ptr, const void* tag, const std::type_info& type,
                  uint64_t* id) {
  if (memo_ == nullptr) {
    memo_ = std::make_unique<
        std::map<std::pair<const void*, const void*>, int64_t>>();
  }
  const auto [it, inserted] =
      memo_->emplace(std::make_pair(ptr, tag), static_cast<int64_t>(memo_->size()));
  if (inserted) memo_types_.push_back(&type);
  *id = static_cast<uint64_t>(it->second);
  return !inserted;
}

void Writer::CheckCycles() {
  const int64_t object = shared_.FindCycle(memo_types_.size());
  if (object >= 0) {
    EncodeFatal("serialize::Encode: std::shared_ptrs form a cycle through a " +
                ShortTypeName(*memo_types_[object]) +
                " (it would own itself and leak; Decode refuses it): make a "
                "back edge of the cycle a std::weak_ptr");
  }
}

int64_t SharedGraph::FindCycle(size_t objects) const {
  if (edges_.empty()) return -1;
  // Kahn's algorithm: peel objects with no remaining strong referrers;
  // whatever remains lies on or behind a cycle.
  std::vector<size_t> indegree(objects, 0);
  std::vector<size_t> first_out(objects + 1, 0);
  for (const auto& [from, to] : edges_) {
    ++indegree[to];
    ++first_out[from + 1];
  }
  for (size_t i = 0; i < objects; ++i) first_out[i + 1] += first_out[i];
  std::vector<uint64_t> out(edges_.size());
  {
    std::vector<size_t> fill(first_out.begin(), first_out.end() - 1);
    for (const auto& [from, to] : edges_) out[fill[from]++] = to;
  }
  std::vector<uint64_t> ready;
  for (size_t i = 0; i < objects; ++i) {
    if (indegree[i] == 0) ready.push_back(i);
  }
  size_t peeled = 0;
  while (!ready.empty()) {
    const uint64_t v = ready.back();
    ready.pop_back();
    ++peeled;
    for (size_t e = first_out[v]; e < first_out[v + 1]; ++e) {
      if (--indegree[out[e]] == 0) ready.push_back(out[e]);
    }
  }
  if (peeled == objects) return -1;
  // Every remaining object has a remaining referrer: walking referrers
  // backwards must revisit an object, which lies on a cycle.
  std::vector<int64_t> referrer(objects, -1);
  for (const auto& [from, to] : edges_) {
    if (indegree[from] > 0 && indegree[to] > 0) referrer[to] = static_cast<int64_t>(from);
  }
  int64_t v = -1;
  for (size_t i = 0; i < objects; ++i) {
    if (indegree[i] > 0) {
      v = static_cast<int64_t>(i);
      break;
    }
  }
  std::vector<bool> visited(objects, false);
  while (!visited[v]) {
    visited[v] = true;
    v = referrer[v];
  }
  return v;
}

// --- Reader ----------------------------------------------------------------

bool Reader::Fail(size_t offset, absl::string_view what, absl::StatusCode code) {
  failed_ = true;
  if (status_.ok()) {
    status_ = absl::Status(
        code, absl::StrCat("serialize::Decode<", info_->display, ">: ", what,
                           " at byte offset ", offset, " (of ",
                           end_ - begin_, " bytes)"));
  }
  return false;
}

bool Reader::FailWith(absl::Status status) {
  failed_ = true;
  if (status_.ok()) status_ = std::move(status);
  return false;
}

void Reader::ClearMemo() {
  for (MemoEntry& entry : memo_) entry.clear(entry.object.get());
}

bool Reader::Truncated(size_t need, absl::string_view what) {
  return Fail(offset(), absl::StrCat("truncated ", what, ": needs ", need,
                                     " bytes, ", remaining(), " remain"));
}

bool Reader::BadTag(size_t at, uint8_t tag, absl::string_view what) {
  return Fail(at, absl::StrCat("invalid ", what, " byte ", tag));
}

bool Reader::TooLong(size_t at, uint64_t count, size_t min_element_bytes,
                     absl::string_view what) {
  return Fail(at, absl::StrCat(what, " ", count, " (of elements of at least ",
                               min_element_bytes, " bytes) exceeds the ",
                               remaining(), " bytes that remain"));
}

bool Reader::TooDeep() {
  return Fail(offset(),
              absl::StrCat("value nests deeper than kMaxDepth = ", kMaxDepth),
              absl::StatusCode::kInvalidArgument);
}

bool Reader::VarintSlow(uint64_t* v, absl::string_view what) {
  *v = 0;  // written on every path (see Reader::Byte)
  const size_t at = offset();
  uint64_t result = 0;
  for (int i = 0; i < 10; ++i) {
    if (pos_ == end_) return Truncated(i + 1, what);
    const uint8_t b = static_cast<uint8_t>(*pos_++);
    if (i == 9 && b > 1) {
      return Fail(at, absl::StrCat(what, ": varint overflows 64 bits"));
    }
    result |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if (b < 0x80) {
      if (b == 0 && i > 0) {
        return Fail(at, absl::StrCat(what, ": non-canonical varint"));
      }
      *v = result;
      return true;
    }
  }
  return Fail(at, absl::StrCat(what, ": varint longer than 10 bytes"));
}

bool Reader::HeaderSlow() {
  const size_t size = static_cast<size_t>(end_ - begin_);
  if (size == 0) return Fail(0, "empty input (no header)");
  const size_t magic_bytes = size < sizeof(kMagic) ? size : sizeof(kMagic);
  if (std::memcmp(begin_, kMagic, magic_bytes) != 0) {
    return Fail(0,
                absl::StrCat("not taskfork::serialize bytes (bad magic \"",
                             absl::CHexEscape(absl::string_view(begin_, magic_bytes)),
                             "\")"),
                absl::StatusCode::kInvalidArgument);
  }
  if (size < sizeof(kMagic) + 1) {
    return Fail(size, absl::StrCat("truncated header: ", size, " bytes"));
  }
  pos_ += sizeof(kMagic);
  uint8_t version;
  Byte(&version, "version");
  if (version != serialize::kFormatVersion) {
    return Fail(4,
                absl::StrCat("format version ", version,
                             " is not supported (this build reads version ",
                             serialize::kFormatVersion, ")"),
                absl::StatusCode::kInvalidArgument);
  }
  uint64_t fingerprint;
  if (!Fixed(&fingerprint, "header fingerprint")) return false;
  uint64_t name_size;
  const size_t name_at = offset();
  if (!Varint(&name_size, "header type name length")) return false;
  if (name_size > kMaxTypeNameBytes) {
    return Fail(name_at, absl::StrCat("header type name length ", name_size,
                                      " exceeds ", kMaxTypeNameBytes));
  }
  if (name_size > remaining()) return Truncated(name_size, "header type name");
  const absl::string_view name(pos_, name_size);
  pos_ += name_size;
  if (fingerprint != info_->fingerprint) {
    return Fail(5,
                absl::StrFormat("type mismatch: the bytes hold a value of type "
                                "`%s` (fingerprint %016x), but Decode was asked "
                                "for `%s` (fingerprint %016x)",
                                absl::CHexEscape(name), fingerprint,
                                info_->display, info_->fingerprint),
                absl::StatusCode::kInvalidArgument);
  }
  return true;
}

bool Reader::Finish() {
  if (pos_ != end_) {
    return Fail(offset(), absl::StrCat(remaining(),
                                       " trailing bytes after the value"));
  }
  if (!memo_.empty()) {
    const int64_t object = shared_.FindCycle(memo_.size());
    if (object >= 0) {
      return Fail(memo_[object].offset,
                  absl::StrCat("shared object #", object,
                               " lies on a cycle of shared_ptrs (refused: it "
                               "would own itself and leak; back edges must be "
                               "weak_ptrs)"),
                  absl::StatusCode::kInvalidArgument);
    }
  }
  return true;
}

// --- absl::Duration, absl::Status --------------------------------------------

void Codec<absl::Duration>::Encode(const absl::Duration& v, Writer& w) {
  int64_t seconds;
  uint32_t quarters;
  if (v == absl::InfiniteDuration()) {
    seconds = std::numeric_limits<int64_t>::max();
    quarters = kInfiniteQuarters;
  } else if (v == -absl::InfiniteDuration()) {
    seconds = std::numeric_limits<int64_t>::min();
    quarters = kInfiniteQuarters;
  } else {
    absl::Duration rem;
    seconds = absl::IDivDuration(v, absl::Seconds(1), &rem);
    if (rem < absl::ZeroDuration()) {
      seconds -= 1;
      rem += absl::Seconds(1);
    }
    absl::Duration unused;
    quarters = static_cast<uint32_t>(
        absl::IDivDuration(rem, absl::Nanoseconds(1) / 4, &unused));
  }
  w.Fixed(seconds);
  w.Fixed(quarters);
}

bool Codec<absl::Duration>::Decode(Reader& r, absl::Duration& v) {
  const size_t at = r.offset();
  int64_t seconds;
  uint32_t quarters;
  if (!r.Fixed(&seconds, "duration") || !r.Fixed(&quarters, "duration")) {
    return false;
  }
  if (quarters == kInfiniteQuarters) {
    if (seconds == std::numeric_limits<int64_t>::max()) {
      v = absl::InfiniteDuration();
      return true;
    }
    if (seconds == std::numeric_limits<int64_t>::min()) {
      v = -absl::InfiniteDuration();
      return true;
    }
  }
  if (quarters >= kQuartersPerSecond) {
    return r.Fail(at, absl::StrCat("invalid duration: ", quarters,
                                   " quarter-nanoseconds"));
  }
  v = absl::Seconds(seconds) + (absl::Nanoseconds(1) / 4) * quarters;
  return true;
}

void Codec<absl::Status>::Encode(const absl::Status& v, Writer& w) {
  w.Varint(static_cast<uint64_t>(v.code()));
  const absl::string_view message = v.message();
  w.Varint(message.size());
  w.Bytes(message.data(), message.size());
  std::vector<std::pair<std::string, std::string>> payloads;
  v.ForEachPayload([&payloads](absl::string_view url, const absl::Cord& cord) {
    payloads.emplace_back(std::string(url), std::string(cord));
  });
  // absl::Status iterates its payloads in an order that depends on the
  // address of their storage (on purpose, so nobody relies on it): sort by
  // type URL so that equal statuses always encode to equal bytes. URLs are
  // unique, so the order is total.
  std::sort(payloads.begin(), payloads.end());
  w.Varint(payloads.size());
  for (const auto& [url, bytes] : payloads) {
    w.Varint(url.size());
    w.Bytes(url.data(), url.size());
    w.Varint(bytes.size());
    w.Bytes(bytes.data(), bytes.size());
  }
}

bool Codec<absl::Status>::Decode(Reader& r, absl::Status& v) {
  const size_t at = r.offset();
  uint64_t code;
  if (!r.Varint(&code, "status code")) return false;
  if (code > static_cast<uint64_t>(absl::StatusCode::kUnauthenticated)) {
    return r.Fail(at, absl::StrCat("invalid absl::StatusCode ", code));
  }
  std::string message;
  if (!Codec<std::string>::Decode(r, message)) return false;
  const size_t payloads_at = r.offset();
  uint64_t payloads;
  if (!r.Count(&payloads, 2, "status payload count")) return false;
  if (code == 0) {
    if (!message.empty() || payloads != 0) {
      return r.Fail(at, "OK status with a message or payloads");
    }
    v = absl::OkStatus();
    return true;
  }
  v = absl::Status(static_cast<absl::StatusCode>(code), message);
  for (uint64_t i = 0; i < payloads; ++i) {
    std::string url;
    std::string bytes;
    if (!Codec<std::string>::Decode(r, url) ||
        !Codec<std::string>::Decode(r, bytes)) {
      return false;
    }
    if (v.GetPayload(url).has_value()) {
      return r.Fail(payloads_at, "duplicate status payload " + url);
    }
    v.SetPayload(url, absl::Cord(bytes));
  }
  return true;
}

}  // namespace taskfork::serialize_internal
