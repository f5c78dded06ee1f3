// safetensors_fuzzer: mla::SafetensorsFile::FromBytes over arbitrary bytes.
//
// Properties: parsing never crashes and fails only with InvalidArgument or DataLoss. When it
// succeeds, every tensor's view lies inside the input's data section (after the 8-byte length
// and the header), nbytes == numel * dtype size, Names() is sorted and matches Get(), and every
// byte of every view is read (the input buffer is exactly `size` bytes, so AddressSanitizer
// catches a view that reaches past it) and converted with ElementToFloat.
// Seeds: tests/fuzz/corpus/safetensors_fuzzer (made by tests/fuzz/make_seeds.py).
//
// The custom mutator edits the JSON header structurally (json_mutator.h) and, half of the time,
// lays the data offsets out again from the (possibly mutated) dtypes and shapes, resizing the
// data section to match, so that mutated files keep reaching the checks after the offsets; the
// rest of the time it mutates bytes.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/json_mutator.h"
#include "worker/dtype.h"
#include "worker/safetensors.h"

namespace {

using nlohmann::json;

// Gives every well-formed entry of `header` consecutive data_offsets and returns the data
// section's size; -1 (the header left as it was) when a shape overflows or passes `limit`.
int64_t LayOut(json* header, int64_t limit) {
  struct Placed {
    json* entry;
    int64_t begin;
    int64_t end;
  };
  std::vector<Placed> placed;
  int64_t offset = 0;
  for (auto& [name, entry] : header->items()) {
    if (name == "__metadata__" || !entry.is_object()) continue;
    const auto dtype_it = entry.find("dtype");
    const auto shape_it = entry.find("shape");
    if (dtype_it == entry.end() || !dtype_it->is_string() || shape_it == entry.end() ||
        !shape_it->is_array()) {
      continue;
    }
    const auto dtype = mla::DTypeFromName(dtype_it->get<std::string>());
    if (!dtype.has_value()) continue;
    int64_t nbytes = mla::DTypeSize(*dtype);
    for (const json& d : *shape_it) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0 ||
          __builtin_mul_overflow(nbytes, d.get<int64_t>(), &nbytes)) {
        return -1;
      }
    }
    const int64_t begin = offset;
    if (__builtin_add_overflow(offset, nbytes, &offset) || offset > limit) return -1;
    placed.push_back({&entry, begin, offset});
  }
  for (const Placed& p : placed) (*p.entry)["data_offsets"] = json::array({p.begin, p.end});
  return offset;
}

}  // namespace

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned seed) {
  mla::fuzz::Rng rng(seed);
  if (rng() % 4 == 0 || size < 8) return LLVMFuzzerMutate(data, size, max_size);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  if (header_len > size - 8) return LLVMFuzzerMutate(data, size, max_size);
  json header = json::parse(data + 8, data + 8 + header_len, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return LLVMFuzzerMutate(data, size, max_size);
  if (rng() % 4 != 0) mla::fuzz::MutateJsonValue(&header, &rng);
  std::string body(reinterpret_cast<const char*>(data) + 8 + header_len, size - 8 - header_len);
  if (header.is_object() && rng() % 2 == 0) {
    const int64_t data_size = LayOut(&header, static_cast<int64_t>(max_size));
    if (data_size >= 0) body.resize(static_cast<size_t>(data_size), '\x5a');
  }
  std::string text = header.dump(-1, ' ', false, json::error_handler_t::replace);
  text.append((8 - text.size() % 8) % 8, ' ');
  if (8 + text.size() + body.size() > max_size) return LLVMFuzzerMutate(data, size, max_size);
  const uint64_t len = text.size();
  for (int i = 0; i < 8; ++i) data[i] = static_cast<uint8_t>(len >> (8 * i));
  std::memcpy(data + 8, text.data(), text.size());
  std::memcpy(data + 8 + text.size(), body.data(), body.size());
  return 8 + text.size() + body.size();
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  auto file = mla::SafetensorsFile::FromBytes(bytes, size, "fuzz.safetensors");
  if (!file.ok()) {
    const absl::StatusCode code = file.status().code();
    FUZZ_CHECK(code == absl::StatusCode::kInvalidArgument || code == absl::StatusCode::kDataLoss,
               file.status().ToString());
    return 0;
  }
  FUZZ_CHECK(size >= 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];
  FUZZ_CHECK(header_len <= size - 8);
  const std::byte* data_begin = bytes + 8 + header_len;
  const std::byte* data_end = bytes + size;

  const std::vector<std::string> names = (*file)->Names();
  FUZZ_CHECK(std::is_sorted(names.begin(), names.end()));
  int64_t covered = 0;
  volatile float sink = 0.0f;
  for (const std::string& name : names) {
    auto view = (*file)->Get(name);
    FUZZ_CHECK(view.ok(), view.status().ToString());
    FUZZ_CHECK(view->name == name);
    const int64_t element = mla::DTypeSize(view->dtype);
    FUZZ_CHECK(view->nbytes >= 0 && view->nbytes == view->numel() * element, name);
    for (int64_t d : view->shape) FUZZ_CHECK(d >= 0, name);
    FUZZ_CHECK(view->data >= data_begin && view->nbytes <= data_end - view->data, name);
    covered += view->nbytes;
    // Touch every byte so ASan checks the view against the exact-size input buffer.
    uint8_t checksum = 0;
    for (int64_t i = 0; i < view->nbytes; ++i) {
      checksum ^= static_cast<uint8_t>(view->data[i]);
    }
    for (int64_t i = 0; i < view->numel(); ++i) {
      sink = sink + mla::ElementToFloat(view->dtype, view->data + i * element);
    }
    sink = sink + checksum;
  }
  // The tensors tile the data section exactly.
  FUZZ_CHECK(covered == data_end - data_begin, covered, " of ", data_end - data_begin);
  FUZZ_CHECK(absl::IsNotFound((*file)->Get("\x01no such tensor").status()));
  return 0;
}
