// Bot::ReloadIfChanged: each replica follows its --knowledge_base file.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/storage/test_dir.h"
#include "prometheus/registry.h"
#include "services/bot/bot.h"

namespace switchboard::bot {
namespace {

// Small enough to train in a moment; `answer` tells the edits apart.
std::string SmallBase(const std::string& answer) {
  return R"(intent: deposit
category: deposit
title: zh-CN | 充值
title: en | Deposit
example: zh-CN | 充值没到账
example: en | my deposit has not arrived
answer: zh-CN | 请提供TxID。
answer: en | )" +
         answer + R"(
intent: hello
category: general
title: zh-CN | 你好
title: en | Hello
small_talk: true
example: zh-CN | 你好
example: en | hello there
answer: zh-CN | 你好！
answer: en | Hello!
)";
}

// An intent without titles or answers: FailedPrecondition.
constexpr char kBrokenTail[] = "intent: broken\ncategory: deposit\n";

class BotFileWatchTest : public ::testing::Test {
 protected:
  BotFileWatchTest()
      : path_(storage::MakeTempDir() + "/intents.kb"),
        metrics_(registry_),
        bot_(path_, &events_, &clock_, &metrics_, BotOptions()) {
    Write(SmallBase("Send the TxID."));
    startup_ = bot_.Reload("startup");
    EXPECT_TRUE(startup_.ok()) << startup_.status();
  }

  void Write(const std::string& content) {
    // As a ConfigMap volume does: the new file replaces the old at once.
    const std::string next = path_ + ".next";
    { std::ofstream(next, std::ios::binary | std::ios::trunc) << content; }
    ASSERT_EQ(std::rename(next.c_str(), path_.c_str()), 0);
  }

  std::vector<events::v1::KnowledgeBaseReload> Reloads() const {
    std::vector<events::v1::KnowledgeBaseReload> out;
    for (const events::v1::Event& e : events_.events()) {
      if (e.has_knowledge_base_reload()) out.push_back(e.knowledge_base_reload());
    }
    return out;
  }

  // How many log lines of `event` `run` writes.
  template <typename Run>
  static int Logged(absl::string_view event, Run run) {
    ::testing::internal::CaptureStderr();
    run();
    const std::string logged = ::testing::internal::GetCapturedStderr();
    int lines = 0;
    for (size_t at = 0; (at = logged.find(absl::StrCat("\"event\":\"", event, "\""), at)) !=
                        std::string::npos;
         ++at) {
      ++lines;
    }
    return lines;
  }

  std::string AnswerInService() const {
    return bot_.knowledge_base()->Find("deposit")->answers[kEn];
  }

  const std::string path_;
  FakeClock clock_;
  prometheus::Registry registry_;
  BotMetrics metrics_;
  MemoryEventLog events_;
  Bot bot_;
  absl::StatusOr<Bot::ReloadResult> startup_;
};

TEST_F(BotFileWatchTest, AnUnchangedFileDoesNothing) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);
  // Rewritten with the same content: still the base in service.
  Write(SmallBase("Send the TxID."));
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  EXPECT_EQ(Reloads().size(), 1u);  // the startup's only
  EXPECT_EQ(metrics_.reloads_ok->Value(), 1);
  EXPECT_EQ(metrics_.reloads_failed->Value(), 0);
}

TEST_F(BotFileWatchTest, AnEditedFileIsPickedUpOnce) {
  const std::string edited = SmallBase("Send the TxID of the transfer.");
  Write(edited);
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kReloaded);
  EXPECT_EQ(AnswerInService(), "Send the TxID of the transfer.");
  EXPECT_EQ(bot_.knowledge_base()->version, KnowledgeBaseVersion(edited));
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);

  std::vector<events::v1::KnowledgeBaseReload> reloads = Reloads();
  ASSERT_EQ(reloads.size(), 2u);
  EXPECT_TRUE(reloads[1].succeeded());
  EXPECT_EQ(reloads[1].actor_id(), "file_changed");
  EXPECT_EQ(reloads[1].version(), KnowledgeBaseVersion(edited));
  EXPECT_EQ(reloads[1].previous_version(), startup_->version);
  EXPECT_EQ(metrics_.reloads_ok->Value(), 2);
}

