// Warp- and thread-level building blocks of the decode kernel (STYLE.md T4: the namespace says
// who runs them): tensor-core mma.sync m16n8k16 (bf16 in, fp32 accumulate), ldmatrix, and
// 16-byte cp.async copies. Fragment layouts (PTX ISA, "mma.m16n8k16", g = lane / 4,
// t = lane % 4):
//   A (16 x 16, row):  a0 = (g, 2t..2t+1)  a1 = (g+8, 2t..)  a2 = (g, 2t+8..)  a3 = (g+8, 2t+8..)
//   B (16 x 8, col):   b0 = (k 2t..2t+1, n g)                b1 = (k 2t+8..2t+9, n g)
//   C (16 x 8, fp32):  c0,c1 = (g, 2t..2t+1)                 c2,c3 = (g+8, 2t..2t+1)
// ldmatrix.x4 loads four 8 x 8 bf16 matrices; lane l gives the row address of matrix l / 8, row
// l % 8, and receives (row g, cols 2t..2t+1) of each; with .trans, (rows 2t..2t+1, col g).
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_WARP_MMA_CUH_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_WARP_MMA_CUH_

#include <cuda_bf16.h>

#include <cstdint>

namespace mla::kernels::cuda::mla_decode {

__device__ __forceinline__ uint32_t SharedAddress(const void* ptr) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(ptr));
}

namespace warp {

// r[0..3] <- four 8x8 matrices; `row` is this lane's row address (see above).
__device__ __forceinline__ void LoadMatrixX4(uint32_t (&r)[4], const __nv_bfloat16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(row)));
}

// As LoadMatrixX4, each matrix transposed.
__device__ __forceinline__ void LoadMatrixX4Trans(uint32_t (&r)[4], const __nv_bfloat16* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(row)));
}

// c += a * b  (16x16 bf16 times 16x8 bf16, fp32 accumulators).
__device__ __forceinline__ void MmaBf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as a bf16 pair (nearest even): `lo` in the low half, the lower column index.
__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// Max and sum over the 4 lanes of a quad (the lanes holding one row of a C fragment).
__device__ __forceinline__ float QuadMax(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float QuadSum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

}  // namespace warp

namespace thread {

// 16 bytes global -> shared, asynchronously; fills zeros (reads nothing) when !valid.
__device__ __forceinline__ void CopyAsync16(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n"
               :
               : "r"(SharedAddress(smem)), "l"(gmem), "r"(valid ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void CopyAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void CopyAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" : : "n"(kPending) : "memory");
}

}  // namespace thread
}  // namespace mla::kernels::cuda::mla_decode

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_WARP_MMA_CUH_
