// mla-generate: generates tokens from a checkpoint in process, on the CPU or one GPU.
//
//   mla-generate --checkpoint=DIR --prompt=1,2,3 --max_tokens=16 [--temperature=0.7 --top_p=0.9
//                --top_k=40 --seed=1] [--prefill_chunk=N] [--dump_logits=FILE] [--device=-1]
//
// Prints "tokens: a,b,c" on stdout and a tokens/s summary on stderr. --dump_logits writes the
// float32 little-endian logits [generated tokens, vocab] each token was chosen from.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "worker/checkpoint.h"
#include "worker/generator.h"
#include "worker/model.h"
#include "worker/service/backend_factory.h"

ABSL_FLAG(std::string, checkpoint, "", "checkpoint directory (config.json + safetensors)");
ABSL_FLAG(std::string, prompt, "0", "prompt as comma-separated token ids");
ABSL_FLAG(int64_t, max_tokens, 16, "tokens to generate");
ABSL_FLAG(float, temperature, 0.0f, "0 = greedy");
ABSL_FLAG(float, top_p, 1.0f, "nucleus sampling mass, in (0, 1]");
ABSL_FLAG(int32_t, top_k, 0, "0 = no limit");
ABSL_FLAG(uint64_t, seed, 0, "sampling seed");
ABSL_FLAG(int64_t, prefill_chunk, 0, "prompt tokens per step; 0 = all at once");
ABSL_FLAG(bool, ignore_eos, false, "keep generating after the EOS token");
ABSL_FLAG(int, device, -1, "GPU ordinal; -1 = CPU");
ABSL_FLAG(bool, enforce_eager, false,
          "GPU: run every step op by op, never recording decode steps as CUDA graphs");
ABSL_FLAG(std::string, dump_logits, "", "write the logits of each generated token here");

namespace {

int Fail(const std::string& message) {
  std::cerr << "mla-generate: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_checkpoint).empty()) return Fail("--checkpoint is required");
  mla::GenerateRequest request;
  for (absl::string_view part : absl::StrSplit(absl::GetFlag(FLAGS_prompt), ',')) {
    int32_t id;
    if (!absl::SimpleAtoi(part, &id)) return Fail("--prompt: '" + std::string(part) + "' is not a token id");
    request.prompt.push_back(id);
  }
  request.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  request.ignore_eos = absl::GetFlag(FLAGS_ignore_eos);
  request.sampling = {.temperature = absl::GetFlag(FLAGS_temperature),
                      .top_k = absl::GetFlag(FLAGS_top_k),
                      .top_p = absl::GetFlag(FLAGS_top_p),
                      .seed = absl::GetFlag(FLAGS_seed)};

  auto checkpoint = mla::Checkpoint::Open(absl::GetFlag(FLAGS_checkpoint));
  if (!checkpoint.ok()) return Fail(checkpoint.status().ToString());
  auto backend = mla::worker_service::MakeBackend(absl::GetFlag(FLAGS_device));
  if (!backend.ok()) return Fail(backend.status().ToString());
  auto model = mla::Model::Load(**checkpoint, mla::ShardSpec{}, {}, *std::move(backend));
  if (!model.ok()) return Fail(model.status().ToString());

  const bool dump = !absl::GetFlag(FLAGS_dump_logits).empty();
  mla::GenerateStats stats;
  auto results = mla::Generate(**model, {request},
                               {.prefill_chunk = absl::GetFlag(FLAGS_prefill_chunk),
                                .keep_logits = dump,
                                .step_graphs = !absl::GetFlag(FLAGS_enforce_eager)},
                               &stats);
  if (!results.ok()) return Fail(results.status().ToString());
  const mla::GenerateResult& result = (*results)[0];
  std::cout << "tokens: " << absl::StrJoin(result.tokens, ",") << std::endl;
  std::fprintf(stderr, "%lld prompt + %lld generated tokens in %lld steps, %.3f s, %.1f tokens/s\n",
               static_cast<long long>(stats.prompt_tokens),
               static_cast<long long>(stats.generated_tokens), static_cast<long long>(stats.steps),
               stats.seconds, (stats.prompt_tokens + stats.generated_tokens) / stats.seconds);
  if (dump) {
    std::ofstream out(absl::GetFlag(FLAGS_dump_logits), std::ios::binary);
    out.write(reinterpret_cast<const char*>(result.logits.data()),
              static_cast<std::streamsize>(result.logits.size() * sizeof(float)));
    if (!out) return Fail("cannot write " + absl::GetFlag(FLAGS_dump_logits));
  }
  return 0;
}
