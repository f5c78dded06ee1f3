// Shared helpers of the GPU op tests (tests/gpu/*_test.cc): skipping without a GPU, seeds,
// device buffers from host vectors, and the comparison that every test prints (STYLE.md L4).
//
// Every test compares a kernels::cuda op with its kernels::cpu twin on fresh random inputs
// (seed from MLA_TEST_SEED, else random; always printed), with outputs poisoned (NaN) before the
// launch. Compare() checks both the relative L2 error ||got - ref|| / ||ref|| and, per element,
// |got - ref| <= atol + rtol * |ref|; a NaN where the reference has none always fails.
#ifndef MLASERVE_TESTS_GPU_GPU_TEST_UTIL_H_
#define MLASERVE_TESTS_GPU_GPU_TEST_UTIL_H_

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/bf16.h"
#include "kernels/cuda/device_buffer.h"

namespace mla::kernels::cuda::testing {

// Empty when a CUDA device is usable, else why not.
inline std::string NoGpuReason() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    return std::string("cudaGetDeviceCount failed: ") + cudaGetErrorName(err) + " (" +
           cudaGetErrorString(err) + ")";
  }
  if (count == 0) return "cudaGetDeviceCount reports 0 devices";
  return "";
}

// Skips the current test, with the reason printed, on a machine without a usable GPU.
#define MLA_SKIP_WITHOUT_GPU()                                               \
  do {                                                                       \
    const std::string mla_no_gpu_ = ::mla::kernels::cuda::testing::NoGpuReason(); \
    if (!mla_no_gpu_.empty()) {                                              \
      std::printf("[  SKIP    ] no GPU: %s\n", mla_no_gpu_.c_str());         \
      GTEST_SKIP() << "no GPU: " << mla_no_gpu_;                             \
    }                                                                        \
  } while (false)

#define MLA_ASSERT_OK(expr)                          \
  do {                                               \
    const absl::Status mla_status_ = (expr);         \
    ASSERT_TRUE(mla_status_.ok()) << mla_status_;    \
  } while (false)

#define MLA_CONCAT_INNER_(a, b) a##b
#define MLA_CONCAT_(a, b) MLA_CONCAT_INNER_(a, b)
#define MLA_ASSERT_OK_AND_ASSIGN(lhs, expr)                                          \
  auto MLA_CONCAT_(mla_or_, __LINE__) = (expr);                                      \
  ASSERT_TRUE(MLA_CONCAT_(mla_or_, __LINE__).ok()) << MLA_CONCAT_(mla_or_, __LINE__).status(); \
  lhs = std::move(*MLA_CONCAT_(mla_or_, __LINE__))

// The test's seed: MLA_TEST_SEED if set, else fresh; printed so a failure can be replayed.
inline uint32_t TestSeed() {
  const char* env = std::getenv("MLA_TEST_SEED");
  const uint32_t seed = env != nullptr ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10))
                                       : std::random_device{}();
  std::printf("seed %u (replay with MLA_TEST_SEED=%u)\n", seed, seed);
  return seed;
}

inline std::vector<float> RandomFloats(std::mt19937& rng, int64_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<float> RandomNormals(std::mt19937& rng, int64_t n, float stddev) {
  std::normal_distribution<float> dist(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

inline std::vector<bf16> ToBf16(const std::vector<float>& v) {
  std::vector<bf16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = FloatToBf16(v[i]);
  return out;
}

inline std::vector<float> ToFloat(const std::vector<bf16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = Bf16ToFloat(v[i]);
  return out;
}

inline double Rms(const std::vector<float>& v) {
  double ss = 0.0;
  for (float x : v) ss += static_cast<double>(x) * x;
  return v.empty() ? 0.0 : std::sqrt(ss / static_cast<double>(v.size()));
}

struct Tolerance {
  double rel_l2 = 1e-5;  // bound on ||got - ref|| / ||ref||
  double atol = 0.0;     // per element: |got - ref| <= atol + rtol * |ref|
  double rtol = 1e-5;
};

// Checks got against ref and prints the evidence: relative L2 error, the worst element (index,
// values, share of its tolerance) and the NaN count.
inline void ExpectClose(const std::string& what, const std::vector<float>& got,
                        const std::vector<float>& ref, const Tolerance& tol) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double diff2 = 0.0, ref2 = 0.0, worst_share = 0.0;
  int64_t worst = -1, nans = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (std::isnan(got[i]) && !std::isnan(ref[i])) {
      if (nans++ == 0) worst = static_cast<int64_t>(i);
      worst_share = INFINITY;
      continue;
    }
    const double err = std::fabs(static_cast<double>(got[i]) - ref[i]);
    diff2 += err * err;
    ref2 += static_cast<double>(ref[i]) * ref[i];
    const double share = err / (tol.atol + tol.rtol * std::fabs(static_cast<double>(ref[i])));
    if (share > worst_share || worst < 0) {
      worst_share = share;
      worst = static_cast<int64_t>(i);
    }
  }
  const double rel_l2 = ref2 > 0.0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  std::printf("%s: n=%zu rel_l2=%.3g (bound %.1g) worst [%lld] got %.9g ref %.9g = %.1f%% of "
              "tolerance (atol %.3g + rtol %.1g*|ref|), NaN %lld\n",
              what.c_str(), ref.size(), rel_l2, tol.rel_l2, static_cast<long long>(worst),
              worst >= 0 ? got[worst] : 0.0f, worst >= 0 ? ref[worst] : 0.0f, 100.0 * worst_share,
              tol.atol, tol.rtol, static_cast<long long>(nans));
  EXPECT_EQ(nans, 0) << what << ": NaN in the output";
  EXPECT_LE(rel_l2, tol.rel_l2) << what;
  EXPECT_LE(worst_share, 1.0) << what << ": element " << worst;
}

}  // namespace mla::kernels::cuda::testing

#endif  // MLASERVE_TESTS_GPU_GPU_TEST_UTIL_H_
