// Asynchronous copies and the barriers that order them (sm_90): mbarriers with transaction
// counts, TMA tile loads (cp.async.bulk.tensor) that complete on them, named barriers between
// warpgroups, and the proxy fence that makes ordinary shared-memory stores visible to wgmma.
// STYLE.md T4: `thread::` functions may be called by any single thread, `cta::` ones by every
// thread that the barrier counts.
//
// mbarrier phases: a barrier initialised with count n completes a phase once n threads have
// arrived and every byte announced with ArriveExpectTx has landed; WaitParity(bar, k & 1)
// returns once the barrier's phase number k is complete (phase 0 first).
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_ASYNC_COPY_CUH_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_ASYNC_COPY_CUH_

#include <cuda.h>  // CUtensorMap

#include <cstdint>

#include "kernels/cuda/warp_mma.cuh"  // SharedAddress

namespace mla::kernels::cuda::mla_decode {
namespace thread {

__device__ __forceinline__ void MbarrierInit(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(SharedAddress(bar)), "r"(count)
               : "memory");
}

// Makes initialised barriers visible to the async proxy (TMA) before first use.
__device__ __forceinline__ void FenceBarrierInit() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void MbarrierArrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(SharedAddress(bar)) : "memory");
}

// Arrives and announces `bytes` more bytes that asynchronous copies will deliver this phase.
__device__ __forceinline__ void MbarrierArriveExpectTx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(
                   SharedAddress(bar)),
               "r"(bytes)
               : "memory");
}

__device__ __forceinline__ bool MbarrierTryWait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  asm volatile(
      "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
      "selp.u32 %0, 1, 0, p;\n}\n"
      : "=r"(done)
      : "r"(SharedAddress(bar)), "r"(parity)
      : "memory");
  return done != 0;
}

// Waits for the phase of parity `parity` to complete. A watchdog turns a lost arrival (a bug)
// into a trapped kernel (an error on the host) within seconds instead of a hung GPU. (No printf:
// a call would split the wgmma pipeline of the callers.)
__device__ __forceinline__ void MbarrierWait(uint64_t* bar, uint32_t parity) {
  if (MbarrierTryWait(bar, parity)) return;
  const long long start = clock64();
  while (!MbarrierTryWait(bar, parity)) {
    if (clock64() - start > (1ll << 33)) __trap();  // ~4 s at 2 GHz
  }
}

// dst <- the box at (col, row) of the 2-D tensor `map`, asynchronously; completion is counted
// in bytes on `bar`. `map` must be a __grid_constant__ kernel parameter (or in global memory).
__device__ __forceinline__ void TmaLoad2d(void* dst, const CUtensorMap* map, int32_t col,
                                          int32_t row, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%3, %4}], [%2];\n" ::"r"(SharedAddress(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(SharedAddress(bar)), "r"(col), "r"(row)
      : "memory");
}

// Starts fetching the tensor map `map` (as for TmaLoad2d) into the descriptor cache, so that the
// first TmaLoad2d does not wait for it. A hint: no completion to wait for.
__device__ __forceinline__ void PrefetchTensorMap(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// Orders this thread's earlier ordinary shared-memory stores before later async-proxy reads
// (wgmma operands) that a barrier orders after them.
__device__ __forceinline__ void FenceProxyAsync() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

}  // namespace thread

namespace cta {

// Named barrier `id` over `threads` threads (a multiple of 32): Sync waits for all of them,
// Arrive counts this thread and moves on (producer side of a producer/consumer handoff).
__device__ __forceinline__ void NamedBarrierSync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void NamedBarrierArrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

}  // namespace cta
}  // namespace mla::kernels::cuda::mla_decode

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_ASYNC_COPY_CUH_
