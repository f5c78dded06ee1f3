// The TMA descriptor of the latent cache that the decode kernel (splitkv.cu) streams: the cache
// as a 2-D tensor [num_blocks * 64 rows, 576] bf16, read in boxes of 64 x 64 (config.h: one
// column chunk of one cache block) that land 128-byte swizzled. Host code; any thread.
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_CACHE_TENSOR_MAP_H_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_CACHE_TENSOR_MAP_H_

#include <cuda.h>  // CUtensorMap

#include "absl/status/status.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda::mla_decode {

// Fills *map for `cache` (whose dims the caller has checked: 512 + 64). The driver's encoder is
// reached through the runtime (no -lcuda). INTERNAL when the driver has no encoder or refuses.
absl::Status EncodeCacheMap(const LatentCache& cache, CUtensorMap* map);

}  // namespace mla::kernels::cuda::mla_decode

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_CACHE_TENSOR_MAP_H_
