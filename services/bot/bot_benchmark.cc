// Prints Answer latency (p50, p99, max) over the real knowledge base and
// over a synthetic base of 10,000 intents, single-threaded, through Bot
// (analysis, safety layer, classifier and BM25 ranking, dialogue context,
// the turn's event in memory), and how long each base took to build (parse,
// index, and load the models built with the binary or train them).
//
//   bazel run -c opt //services/bot:bot_benchmark
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "libs/clock/clock.h"
#include "prometheus/registry.h"
#include "services/bot/bot.h"

namespace switchboard::bot {
namespace {

constexpr int kTurns = 20'000;

// A base of `intents` intents whose phrasings draw on a vocabulary of
// English words and Chinese characters, like a large real base would.
std::string SyntheticBase(int intents, std::mt19937& rng, std::vector<std::string>& queries) {
  std::vector<std::string> words;
  for (int i = 0; i < 6000; ++i) {
    std::string w;
    const int length = 4 + static_cast<int>(rng() % 6);
    for (int j = 0; j < length; ++j) w += static_cast<char>('a' + rng() % 26);
    words.push_back(w);
  }
  auto chinese = [&] {
    std::string s;
    const int length = 4 + static_cast<int>(rng() % 6);
    for (int j = 0; j < length; ++j) {
      const char32_t cp = 0x4E00 + rng() % 3000;
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
  };
  auto sentence = [&] {
    std::string s;
    const int length = 3 + static_cast<int>(rng() % 5);
    for (int j = 0; j < length; ++j) absl::StrAppend(&s, j ? " " : "", words[rng() % words.size()]);
    return s;
  };
  std::string kb;
  for (int i = 0; i < intents; ++i) {
    absl::StrAppend(&kb, "intent: synthetic_", i, "\ncategory: ",
                    std::vector<std::string>{"deposit", "withdrawal", "trading", "kyc",
                                             "technical", "general"}[i % 6],
                    "\ntitle: zh-CN | 意图", i, "\ntitle: en | Intent ", i,
                    "\nanswer: zh-CN | 答案\nanswer: en | Answer\n");
    for (int e = 0; e < 3; ++e) {
      const std::string en = sentence();
      const std::string zh = chinese();
      absl::StrAppend(&kb, "example: en | ", en, "\nexample: zh-CN | ", zh, "\n");
      if (queries.size() < 2000 && rng() % 8 == 0) {
        queries.push_back(en);
        queries.push_back(zh + " " + words[rng() % words.size()]);
      }
    }
  }
  return kb;
}

void Measure(const std::string& name, Bot& bot, const std::vector<std::string>& queries) {
  std::vector<double> micros;
  micros.reserve(kTurns);
  for (int i = 0; i < kTurns; ++i) {
    v1::AnswerRequest request;
    request.set_session_id(absl::StrCat("bench-", i % 1000));
    request.set_turn_id(absl::StrCat("t-", i));
    request.set_text(queries[i % queries.size()]);
    v1::AnswerResponse response;
    const auto start = std::chrono::steady_clock::now();
    bot.Answer(request, &response, [](absl::Status) {});
    const auto end = std::chrono::steady_clock::now();
    micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  std::sort(micros.begin(), micros.end());
  std::printf("%-34s turns=%d  p50=%.1fus  p99=%.1fus  max=%.1fus\n", name.c_str(), kTurns,
              micros[micros.size() / 2], micros[micros.size() * 99 / 100], micros.back());
}

int Run() {
  prometheus::Registry registry;
  BotMetrics metrics(registry);
  MemoryEventLog events(0);
  // The base built into the binary: the benchmark runs from any directory.
  Bot bot("", &events, RealClock(), &metrics, BotOptions());
  const auto load_start = std::chrono::steady_clock::now();
  if (auto loaded = bot.Reload("benchmark"); !loaded.ok()) {
    std::fprintf(stderr, "bot_benchmark: %s\n", loaded.status().ToString().c_str());
    return 1;
  }
  const std::vector<std::string> real_queries = {
      "我充的USDT还没到账", "my deposit hasn't arrived after 2 hours", "提现一直在审核中",
      "how do I reset my pasword", "谷歌验证码错误", "what are the trading fees",
      "我的USDT deposit没到账", "app keeps crashing on my iphone", "转人工",
      "tell me a joke", "限价单为什么不成交", "my account was hacked", "😀😀",
      "API returns invalid signature, my IP is whitelisted and the timestamp is in ms",
      "实名认证被拒绝了，证件照片是清楚的，为什么还是没有通过审核，请帮我看看"};
  std::printf("real base: built in %.2fs (models %s)\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count(),
              bot.knowledge_base()->prebuilt_models ? "built with the binary, loaded"
                                                    : "trained");
  Measure("real base (" + std::to_string(bot.knowledge_base()->intents.size()) + " intents)",
          bot, real_queries);

  std::mt19937 rng(42);
  std::vector<std::string> queries;
  const std::string synthetic_text = SyntheticBase(10'000, rng, queries);
  const auto build_start = std::chrono::steady_clock::now();
  auto synthetic = ParseKnowledgeBase("synthetic", synthetic_text);
  if (!synthetic.ok()) {
    std::fprintf(stderr, "bot_benchmark: %s\n", synthetic.status().ToString().c_str());
    return 1;
  }
  std::printf("synthetic base: %zu intents, %d phrasings, %d index terms, built in %.1fs\n",
              (*synthetic)->intents.size(), (*synthetic)->example_count,
              (*synthetic)->index.vocabulary(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start).count());
  bot.UseKnowledgeBase(*synthetic);
  Measure("synthetic base (10000 intents)", bot, queries);
  return 0;
}

}  // namespace
}  // namespace switchboard::bot

int main() { return switchboard::bot::Run(); }
