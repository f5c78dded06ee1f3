// The decode launchers' host-side checks (launch_checks.h).
#include "kernels/cuda/mla_decode/launch_checks.h"

#include <cstdint>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/mla_decode/config.h"
#include "kernels/cuda/mla_decode/mla_decode.h"
#include "kernels/cuda/mla_decode/plan.h"
#include "kernels/mla_params.h"

namespace mla::kernels::cuda::mla_decode {
namespace {

bool Aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

absl::Status CheckDevicePlan(const char* op, const MlaDecodeLaunch& launch) {
  if (launch.device_plan == nullptr || !Aligned16(launch.device_plan)) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, ": launch.device_plan must be a 16-byte aligned device copy of the plan "
            "(DevicePlanOf), got ",
        absl::Hex(reinterpret_cast<uintptr_t>(launch.device_plan))));
  }
  return absl::OkStatus();
}

absl::Status CheckWorkspace(const char* op, const MlaDecodePlan& plan,
                            const MlaDecodeLaunch& launch) {
  const int64_t slots = WorkspaceSlots(plan, launch);
  if (slots == 0) return absl::OkStatus();
  const int64_t needed = MlaDecodeWorkspaceBytes(slots, plan.heads);
  if (launch.workspace == nullptr || !Aligned16(launch.workspace) ||
      launch.workspace_bytes < needed) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, ": launch.workspace must be 16-byte aligned and hold ", needed, " bytes (", slots,
        " slots of ", plan.heads, " heads", launch.grid_lanes > 0 ? ", a fixed launch" : "",
        "), got ", launch.workspace_bytes, " bytes at ",
        absl::Hex(reinterpret_cast<uintptr_t>(launch.workspace))));
  }
  return absl::OkStatus();
}

}  // namespace

int64_t WorkspaceSlots(const MlaDecodePlan& plan, const MlaDecodeLaunch& launch) {
  return launch.grid_lanes > 0 ? kMaxSlots : plan.num_slots();
}

absl::Status CheckMlaDecodeAttention(const MlaDecodeParams& params, const MlaDecodePlan& plan,
                                     const MlaDecodeLaunch& launch) {
  constexpr const char* kOp = "MlaDecodeAttention";
  const MlaDims& dims = params.dims;
  if (dims.d_latent != kDLatent || dims.d_rope != kDRope) {
    return absl::UnimplementedError(absl::StrCat(kOp, ": dims.d_latent must be ", kDLatent,
                                                 " and dims.d_rope ", kDRope, ", got ",
                                                 dims.d_latent, " and ", dims.d_rope));
  }
  if (params.cache.d_latent != kDLatent || params.cache.d_rope != kDRope) {
    return absl::InvalidArgumentError(absl::StrCat(
        kOp, ": cache.d_latent/d_rope must equal dims (", kDLatent, "/", kDRope, "), got ",
        params.cache.d_latent, "/", params.cache.d_rope));
  }
  if (plan.heads != dims.heads || dims.heads <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": plan.heads is ", plan.heads, " but dims.heads is ", dims.heads));
  }
  const MlaDecodeSchedule& schedule = plan.schedule;
  if (schedule.head_groups != (dims.heads + kHeadsPerCta - 1) / kHeadsPerCta ||
      schedule.num_lanes < 0 || (!schedule.lanes_are_tokens && schedule.num_lanes > kMaxLanes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        kOp, ": plan.schedule must have ceil(heads / ", kHeadsPerCta, ") head groups and at most ",
        kMaxLanes, " lanes, got ", schedule.head_groups, " and ", schedule.num_lanes));
  }
  if (absl::Status s = CheckDevicePlan(kOp, launch); !s.ok()) return s;
  if (launch.grid_lanes < 0 || (launch.grid_lanes > 0 && launch.grid_lanes < kMaxLanes) ||
      launch.grid_lanes * schedule.head_groups > std::numeric_limits<int32_t>::max()) {
    return absl::InvalidArgumentError(absl::StrCat(
        kOp, ": launch.grid_lanes must be 0 (a plain launch) or in [", kMaxLanes, ", 2^31 / ",
        schedule.head_groups, ") (MlaDecodeBoundsFor), got ", launch.grid_lanes));
  }
  if (launch.grid_lanes > 0 && schedule.num_lanes > launch.grid_lanes) {
    return absl::InvalidArgumentError(absl::StrCat(
        kOp, ": the plan has ", schedule.num_lanes, " lanes (", plan.tokens,
        " tokens), more than launch.grid_lanes ", launch.grid_lanes));
  }
  if (absl::Status s = CheckWorkspace(kOp, plan, launch); !s.ok()) return s;
  if (!Aligned16(params.q_abs) || !Aligned16(params.cache.data) || !Aligned16(params.out_latent)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": q_abs, cache.data and out_latent must be 16-byte aligned"));
  }
  if (params.cache.num_blocks <= 0 || params.cache.num_blocks > (int64_t{1} << 31) / kKeysPerTile) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": cache.num_blocks must be in [1, 2^31 / ",
                                                   kKeysPerTile, "], got ",
                                                   params.cache.num_blocks));
  }
  return absl::OkStatus();
}

absl::Status CheckMlaDecodeCombine(const MlaDecodePlan& plan, const MlaDecodeLaunch& launch,
                                   const float* out_latent) {
  constexpr const char* kOp = "MlaDecodeCombine";
  if (plan.heads <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": plan.heads must be positive, got ", plan.heads));
  }
  if (plan.cuts.num_cuts < 0 || plan.cuts.num_cuts > kMaxLanes) {
    return absl::InvalidArgumentError(absl::StrCat(kOp, ": plan.cuts.num_cuts must be in [0, ",
                                                   kMaxLanes, "], got ", plan.cuts.num_cuts));
  }
  if (absl::Status s = CheckDevicePlan(kOp, launch); !s.ok()) return s;
  if (absl::Status s = CheckWorkspace(kOp, plan, launch); !s.ok()) return s;
  if (out_latent == nullptr || !Aligned16(out_latent)) {
    return absl::InvalidArgumentError(
        absl::StrCat(kOp, ": out_latent must be a 16-byte aligned device pointer"));
  }
  return absl::OkStatus();
}

}  // namespace mla::kernels::cuda::mla_decode
