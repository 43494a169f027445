#include "services/sessions/deadlines.h"

#include "gtest/gtest.h"
#include "libs/protoutil/time.h"

namespace switchboard::sessions {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);
const IdleTimeouts kTimeouts{absl::Minutes(30), absl::Hours(24)};

SessionRecord InState(v1::SessionState state) {
  SessionRecord r;
  r.session.set_state(state);
  r.state_since = kNow;
  return r;
}

TEST(DeadlinesTest, EachStateFallsDueForItsOwnReason) {
  EXPECT_EQ(NextDue(InState(v1::SESSION_STATE_BOT), kTimeouts), kNow + absl::Minutes(30));
  EXPECT_EQ(NextDue(InState(v1::SESSION_STATE_RESOLVED), kTimeouts), kNow + absl::Hours(24));
  EXPECT_EQ(NextDue(InState(v1::SESSION_STATE_QUEUED), kTimeouts), absl::InfiniteFuture());
  EXPECT_EQ(NextDue(InState(v1::SESSION_STATE_CLOSED), kTimeouts), absl::InfiniteFuture());
  // A message moves the idle time on.
  SessionRecord assigned = InState(v1::SESSION_STATE_ASSIGNED);
  protoutil::ToTimestamp(kNow + absl::Minutes(10), assigned.session.mutable_last_message_at());
  EXPECT_EQ(NextDue(assigned, kTimeouts), kNow + absl::Minutes(40));
  EXPECT_FALSE(IdleAt(assigned, kTimeouts, kNow + absl::Minutes(39)));
  EXPECT_TRUE(IdleAt(assigned, kTimeouts, kNow + absl::Minutes(40)));
  // An SLA falls due just after its due time (a breach is a time passed),
  // until a human answered.
  SessionRecord email = InState(v1::SESSION_STATE_QUEUED);
  protoutil::ToTimestamp(kNow + absl::Hours(48), email.session.mutable_sla()->mutable_due_at());
  EXPECT_EQ(NextDue(email, kTimeouts), kNow + absl::Hours(48) + absl::Nanoseconds(1));
  email.session.mutable_sla()->set_breached(true);
  EXPECT_EQ(NextDue(email, kTimeouts), absl::InfiniteFuture());
  // An offer lapses at its expiry; a stale one (no longer QUEUED) at once.
  SessionRecord offered = InState(v1::SESSION_STATE_QUEUED);
  offered.session.set_offered_agent_id("agent-1");
  protoutil::ToTimestamp(kNow + absl::Seconds(30), offered.session.mutable_offer_expires_at());
  EXPECT_EQ(NextDue(offered, kTimeouts), kNow + absl::Seconds(30));
  offered.session.set_state(v1::SESSION_STATE_BOT);
  EXPECT_EQ(NextDue(offered, kTimeouts), absl::InfinitePast());
}

TEST(DeadlinesTest, TheIndexGivesWhatIsDueEarliestFirst) {
  DeadlineIndex index;
  index.Set("late", kNow + absl::Minutes(5));
  index.Set("early", kNow + absl::Minutes(1));
  index.Set("never", absl::InfiniteFuture());
  index.Set("middle", kNow + absl::Minutes(3));
  EXPECT_EQ(index.size(), 3u);
  EXPECT_TRUE(index.Due(kNow, 10).empty());
  EXPECT_EQ(index.Due(kNow + absl::Minutes(3), 10),
            (std::vector<std::string>{"early", "middle"}));
  EXPECT_EQ(index.Due(kNow + absl::Minutes(10), 2),
            (std::vector<std::string>{"early", "middle"}));
  // Moving a due time replaces it; InfiniteFuture removes it.
  index.Set("early", kNow + absl::Minutes(9));
  EXPECT_EQ(index.Due(kNow + absl::Minutes(5), 10),
            (std::vector<std::string>{"middle", "late"}));
  index.Set("middle", absl::InfiniteFuture());
  index.Remove("late");
  index.Remove("unknown");
  EXPECT_EQ(index.size(), 1u);
  EXPECT_EQ(index.Due(kNow + absl::Hours(1), 10), (std::vector<std::string>{"early"}));
}

}  // namespace
}  // namespace switchboard::sessions