TEST_F(BotFileWatchTest, ABrokenEditIsRejectedOnceAndTheFixedFileLoaded) {
  const std::string broken = SmallBase("Send the TxID.") + kBrokenTail;
  Write(broken);
  EXPECT_EQ(Logged("knowledge_base_rejected",
                   [&] {
                     EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kRejected);
                     // Not tried again while the file holds the same content.
                     EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);
                     EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);
                   }),
            1);
  EXPECT_EQ(bot_.knowledge_base()->version, startup_->version);
  std::vector<events::v1::KnowledgeBaseReload> reloads = Reloads();
  ASSERT_EQ(reloads.size(), 2u);
  EXPECT_FALSE(reloads[1].succeeded());
  EXPECT_EQ(reloads[1].actor_id(), "file_changed");
  EXPECT_EQ(reloads[1].version(), startup_->version);
  EXPECT_NE(reloads[1].error().find(path_ + ":"), std::string::npos) << reloads[1].error();
  EXPECT_EQ(metrics_.reloads_failed->Value(), 1);

  // Another broken edit is a change: rejected once too.
  Write(broken + "# still broken\n");
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kRejected);
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);
  EXPECT_EQ(metrics_.reloads_failed->Value(), 2);

  Write(SmallBase("Fixed."));
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kReloaded);
  EXPECT_EQ(AnswerInService(), "Fixed.");
  reloads = Reloads();
  ASSERT_EQ(reloads.size(), 4u);
  EXPECT_TRUE(reloads[3].succeeded());
  EXPECT_EQ(reloads[3].previous_version(), startup_->version);
}

TEST_F(BotFileWatchTest, ABrokenFileBackAfterTheGoodOneIsRejectedAgain) {
  const std::string broken = SmallBase("Send the TxID.") + kBrokenTail;
  Write(broken);
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kRejected);
  Write(SmallBase("Send the TxID."));  // the base in service again
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);
  Write(broken);
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kRejected);
  EXPECT_EQ(metrics_.reloads_failed->Value(), 2);
}

TEST_F(BotFileWatchTest, AFileReloadKnowledgeBaseRejectedIsNotTriedAgain) {
  Write(SmallBase("Send the TxID.") + kBrokenTail);
  EXPECT_EQ(bot_.Reload("sup-1").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);
  EXPECT_EQ(Reloads().size(), 2u);
  EXPECT_EQ(metrics_.reloads_failed->Value(), 1);
}

TEST_F(BotFileWatchTest, AMissingFileKeepsTheBaseUntilItComesBack) {
  ASSERT_EQ(std::remove(path_.c_str()), 0);
  EXPECT_EQ(Logged("knowledge_base_unreadable",
                   [&] {
                     EXPECT_EQ(bot_.ReloadIfChanged("file_changed"),
                               Bot::FileCheck::kUnreadable);
                     EXPECT_EQ(bot_.ReloadIfChanged("file_changed"),
                               Bot::FileCheck::kUnreadable);
                   }),
            1);
  EXPECT_EQ(bot_.knowledge_base()->version, startup_->version);
  EXPECT_EQ(Reloads().size(), 1u);
  EXPECT_EQ(metrics_.reloads_failed->Value(), 0);

  Write(SmallBase("Back."));
  EXPECT_EQ(Logged("knowledge_base_readable",
                   [&] {
                     EXPECT_EQ(bot_.ReloadIfChanged("file_changed"),
                               Bot::FileCheck::kReloaded);
                   }),
            1);
  EXPECT_EQ(AnswerInService(), "Back.");
  // Unreadable again: a new change of state, logged again.
  ASSERT_EQ(std::remove(path_.c_str()), 0);
  EXPECT_EQ(Logged("knowledge_base_unreadable",
                   [&] {
                     EXPECT_EQ(bot_.ReloadIfChanged("file_changed"),
                               Bot::FileCheck::kUnreadable);
                   }),
            1);
}

TEST_F(BotFileWatchTest, TheBuiltInBaseHasNoFileToWatch) {
  Bot built_in("", &events_, &clock_, &metrics_, BotOptions());
  EXPECT_EQ(built_in.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);
  EXPECT_EQ(built_in.knowledge_base(), nullptr);
  EXPECT_EQ(Reloads().size(), 1u);
}

// ReloadKnowledgeBase and the periodic check at once, while the file is
// edited: one training at a time, and bases go into service in the order
// they were read, so each successful reload's previous version is the one
// before it and the last file is the one in service.
TEST_F(BotFileWatchTest, ReloadsAndChecksAtOnceSwapBasesInOrder) {
  constexpr int kEdits = 6;
  std::atomic<bool> editing{true};
  std::thread reloader([&] {
    while (editing) {
      EXPECT_TRUE(bot_.Reload("sup-1").ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::thread checker([&] {
    while (editing) bot_.ReloadIfChanged("file_changed");
  });
  for (int i = 0; i < kEdits; ++i) {
    Write(SmallBase("Edit " + std::to_string(i) + "."));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  editing = false;
  reloader.join();
  checker.join();
  EXPECT_EQ(bot_.ReloadIfChanged("file_changed"), Bot::FileCheck::kUnchanged);
  EXPECT_EQ(AnswerInService(), "Edit " + std::to_string(kEdits - 1) + ".");

  std::string in_service = startup_->version;
  int succeeded = 0;
  for (const auto& reload : Reloads()) {
    if (!reload.succeeded()) continue;
    if (++succeeded == 1) continue;  // the startup's
    EXPECT_EQ(reload.previous_version(), in_service);
    in_service = reload.version();
  }
  EXPECT_EQ(in_service, bot_.knowledge_base()->version);
}

}  // namespace
}  // namespace switchboard::bot
