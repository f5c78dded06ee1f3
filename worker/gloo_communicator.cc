// Gloo-backed collectives. Every entry point runs its Gloo calls inside Guard(), which turns
// Gloo's exceptions into absl::Status at this one boundary.
#include "worker/gloo_communicator.h"

#include <cstring>
#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gloo/allgather.h"
#include "gloo/allreduce.h"
#include "gloo/barrier.h"
#include "gloo/broadcast.h"
#include "gloo/common/error.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/prefix_store.h"
#include "gloo/transport/tcp/device.h"

namespace mla {
namespace {

template <typename Fn>
absl::Status Guard(const char* what, Fn&& fn) {
  try {
    fn();
    return absl::OkStatus();
  } catch (const gloo::IoException& e) {
    const std::string msg = e.what();
    if (msg.find("imed out") != std::string::npos) {
      return absl::DeadlineExceededError(absl::StrCat(what, ": ", msg));
    }
    return absl::UnavailableError(absl::StrCat(what, ": ", msg));
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(what, ": ", e.what()));
  }
}

template <typename T>
void Sum(void* out, const void* a, const void* b, size_t n) {
  auto* o = static_cast<T*>(out);
  const auto* x = static_cast<const T*>(a);
  const auto* y = static_cast<const T*>(b);
  for (size_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
}

}  // namespace

// Point-to-point slots live above every collective tag; the n-th message from a to b uses slot
// kP2pSlotBase + n on both sides.
constexpr uint64_t kP2pSlotBase = uint64_t{1} << 40;

GlooCommunicator::GlooCommunicator(std::shared_ptr<gloo::Context> context)
    : context_(std::move(context)), sent_(context_->size, 0), received_(context_->size, 0) {}

absl::StatusOr<std::unique_ptr<Communicator>> GlooCommunicator::Create(
    gloo::rendezvous::Store& store, const std::string& prefix, int rank, int size,
    const GlooOptions& options) {
  std::shared_ptr<gloo::rendezvous::Context> context;
  absl::Status st = Guard("gloo rendezvous", [&] {
    gloo::transport::tcp::attr attr(options.hostname.c_str());
    auto device = gloo::transport::tcp::CreateDevice(attr);
    gloo::rendezvous::PrefixStore prefixed(prefix, store);
    context = std::make_shared<gloo::rendezvous::Context>(rank, size);
    context->setTimeout(options.timeout);
    context->connectFullMesh(prefixed, device);
  });
  if (!st.ok()) return st;
  return std::unique_ptr<Communicator>(new GlooCommunicator(std::move(context)));
}

int GlooCommunicator::rank() const { return context_->rank; }
int GlooCommunicator::size() const { return context_->size; }

template <typename T>
absl::Status GlooCommunicator::AllReduce(T* data, int64_t count) {
  if (count == 0) return absl::OkStatus();  // Gloo divides by the element count
  return Guard("gloo all-reduce", [&] {
    gloo::AllreduceOptions opts(context_);
    opts.setOutput(data, static_cast<size_t>(count));
    opts.setReduceFunction(&Sum<T>);
    opts.setTag(next_tag_++);
    gloo::allreduce(opts);
  });
}

absl::Status GlooCommunicator::AllReduceSum(float* data, int64_t count) {
  return AllReduce(data, count);
}

absl::Status GlooCommunicator::AllReduceSum(double* data, int64_t count) {
  return AllReduce(data, count);
}

absl::Status GlooCommunicator::AllGather(const float* in, int64_t count, float* out) {
  if (count == 0) return absl::OkStatus();  // Gloo divides by the element count
  // Gloo's allgather reads this rank's part from the output buffer when no input is set.
  std::memcpy(out + static_cast<int64_t>(rank()) * count, in, count * sizeof(float));
  return Guard("gloo all-gather", [&] {
    gloo::AllgatherOptions opts(context_);
    opts.setOutput(out, static_cast<size_t>(count * size()));
    opts.setTag(next_tag_++);
    gloo::allgather(opts);
  });
}

absl::Status GlooCommunicator::Broadcast(float* data, int64_t count, int root) {
  if (count == 0) return absl::OkStatus();  // Gloo divides by the element count
  return Guard("gloo broadcast", [&] {
    gloo::BroadcastOptions opts(context_);
    opts.setOutput(data, static_cast<size_t>(count));
    opts.setRoot(root);
    opts.setTag(next_tag_++);
    gloo::broadcast(opts);
  });
}

absl::Status GlooCommunicator::Send(const float* data, int64_t count, int peer) {
  if (count == 0) return absl::OkStatus();  // Gloo divides by the element count
  return Guard("gloo send", [&] {
    auto buffer = context_->createUnboundBuffer(const_cast<float*>(data), count * sizeof(float));
    buffer->send(peer, kP2pSlotBase + sent_[peer]++);
    buffer->waitSend(context_->getTimeout());
  });
}

absl::Status GlooCommunicator::Recv(float* data, int64_t count, int peer) {
  if (count == 0) return absl::OkStatus();  // Gloo divides by the element count
  return Guard("gloo recv", [&] {
    auto buffer = context_->createUnboundBuffer(data, count * sizeof(float));
    buffer->recv(peer, kP2pSlotBase + received_[peer]++);
    buffer->waitRecv(context_->getTimeout());
  });
}

absl::Status GlooCommunicator::Barrier() {
  return Guard("gloo barrier", [&] {
    gloo::BarrierOptions opts(context_);
    opts.setTag(next_tag_++);
    gloo::barrier(opts);
  });
}

}  // namespace mla
