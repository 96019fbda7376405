#include "serialize/protobuf.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/timestamp.pb.h"
#include "gtest/gtest.h"
#include "serialize/bench_record.pb.h"
#include "serialize/serialize.h"

namespace taskfork::serialize {
namespace {

using ::taskfork::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ProtoRecord = ::taskfork::serialize::bench::Record;

ProtoRecord MakeProto() {
  ProtoRecord r;
  r.set_name("tony stark");
  r.set_callsign("ironman");
  for (const char* s : {"genius", "billionaire", "playboy", "philanthropist"}) {
    r.add_also_known_as(s);
  }
  for (int i = 0; i < 100; ++i) r.add_values(i * 12345);
  (*r.mutable_scores())["strength"] = 0.5;
  return r;
}

bool SameMessage(const ProtoRecord& a, const ProtoRecord& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

struct WithProto {
  int id = 0;
  ProtoRecord record;
  std::optional<google::protobuf::Timestamp> when;
  TASKFORK_SERIALIZE(id, record, when);
};

TEST(SerializeProtobuf, RoundTrip) {
  static_assert(kIsSerializable<ProtoRecord>);
  static_assert(kIsSerializable<std::map<std::string, ProtoRecord>>);
  const ProtoRecord r = MakeProto();
  absl::StatusOr<ProtoRecord> d = Decode<ProtoRecord>(Encode(r));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(SameMessage(*d, r));
  absl::StatusOr<ProtoRecord> empty = Decode<ProtoRecord>(Encode(ProtoRecord()));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->ByteSizeLong(), 0u);
}

TEST(SerializeProtobuf, Nested) {
  WithProto w;
  w.id = 3;
  w.record = MakeProto();
  w.when.emplace();
  w.when->set_seconds(1700000000);
  std::vector<WithProto> v(2, w);
  v[1].when.reset();
  absl::StatusOr<std::vector<WithProto>> d = Decode<std::vector<WithProto>>(Encode(v));
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->size(), 2u);
  EXPECT_EQ((*d)[0].id, 3);
  EXPECT_TRUE(SameMessage((*d)[1].record, w.record));
  EXPECT_EQ((*d)[0].when->seconds(), 1700000000);
  EXPECT_FALSE((*d)[1].when.has_value());
  EXPECT_EQ(TypeName<WithProto>(),
            "WithProto{i32,pb:taskfork.serialize.bench.Record,"
            "?pb:google.protobuf.Timestamp}");
}

TEST(SerializeProtobuf, OtherMessageTypeIsATypeMismatch) {
  EXPECT_THAT(Decode<google::protobuf::Timestamp>(Encode(MakeProto())),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("pb:taskfork.serialize.bench.Record"),
                             HasSubstr("pb:google.protobuf.Timestamp"))));
}

TEST(SerializeProtobuf, CorruptMessageIsDataLoss) {
  std::string bytes = Encode(MakeProto());
  const size_t header = serialize_internal::GetTypeInfo<ProtoRecord>().header.size();
  // Field 1 (name) with wire type 7, which does not exist.
  std::string body = bytes.substr(header);
  body[2] = static_cast<char>(0x0f);
  EXPECT_THAT(Decode<ProtoRecord>(bytes.substr(0, header) + body),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("does not parse"),
                             HasSubstr("offset " + std::to_string(header)))));
  // A length beyond the input.
  EXPECT_THAT(Decode<ProtoRecord>(bytes.substr(0, header) + "\x7f"),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("exceeds")));
}

}  // namespace
}  // namespace taskfork::serialize
