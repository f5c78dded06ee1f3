// WorkerLink: the coordinator's end of one worker's stream, as its listener (the WorkerHub) sees
// it. WorkerConnection: the WorkerLink over a Connect stream (a callback-API bidi reactor). It
// reads WorkerMessages and hands each to its listener, and writes CoordinatorMessages in the
// order Send was called, one write in flight at a time. Tests put a fake WorkerLink behind the
// hub instead (tests/serving/worker_hub_test.cc).
//
// Threads: gRPC's library threads run the reactions (OnReadDone, OnWriteDone, OnDone), which
// never block: they hold the connection's lock only to update its queue and call Start*/Finish
// after releasing it. Send and Close may be called from any thread. Lifetime: reference counted;
// gRPC holds one reference until OnDone and the listener takes one (Ref) for as long as it keeps
// the pointer; the last Unref deletes the object.
#ifndef MLASERVE_COORDINATOR_WORKER_CONNECTION_H_
#define MLASERVE_COORDINATOR_WORKER_CONNECTION_H_

#include <atomic>
#include <deque>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "mla/v1/worker.grpc.pb.h"

namespace mla::coordinator {

// One worker's stream. Send and Close may be called from any thread and never block.
class WorkerLink {
 public:
  virtual const std::string& peer() const = 0;  // for logs
  // Queues a message; dropped once the stream is closing.
  virtual void Send(const v1::CoordinatorMessage& message) = 0;
  // Ends the stream with `status` after the queued messages are written.
  virtual void Close(const absl::Status& status) = 0;
  // Reference counting: whoever keeps the pointer holds a reference.
  virtual void Ref() = 0;
  virtual void Unref() = 0;

 protected:
  virtual ~WorkerLink() = default;
};

// What a link reports. Called on library threads with no link lock held.
class ConnectionListener {
 public:
  virtual void OnMessage(WorkerLink* conn, const v1::WorkerMessage& message) = 0;
  // The stream ended (read side closed, write failed, or the call finished). May be called more
  // than once for one link; the first call counts.
  virtual void OnClosed(WorkerLink* conn, const std::string& why) = 0;

 protected:
  ~ConnectionListener() = default;
};

class WorkerConnection final
    : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::CoordinatorMessage>,
      public WorkerLink {
 public:
  // Starts reading at once. `peer` is for logs.
  WorkerConnection(ConnectionListener* listener, std::string peer);

  // WorkerLink.
  const std::string& peer() const override { return peer_; }
  void Send(const v1::CoordinatorMessage& message) override;
  void Close(const absl::Status& status) override;
  void Ref() override { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() override;

  // Reactions (library threads).
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  ~WorkerConnection() override = default;
  // Calls Finish if it was asked for and no write is in flight. Returns true if the caller must
  // call Finish(finish_status_) after releasing the lock.
  bool TakeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  ConnectionListener* const listener_;
  const std::string peer_;
  std::atomic<int> refs_{1};  // gRPC's
  v1::WorkerMessage in_;      // the read in flight (one at a time, reaction threads only)

  absl::Mutex mu_;
  std::deque<v1::CoordinatorMessage> out_ ABSL_GUARDED_BY(mu_);  // front is in flight if writing_
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;   // Close called or the stream broke
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish called
  grpc::Status finish_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_WORKER_CONNECTION_H_
