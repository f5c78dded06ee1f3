// Backend's shared parts: the collectives (the communicator's call, through RunCollective),
// and the defaults of a backend without step graphs or grouped MoE experts.
#include "worker/backend.h"

#include "absl/strings/str_cat.h"

namespace mla {

absl::Status Backend::BeginCapture() {
  return absl::UnimplementedError(absl::StrCat(Describe(), " cannot record steps"));
}

absl::StatusOr<bool> Backend::EndCapture(const GraphShape& /*shape*/, bool /*keep*/) {
  return false;
}

absl::StatusOr<bool> Backend::Replay(const GraphShape& /*shape*/) { return false; }

absl::StatusOr<bool> Backend::GroupedMoeExperts(const MoeExpertsArgs& /*args*/,
                                                Partial /*out*/) {
  return false;
}

absl::Status Backend::AllReduce(Communicator* comm, float* data, int64_t count) {
  if (comm == nullptr) return absl::OkStatus();
  return RunCollective(*comm, [&] { return comm->AllReduceSum(data, count); });
}

absl::Status Backend::AllReducePartial(Communicator* comm, Partial p) {
  if (comm == nullptr) return absl::OkStatus();
  return RunCollective(*comm, [&] {
    return PartialElementBytes() == sizeof(double)
               ? comm->AllReduceSum(static_cast<double*>(p.data), p.count)
               : comm->AllReduceSum(static_cast<float*>(p.data), p.count);
  });
}

absl::Status Backend::AllGather(Communicator* comm, const float* in, int64_t count, float* out) {
  return RunCollective(*comm, [&] { return comm->AllGather(in, count, out); });
}

absl::Status Backend::Send(Communicator* comm, const float* data, int64_t count, int peer) {
  return RunCollective(*comm, [&] { return comm->Send(data, count, peer); });
}

absl::Status Backend::Recv(Communicator* comm, float* data, int64_t count, int peer) {
  return RunCollective(*comm, [&] { return comm->Recv(data, count, peer); });
}

}  // namespace mla
