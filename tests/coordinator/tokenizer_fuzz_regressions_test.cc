// Regression tests for what tests/fuzz/tokenizer_json_fuzzer found. Each reproducer (in
// tests/fuzz/regressions/tokenizer_json_fuzzer/, read through MLA_SOURCE_DIR) is a tokenizer.json
// that must be rejected with a clean InvalidArgument:
//   vocab_id_int32_max.json        a vocabulary id of 2^31 - 1: BpeModel::Create computes
//                                  max_id + 1 in int32 (signed overflow, then a vector resize
//                                  that throws).
//   vocab_id_sparse_2p30.json      a vocabulary id of 2^30: BpeModel::Create sizes three per-id
//                                  tables by the largest id (tens of GB for a 3 KB file).
//   added_token_id_int32_max.json  an added token id of 2^31 - 1: the Tokenizer constructor
//                                  computes id + 1 in int32 for vocab_size.
//   added_token_id_wraps.json      an added token id of 2^32 + 65: narrowed to int32, it becomes
//                                  65 and silently takes over byte token 65's id.
// Each load runs in a child process (a death-test fork), which exits 0 only on InvalidArgument,
// so a crash fails the test without taking the other tests down. The sparse-id child runs under
// an 8 GiB address-space limit; under AddressSanitizer (whose shadow memory needs more) that case
// is skipped, and the fuzz build's tokenizer_json_fuzzer_replay test covers it instead.
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/status/status.h"
#include "coordinator/tokenizer.h"
#include "gtest/gtest.h"

#if defined(__SANITIZE_ADDRESS__)
#define MLA_TEST_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MLA_TEST_UNDER_ASAN 1
#endif
#endif

namespace mla::coordinator {
namespace {

std::string ReadRegression(const std::string& name) {
  const char* root = std::getenv("MLA_SOURCE_DIR");
  const std::string path = std::string(root != nullptr ? root : ".") +
                           "/tests/fuzz/regressions/tokenizer_json_fuzzer/" + name;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The child's exit code: 0 when FromJson rejects `text` with InvalidArgument.
int LoadExpectingRejection(const std::string& text, bool limit_memory) {
  if (limit_memory) {
    const rlimit limit{8ull << 30, 8ull << 30};
    setrlimit(RLIMIT_AS, &limit);
  }
  const absl::StatusOr<Tokenizer> tokenizer = Tokenizer::FromJson(text);
  if (absl::IsInvalidArgument(tokenizer.status())) return 0;
  std::fprintf(stderr, "FromJson: %s\n",
               tokenizer.ok() ? "accepted" : tokenizer.status().ToString().c_str());
  return 1;
}

void ExpectCleanRejection(const std::string& name, bool limit_memory = false) {
  const std::string text = ReadRegression(name);
  ASSERT_FALSE(text.empty());
  EXPECT_EXIT(std::exit(LoadExpectingRejection(text, limit_memory)), ::testing::ExitedWithCode(0),
              "")
      << name;
}

TEST(TokenizerFuzzRegressions, VocabIdInt32MaxIsRejected) {
  ExpectCleanRejection("vocab_id_int32_max.json");
}

TEST(TokenizerFuzzRegressions, SparseVocabIdIsRejectedWithoutHugeAllocation) {
#ifdef MLA_TEST_UNDER_ASAN
  GTEST_SKIP() << "needs an address-space limit; the fuzz build's replay test covers it";
#else
  ExpectCleanRejection("vocab_id_sparse_2p30.json", /*limit_memory=*/true);
#endif
}

TEST(TokenizerFuzzRegressions, AddedTokenIdInt32MaxIsRejected) {
  ExpectCleanRejection("added_token_id_int32_max.json");
}

TEST(TokenizerFuzzRegressions, AddedTokenIdOutsideInt32IsRejected) {
  ExpectCleanRejection("added_token_id_wraps.json");
}

}  // namespace
}  // namespace mla::coordinator
