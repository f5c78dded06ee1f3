// TextGeneration: one text request of the HTTP API, between the Engine and a handler thread that
// may block. It is the request's RequestSink: the engine's updates are decoded into text
// deltas (StreamDecoder, special tokens skipped), cut at the first stop string (the stop string
// is not returned; the engine is then told to cancel and the request ends with finish reason
// "stop"), and queued as TextEvents for the handler, which waits for them with Next.
//
// Every started generation ends with exactly one final TextEvent. The destructor cancels a
// generation that has not ended and waits for the engine's final call, so the object may be
// dropped at any point (e.g. when the HTTP client disconnects).
//
// Threads: Start, Next and the destructor on the handler thread (one at a time); OnUpdate and
// OnError on the engine's loop thread. Engine, tokenizer and metrics must outlive the object.
#ifndef MLASERVE_COORDINATOR_TEXT_GENERATION_H_
#define MLASERVE_COORDINATOR_TEXT_GENERATION_H_

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/engine.h"
#include "coordinator/request_trace.h"
#include "coordinator/stream_decoder.h"
#include "coordinator/tokenizer.h"

namespace mla::coordinator {

struct TextEvent {
  std::string text;           // new text (may be empty)
  bool final = false;
  absl::Status status;        // final only: the error the request ended with, or OK
  std::string finish_reason;  // final and OK: "stop" (eos, stop token or string) or "length"
  int64_t prompt_tokens = 0;  // final only
  int64_t completion_tokens = 0;
};

class TextGeneration final : public RequestSink {
 public:
  TextGeneration(Engine* engine, const Tokenizer* tokenizer, std::vector<std::string> stop,
                 ServingMetrics* metrics, std::string request_id);
  ~TextGeneration();

  TextGeneration(const TextGeneration&) = delete;
  TextGeneration& operator=(const TextGeneration&) = delete;

  // Submits the request. On error nothing was submitted (the error is traced and returned).
  absl::Status Start(ValidatedRequest request);
  // Waits up to `timeout` for the next event; false on timeout. REQUIRES: Start succeeded and
  // no final event was returned yet.
  bool Next(TextEvent* event, absl::Duration timeout);
  // Asks the engine to end the request (client gone); the final event still comes.
  void Cancel();

  const std::string& request_id() const { return trace_.request_id(); }

  void OnUpdate(const SequenceUpdate& update) override;
  void OnError(const absl::Status& status) override;

 private:
  // Appends decoded text; cuts at a stop string. Loop thread.
  void AddText(const std::string& piece, bool flush, std::string* out);

  Engine* const engine_;
  const std::vector<std::string> stop_;
  size_t hold_ = 0;        // bytes kept back: the longest stop string less one
  uint64_t ticket_ = 0;    // written by Submit before the loop can see the request
  bool started_ = false;

  // Loop thread only.
  StreamDecoder decoder_;
  RequestTrace trace_;
  std::string pending_;    // decoded, not yet released (may be the start of a stop string)
  bool stopped_ = false;   // a stop string was seen; the rest is dropped
  int64_t completion_tokens_ = 0;

  absl::Mutex mu_;
  std::deque<TextEvent> events_ ABSL_GUARDED_BY(mu_);
  bool final_delivered_ ABSL_GUARDED_BY(mu_) = false;  // the engine's final call came
  bool final_taken_ = false;                            // handler thread: Next returned it
};

}  // namespace mla::coordinator

#endif  // MLASERVE_COORDINATOR_TEXT_GENERATION_H_
