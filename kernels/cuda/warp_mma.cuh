// Tensor-core and copy primitives for warp-level kernels (inline PTX, sm_80+): a shared-memory
// address for PTX operands, mma.sync m16n8k16 (bf16 operands, fp32 accumulators), ldmatrix,
// cp.async with zero fill. Used by the prefill attention, the grouped MoE experts and (the
// address) the decode attention.
// STYLE.md T4: `warp::` functions must be called by all 32 lanes of a warp together (convergent),
// `thread::` ones by any thread on its own.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"), lane
// = 4 g + t (g = groupID 0..7, t = threadID_in_group 0..3); a .b32 register holds two bf16, the
// lower column / row index in the low half:
//   A (16 x 16, row-major): reg 0 = A[g][2t, 2t+1], reg 1 = A[g+8][2t, 2t+1],
//                           reg 2 = A[g][2t+8, 2t+9], reg 3 = A[g+8][2t+8, 2t+9]
//   B (16 x 8, "col"):      reg 0 = B[2t, 2t+1][g],  reg 1 = B[2t+8, 2t+9][g]
//   C/D (16 x 8, fp32):     c0, c1 = C[g][2t, 2t+1], c2, c3 = C[g+8][2t, 2t+1]
// ldmatrix .m8n8.x4.b16 loads four 8 x 8 matrices; lanes 8 m .. 8 m + 7 give the shared-memory
// addresses of rows 0..7 of matrix m (16 contiguous bytes each), and register m of lane 4 g + t
// receives row g, elements 2t and 2t+1 of matrix m. With .trans it receives the transposed
// matrix's: elements (2t, g) and (2t+1, g) of the stored rows. So
//   - a row-major [n][k] tile (keys x dims) read without .trans gives B fragments of B = tile^T;
//   - a row-major [k][n] tile (keys x value columns) read with .trans gives B fragments of it;
//   - two adjacent C fragments (columns 0..7 and 8..15) of fp32 accumulators, rounded to bf16
//     pairs, are exactly one A fragment of the next mma (C[g][2t..], C[g+8][2t..] -> regs 0, 1;
//     the second block's -> regs 2, 3).
#ifndef MLASERVE_KERNELS_CUDA_WARP_MMA_CUH_
#define MLASERVE_KERNELS_CUDA_WARP_MMA_CUH_

#include <cuda_bf16.h>

#include <cstdint>

namespace mla::kernels::cuda {

// The shared-memory address of a generic pointer into shared memory, for PTX operands.
__device__ __forceinline__ uint32_t SharedAddress(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

namespace thread {

// 16 bytes global -> shared, asynchronously (L2 only, .cg); with valid = false the 16 shared bytes
// are zero-filled and nothing is read (src may then be any global address).
__device__ __forceinline__ void CopyAsync16(void* dst, const void* src, bool valid) {
  const uint32_t src_bytes = valid ? 16u : 0u;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SharedAddress(dst)),
               "l"(src), "r"(src_bytes)
               : "memory");
}

// Closes the group of this thread's cp.async issued since the last commit.
__device__ __forceinline__ void CommitAsyncGroup() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// Waits until at most `pending` of this thread's committed groups are still in flight.
template <int pending>
__device__ __forceinline__ void WaitAsyncGroups() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending) : "memory");
}

}  // namespace thread

namespace warp {

// Four 8 x 8 bf16 matrices from shared memory (see the file comment); row_address is this lane's.
__device__ __forceinline__ void LoadMatrixX4(uint32_t (&r)[4], const void* row_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(row_address)));
}

// The same, each matrix transposed.
__device__ __forceinline__ void LoadMatrixX4Trans(uint32_t (&r)[4], const void* row_address) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(SharedAddress(row_address)));
}

// d += a b: a 16 x 16 (A fragment), b 16 x 8 (B fragment regs b0, b1), d 16 x 8 fp32.
__device__ __forceinline__ void MmaBf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                        uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

}  // namespace warp
}  // namespace mla::kernels::cuda

#endif  // MLASERVE_KERNELS_CUDA_WARP_MMA_CUH_
