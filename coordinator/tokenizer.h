// Tokenizer: text <-> token ids for a Hugging Face tokenizer.json of the byte-level BPE kind
// that DeepSeek-V3 ships.
//
// Encode: (1) added tokens (added_tokens.h) are cut out of the raw text, special ones only if
// EncodeOptions::parse_special; (2) every other stretch is cut by the pre-tokenizer
// (pretokenizer.h; DeepSeek-V3: digits in threes, CJK runs, a GPT-style pattern); (3) each piece's
// bytes are BPE-encoded (bpe_model.h). Decode: the bytes of each id (an added token: its
// content; any other: its text mapped back through the byte-level alphabet) concatenated.
//
// Ill-formed UTF-8 policy: Encode accepts any bytes and DecodeBytes(Encode(b)) == b exactly
// (with parse_special false, or when b has no special token text; ill-formed bytes become
// byte tokens). Decode returns well-formed UTF-8: DecodeBytes' result with each maximal
// ill-formed subpart replaced by one U+FFFD (utf8.h), as Hugging Face's decode does. The
// replacement happens only on the whole decoded string; StreamDecoder does it incrementally.
//
// Supported tokenizer.json: model.type "BPE" (no dropout, byte_fallback, subword prefix or
// suffix; unk_token unused since every byte has a token), normalizer null or an empty Sequence,
// pre_tokenizer as in pretokenizer.h with a ByteLevel step, decoder ByteLevel, added tokens
// without single_word. post_processor is ignored: whether bos is added is the caller's choice
// (EncodeOptions::add_bos). Anything else fails to load with InvalidArgument naming the key.
//
// Immutable after loading; every method is const and may run concurrently on any threads.
#ifndef MLASERVE_COORDINATOR_TOKENIZER_H_
#define MLASERVE_COORDINATOR_TOKENIZER_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/added_tokens.h"
#include "coordinator/bpe_model.h"
#include "coordinator/pretokenizer.h"

namespace mla::coordinator {

struct EncodeOptions {
  bool add_bos = false;       // start with bos_id() (if the tokenizer has one)
  bool parse_special = true;  // special token texts become their ids; false: ordinary text
};

struct DecodeOptions {
  bool skip_special = false;  // leave special added tokens out of the text
};

class Tokenizer {
 public:
  // From the text of a tokenizer.json. bos / eos are the added tokens named
  // <｜begin▁of▁sentence｜> / <｜end▁of▁sentence｜> if present.
  static absl::StatusOr<Tokenizer> FromJson(std::string_view tokenizer_json);
  // `dir`/tokenizer.json (NotFound if missing) and, if present, `dir`/tokenizer_config.json,
  // whose bos_token / eos_token (a string or {"content": ...}) and chat_template apply.
  static absl::StatusOr<Tokenizer> FromDirectory(const std::string& dir);

  std::vector<int32_t> Encode(std::string_view text, const EncodeOptions& options = {}) const;

  // Well-formed UTF-8 text of `ids` (see the policy above); InvalidArgument for an id that is
  // not a token, naming it.
  absl::StatusOr<std::string> Decode(std::span<const int32_t> ids,
                                     const DecodeOptions& options = {}) const;
  // The raw bytes of `ids`, possibly ill-formed UTF-8.
  absl::StatusOr<std::string> DecodeBytes(std::span<const int32_t> ids,
                                          const DecodeOptions& options = {}) const;
  // Appends the bytes of one token to `out` (nothing for a skipped special token).
  absl::Status AppendTokenBytes(int32_t id, const DecodeOptions& options, std::string* out) const;

  // The id of an added token's content or a vocabulary token's text; -1 if none.
  int32_t TokenId(std::string_view token) const;
  // Whether `id` is a special added token.
  bool IsSpecial(int32_t id) const;

  int32_t vocab_size() const { return vocab_size_; }  // largest id + 1
  int32_t bos_id() const { return bos_id_; }          // -1 if none
  int32_t eos_id() const { return eos_id_; }          // -1 if none
  // tokenizer_config.json's chat_template (Jinja text, for clients); empty if none.
  const std::string& chat_template() const { return chat_template_; }
  const BpeModel& model() const { return model_; }
  const AddedTokens& added_tokens() const { return added_; }
  const Pretokenizer& pretokenizer() const { return pretokenizer_; }

 private:
  Tokenizer(BpeModel model, AddedTokens added, Pretokenizer pretokenizer);
  absl::Status ApplyConfig(std::string_view tokenizer_config_json);

  BpeModel model_;
  AddedTokens added_;
  Pretokenizer pretokenizer_;
  int32_t vocab_size_ = 0;
  int32_t bos_id_ = -1;
  int32_t eos_id_ = -1;
  std::string chat_template_;
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_TOKENIZER_H_
