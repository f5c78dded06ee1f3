// MakeBackend / JoinGroup: the CPU path always, the GPU path where this build has the CUDA
// backend (MLA_HAVE_CUDA_BACKEND, set by the mla_worker_cuda library).
#include "worker/service/backend_factory.h"

#include <exception>
#include <vector>

#include "absl/strings/str_cat.h"
#include "worker/cpu_backend.h"
#include "worker/gloo_communicator.h"
#include "worker/status_macros.h"

#if MLA_HAVE_CUDA_BACKEND
#include "worker/cuda_backend.h"
#include "worker/nccl_communicator.h"
#endif

namespace mla::worker_service {

absl::StatusOr<std::unique_ptr<Backend>> MakeBackend(int device) {
  if (device < 0) return MakeCpuBackend();
#if MLA_HAVE_CUDA_BACKEND
  return MakeCudaBackend(device);
#else
  return absl::FailedPreconditionError(
      absl::StrCat("--device=", device, ": this binary was built without CUDA (CPU only)"));
#endif
}

absl::StatusOr<std::unique_ptr<Communicator>> JoinGroup(gloo::rendezvous::Store& store,
                                                        const GroupJoin& join) {
  if (join.device < 0) {
    return GlooCommunicator::Create(store, join.key, join.rank, join.size,
                                    {.hostname = join.gloo_host, .timeout = join.timeout});
  }
#if MLA_HAVE_CUDA_BACKEND
  const std::string key = join.key + "/nccl_id";
  std::string id;
  try {  // the store reports failures (a timeout, a lost coordinator) by throwing
    if (join.rank == 0) {
      MLA_ASSIGN_OR_RETURN(id, MakeNcclUniqueId());
      store.set(key, std::vector<char>(id.begin(), id.end()));
    } else {
      const std::vector<char> value = store.get(key);
      id.assign(value.begin(), value.end());
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("NCCL id of group ", join.key, ": ", e.what()));
  }
  MLA_ASSIGN_OR_RETURN(std::unique_ptr<NcclCommunicator> comm,
                       NcclCommunicator::Create(id, join.rank, join.size, join.device,
                                                join.timeout));
  return std::unique_ptr<Communicator>(std::move(comm));
#else
  return absl::FailedPreconditionError("NCCL groups need a build with the CUDA backend");
#endif
}

}  // namespace mla::worker_service
