// Tests for worker/dtype: names, sizes and element conversions against hand-computed values.
#include "worker/dtype.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace mla {
namespace {

float Fp8(uint8_t v) { return ElementToFloat(DType::kF8E4M3, &v); }

float Half(uint16_t v) {
  const uint8_t le[2] = {static_cast<uint8_t>(v & 0xff), static_cast<uint8_t>(v >> 8)};
  return ElementToFloat(DType::kF16, le);
}

float Bf16(uint16_t v) {
  const uint8_t le[2] = {static_cast<uint8_t>(v & 0xff), static_cast<uint8_t>(v >> 8)};
  return ElementToFloat(DType::kBF16, le);
}

TEST(DType, NamesRoundTripAndSizes) {
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32, DType::kF8E4M3}) {
    std::optional<DType> back = DTypeFromName(DTypeName(d));
    ASSERT_TRUE(back.has_value()) << DTypeName(d);
    EXPECT_EQ(*back, d);
  }
  EXPECT_EQ(DTypeName(DType::kF8E4M3), "F8_E4M3");
  EXPECT_EQ(DTypeSize(DType::kBF16), 2);
  EXPECT_EQ(DTypeSize(DType::kF16), 2);
  EXPECT_EQ(DTypeSize(DType::kF32), 4);
  EXPECT_EQ(DTypeSize(DType::kF8E4M3), 1);
  EXPECT_FALSE(DTypeFromName("F64").has_value());
  EXPECT_FALSE(DTypeFromName("bf16").has_value());
  EXPECT_FALSE(DTypeFromName("").has_value());
}

TEST(DType, Fp8E4M3HandComputedValues) {
  EXPECT_EQ(Fp8(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(Fp8(0x80)));
  EXPECT_EQ(Fp8(0x80), 0.0f);
  EXPECT_EQ(Fp8(0x38), 1.0f);                 // exponent 7 = bias
  EXPECT_EQ(Fp8(0xB8), -1.0f);
  EXPECT_EQ(Fp8(0x3C), 1.5f);                 // mantissa 100
  EXPECT_EQ(Fp8(0x40), 2.0f);
  EXPECT_EQ(Fp8(0x7E), 448.0f);               // 1.75 * 2^8, the largest finite value
  EXPECT_EQ(Fp8(0xFE), -448.0f);
  EXPECT_EQ(Fp8(0x78), 256.0f);               // exponent 15 with mantissa != 111 is finite
  EXPECT_EQ(Fp8(0x08), std::ldexp(1.0f, -6)); // smallest normal
  EXPECT_EQ(Fp8(0x01), std::ldexp(1.0f, -9)); // smallest subnormal
  EXPECT_EQ(Fp8(0x07), 7 * std::ldexp(1.0f, -9));
  EXPECT_EQ(Fp8(0x81), -std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(Fp8(0x7F)));
  EXPECT_TRUE(std::isnan(Fp8(0xFF)));
}

TEST(DType, Fp8E4M3AllValuesFiniteExceptNan) {
  int nans = 0;
  for (int v = 0; v < 256; ++v) {
    float f = Fp8(static_cast<uint8_t>(v));
    EXPECT_FALSE(std::isinf(f)) << v;
    if (std::isnan(f)) {
      ++nans;
    } else {
      EXPECT_LE(std::fabs(f), 448.0f) << v;
    }
  }
  EXPECT_EQ(nans, 2);
}

TEST(DType, F16HandComputedValues) {
  EXPECT_EQ(Half(0x3C00), 1.0f);
  EXPECT_EQ(Half(0xC000), -2.0f);
  EXPECT_EQ(Half(0x3555), 0.25f + 0x155 * std::ldexp(1.0f, -12));  // ~1/3
  EXPECT_EQ(Half(0x7BFF), 65504.0f);              // largest finite
  EXPECT_EQ(Half(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(Half(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(Half(0x03FF), 1023 * std::ldexp(1.0f, -24));
  EXPECT_EQ(Half(0x0000), 0.0f);
  EXPECT_TRUE(std::signbit(Half(0x8000)));
  EXPECT_EQ(Half(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(Half(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Half(0x7E00)));
  EXPECT_TRUE(std::isnan(Half(0x7C01)));
}

TEST(DType, Bf16AndF32HandComputedValues) {
  EXPECT_EQ(Bf16(0x3F80), 1.0f);
  EXPECT_EQ(Bf16(0xC040), -3.0f);
  EXPECT_EQ(Bf16(0x7F80), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Bf16(0x7FC0)));
  EXPECT_EQ(Bf16(0x0001), std::ldexp(1.0f, -133));  // bf16 subnormal
  const uint8_t one_f32[4] = {0x00, 0x00, 0x80, 0x3F};
  EXPECT_EQ(ElementToFloat(DType::kF32, one_f32), 1.0f);
  const uint8_t pi_f32[4] = {0xDB, 0x0F, 0x49, 0x40};
  EXPECT_EQ(ElementToFloat(DType::kF32, pi_f32), 3.14159274101257324f);
}

TEST(DType, ReadsUnalignedElements) {
  alignas(8) uint8_t buf[9] = {0xAA, 0x00, 0x00, 0x80, 0x3F, 0x80, 0x3F, 0x00, 0x3C};
  EXPECT_EQ(ElementToFloat(DType::kF32, buf + 1), 1.0f);
  EXPECT_EQ(ElementToFloat(DType::kBF16, buf + 5), 1.0f);
  EXPECT_EQ(ElementToFloat(DType::kF16, buf + 7), 1.0f);
}

}  // namespace
}  // namespace mla
