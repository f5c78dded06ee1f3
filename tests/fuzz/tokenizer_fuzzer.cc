// tokenizer_fuzzer: mla::coordinator::Tokenizer's encode and decode over arbitrary input, with a
// fixed byte-level BPE tokenizer (tests/fuzz/tokenizer.json: DeepSeek-V3's special tokens and
// pre-tokenizer, 256 byte tokens, 300 merges, one non-special added token; no lstrip / rstrip).
// The file's path is compiled in (MLA_FUZZ_TOKENIZER_JSON); the environment variable of the same
// name overrides it.
//
// Each input is used twice:
//  - as text: the pre-tokenizer's and the added tokens' pieces cover it exactly; Encode's ids
//    are tokens; DecodeBytes(Encode(text)) == text with parse_special false and true (the
//    tokenizer has no stripping tokens); Decode(Encode(text)) == text for well-formed UTF-8;
//    a StreamDecoder fed the ids one by one gives Decode's text.
//  - as ids (little-endian 16-bit words, shifted so that a few are negative or past the
//    vocabulary): Decode fails with InvalidArgument exactly when an id is not a token; otherwise
//    its text is well-formed UTF-8, equals LossyUtf8(DecodeBytes(ids)), and round-trips:
//    Decode(Encode(Decode(ids))) == Decode(ids) and DecodeBytes(Encode(DecodeBytes(ids),
//    parse_special false)) == DecodeBytes(ids); the StreamDecoder agrees, skipping bad ids.
// Seeds: tests/fuzz/corpus/tokenizer_fuzzer (made by tests/fuzz/make_seeds.py).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/stream_decoder.h"
#include "coordinator/tokenizer.h"
#include "coordinator/utf8.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using mla::coordinator::DecodeOptions;
using mla::coordinator::EncodeOptions;
using mla::coordinator::StreamDecoder;
using mla::coordinator::Tokenizer;

