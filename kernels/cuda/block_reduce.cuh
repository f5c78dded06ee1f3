// Reductions across a warp and across a thread block, for the row-wise kernels (RmsNorm).
// warp::Sum: every lane gets the sum of the 32 lanes' values (butterfly shuffles); QuadMax and
// QuadSum the same over a quad of 4 lanes (a row of a tensor-core accumulator fragment).
// block::Sum: every thread of the block gets the sum; REQUIRES blockDim.x a multiple of 32 and
// at most 1024, all threads calling. Uses 32 floats of static shared memory and two barriers,
// so it may be called repeatedly in one kernel.
#ifndef MLASERVE_KERNELS_CUDA_BLOCK_REDUCE_CUH_
#define MLASERVE_KERNELS_CUDA_BLOCK_REDUCE_CUH_

namespace mla::kernels::cuda {
namespace warp {

inline constexpr int kSize = 32;
inline constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float Sum(float v) {
#pragma unroll
  for (int offset = kSize / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

// Max and sum over the 4 lanes of a quad (lanes 4 g .. 4 g + 3: one row of an mma / wgmma
// accumulator fragment); every lane of the quad gets the result.
__device__ __forceinline__ float QuadMax(float v) {
  v = fmaxf(v, __shfl_xor_sync(kFullMask, v, 1));
  return fmaxf(v, __shfl_xor_sync(kFullMask, v, 2));
}
__device__ __forceinline__ float QuadSum(float v) {
  v += __shfl_xor_sync(kFullMask, v, 1);
  return v + __shfl_xor_sync(kFullMask, v, 2);
}

}  // namespace warp

namespace block {

__device__ __forceinline__ float Sum(float v) {
  __shared__ float partial[warp::kSize];  // one per warp
  const int lane = threadIdx.x % warp::kSize;
  const int warp_id = threadIdx.x / warp::kSize;
  const int num_warps = blockDim.x / warp::kSize;
  v = warp::Sum(v);
  __syncthreads();  // an earlier call's readers are done with `partial`
  if (lane == 0) partial[warp_id] = v;
  __syncthreads();
  v = lane < num_warps ? partial[lane] : 0.0f;
  return warp::Sum(v);
}

}  // namespace block
}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_BLOCK_REDUCE_CUH_
