// mla_ops_bench's random fills (ops_bench.h: FillUniform): a hash of (index, seed) to a uniform
// value in [-1, 1) (as mla_decode_bench's fill), bf16 rounded to nearest even. Synchronous: setup
// only, never inside a timed region.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "bench/ops_bench.h"
#include "kernels/cuda/cuda_status.h"

namespace mla::kernels::cuda::bench {
namespace {

__device__ float HashUniform(uint64_t i, uint32_t seed) {
  uint64_t x = i * 0x9e3779b97f4a7c15ull + seed;
  x ^= x >> 31; x *= 0xbf58476d1ce4e5b9ull; x ^= x >> 29; x *= 0x94d049bb133111ebull; x ^= x >> 32;
  return static_cast<float>(x & 0xffffff) / static_cast<float>(1 << 23) - 1.0f;
}
__global__ void FillFloatKernel(float* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    p[i] = HashUniform(i, seed);
  }
}
__global__ void FillBf16Kernel(bf16* p, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const uint32_t u = __float_as_uint(HashUniform(i, seed));  // round to nearest even
    p[i].bits = static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  }
}

}  // namespace

absl::Status FillUniform(float* p, int64_t n, uint32_t seed) {
  FillFloatKernel<<<4096, 256>>>(p, n, seed);
  OPS_RETURN_IF_ERROR(LaunchStatus("FillFloatKernel"));
  return CudaStatus(cudaDeviceSynchronize(), "fill");
}
absl::Status FillUniform(bf16* p, int64_t n, uint32_t seed) {
  FillBf16Kernel<<<4096, 256>>>(p, n, seed);
  OPS_RETURN_IF_ERROR(LaunchStatus("FillBf16Kernel"));
  return CudaStatus(cudaDeviceSynchronize(), "fill");
}

}  // namespace mla::kernels::cuda::bench
