// StreamDecoder: hold back an unfinished last character, emit the rest (see stream_decoder.h).
#include "coordinator/stream_decoder.h"

#include <utility>

#include "coordinator/utf8.h"

namespace mla::coordinator {

StreamDecoder::StreamDecoder(const Tokenizer* tokenizer, DecodeOptions options)
    : tokenizer_(tokenizer), options_(options) {}

absl::StatusOr<std::string> StreamDecoder::Push(int32_t id) {
  std::string bytes = pending_;
  if (absl::Status s = tokenizer_->AppendTokenBytes(id, options_, &bytes); !s.ok()) return s;
  // The held-back tail starts on a character boundary of the whole output (it starts with a
  // lead byte), so converting the two parts separately equals converting them together.
  const size_t finished = FinishedPrefixLength(bytes);
  pending_ = bytes.substr(finished);
  bytes.resize(finished);
  return LossyUtf8(bytes);
}

std::string StreamDecoder::Finish() {
  std::string text = LossyUtf8(pending_);
  pending_.clear();
  return text;
}

}  // namespace mla::coordinator
