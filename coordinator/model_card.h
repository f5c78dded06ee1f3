// ModelCard: what the coordinator knows of the served model, read from the checkpoint's
// config.json: the limits it validates requests against, what GetModelInfo reports, and the
// config hash every worker must match.
//
// The coordinator links no worker code, so this reads only the handful of fields it needs (with
// the Hugging Face defaults where a field is optional); the workers validate the whole file.
// Immutable after loading; safe to share between threads.
#ifndef MLASERVE_COORDINATOR_MODEL_CARD_H_
#define MLASERVE_COORDINATOR_MODEL_CARD_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace mla::coordinator {

struct ModelCard {
  std::string name;                  // the checkpoint directory's base name
  std::string checkpoint_path;       // as given to the coordinator, sent to the workers
  std::string config_hash;           // ConfigHash of config.json
  int32_t vocab_size = 0;            // token ids are in [0, vocab_size)
  int32_t num_layers = 0;            // num_hidden_layers
  int32_t num_heads = 0;             // num_attention_heads
  int32_t hidden_size = 0;
  int32_t max_context_len = 0;       // max_position_embeddings: prompt + output at most
  int64_t cache_bytes_per_token = 0; // bf16 latent (kv_lora_rank + qk_rope_head_dim) x layers
  int32_t eos_token_id = -1;         // -1 if the config names none
};

// Reads `checkpoint_dir`/config.json. NotFound if it is missing; InvalidArgument naming the field
// when one is missing or out of range.
absl::StatusOr<ModelCard> LoadModelCard(const std::string& checkpoint_dir);

// The same from the text of a config.json (tests).
absl::StatusOr<ModelCard> ParseModelCard(const std::string& config_json);

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_MODEL_CARD_H_
