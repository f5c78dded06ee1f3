// Structure-aware JSON mutation (see json_mutator.h).
#include "tests/fuzz/json_mutator.h"

#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

namespace mla::fuzz {
namespace {

using nlohmann::json;

constexpr int kMaxNodes = 4096;  // nodes considered for mutation (the first ones, pre-order)

void CollectNodes(json* node, std::vector<json*>* nodes) {
  if (static_cast<int>(nodes->size()) >= kMaxNodes) return;
  nodes->push_back(node);
  if (node->is_object() || node->is_array()) {
    for (json& child : *node) CollectNodes(&child, nodes);
  }
}

size_t Pick(Rng* rng, size_t n) { return static_cast<size_t>((*rng)() % n); }

json InterestingNumber(Rng* rng) {
  static const int64_t kInts[] = {0, 1, -1, 2, 3, 7, 8, 255, 256, 1023, 1024, 65535, 65536,
                                  std::numeric_limits<int32_t>::max(),
                                  std::numeric_limits<int32_t>::min(),
                                  int64_t{1} << 31, int64_t{1} << 32, int64_t{1} << 40,
                                  int64_t{1} << 53, int64_t{1} << 62,
                                  std::numeric_limits<int64_t>::max(),
                                  std::numeric_limits<int64_t>::min(), 1000000007, 3037000500};
  static const double kDoubles[] = {0.0, -0.0, 0.5, 1.0, 1.5, -1.0, 1e-9, 1e-320, 1e38, 1e39,
                                    1e300, -1e300, 1.7976931348623157e308};
  switch (Pick(rng, 5)) {
    case 0:
      return kDoubles[Pick(rng, std::size(kDoubles))];
    case 1:
      return std::numeric_limits<uint64_t>::max() - Pick(rng, 3);
    case 2: {
      const uint64_t bits = (static_cast<uint64_t>((*rng)()) << 33) ^ (*rng)();
      return static_cast<int64_t>(bits >> Pick(rng, 64));
    }
    default:
      return kInts[Pick(rng, std::size(kInts))];
  }
}

json OtherValue(Rng* rng) {
  switch (Pick(rng, 8)) {
    case 0: return nullptr;
    case 1: return true;
    case 2: return false;
    case 3: return "";
    case 4: return json::array();
    case 5: return json::object();
    case 6: return std::string(Pick(rng, 64), 'a' + static_cast<char>(Pick(rng, 26)));
    default: return json::array({InterestingNumber(rng), InterestingNumber(rng)});
  }
}

}  // namespace

void MutateJsonValue(json* doc, Rng* rng) {
  std::vector<json*> nodes;
  CollectNodes(doc, &nodes);
  json* node = nodes[Pick(rng, nodes.size())];
  switch (Pick(rng, 8)) {
    case 0:
    case 1:
    case 2:
      *node = InterestingNumber(rng);
      return;
    case 3:
      if (node->is_number_integer()) {  // nudge: off-by-one, doubled, negated
        const int64_t v = node->get<int64_t>();
        const int64_t deltas[] = {1, -1};
        int64_t out = 0;
        if (Pick(rng, 2) == 0 && !__builtin_add_overflow(v, deltas[Pick(rng, 2)], &out)) {
          *node = out;
        } else if (!__builtin_mul_overflow(v, Pick(rng, 2) == 0 ? 2 : -1, &out)) {
          *node = out;
        }
        return;
      }
      *node = OtherValue(rng);
      return;
    case 4:
      *node = OtherValue(rng);
      return;
    case 5: {  // copy another node here (a subtree may be copied into itself: fine, by value)
      const json copy = *nodes[Pick(rng, nodes.size())];
      *node = copy;
      return;
    }
    case 6:  // remove a member or an element
      if (node->is_object() && !node->empty()) {
        auto it = node->begin();
        std::advance(it, Pick(rng, node->size()));
        node->erase(it);
      } else if (node->is_array() && !node->empty()) {
        node->erase(Pick(rng, node->size()));
      }
      return;
    default:  // duplicate a member under a new key, or an element
      if (node->is_object() && !node->empty()) {
        auto it = node->begin();
        std::advance(it, Pick(rng, node->size()));
        const json copy = it.value();
        (*node)[it.key() + std::to_string(Pick(rng, 10))] = copy;
      } else if (node->is_array()) {
        node->push_back(node->empty() ? InterestingNumber(rng) : (*node)[Pick(rng, node->size())]);
      }
      return;
  }
}

size_t MutateJsonInput(uint8_t* data, size_t size, size_t max_size, unsigned seed) {
  Rng rng(seed);
  if (Pick(&rng, 2) == 0) {
    json doc = json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (!doc.is_discarded()) {
      MutateJsonValue(&doc, &rng);
      const std::string text = doc.dump(-1, ' ', false, json::error_handler_t::replace);
      if (text.size() <= max_size) {
        std::memcpy(data, text.data(), text.size());
        return text.size();
      }
    }
  }
  return LLVMFuzzerMutate(data, size, max_size);
}

}  // namespace mla::fuzz
