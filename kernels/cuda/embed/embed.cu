// Embed on the GPU (twin of kernels/cpu/embed.cc): vocab-parallel lookup, MODEL.md §2 and §7.2.
//
//   out[t, :] = float(table[ids[t] - vocab_begin, :])  if vocab_begin <= ids[t] < vocab_end
//   out[t, :] = 0                                      otherwise (another shard owns the id)
//
// table: [vocab_end - vocab_begin, dim] bf16; ids: [tokens] int32; out: [tokens, dim] float32.
// Widening bf16 to float is exact, so the result equals the CPU's bit for bit. One block per
// token, threads striding over the row.
#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/bf16_device.cuh"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/ops.h"

namespace mla::kernels::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    EmbedKernel(const bf16* table, const int32_t* ids, int64_t dim, int64_t vocab_begin,
                int64_t vocab_end, float* out) {
  const int64_t id = ids[blockIdx.x];
  float* row = out + blockIdx.x * dim;
  const bool owned = id >= vocab_begin && id < vocab_end;
  const bf16* src = table + (owned ? id - vocab_begin : 0) * dim;
  for (int64_t j = threadIdx.x; j < dim; j += kThreads) row[j] = owned ? ToFloat(src[j]) : 0.0f;
}

}  // namespace

absl::Status Embed(const bf16* table, const int32_t* ids, int64_t tokens, int64_t dim,
                   int64_t vocab_begin, int64_t vocab_end, float* out, cudaStream_t stream) {
  if (tokens == 0) return absl::OkStatus();
  EmbedKernel<<<static_cast<unsigned>(tokens), kThreads, 0, stream>>>(table, ids, dim,
                                                                      vocab_begin, vocab_end, out);
  return LaunchStatus("EmbedKernel");
}

}  // namespace mla::kernels::cuda
