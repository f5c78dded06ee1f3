// BpeModel: the byte-level BPE model of a tokenizer.json ("model": {"type": "BPE"}): a vocabulary
// of token texts spelled in the byte-level alphabet (byte_level.h) and merges in rank order.
//
// EncodeWord turns one pre-tokenized piece into ids: each byte starts as its byte token, then
// the adjacent pair with the lowest merge rank is merged, ties going to the leftmost pair, until
// no adjacent pair has a merge (the order of GPT-2's and Hugging Face's BPE). O(n log n) per
// piece with a heap of candidate pairs.
//
// Invariants after Create: every byte has a token; every merge's two parts and their
// concatenation are in the vocabulary; ids are >= 0. Immutable; any thread.
#ifndef MLASERVE_COORDINATOR_BPE_MODEL_H_
#define MLASERVE_COORDINATOR_BPE_MODEL_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace mla::coordinator {

class BpeModel {
 public:
  // `vocab`: token text -> id (distinct ids). `merges`: (left, right) token texts, rank = index.
  // `ignore_merges`: a piece that is itself a token is encoded as that token, merges unused.
  // InvalidArgument if a byte has no token, a merge names a token not in the vocabulary, or a
  // pair appears twice.
  static absl::StatusOr<BpeModel> Create(
      absl::flat_hash_map<std::string, int32_t> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges);

  // Appends the ids of the piece `bytes` to `ids`.
  void EncodeWord(std::string_view bytes, std::vector<int32_t>* ids) const;

  // The bytes token `id` stands for (its text mapped back through the byte-level alphabet; a
  // text outside the alphabet stands for its own UTF-8 bytes); nullptr if `id` is not a token.
  const std::string* TokenBytes(int32_t id) const;
  // The text of token `id` as in tokenizer.json; nullptr if `id` is not a token.
  const std::string* TokenText(int32_t id) const;
  // The id of the token spelled `text`; -1 if none.
  int32_t TokenId(std::string_view text) const;

  int32_t max_id() const { return static_cast<int32_t>(id_text_.size()) - 1; }
  size_t num_tokens() const { return vocab_.size(); }
  size_t num_merges() const { return merges_.size(); }

 private:
  struct Merge {
    int32_t rank;
    int32_t id;  // the merged token
  };
  static uint64_t PairKey(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) |
           static_cast<uint32_t>(right);
  }
  const Merge* FindMerge(int32_t left, int32_t right) const;

  absl::flat_hash_map<std::string, int32_t> vocab_;
  std::vector<std::string> id_text_;   // by id; empty where no token has the id
  std::vector<std::string> id_bytes_;  // by id
  std::vector<bool> id_used_;          // by id
  std::array<int32_t, 256> byte_ids_{};
  absl::flat_hash_map<uint64_t, Merge> merges_;
  bool ignore_merges_ = false;
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_BPE_MODEL_H_
