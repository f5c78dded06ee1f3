// Element-type names, sizes and conversion of one stored element to float.
#include "worker/dtype.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

namespace mla {
namespace {

uint16_t LoadU16(const void* p) {
  unsigned char b[2];
  std::memcpy(b, p, 2);
  return static_cast<uint16_t>(b[0] | (b[1] << 8));
}

uint32_t LoadU32(const void* p) {
  unsigned char b[4];
  std::memcpy(b, p, 4);
  return static_cast<uint32_t>(b[0]) | (static_cast<uint32_t>(b[1]) << 8) |
         (static_cast<uint32_t>(b[2]) << 16) | (static_cast<uint32_t>(b[3]) << 24);
}

// IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
float HalfToFloat(uint16_t h) {
  const float sign = (h & 0x8000u) ? -1.0f : 1.0f;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  if (exponent == 0x1f) {
    return mantissa == 0 ? sign * std::numeric_limits<float>::infinity()
                         : std::numeric_limits<float>::quiet_NaN();
  }
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -24);  // subnormal
  return sign * std::ldexp(static_cast<float>(mantissa | 0x400), exponent - 25);
}

// float8 e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, S.1111.111 is
// NaN, so the largest finite value is 1.75 * 2^8 = 448.
float Fp8E4M3ToFloat(uint8_t v) {
  const float sign = (v & 0x80u) ? -1.0f : 1.0f;
  const int exponent = (v >> 3) & 0xf;
  const int mantissa = v & 0x7;
  if (exponent == 0xf && mantissa == 0x7) return std::numeric_limits<float>::quiet_NaN();
  if (exponent == 0) return sign * std::ldexp(static_cast<float>(mantissa), -9);  // subnormal
  return sign * std::ldexp(static_cast<float>(mantissa | 0x8), exponent - 10);
}

}  // namespace

std::optional<DType> DTypeFromName(std::string_view name) {
  if (name == "BF16") return DType::kBF16;
  if (name == "F16") return DType::kF16;
  if (name == "F32") return DType::kF32;
  if (name == "F8_E4M3") return DType::kF8E4M3;
  return std::nullopt;
}

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kF32: return "F32";
    case DType::kF8E4M3: return "F8_E4M3";
  }
  return "UNKNOWN";
}

int64_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kBF16: return 2;
    case DType::kF16: return 2;
    case DType::kF32: return 4;
    case DType::kF8E4M3: return 1;
  }
  return 0;
}

float ElementToFloat(DType dtype, const void* p) {
  switch (dtype) {
    case DType::kBF16:
      return std::bit_cast<float>(static_cast<uint32_t>(LoadU16(p)) << 16);
    case DType::kF16:
      return HalfToFloat(LoadU16(p));
    case DType::kF32:
      return std::bit_cast<float>(LoadU32(p));
    case DType::kF8E4M3: {
      uint8_t v;
      std::memcpy(&v, p, 1);
      return Fp8E4M3ToFloat(v);
    }
  }
  return std::numeric_limits<float>::quiet_NaN();
}

}  // namespace mla
