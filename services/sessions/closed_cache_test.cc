#include "services/sessions/closed_cache.h"

#include "gtest/gtest.h"

namespace switchboard::sessions {
namespace {

SessionRecord Closed(const std::string& id) {
  SessionRecord r;
  r.session.set_session_id(id);
  r.session.set_state(v1::SESSION_STATE_CLOSED);
  return r;
}

TEST(ClosedSessionCacheTest, KeepsTheMostRecentlyUsed) {
  ClosedSessionCache cache(2);
  cache.Put(Closed("a"));
  cache.Put(Closed("b"));
  ASSERT_TRUE(cache.Get("a").has_value());  // a is now the most recent
  cache.Put(Closed("c"));                   // b goes
  EXPECT_FALSE(cache.Get("b").has_value());
  EXPECT_TRUE(cache.Get("a").has_value());
  EXPECT_TRUE(cache.Get("c").has_value());
  EXPECT_EQ(cache.size(), 2u);
  SessionRecord updated = Closed("a");
  updated.routing_pending = true;
  cache.Put(updated);
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_TRUE(cache.Get("a")->routing_pending);
}

TEST(ClosedSessionCacheTest, ZeroCapacityKeepsNothing) {
  ClosedSessionCache cache(0);
  cache.Put(Closed("a"));
  EXPECT_FALSE(cache.Get("a").has_value());
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace switchboard::sessions
