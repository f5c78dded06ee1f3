// BPE training for synthetic checkpoints: learns byte-level BPE merges from a text (by default
// the built-in multilingual corpus, tools/bpe_corpus.h) and writes the Hugging Face
// tokenizer.json and tokenizer_config.json that coordinator/tokenizer.h loads.
//
// Vocabulary layout, by id: the special tokens first (0 <｜begin▁of▁sentence｜> = bos and
// 1 <｜end▁of▁sentence｜> = eos, matching config.json's bos_token_id 0 / eos_token_id 1, then
// 2 <｜User｜>, 3 <｜Assistant｜>); then the 256 byte tokens in byte order; then the learned
// tokens in the order they were made; then, if the text runs out of pairs before vocab_size,
// reserved special tokens <｜place▁holder▁no▁N｜> (N = 0, 1, ...; DeepSeek-V3 pads its own
// vocabulary the same way) so that every id below vocab_size is a token. The tiny preset
// (1024) needs no placeholders: 4 + 256 + 764 learned tokens.
//
// Training: the text is cut by DeepSeek-V3's pre-tokenizer; each distinct piece is a word with a
// count. Repeatedly, the adjacent pair with the highest total count is merged everywhere (ties:
// the smallest left id, then right id), until the vocabulary is full or no pair is left. A pair
// whose concatenation is already a token adds a merge but no token. Deterministic: the same
// options always give the same files.
//
// Pure except WriteTokenizerFiles, which writes into an existing `dir`. Any thread.
#ifndef MLASERVE_TOOLS_BPE_TRAINER_H_
#define MLASERVE_TOOLS_BPE_TRAINER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mla::tools {

struct BpeTrainerOptions {
  int64_t vocab_size = 1024;         // every id below this is a token; >= 4 + 256
  std::string corpus;                // training text; empty: BuiltinBpeCorpus()
  int64_t model_max_length = 16384;  // tokenizer_config.json's model_max_length
};

// The result of training; bytes are raw (not yet spelled in the byte-level alphabet).
struct TrainedBpe {
  std::vector<std::string> special;  // contents of ids 0 .. special.size() - 1
  std::vector<std::string> learned;  // bytes of ids special.size() + 256 + i, in order
  std::vector<std::pair<std::string, std::string>> merges;  // (left, right) bytes, rank order
  int64_t num_placeholders = 0;  // reserved tokens after the learned ones
  int64_t vocab_size = 0;

  int64_t first_byte_id() const { return static_cast<int64_t>(special.size()); }
};

// InvalidArgument if vocab_size < 4 + 256 or the corpus is not well-formed UTF-8.
absl::StatusOr<TrainedBpe> TrainBpe(const BpeTrainerOptions& options);

// tokenizer.json: model BPE (vocab of vocab_size entries, merges as "left right"), DeepSeek-V3's
// pre_tokenizer (Sequence of Splits + ByteLevel without regex), ByteLevel decoder, a
// post_processor that prepends bos, and every special token in added_tokens.
std::string TokenizerJson(const TrainedBpe& bpe);

// tokenizer_config.json: add_bos_token, bos / eos / pad tokens, model_max_length and the chat
// template (coordinator/chat_template.h).
std::string TokenizerConfigJson(const TrainedBpe& bpe, int64_t model_max_length);

// Trains and writes `dir`/tokenizer.json and `dir`/tokenizer_config.json (replacing them).
absl::Status WriteTokenizerFiles(const BpeTrainerOptions& options, const std::string& dir);

}  // namespace mla::tools

#endif  // MLASERVE_TOOLS_BPE_TRAINER_H_
