// Compile-time shape of the materialised MLA prefill attention kernel (STYLE.md T2). The kernel
// is specialised to DeepSeek-V3's per-head widths (nope 128 + rope 64 = 192-wide keys, 128-wide
// values); the launcher rejects other dims. Any d_latent (a multiple of 8) is fine: the latent
// only enters through the up-projection GEMM.
//
// One CTA = kTileQ query rows of one sequence x one head, 8 warps; warp w owns rows
// [kRowsPerWarp w, +kRowsPerWarp) of the tile; lane l is key l of each kTileK-key tile for the
// scores and value columns l + 32 c (c < kValuesPerLane) for the output.
#ifndef MLASERVE_KERNELS_CUDA_MLA_PREFILL_CONFIG_H_
#define MLASERVE_KERNELS_CUDA_MLA_PREFILL_CONFIG_H_

namespace mla::kernels::cuda::mla_prefill {

inline constexpr int kDNope = 128;                 // qk_nope_head_dim
inline constexpr int kDRope = 64;                  // qk_rope_head_dim
inline constexpr int kDQk = kDNope + kDRope;       // 192: query / key width
inline constexpr int kDV = 128;                    // v_head_dim
inline constexpr int kDKv = kDNope + kDV;          // 256: per-head width of the up-projection

inline constexpr int kWarpSize = 32;
inline constexpr int kWarps = 8;
inline constexpr int kThreads = kWarps * kWarpSize;          // 256
inline constexpr int kRowsPerWarp = 4;
inline constexpr int kTileQ = kWarps * kRowsPerWarp;         // 32 query rows per CTA
inline constexpr int kTileK = kWarpSize;                     // 32 keys per tile: one per lane
inline constexpr int kValuesPerLane = kDV / kWarpSize;       // 4 output columns per lane
inline constexpr int kKStride = kDQk + 1;  // padded key row: lane l reads row l, banks differ

inline constexpr int kChunk = 8;  // bf16 per 16-byte copy in the gather

static_assert(kDV % kWarpSize == 0, "value columns must split evenly over the lanes");
static_assert(kTileK == kWarpSize, "one key per lane");

}  // namespace mla::kernels::cuda::mla_prefill

#endif  // MLASERVE_KERNELS_CUDA_MLA_PREFILL_CONFIG_H_
