// StreamDecoder: turns one sequence's generated token ids, one at a time, into text deltas for a
// streaming response, each delta well-formed UTF-8.
//
// Byte-level BPE decodes by concatenating bytes, so a character may be split across tokens (a
// CJK character or an emoji is often two or three byte tokens). The decoder keeps the bytes of
// an unfinished last character (at most 3) back until a later token completes it; bytes that can
// never become well-formed are emitted at once as U+FFFD, each maximal ill-formed subpart as
// one. Finish() flushes what is held (an unfinished character becomes U+FFFD).
// Invariant: the concatenation of every Push() result and Finish() equals
// tokenizer.Decode(all ids) with the same options.
//
// Not thread-safe: one decoder per sequence, used by one thread at a time. The tokenizer is
// borrowed and must outlive the decoder.
#ifndef MLASERVE_COORDINATOR_STREAM_DECODER_H_
#define MLASERVE_COORDINATOR_STREAM_DECODER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/tokenizer.h"

namespace mla::coordinator {

class StreamDecoder {
 public:
  // REQUIRES: tokenizer != nullptr and outlives this.
  explicit StreamDecoder(const Tokenizer* tokenizer, DecodeOptions options = {});

  // The text that token `id` completes (possibly empty). InvalidArgument for an id that is not
  // a token; the decoder is then unchanged.
  absl::StatusOr<std::string> Push(int32_t id);

  // The held-back bytes as text (U+FFFD for an unfinished character, empty if none); the
  // decoder is then empty and may be reused.
  std::string Finish();

  // Bytes held back for an unfinished character (0 to 3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  DecodeOptions options_;
  std::string pending_;  // a proper prefix of a well-formed character
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_STREAM_DECODER_H_
