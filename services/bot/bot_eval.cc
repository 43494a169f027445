// Prints the bot's quality on the labelled evaluation set: top-1 intent
// accuracy, category accuracy, escalation precision and recall, and the
// reliability of its confidence.
//
//   bazel run //services/bot:bot_eval [-- --misses] [-- KB_FILE EVAL_FILE]
#include <cstdio>
#include <cstring>
#include <string>

#include "services/bot/evaluation.h"

int main(int argc, char** argv) {
  bool misses = false;
  std::string kb = "services/bot/kb/intents.kb";
  std::string eval = "services/bot/eval/utterances.tsv";
  int positional = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--misses") == 0) {
      misses = true;
    } else if (positional == 0) {
      kb = argv[i];
      ++positional;
    } else {
      eval = argv[i];
    }
  }
  auto cases = switchboard::bot::ReadEvalCases(eval);
  if (!cases.ok()) {
    std::fprintf(stderr, "bot_eval: %s\n", cases.status().ToString().c_str());
    return 1;
  }
  auto report = switchboard::bot::Evaluate(kb, *cases, switchboard::bot::BotOptions());
  if (!report.ok()) {
    std::fprintf(stderr, "bot_eval: %s\n", report.status().ToString().c_str());
    return 1;
  }
  std::printf("%s", switchboard::bot::FormatReport(*report, misses).c_str());
  return 0;
}
