// Compile-time shape of the absorbed MLA decode kernel (STYLE.md T2). The kernel is specialised
// to DeepSeek-V3's latent (512) and rope (64) widths; the launcher rejects other dims.
//
// One CTA = one lane of work (plan.h) x kHeadsPerCta heads, 8 warps in two warpgroups:
//   warpgroup 0 (warps 0-3): S = Q K^T on wgmma (64 heads x 64 keys, K = 576), the online
//     softmax, P into the tile's rope chunk, and O[:, 0:256] += P V[:, 0:256] with P from
//     registers;
//   warpgroup 1 (warps 4-7): O[:, 256:512] += P V[:, 256:512] with P from shared memory; its
//     first warp is also the producer, streaming cache blocks of 64 keys x 576 into a two-stage
//     ring with TMA (one thread issues 9 copies per block; a whole producer warp would cost a
//     register budget of 168 per thread instead of 255: 9 warps put 3 on one SM sub-partition).
// Each warpgroup holds its 64 x 256 fp32 half of O in registers (128 per thread).
//
// Shared memory is 128-byte swizzled everywhere a wgmma reads it: a 64-row operand of width
// 576 is stored as kChunks column chunks of 64 bf16 (128 bytes) x 64 rows, chunk c at c * 8 KB,
// row r of a chunk at r * 128 bytes, its 16-byte piece j at (j ^ (r % 8)) * 16 -- the layout
// TMA writes with CU_TENSOR_MAP_SWIZZLE_128B and wgmma reads with swizzle mode "128B".
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_CONFIG_H_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_CONFIG_H_

#include "kernels/mla_params.h"

namespace mla::kernels::cuda::mla_decode {

inline constexpr int kDLatent = 512;                // value width = latent width
inline constexpr int kDRope = 64;                   // rope part of the key
inline constexpr int kDCache = kDLatent + kDRope;   // 576: key width, one cache row
inline constexpr int kKeysPerTile = static_cast<int>(kBlockSize);  // one cache block per tile

inline constexpr int kHeadsPerCta = 64;             // wgmma M
inline constexpr int kWarpgroupThreads = 128;
inline constexpr int kConsumerThreads = 2 * kWarpgroupThreads;  // warpgroups 0 and 1
inline constexpr int kThreads = kConsumerThreads;               // 256
inline constexpr int kProducerWarp = kWarpgroupThreads / 32;    // 4: warpgroup 1's first warp

// wgmma shapes: m64nNk16.
inline constexpr int kMmaK = 16;
inline constexpr int kValueCols = kDLatent / 2;     // 256: O columns per warpgroup (one n256 op)
inline constexpr int kScoreRegs = kHeadsPerCta * kKeysPerTile / kWarpgroupThreads;  // 32
inline constexpr int kOutRegs = kHeadsPerCta * kValueCols / kWarpgroupThreads;      // 128

// Shared-memory tiles (see the layout above).
inline constexpr int kChunkCols = 64;               // bf16 per 128-byte swizzle row
inline constexpr int kChunkBytes = kChunkCols * 2 * kKeysPerTile;  // 8 KB: 64 rows x 128 B
inline constexpr int kChunks = kDCache / kChunkCols;               // 9 per cache row
inline constexpr int kValueChunks = kValueCols / kChunkCols;       // 4 per warpgroup
inline constexpr int kTileBytes = kChunks * kChunkBytes;           // 73,728: one cache block
inline constexpr int kPChunk = kChunks - 1;  // the rope chunk: once S is done, it holds P
inline constexpr int kStages = 2;                   // cache tiles in flight (double buffer)
inline constexpr int kSwizzleBytes = 128;
inline constexpr int kSwizzleRows = 8;              // a swizzle atom: 8 rows x 128 bytes
inline constexpr int kSwizzleAtomBytes = kSwizzleRows * kSwizzleBytes;  // 1024

// Named barriers (0 is __syncthreads).
inline constexpr int kBarScoreGroup = 1;  // warpgroup 0 alone: Q / zero-filled rows written
inline constexpr int kBarPFull = 2;       // P and its rescale factors are in shared memory
                                          // (both warpgroups sync: splitkv.cu, Synchronisation)
inline constexpr int kHandoffSlots = 2;   // rescale / row-state slots, by tile parity

static_assert(kHeadsPerCta == 64, "wgmma M is 64 rows per warpgroup");
static_assert(kDCache % kChunkCols == 0 && kDLatent % kChunkCols == 0,
              "the key and value widths are whole 128-byte chunks");
static_assert(kKeysPerTile == 64, "P (64 keys) is one 128-byte swizzle row per head");
static_assert(kKeysPerTile % kMmaK == 0 && kChunkCols % kMmaK == 0, "K steps of 16");
static_assert(kKeysPerTile % kSwizzleRows == 0, "a tile is whole swizzle atoms");
static_assert(2 * kValueCols == kDLatent, "two warpgroups split the value columns");

}  // namespace mla::kernels::cuda::mla_decode

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_CONFIG_H_
