#include "libs/protoutil/time.h"

#include "gtest/gtest.h"

namespace switchboard::protoutil {
namespace {

TEST(ProtoTimeTest, RoundTripsAndLeavesInfiniteUnset) {
  const absl::Time t = absl::FromUnixMicros(1'800'000'000'123'456);
  google::protobuf::Timestamp ts;
  ToTimestamp(t, &ts);
  EXPECT_EQ(ts.seconds(), 1'800'000'000);
  EXPECT_EQ(ts.nanos(), 123'456'000);
  EXPECT_EQ(FromTimestamp(ts), t);
  ToTimestamp(absl::InfinitePast(), &ts);
  EXPECT_EQ(ts.seconds(), 0);

  google::protobuf::Duration d;
  ToDuration(absl::Milliseconds(10'500), &d);
  EXPECT_EQ(d.seconds(), 10);
  EXPECT_EQ(d.nanos(), 500'000'000);
  EXPECT_EQ(FromDuration(d), absl::Milliseconds(10'500));
}

}  // namespace
}  // namespace switchboard::protoutil
