#include "services/bot/default_models.h"

// Defined by default_models.S, which embeds the blob.
extern "C" const char switchboard_bot_default_models_start[];
extern "C" const char switchboard_bot_default_models_end[];

namespace switchboard::bot {

absl::string_view DefaultModels() {
  return absl::string_view(
      switchboard_bot_default_models_start,
      static_cast<size_t>(switchboard_bot_default_models_end - switchboard_bot_default_models_start));
}

}  // namespace switchboard::bot
