#include "libs/fault/fault_point.h"

#include <sys/wait.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace switchboard::fault {
namespace {

// Runs `body` in a child process and returns the signal that ended it (0 if
// it exited normally).
template <typename Body>
int DeathSignal(Body body) {
  const pid_t pid = fork();
  if (pid == 0) {
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

TEST(FaultPointTest, MalformedSpecsAreRefused) {
  EXPECT_TRUE(absl::IsInvalidArgument(Arm(":3")));
  EXPECT_TRUE(absl::IsInvalidArgument(Arm("a:0")));
  EXPECT_TRUE(absl::IsInvalidArgument(Arm("a:x")));
  EXPECT_TRUE(Arm("").ok());
}

TEST(FaultPointTest, UnarmedAndOtherPointsDoNothing) {
  EXPECT_EQ(DeathSignal([] {
              Point("anything");
              ASSERT_TRUE(Arm("a.b").ok());
              Point("a.c");
            }),
            0);
}

TEST(FaultPointTest, DiesBySigkillOnTheNthArrival) {
  EXPECT_EQ(DeathSignal([] {
              ASSERT_TRUE(Arm("commit:3").ok());
              Point("commit");
              Point("commit");
              _exit(0);
            }),
            0);
  EXPECT_EQ(DeathSignal([] {
              ASSERT_TRUE(Arm("commit:3").ok());
              for (int i = 0; i < 3; ++i) Point("commit");
              _exit(0);
            }),
            SIGKILL);
}

}  // namespace
}  // namespace switchboard::fault
