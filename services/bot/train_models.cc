// Trains the models of a knowledge base file and writes them in one blob
// (SerializeModels), with default model options (those of BotOptions). The
// build runs it on kb/intents.kb so that the binaries carry the built-in
// base's models and load them instead of training at start-up.
//
//   train_models <knowledge base file> <output file>
#include <cstdio>
#include <fstream>

#include "services/bot/knowledge_base.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: train_models <knowledge base file> <output file>\n");
    return 2;
  }
  auto kb = switchboard::bot::LoadKnowledgeBase(argv[1], switchboard::bot::ModelOptions());
  if (!kb.ok()) {
    std::fprintf(stderr, "train_models: %s\n", kb.status().ToString().c_str());
    return 1;
  }
  auto blob = switchboard::bot::SerializeModels(**kb);
  if (!blob.ok()) {
    std::fprintf(stderr, "train_models: %s\n", blob.status().ToString().c_str());
    return 1;
  }
  std::ofstream out(argv[2], std::ios::binary);
  out.write(blob->data(), static_cast<std::streamsize>(blob->size()));
  out.close();
  if (!out) {
    std::fprintf(stderr, "train_models: cannot write %s\n", argv[2]);
    return 1;
  }
  return 0;
}
