// Structure-aware mutation for the fuzzers whose input is (or holds) a JSON document: config.json,
// tokenizer.json, the safetensors header. Byte-level mutation rarely turns `"vocab_size": 1024`
// into a well-formed number large enough to matter, so these fuzzers define
// LLVMFuzzerCustomMutator to call MutateJsonInput, which half of the time parses the input, changes
// one node of the document (a value replaced by an edge-of-range number, another type, a copy of
// another node; an object key or array element removed or duplicated) and serializes it again;
// the other half, and whenever the input is not JSON, it falls back to libFuzzer's own
// mutations (LLVMFuzzerMutate, which also uses the -dict dictionary).
//
// MutateJsonValue is the document-level step, also used by the safetensors mutator, which edits
// the header and then optionally lays the data offsets out again so the file stays consistent.
// Deterministic for a given seed. Not thread-safe (libFuzzer mutates on one thread).
#ifndef MLASERVE_TESTS_FUZZ_JSON_MUTATOR_H_
#define MLASERVE_TESTS_FUZZ_JSON_MUTATOR_H_

#include <cstddef>
#include <cstdint>
#include <random>

#include "nlohmann/json.hpp"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace mla::fuzz {

using Rng = std::minstd_rand;

// Changes one node of `doc` (which may be any JSON value) at random.
void MutateJsonValue(nlohmann::json* doc, Rng* rng);

// The body of LLVMFuzzerCustomMutator for a fuzzer whose whole input is JSON text: the new size
// of data[0, size), at most max_size.
size_t MutateJsonInput(uint8_t* data, size_t size, size_t max_size, unsigned seed);

}  // namespace mla::fuzz

#endif  // MLASERVE_TESTS_FUZZ_JSON_MUTATOR_H_
