// Host-side checks of the decode launchers (splitkv.cu, combine.cu; contracts in mla_decode.h):
// shapes, plan, launch mode, workspace and pointers, made before any CUDA call, so they also
// run on a machine without a GPU. A plain launch is checked against its own plan; a fixed one
// only for what holds for every plan within its bounds, since the graph it is captured in
// replays other plans (STYLE.md F3: messages name the field, the expected and the actual
// value). Plain functions; any thread.
#ifndef MLASERVE_KERNELS_CUDA_MLA_DECODE_LAUNCH_CHECKS_H_
#define MLASERVE_KERNELS_CUDA_MLA_DECODE_LAUNCH_CHECKS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "kernels/cuda/mla_decode/plan.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda::mla_decode {

// The slots the launch's workspace is laid out for (plan.h): the plan's own for a plain launch
// (0 when it cuts nothing), kMaxSlots for a fixed one.
int64_t WorkspaceSlots(const MlaDecodePlan& plan, const MlaDecodeLaunch& launch);

// MlaDecodeAttention's checks: UNIMPLEMENTED for other dims, else INVALID_ARGUMENT.
absl::Status CheckMlaDecodeAttention(const MlaDecodeParams& params, const MlaDecodePlan& plan,
                                     const MlaDecodeLaunch& launch);

// MlaDecodeCombine's checks (when it launches): INVALID_ARGUMENT.
absl::Status CheckMlaDecodeCombine(const MlaDecodePlan& plan, const MlaDecodeLaunch& launch,
                                   const float* out_latent);

}  // namespace mla::kernels::cuda::mla_decode

#endif  // MLASERVE_KERNELS_CUDA_MLA_DECODE_LAUNCH_CHECKS_H_
