// tokenizer_json_fuzzer: mla::coordinator::Tokenizer::FromJson over arbitrary tokenizer.json
// text.
//
// Properties: loading never crashes (no uncaught nlohmann::json exception, no sanitizer report)
// and fails only with InvalidArgument. A tokenizer that loads is usable: encoding a fixed
// multilingual sample and the input itself (its first 512 bytes) gives ids that are tokens,
// below vocab_size, that DecodeBytes and a StreamDecoder accept; decoding every id up to
// vocab_size + 2 fails only with InvalidArgument; bos / eos, when present, are tokens.
// No round-trip property: an arbitrary tokenizer.json may legally lose text (stripping added
// tokens); tokenizer_fuzzer checks round trips on a well-formed tokenizer.
// Seeds: tests/fuzz/corpus/tokenizer_json_fuzzer (made by tests/fuzz/make_seeds.py).
// Mutation: structure-aware on the JSON document half of the time (json_mutator.h).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/stream_decoder.h"
#include "coordinator/tokenizer.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/json_mutator.h"

namespace {

using mla::coordinator::EncodeOptions;
using mla::coordinator::StreamDecoder;
using mla::coordinator::Tokenizer;

constexpr std::string_view kSample =
    "Hello, world! 12345 敏捷的狐狸 カタカナ Grüße 😀\r\n\t <｜User｜>x<｜Assistant｜>\xff\xc0";

void CheckEncodes(const Tokenizer& tokenizer, std::string_view text) {
  for (bool parse_special : {false, true}) {
    EncodeOptions options;
    options.parse_special = parse_special;
    options.add_bos = parse_special;
    const std::vector<int32_t> ids = tokenizer.Encode(text, options);
    for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tokenizer.vocab_size(), id);
    auto bytes = tokenizer.DecodeBytes(ids);
    FUZZ_CHECK(bytes.ok(), bytes.status().ToString());
    auto decoded = tokenizer.Decode(ids);
    FUZZ_CHECK(decoded.ok(), decoded.status().ToString());
    StreamDecoder stream(&tokenizer);
    std::string streamed;
    for (int32_t id : ids) {
      auto delta = stream.Push(id);
      FUZZ_CHECK(delta.ok(), delta.status().ToString());
      streamed += *delta;
    }
    streamed += stream.Finish();
    FUZZ_CHECK(streamed == *decoded);
  }
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned seed) {
  return mla::fuzz::MutateJsonInput(data, size, max_size, seed);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto tokenizer = Tokenizer::FromJson(text);
  if (!tokenizer.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(tokenizer.status()), tokenizer.status().ToString());
    return 0;
  }
  FUZZ_CHECK(tokenizer->vocab_size() >= 256, tokenizer->vocab_size());  // every byte has a token
  for (int32_t id : {tokenizer->bos_id(), tokenizer->eos_id()}) {
    FUZZ_CHECK(id == -1 || (id >= 0 && id < tokenizer->vocab_size()), id);
  }
  CheckEncodes(*tokenizer, kSample);
  CheckEncodes(*tokenizer, text.substr(0, 512));
  // Decode every id (bounded: a tokenizer.json of a few KB can name id 2^31 - 1).
  const int32_t last = std::min(tokenizer->vocab_size(), 4096);
  for (int32_t id = -2; id < last + 2; ++id) {
    const int32_t one[] = {id};
    auto decoded = tokenizer->Decode(one);
    FUZZ_CHECK(decoded.ok() || absl::IsInvalidArgument(decoded.status()),
               decoded.status().ToString());
  }
  const int32_t big[] = {tokenizer->vocab_size() - 1, tokenizer->vocab_size(), INT32_MAX,
                         INT32_MIN};
  auto decoded = tokenizer->Decode(big);
  FUZZ_CHECK(decoded.ok() || absl::IsInvalidArgument(decoded.status()));
  return 0;
}
