// mla-client: streams one generation from an mla-coordinator (mla.v1.Inference over gRPC) to
// the terminal, then prints the token count and the rate on stderr.
//
//   mla-client --address=localhost:50051 --prompt="Once upon a time" --max_tokens=64
//   mla-client --prompt_ids=1,2,3 --temperature=0.8 --top_p=0.9 --seed=7
//
// With --prompt the server encodes the text and the generated text is printed as it streams;
// with --prompt_ids the generated token ids are printed on stdout (and, if the model has a
// tokenizer, the text on stderr at the end). Exits 0 when the generation finished, 1 with the
// server's message on an error.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "mla/v1/inference.grpc.pb.h"

ABSL_FLAG(std::string, address, "localhost:50051", "the coordinator's host:port");
ABSL_FLAG(std::string, prompt, "", "prompt text (encoded by the server's tokenizer)");
ABSL_FLAG(std::string, prompt_ids, "", "prompt as comma-separated token ids");
ABSL_FLAG(int, max_tokens, 64, "most tokens to generate");
ABSL_FLAG(double, temperature, 0, "sampling temperature; 0 = greedy");
ABSL_FLAG(double, top_p, 1, "nucleus mass in (0, 1]");
ABSL_FLAG(int64_t, seed, -1, "sampling seed; -1 = the server picks one");
ABSL_FLAG(bool, ignore_eos, false, "keep generating past end-of-sequence");
ABSL_FLAG(double, timeout_s, 600, "deadline of the whole call");

namespace {

const char* FinishName(mla::v1::FinishReason reason) {
  switch (reason) {
    case mla::v1::FINISH_REASON_STOP_EOS:
      return "eos";
    case mla::v1::FINISH_REASON_STOP_TOKEN:
      return "stop token";
    case mla::v1::FINISH_REASON_LENGTH:
      return "length";
    case mla::v1::FINISH_REASON_CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  mla::v1::GenerateRequest request;
  const std::string text = absl::GetFlag(FLAGS_prompt);
  const std::string ids = absl::GetFlag(FLAGS_prompt_ids);
  if (text.empty() == ids.empty()) {
    std::fprintf(stderr, "mla-client: give exactly one of --prompt and --prompt_ids\n");
    return 2;
  }
  if (!text.empty()) {
    request.set_prompt_text(text);
  } else {
    for (absl::string_view piece : absl::StrSplit(ids, ',', absl::SkipWhitespace())) {
      int32_t id = 0;
      if (!absl::SimpleAtoi(piece, &id)) {
        std::fprintf(stderr, "mla-client: --prompt_ids: '%s' is not a token id\n",
                     std::string(piece).c_str());
        return 2;
      }
      request.mutable_prompt_token_ids()->add_ids(id);
    }
  }
  if (absl::GetFlag(FLAGS_max_tokens) < 0) {
    std::fprintf(stderr, "mla-client: --max_tokens must be >= 0\n");
    return 2;
  }
  request.set_max_tokens(static_cast<uint32_t>(absl::GetFlag(FLAGS_max_tokens)));
  request.set_ignore_eos(absl::GetFlag(FLAGS_ignore_eos));
  request.mutable_sampling()->set_temperature(static_cast<float>(absl::GetFlag(FLAGS_temperature)));
  request.mutable_sampling()->set_top_p(static_cast<float>(absl::GetFlag(FLAGS_top_p)));
  if (absl::GetFlag(FLAGS_seed) >= 0) {
    request.mutable_sampling()->set_seed(static_cast<uint64_t>(absl::GetFlag(FLAGS_seed)));
  }

  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_address), grpc::InsecureChannelCredentials());
  std::unique_ptr<mla::v1::Inference::Stub> stub = mla::v1::Inference::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() +
                                          absl::Seconds(absl::GetFlag(FLAGS_timeout_s))));
  const absl::Time start = absl::Now();
  absl::Time first = absl::InfinitePast();
  std::unique_ptr<grpc::ClientReader<mla::v1::GenerateResponse>> reader =
      stub->Generate(&context, request);
  mla::v1::GenerateResponse chunk;
  int64_t tokens = 0;
  mla::v1::GenerateResponse last;
  std::string ids_text;
  while (reader->Read(&chunk)) {
    if (chunk.token_ids_size() > 0 && first == absl::InfinitePast()) first = absl::Now();
    tokens += chunk.token_ids_size();
    if (text.empty()) {  // --prompt_ids: the ids on stdout, the text (if any) at the end
      for (int32_t id : chunk.token_ids()) std::printf("%d ", id);
      ids_text += chunk.text();
    } else {
      std::fwrite(chunk.text().data(), 1, chunk.text().size(), stdout);
    }
    std::fflush(stdout);
    last = chunk;
  }
  const grpc::Status status = reader->Finish();
  std::printf("\n");
  if (!status.ok()) {
    std::fprintf(stderr, "mla-client: error %d: %s\n", static_cast<int>(status.error_code()),
                 status.error_message().c_str());
    return 1;
  }
  if (!ids_text.empty()) std::fprintf(stderr, "mla-client: text: %s\n", ids_text.c_str());
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  const double ttft = first == absl::InfinitePast() ? 0 : absl::ToDoubleSeconds(first - start);
  std::fprintf(stderr,
               "mla-client: %lld tokens (prompt %u) in %.3f s, %.1f tokens/s, first token %.0f ms, "
               "finish %s\n",
               static_cast<long long>(tokens), last.usage().prompt_tokens(), seconds,
               seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0, ttft * 1000,
               FinishName(last.finish_reason()));
  return 0;
}
