// Compile-time shape of the absorbed MLA decode kernel (STYLE.md T2). The kernel is specialised
// to DeepSeek-V3's latent (512) and rope (64) widths; the launcher rejects other dims.
//
// One CTA = one query token x kHeadsPerCta heads x one key split. Its 8 warps form a 4 x 2 grid:
// warp w owns query heads [16 (w % 4), +16) (the mma's M = 16 rows) and latent columns
// [256 (w / 4), +256) of the output. Both warps of a row pair compute the same 16 x 64 score
// tile (the redundancy costs 576 / (576 + 512) more tensor work but needs no exchange of P);
// each keeps the softmax state of its rows and 256 columns of O in registers.
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_CONFIG_H_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_CONFIG_H_

#include "kernels/mla_params.h"

namespace mla::kernels::cuda::mla_decode {

inline constexpr int kDLatent = 512;                // value width = latent width
inline constexpr int kDRope = 64;                   // rope part of the key
inline constexpr int kDCache = kDLatent + kDRope;   // 576: key width, one cache row
inline constexpr int kKeysPerTile = static_cast<int>(kBlockSize);  // one cache block per tile

inline constexpr int kHeadsPerCta = 64;
inline constexpr int kRowsPerWarp = 16;             // mma m16n8k16: M
inline constexpr int kRowWarps = kHeadsPerCta / kRowsPerWarp;  // 4
inline constexpr int kColWarps = 2;                 // output columns split in two halves
inline constexpr int kWarps = kRowWarps * kColWarps;           // 8
inline constexpr int kThreads = kWarps * 32;                    // 256
inline constexpr int kColsPerWarp = kDLatent / kColWarps;       // 256

inline constexpr int kMmaK = 16;                    // mma m16n8k16: K
inline constexpr int kMmaN = 8;                     // mma m16n8k16: N
inline constexpr int kScoreTiles = kKeysPerTile / kMmaN;        // 8 n-tiles of scores
inline constexpr int kOutTiles = kColsPerWarp / kMmaN;          // 32 n-tiles of O per warp

// Shared-memory rows are padded by 16 bytes: rows 1168 bytes apart start in successive 16-byte
// bank groups, so the 8 row addresses of an ldmatrix hit 8 different groups (no conflicts).
inline constexpr int kSmemPad = 8;                  // bf16 elements
inline constexpr int kSmemStride = kDCache + kSmemPad;          // 584
inline constexpr int kStages = 2;                   // cache tiles in flight (double buffer)
inline constexpr int kChunk = 8;                    // bf16 per 16-byte copy
inline constexpr int kChunksPerRow = kDCache / kChunk;          // 72

static_assert(kDCache % kMmaK == 0, "key width must be a multiple of the mma K (16)");
static_assert(kKeysPerTile % (2 * kMmaN) == 0, "tile keys are consumed 16 at a time");
static_assert(kColsPerWarp % (2 * kMmaN) == 0, "output columns are loaded 16 at a time");
static_assert(kHeadsPerCta % kRowsPerWarp == 0, "heads split evenly over the row warps");
static_assert((kSmemStride * 2) % 16 == 0, "ldmatrix rows must be 16-byte aligned");
static_assert(kDCache % kChunk == 0 && kDLatent % 4 == 0, "16-byte copies tile a row");

}  // namespace mla::kernels::cuda::mla_decode

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_CONFIG_H_