const Tokenizer& LoadTokenizer() {
  static const Tokenizer* const tokenizer = [] {
    const char* path = std::getenv("MLA_FUZZ_TOKENIZER_JSON");
    if (path == nullptr) path = MLA_FUZZ_TOKENIZER_JSON;
    std::ifstream in(path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto loaded = Tokenizer::FromJson(text);
    if (!in || !loaded.ok()) {
      std::fprintf(stderr, "tokenizer_fuzzer: cannot load %s: %s\n", path,
                   loaded.status().ToString().c_str());
      std::abort();
    }
    return new Tokenizer(*std::move(loaded));
  }();
  return *tokenizer;
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// Every id is a token, and the stream decoder's deltas add up to Decode's text.
void CheckIds(const Tokenizer& tokenizer, std::span<const int32_t> ids,
              const DecodeOptions& options) {
  for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < tokenizer.vocab_size(), id);
  auto text = tokenizer.Decode(ids, options);
  FUZZ_CHECK(text.ok(), text.status().ToString());
  StreamDecoder stream(&tokenizer, options);
  std::string streamed;
  for (int32_t id : ids) {
    auto delta = stream.Push(id);
    FUZZ_CHECK(delta.ok(), delta.status().ToString());
    FUZZ_CHECK(mla::coordinator::IsWellFormedUtf8(*delta), Hex(*delta));
    FUZZ_CHECK(stream.pending_bytes() <= 3);
    streamed += *delta;
  }
  streamed += stream.Finish();
  FUZZ_CHECK(streamed == *text, Hex(streamed), " != ", Hex(*text));
}

void FuzzText(const Tokenizer& tokenizer, std::string_view text) {
  // The pieces cover the text exactly, in order.
  size_t covered = 0;
  for (std::string_view piece : tokenizer.pretokenizer().Split(text)) {
    FUZZ_CHECK(piece.data() == text.data() + covered, "pre-tokenizer gap at ", covered);
    covered += piece.size();
  }
  FUZZ_CHECK(covered == text.size());
  for (bool special : {false, true}) {
    covered = 0;
    for (const auto& segment : tokenizer.added_tokens().Split(text, special)) {
      FUZZ_CHECK(segment.text.data() == text.data() + covered, "added-token gap at ", covered);
      covered += segment.text.size();
    }
    FUZZ_CHECK(covered == text.size());
  }

  const bool well_formed = mla::coordinator::IsWellFormedUtf8(text);
  for (bool parse_special : {false, true}) {
    EncodeOptions encode;
    encode.parse_special = parse_special;
    encode.add_bos = parse_special;
    const std::vector<int32_t> with_bos = tokenizer.Encode(text, encode);
    FUZZ_CHECK(text.empty() || !with_bos.empty());
    std::span<const int32_t> ids(with_bos);
    if (encode.add_bos && tokenizer.bos_id() >= 0) {
      FUZZ_CHECK(!ids.empty() && ids.front() == tokenizer.bos_id());
      ids = ids.subspan(1);
    }
    CheckIds(tokenizer, ids, DecodeOptions{});
    auto bytes = tokenizer.DecodeBytes(ids);
    FUZZ_CHECK(bytes.ok(), bytes.status().ToString());
    FUZZ_CHECK(*bytes == text, "parse_special ", parse_special, ": ", Hex(*bytes),
               " != ", Hex(text));
    if (well_formed) {
      auto decoded = tokenizer.Decode(ids);
      FUZZ_CHECK(decoded.ok() && *decoded == text);
    }
  }
}

void FuzzIds(const Tokenizer& tokenizer, const uint8_t* data, size_t size) {
  const int32_t vocab = tokenizer.vocab_size();
  std::vector<int32_t> ids;
  std::vector<int32_t> valid;
  for (size_t i = 0; i + 1 < size; i += 2) {
    const int32_t word = data[i] | (data[i + 1] << 8);
    const int32_t id = word % (vocab + 8) - 4;  // a few below 0 and past the vocabulary
    ids.push_back(id);
    if (tokenizer.model().TokenBytes(id) != nullptr ||
        tokenizer.added_tokens().FindId(id) != nullptr) {
      valid.push_back(id);
    }
  }
  for (bool skip_special : {false, true}) {
    DecodeOptions options;
    options.skip_special = skip_special;
    auto text = tokenizer.Decode(ids, options);
    auto bytes = tokenizer.DecodeBytes(ids, options);
    FUZZ_CHECK(text.ok() == bytes.ok());
    if (valid.size() != ids.size()) {
      FUZZ_CHECK(absl::IsInvalidArgument(text.status()), text.status().ToString());
    } else {
      FUZZ_CHECK(text.ok(), text.status().ToString());
    }
    // The stream decoder rejects the bad ids one by one and stays unchanged.
    StreamDecoder stream(&tokenizer, options);
    std::string streamed;
    for (int32_t id : ids) {
      auto delta = stream.Push(id);
      if (delta.ok()) {
        streamed += *delta;
      } else {
        FUZZ_CHECK(absl::IsInvalidArgument(delta.status()), delta.status().ToString());
      }
    }
    streamed += stream.Finish();
    auto valid_text = tokenizer.Decode(valid, options);
    FUZZ_CHECK(valid_text.ok() && streamed == *valid_text, Hex(streamed));
    if (!text.ok()) continue;

    FUZZ_CHECK(mla::coordinator::IsWellFormedUtf8(*text), Hex(*text));
    FUZZ_CHECK(*text == mla::coordinator::LossyUtf8(*bytes));
    // encode(decode(ids)) decodes to the same text, special token texts included.
    const std::vector<int32_t> again = tokenizer.Encode(*text);
    auto text_again = tokenizer.Decode(again);
    FUZZ_CHECK(text_again.ok() && *text_again == *text, Hex(*text));
    EncodeOptions plain;
    plain.parse_special = false;
    const std::vector<int32_t> again_bytes = tokenizer.Encode(*bytes, plain);
    auto bytes_again = tokenizer.DecodeBytes(again_bytes);
    FUZZ_CHECK(bytes_again.ok() && *bytes_again == *bytes, Hex(*bytes));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Tokenizer& tokenizer = LoadTokenizer();
  FuzzText(tokenizer, std::string_view(reinterpret_cast<const char*>(data), size));
  FuzzIds(tokenizer, data, size);
  return 0;
}
