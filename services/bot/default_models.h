#pragma once

#include "absl/strings/string_view.h"

namespace switchboard::bot {

// The models of the built-in knowledge base (DefaultKnowledgeBase), trained
// when the binary was built (SerializeModels' blob; train_models writes it,
// the build embeds it). ParseKnowledgeBase loads them instead of training
// when it parses that very content with the same model options.
absl::string_view DefaultModels();

}  // namespace switchboard::bot
