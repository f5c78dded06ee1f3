// BpeModel: vocabulary and merge tables, and rank-ordered merging with a heap (see bpe_model.h).
#include "coordinator/bpe_model.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <queue>

#include "absl/strings/str_cat.h"
#include "coordinator/byte_level.h"

namespace mla::coordinator {

absl::StatusOr<BpeModel> BpeModel::Create(
    absl::flat_hash_map<std::string, int32_t> vocab,
    const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges) {
  BpeModel model;
  model.ignore_merges_ = ignore_merges;
  int32_t max_id = -1;
  for (const auto& [text, id] : vocab) {
    if (id < 0) return absl::InvalidArgumentError(absl::StrCat("model.vocab: negative id ", id));
    max_id = std::max(max_id, id);
  }
  // Ids index dense tables: allow holes, but not a table far larger than the vocabulary.
  constexpr int64_t kMaxHoles = 1 << 16;
  if (int64_t{max_id} >= static_cast<int64_t>(vocab.size()) + kMaxHoles) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.vocab: id ", max_id, " is far beyond the vocabulary's ", vocab.size(),
        " entries (at most ", kMaxHoles, " unused ids)"));
  }
  model.id_text_.resize(max_id + 1);
  model.id_bytes_.resize(max_id + 1);
  model.id_used_.assign(max_id + 1, false);
  for (const auto& [text, id] : vocab) {
    if (model.id_used_[id]) {
      return absl::InvalidArgumentError(absl::StrCat("model.vocab: id ", id, " used twice"));
    }
    model.id_used_[id] = true;
    model.id_text_[id] = text;
    std::optional<std::string> bytes = ByteLevelDecode(text);
    model.id_bytes_[id] = bytes.has_value() ? *std::move(bytes) : text;
  }
  model.vocab_ = std::move(vocab);
  for (int byte = 0; byte < 256; ++byte) {
    const std::string text = ByteLevelEncode(std::string(1, static_cast<char>(byte)));
    model.byte_ids_[byte] = model.TokenId(text);
    if (model.byte_ids_[byte] < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.vocab: no token for byte ", byte, " (\"", text, "\")"));
    }
  }
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const int32_t l = model.TokenId(left), r = model.TokenId(right);
    const int32_t merged = model.TokenId(left + right);
    if (l < 0 || r < 0 || merged < 0) {
      return absl::InvalidArgumentError(absl::StrCat("model.merges[", rank, "] \"", left, " ",
                                                     right, "\": a token is not in the vocab"));
    }
    const Merge merge{static_cast<int32_t>(rank), merged};
    if (!model.merges_.emplace(PairKey(l, r), merge).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("model.merges[", rank, "] \"", left, " ", right, "\": duplicate"));
    }
  }
  return model;
}

const BpeModel::Merge* BpeModel::FindMerge(int32_t left, int32_t right) const {
  const auto it = merges_.find(PairKey(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

const std::string* BpeModel::TokenBytes(int32_t id) const {
  return id >= 0 && id <= max_id() && id_used_[id] ? &id_bytes_[id] : nullptr;
}

const std::string* BpeModel::TokenText(int32_t id) const {
  return id >= 0 && id <= max_id() && id_used_[id] ? &id_text_[id] : nullptr;
}

int32_t BpeModel::TokenId(std::string_view text) const {
  const auto it = vocab_.find(absl::string_view(text.data(), text.size()));
  return it == vocab_.end() ? -1 : it->second;
}

void BpeModel::EncodeWord(std::string_view bytes, std::vector<int32_t>* ids) const {
  if (bytes.empty()) return;
  if (ignore_merges_) {
    if (const int32_t whole = TokenId(ByteLevelEncode(bytes)); whole >= 0) {
      ids->push_back(whole);
      return;
    }
  }
  // The symbols form a doubly linked list over the original byte positions; a merge keeps the
  // left symbol (with the merged id) and unlinks the right one.
  struct Symbol {
    int32_t id;
    int prev, next;  // -1 at the ends
    bool alive;
  };
  const int n = static_cast<int>(bytes.size());
  std::vector<Symbol> symbols(n);
  for (int i = 0; i < n; ++i) {
    symbols[i] = {byte_ids_[static_cast<uint8_t>(bytes[i])], i - 1, i + 1 < n ? i + 1 : -1, true};
  }
  struct Candidate {
    int32_t rank;
    int pos;  // the left symbol
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int left) {
    if (left < 0 || symbols[left].next < 0) return;
    if (const Merge* m = FindMerge(symbols[left].id, symbols[symbols[left].next].id)) {
      heap.push({m->rank, left});
    }
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    const Merge* m = FindMerge(left.id, symbols[left.next].id);
    if (m == nullptr || m->rank != top.rank) continue;  // the pair changed since it was queued
    Symbol& right = symbols[left.next];
    left.id = m->id;
    right.alive = false;
    left.next = right.next;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    consider(left.prev);
    consider(top.pos);
  }
  for (int i = 0; i >= 0; i = symbols[i].next) ids->push_back(symbols[i].id);
}

}  // namespace mla::coordinator
