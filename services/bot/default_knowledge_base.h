#pragma once

#include "absl/strings/string_view.h"

namespace switchboard::bot {

// The name error messages give the built-in base.
inline constexpr char kDefaultKnowledgeBaseName[] = "services/bot/kb/intents.kb";

// The content of services/bot/kb/intents.kb as it was when the binary was
// built (a genrule embeds it), so that the bot needs no file at a path
// relative to where it starts. Its version equals the file's.
absl::string_view DefaultKnowledgeBase();

}  // namespace switchboard::bot
