#include "coordinator/worker_connection.h"

#include <utility>

#include "coordinator/status.h"

namespace mla::coordinator {

WorkerConnection::WorkerConnection(ConnectionListener* listener, std::string peer)
    : listener_(listener), peer_(std::move(peer)) {
  StartRead(&in_);
}

void WorkerConnection::Unref() {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

void WorkerConnection::Send(const v1::CoordinatorMessage& message) {
  const v1::CoordinatorMessage* next = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return;
    out_.push_back(message);
    if (writing_) return;
    writing_ = true;
    next = &out_.front();  // stays put until OnWriteDone pops it
  }
  StartWrite(next);
}

void WorkerConnection::Close(const absl::Status& status) {
  bool finish = false;
  grpc::Status final_status;
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return;
    closing_ = true;
    finish_status_ = ToGrpcStatus(status);
    finish = TakeFinishLocked();
    final_status = finish_status_;
  }
  if (finish) Finish(final_status);
}

bool WorkerConnection::TakeFinishLocked() {
  if (!closing_ || writing_ || finished_) return false;
  finished_ = true;
  return true;
}

void WorkerConnection::OnReadDone(bool ok) {
  if (!ok) {  // the worker closed its side or the stream broke
    listener_->OnClosed(this, "the worker closed the stream");
    Close(absl::OkStatus());
    return;
  }
  listener_->OnMessage(this, in_);
  {
    absl::MutexLock lock(&mu_);
    if (closing_) return;  // no read after Close: the call is finishing
  }
  StartRead(&in_);
}

void WorkerConnection::OnWriteDone(bool ok) {
  const v1::CoordinatorMessage* next = nullptr;
  bool finish = false;
  grpc::Status final_status;
  {
    absl::MutexLock lock(&mu_);
    out_.pop_front();
    if (!ok) {  // the stream is broken: nothing more will be written
      out_.clear();
      closing_ = true;
    }
    if (!out_.empty()) {
      next = &out_.front();
    } else {
      writing_ = false;
      finish = TakeFinishLocked();
      final_status = finish_status_;
    }
  }
  if (!ok) listener_->OnClosed(this, "a write to the worker failed");
  if (next != nullptr) StartWrite(next);
  if (finish) Finish(final_status);
}

void WorkerConnection::OnDone() {
  listener_->OnClosed(this, "the stream ended");
  Unref();
}

}  // namespace mla::coordinator
