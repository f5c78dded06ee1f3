#include "kernels/cuda/mla_decode/cache_tensor_map.h"

#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "kernels/bf16.h"
#include "kernels/cuda/mla_decode/config.h"

namespace mla::kernels::cuda::mla_decode {

absl::Status EncodeCacheMap(const LatentCache& cache, CUtensorMap* map) {
  using EncodeFn = CUresult (*)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*,
                                const cuuint64_t*, const cuuint64_t*, const cuuint32_t*,
                                const cuuint32_t*, CUtensorMapInterleave, CUtensorMapSwizzle,
                                CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
  static const EncodeFn encode = [] {
    void* fn = nullptr;
    cudaDriverEntryPointQueryResult found{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
                                         &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess) {
      return static_cast<EncodeFn>(nullptr);
    }
    return reinterpret_cast<EncodeFn>(fn);
  }();
  if (encode == nullptr) {
    return absl::InternalError("MlaDecodeAttention: cuTensorMapEncodeTiled is not available");
  }
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(kDCache),
                              static_cast<cuuint64_t>(cache.num_blocks * kKeysPerTile)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(kDCache) * sizeof(bf16)};
  const cuuint32_t box[2] = {kChunkCols, kKeysPerTile};
  const cuuint32_t element_strides[2] = {1, 1};
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, cache.data, dims, strides, box,
                            element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                            CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS) {
    return absl::InternalError(absl::StrCat("MlaDecodeAttention: cuTensorMapEncodeTiled failed (",
                                            static_cast<int>(r), ")"));
  }
  return absl::OkStatus();
}

}  // namespace mla::kernels::cuda::mla_decode
