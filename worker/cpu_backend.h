// CpuBackend: the Backend of host memory and the CPU reference ops (kernels::cpu), with float64
// partial sums (backend.h). Everything runs synchronously on the calling thread.
#ifndef MLASERVE_WORKER_CPU_BACKEND_H_
#define MLASERVE_WORKER_CPU_BACKEND_H_

#include <memory>

#include "worker/backend.h"

namespace mla {

std::unique_ptr<Backend> MakeCpuBackend();

}  // namespace mla

#endif  // MLASERVE_WORKER_CPU_BACKEND_H_
