// DType: the element types a checkpoint may hold, their safetensors names and sizes, and the
// conversion of one element to float. Header-only; any thread.
#ifndef MLASERVE_WORKER_DTYPE_H_
#define MLASERVE_WORKER_DTYPE_H_

#include <cstdint>
#include <optional>
#include <string_view>

namespace mla {

enum class DType { kBF16, kF16, kF32, kF8E4M3 };

// "BF16", "F16", "F32", "F8_E4M3"; nullopt for anything else.
std::optional<DType> DTypeFromName(std::string_view name);
std::string_view DTypeName(DType dtype);
int64_t DTypeSize(DType dtype);

// Converts one stored element (little-endian bytes at p, any alignment) to float.
float ElementToFloat(DType dtype, const void* p);

}  // namespace mla

#endif  // MLASERVE_WORKER_DTYPE_H_
