#include "worker/generator.h"

#include <algorithm>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "worker/latent_cache_pool.h"
#include "worker/status_macros.h"

namespace mla {
namespace {

using kernels::kBlockSize;

struct Running {
  const GenerateRequest* request;
  std::vector<int32_t> block_table;
  int64_t cached = 0;  // prompt tokens already in the cache
  bool done = false;
};

int64_t BlocksFor(int64_t tokens) { return (tokens + kBlockSize - 1) / kBlockSize; }

}  // namespace

int64_t GenerationBlocks(const std::vector<GenerateRequest>& requests) {
  int64_t max_blocks = 0;
  for (const GenerateRequest& r : requests) {
    const int64_t tokens = static_cast<int64_t>(r.prompt.size()) + std::max<int64_t>(r.max_tokens, 0);
    max_blocks = std::max(max_blocks, BlocksFor(tokens));
  }
  return static_cast<int64_t>(requests.size()) * max_blocks;
}

absl::StatusOr<std::vector<GenerateResult>> Generate(Model& model,
                                                     const std::vector<GenerateRequest>& requests,
                                                     const GenerateOptions& options,
                                                     GenerateStats* stats) {
  const ModelConfig& c = model.config();
  MLA_ASSIGN_OR_RETURN(std::unique_ptr<LatentCachePool> cache,
                       model.NewCache(GenerationBlocks(requests)));
  return RunGeneration(
      c, requests, options,
      [&](const StepBatch& batch) {
        return model.Forward(
            batch, *cache,
            {.return_logits = options.keep_logits,
             .step_graphs = options.step_graphs,
             .routing = options.routing});
      },
      stats);
}

absl::StatusOr<std::vector<GenerateResult>> RunGeneration(
    const ModelConfig& c, const std::vector<GenerateRequest>& requests,
    const GenerateOptions& options, const StepRunner& run, GenerateStats* stats) {
  const int64_t n = static_cast<int64_t>(requests.size());
  for (const GenerateRequest& r : requests) {
    if (r.prompt.empty()) return absl::InvalidArgumentError("prompt is empty");
    if (r.max_tokens < 1) {
      return absl::InvalidArgumentError(absl::StrCat("max_tokens ", r.max_tokens, " is < 1"));
    }
  }
  const int64_t max_blocks = n > 0 ? GenerationBlocks(requests) / n : 0;
  std::vector<Running> running(n);
  for (int64_t s = 0; s < n; ++s) {
    running[s].request = &requests[s];
    for (int64_t i = 0; i < max_blocks; ++i) {
      running[s].block_table.push_back(static_cast<int32_t>(i * n + (n - 1 - s)));
    }
  }
  std::vector<GenerateResult> results(n);
  const auto start = std::chrono::steady_clock::now();
  int64_t steps = 0;
  for (;;) {
    StepBatch batch;
    for (int64_t s = 0; s < n; ++s) {
      Running& r = running[s];
      if (r.done) continue;
      const std::vector<int32_t>& prompt = r.request->prompt;
      const int64_t plen = static_cast<int64_t>(prompt.size());
      SequenceStep step;
      step.seq_id = s;
      step.block_table = r.block_table;
      step.sampling = r.request->sampling;
      step.sample_index = results[s].tokens.size();
      if (r.cached < plen) {  // the next prompt chunk
        const int64_t chunk = options.prefill_chunk > 0 ? options.prefill_chunk : plen;
        const int64_t end = std::min(plen, r.cached + chunk);
        step.tokens.assign(prompt.begin() + r.cached, prompt.begin() + end);
        step.start_pos = static_cast<int32_t>(r.cached);
        step.sample = end == plen;
        r.cached = end;
      } else {  // one decode token
        step.tokens = {results[s].tokens.back()};
        step.start_pos = static_cast<int32_t>(plen + results[s].tokens.size() - 1);
        step.sample = true;
      }
      batch.seqs.push_back(std::move(step));
    }
    if (batch.seqs.empty()) break;
    MLA_ASSIGN_OR_RETURN(StepOutput out, run(batch));
    ++steps;
    for (size_t i = 0; i < out.seq_ids.size(); ++i) {
      const int64_t s = out.seq_ids[i];
      GenerateResult& res = results[s];
      res.tokens.push_back(out.tokens[i]);
      if (options.keep_logits) {
        res.logits.insert(res.logits.end(), out.logits.begin() + i * c.vocab_size,
                          out.logits.begin() + (i + 1) * c.vocab_size);
      }
      const GenerateRequest& req = requests[s];
      running[s].done = static_cast<int64_t>(res.tokens.size()) >= req.max_tokens ||
                        (!req.ignore_eos && out.tokens[i] == c.eos_token_id);
    }
  }
  if (stats != nullptr) {
    stats->steps = steps;
    for (int64_t s = 0; s < n; ++s) {
      stats->prompt_tokens += requests[s].prompt.size();
      stats->generated_tokens += results[s].tokens.size();
    }
    stats->seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return results;
}

}  // namespace mla
