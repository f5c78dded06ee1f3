#include "worker/cuda_backend_arena.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"

namespace mla {
namespace {

int64_t AlignUp(int64_t bytes, int64_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

constexpr int64_t kMinBlockBytes = int64_t{16} << 20;

}  // namespace

CudaScratchArena::~CudaScratchArena() {
  for (void* block : retired_) cudaFree(block);  // errors here have no one to report to
  if (block_ != nullptr) cudaFree(block_);
}

absl::Status CudaScratchArena::Grow(int64_t min_bytes) {
  const int64_t bytes = AlignUp(std::max({min_bytes, 2 * capacity_, kMinBlockBytes}), 1 << 20);
  void* fresh = nullptr;
  if (absl::Status s = kernels::cuda::CudaStatus(
          cudaMalloc(&fresh, static_cast<size_t>(bytes)),
          absl::StrCat("scratch arena: cudaMalloc of ", bytes, " bytes").c_str());
      !s.ok()) {
    return s;
  }
  if (block_ != nullptr) retired_.push_back(block_);
  block_ = static_cast<char*>(fresh);
  capacity_ = bytes;
  used_ = 0;
  ++generation_;
  return absl::OkStatus();
}

absl::Status CudaScratchArena::Reserve(int64_t bytes) {
  if (bytes <= capacity_) return absl::OkStatus();
  return Grow(bytes);  // pieces handed out stay valid: the old block is retired
}

absl::StatusOr<void*> CudaScratchArena::Allocate(int64_t bytes) {
  if (bytes < 0) {
    return absl::InvalidArgumentError(absl::StrCat("scratch arena: ", bytes, " bytes requested"));
  }
  const int64_t size = AlignUp(bytes, kAlignment);
  if (block_ == nullptr || used_ + size > capacity_) {
    if (absl::Status s = Grow(step_bytes_ + size); !s.ok()) return s;
  }
  void* piece = block_ + used_;
  used_ += size;
  step_bytes_ += size;
  return piece;
}

absl::Status CudaScratchArena::AdvanceTo(const Mark& m) {
  if (m.block != generation_ || m.used < used_ || m.used > capacity_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "scratch arena: cannot advance to ", m.used, " bytes of block ", m.block, " from ",
        used_, " bytes of block ", generation_));
  }
  step_bytes_ += m.used - used_;
  used_ = m.used;
  return absl::OkStatus();
}

void CudaScratchArena::Release(const Mark& m) {
  used_ = m.block == generation_ ? std::min(used_, m.used) : 0;
  step_bytes_ = std::min(step_bytes_, m.live);
}

absl::Status CudaScratchArena::Reset() {
  used_ = 0;
  step_bytes_ = 0;
  if (retired_.empty()) return absl::OkStatus();
  // Kernels of the last step may still read a retired block.
  absl::Status status = kernels::cuda::CudaStatus(cudaStreamSynchronize(stream_),
                                                  "scratch arena: cudaStreamSynchronize");
  for (void* block : retired_) {
    if (status.ok()) {
      status = kernels::cuda::CudaStatus(cudaFree(block), "scratch arena: cudaFree");
    }
  }
  retired_.clear();
  return status;
}

}  // namespace mla
