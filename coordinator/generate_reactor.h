// GenerateReactor: one client's Generate stream (a callback-API server-streaming reactor).
//
// It validates the request, submits it to the Engine and streams what the engine delivers: one
// GenerateResponse per update, merged while the client is slow to read (at most one response
// in flight and one queued), then the final status. Client cancellation and deadline expiry
// arrive as OnCancel: the reactor asks the engine to cancel (which frees the request's cache
// blocks at once) and finishes with CANCELLED. Every stream ends with exactly one Finish.
//
// Threads: the constructor and the reactions (OnWriteDone, OnCancel, OnDone) run on gRPC's
// library threads, the RequestSink calls on the engine's loop thread; none blocks (the lock is
// held only to update the queue; Start*/Finish are called after releasing it). Lifetime:
// reference counted; one reference for gRPC (dropped in OnDone) and one for the engine while it
// holds the request (dropped after the final sink call); the last one deletes the object.
#ifndef MLASERVE_COORDINATOR_GENERATE_REACTOR_H_
#define MLASERVE_COORDINATOR_GENERATE_REACTOR_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/engine.h"
#include "coordinator/model_card.h"
#include "coordinator/request_trace.h"
#include "coordinator/stream_decoder.h"
#include "coordinator/tokenizer.h"
#include "grpcpp/grpcpp.h"
#include "mla/v1/inference.grpc.pb.h"

namespace mla::coordinator {

class GenerateReactor final : public grpc::ServerWriteReactor<v1::GenerateResponse>,
                              public RequestSink {
 public:
  // Validates and submits `request`, or finishes at once with the reason it cannot run.
  // `request_id`: the client's, or one the server made up. `tokenizer` (may be null: the
  // model has none; then prompt_text fails with FAILED_PRECONDITION and responses carry no
  // text) encodes prompt_text and decodes the text of every response; it and `metrics` (may be
  // null) must outlive the reactor.
  GenerateReactor(Engine* engine, const ModelCard& model, const v1::GenerateRequest& request,
                  std::string request_id, const Tokenizer* tokenizer = nullptr,
                  ServingMetrics* metrics = nullptr);

  // RequestSink (engine thread).
  void OnUpdate(const SequenceUpdate& update) override;
  void OnError(const absl::Status& status) override;

  // Reactions (library threads).
  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  ~GenerateReactor() override = default;
  void Unref();
  // Queues a response, or ends the stream with `status` once the queue is written (final).
  void Enqueue(v1::GenerateResponse response, bool final, const grpc::Status& status);
  // If a Finish is due and nothing is being written, claims it: returns true and the caller
  // calls Finish(finish_status_) after releasing the lock.
  bool TakeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Engine* const engine_;
  const std::string request_id_;
  std::atomic<int> refs_{1};  // gRPC's; +1 while the engine holds the request
  uint64_t ticket_ = 0;       // written by Submit before the engine can see the request
  // Engine thread only (after the constructor): the text decoder and the request's trace.
  std::unique_ptr<StreamDecoder> decoder_;  // null when the model has no tokenizer
  RequestTrace trace_;

  absl::Mutex mu_;
  std::deque<v1::GenerateResponse> queue_ ABSL_GUARDED_BY(mu_);  // front in flight if writing_
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool ending_ ABSL_GUARDED_BY(mu_) = false;    // the final status is known
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish called
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false; // by the client (or its deadline)
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_GENERATE_REACTOR_H_
