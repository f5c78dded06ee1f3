// Compile-time shape of the materialised MLA prefill attention (STYLE.md T2). The attention kernel
// is specialised to DeepSeek-V3's per-head widths (nope 128 + rope 64 = 192-wide keys, 128-wide
// values); the launcher rejects other dims. Any d_latent (a multiple of 8) is fine: the latent
// only enters through the up-projection GEMM.
//
// One CTA = kTileQ query rows of one sequence x one head, kWarps warps; warp w owns the
// kRowsPerWarp rows [16 w, 16 w + 16) of the tile (one mma M of 16). Keys stream through shared
// memory in tiles of kTileK, kStages deep (cp.async double buffering). Shared-memory rows are
// padded by kPad bf16 (16 bytes): a row pitch of 400 (K) or 272 (V) bytes is 16 modulo 128, so
// the 8 row addresses of one ldmatrix 8x8 matrix fall in 8 different 16-byte bank groups.
#ifndef MLASERVE_KERNELS_CUDA_MLA_PREFILL_CONFIG_H_
#define MLASERVE_KERNELS_CUDA_MLA_PREFILL_CONFIG_H_

namespace mla::kernels::cuda::mla_prefill {

inline constexpr int kDNope = 128;                 // qk_nope_head_dim
inline constexpr int kDRope = 64;                  // qk_rope_head_dim
inline constexpr int kDQk = kDNope + kDRope;       // 192: query / key width
inline constexpr int kDV = 128;                    // v_head_dim
inline constexpr int kDKv = kDNope + kDV;          // 256: per-head width of the up-projection

inline constexpr int kWarpSize = 32;
inline constexpr int kWarps = 4;
inline constexpr int kThreads = kWarps * kWarpSize;          // 128
inline constexpr int kMmaM = 16;                             // mma.m16n8k16: rows
inline constexpr int kMmaN = 8;                              //               columns
inline constexpr int kMmaK = 16;                             //               reduction
inline constexpr int kRowsPerWarp = kMmaM;                   // 16
inline constexpr int kTileQ = kWarps * kRowsPerWarp;         // 64 query rows per CTA
inline constexpr int kTileK = 64;                            // keys per shared-memory tile
inline constexpr int kStages = 2;                            // key tiles in flight

inline constexpr int kQkSteps = kDQk / kMmaK;      // 12 reduction steps of S = Q K^T
inline constexpr int kKeyBlocks = kTileK / kMmaN;  // 8 column blocks of S per tile
inline constexpr int kPvSteps = kTileK / kMmaK;    // 4 reduction steps of O += P V
inline constexpr int kVBlocks = kDV / kMmaN;       // 16 column blocks of O

inline constexpr int kChunk = 8;                   // bf16 per 16-byte copy (gather, cp.async)
inline constexpr int kPad = kChunk;                // bf16 of padding per shared-memory row
inline constexpr int kKPitch = kDQk + kPad;        // 200 bf16 = 400 bytes per key row
inline constexpr int kVPitch = kDV + kPad;         // 136 bf16 = 272 bytes per value row

static_assert(kDQk % kMmaK == 0 && kTileK % kMmaK == 0, "reductions split into mma K steps");
static_assert(kTileK % (2 * kMmaN) == 0 && kDV % (2 * kMmaN) == 0,
              "ldmatrix.x4 loads two mma column blocks at a time");
static_assert(kDNope % kChunk == 0 && kDRope % kChunk == 0 && kDV % kChunk == 0,
              "rows copy in 16-byte chunks");
static_assert((kKPitch * 2) % 128 == 16 && (kVPitch * 2) % 128 == 16,
              "padded pitches keep ldmatrix free of bank conflicts");
static_assert(kThreads % kTileK == 0, "the tile loader's threads split evenly over the keys");

}  // namespace mla::kernels::cuda::mla_prefill

#endif  // MLASERVE_KERNELS_CUDA_MLA_PREFILL_CONFIG_H_
