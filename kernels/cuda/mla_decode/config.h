// Compile-time shape of the absorbed MLA decode kernel (STYLE.md T2). The kernel is specialised
// to DeepSeek-V3's latent (512) and rope (64) widths; the launcher rejects other dims.
//
// One CTA = one query token x kHeadsPerCta heads x one key split; 8 warps, two roles per tile
// of 64 keys (shapes chosen to read shared memory as little as mma.sync allows):
//   scores : warp w computes S for heads [16 (w % 4), +16) x keys [32 (w / 4), +32) of the tile
//            (each warp reads 16 query rows and 32 key rows: 442 KB of shared memory per tile
//            for the CTA, against 737 KB when every warp covers all 64 keys);
//   values : warp w accumulates O for all 64 heads x latent columns [64 w, +64), reading the
//            tile's P (64 x 64) and its 64 x 64 slice of V once (128 KB per tile, against 272 KB
//            for 16 heads x 256 columns per warp). Each warp holds 64 x 64 fp32 of O in registers.
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_CONFIG_H_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_CONFIG_H_

#include "kernels/mla_params.h"

namespace mla::kernels::cuda::mla_decode {

inline constexpr int kDLatent = 512;                // value width = latent width
inline constexpr int kDRope = 64;                   // rope part of the key
inline constexpr int kDCache = kDLatent + kDRope;   // 576: key width, one cache row
inline constexpr int kKeysPerTile = static_cast<int>(kBlockSize);  // one cache block per tile

inline constexpr int kHeadsPerCta = 64;
inline constexpr int kWarps = 8;
inline constexpr int kThreads = kWarps * 32;                    // 256

inline constexpr int kMmaM = 16;                    // mma m16n8k16
inline constexpr int kMmaN = 8;
inline constexpr int kMmaK = 16;

// Score role: a 4 x 2 grid of warps over (heads, keys).
inline constexpr int kScoreRowWarps = kHeadsPerCta / kMmaM;     // 4
inline constexpr int kScoreKeyWarps = kWarps / kScoreRowWarps;  // 2
inline constexpr int kKeysPerScoreWarp = kKeysPerTile / kScoreKeyWarps;  // 32
inline constexpr int kScoreTiles = kKeysPerScoreWarp / kMmaN;   // 4 n-tiles of S per warp

// Value role: every warp covers all heads and a slice of the latent columns.
inline constexpr int kColsPerWarp = kDLatent / kWarps;          // 64
inline constexpr int kRowTiles = kHeadsPerCta / kMmaM;          // 4 m-tiles of O per warp
inline constexpr int kOutTiles = kColsPerWarp / kMmaN;          // 8 n-tiles of O per warp

// Shared-memory layout. Query and cache rows (576 bf16 = 72 chunks of 16 bytes) are XOR-swizzled
// by chunk: chunk c of row r is stored at chunk c ^ (r % 8), so the 8 rows an ldmatrix reads hit
// 8 different bank groups without padding (padding would not fit: see splitkv.cu). The tile's
// P rows (64 bf16) are padded by 16 bytes instead.
inline constexpr int kChunk = 8;                    // bf16 per 16-byte chunk
inline constexpr int kChunksPerRow = kDCache / kChunk;          // 72
inline constexpr int kSwizzleRows = 8;
inline constexpr int kPStride = kKeysPerTile + kChunk;          // 72
inline constexpr int kStages = 2;                   // cache tiles in flight (double buffer)

static_assert(kDCache % kMmaK == 0, "key width must be a multiple of the mma K (16)");
static_assert(kKeysPerScoreWarp % (2 * kMmaN) == 0, "score keys are loaded 16 at a time");
static_assert(kKeysPerTile % kMmaK == 0, "P V consumes the tile 16 keys at a time");
static_assert(kColsPerWarp % (2 * kMmaN) == 0, "value columns are loaded 16 at a time");
static_assert(kHeadsPerCta % kMmaM == 0 && kScoreRowWarps * kScoreKeyWarps == kWarps,
              "the score grid covers the CTA's heads and keys with its warps");
static_assert(kChunksPerRow % kSwizzleRows == 0, "the swizzle permutes whole groups of 8 chunks");
static_assert(kDLatent % 4 == 0, "16-byte copies tile a row");

}  // namespace mla::kernels::cuda::mla_decode

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_CONFIG_H_
