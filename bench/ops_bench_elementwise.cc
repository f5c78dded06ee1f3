// mla_ops_bench's elementwise cases (ops_bench.h): RmsNorm, AddRmsNorm, ApplyRope on q,
// SiluMul, Embed, WriteLatentCache (with the latent's norm and k's rope), all fp32 activations as kernels/cuda/ops.h takes them. Each
// builder states the bytes its floor counts; copies are independent tensor sets (CopiesFor).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "bench/ops_bench.h"
#include "kernels/cuda/device_buffer.h"
#include "kernels/cuda/ops.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"

namespace mla::kernels::cuda::bench {
namespace {

constexpr float kEps = 1e-6f;

}  // namespace

std::vector<int32_t> StepPositions(int64_t tokens) {
  std::vector<int32_t> positions(tokens);
  for (int64_t t = 0; t < tokens; ++t) {
    positions[t] = static_cast<int32_t>(tokens == 64 ? (t * 997) % 32768 : t);
  }
  return positions;
}

// y = RmsNorm(x): reads x [T, 7168] f32 and the weight, writes y.
absl::StatusOr<Prepared> BuildRmsNorm(int64_t tokens) {
  struct State { DeviceBuffer<float> x, weight, y; };
  auto st = std::make_shared<State>();
  const int64_t n = tokens * kHidden;
  Prepared p{.shape = Dims(tokens, kHidden), .bytes = 2.0 * n * 4 + kHidden * 4};
  p.copies = CopiesFor(p.bytes);
  OPS_RETURN_IF_ERROR(AllocRandom(st->x, p.copies * n, 1));
  OPS_RETURN_IF_ERROR(AllocRandom(st->weight, kHidden, 2));
  OPS_RETURN_IF_ERROR(Alloc(st->y, p.copies * n));
  p.run = [st, n, tokens](int k, cudaStream_t s) {
    return RmsNorm(st->x.get() + k * n, st->weight.get(), tokens, kHidden, kEps,
                   st->y.get() + k * n, s);
  };
  return p;
}

// residual += delta; y = RmsNorm(residual): reads residual, delta, weight; writes residual, y.
absl::StatusOr<Prepared> BuildAddRmsNorm(int64_t tokens) {
  struct State { DeviceBuffer<float> residual, delta, weight, y; };
  auto st = std::make_shared<State>();
  const int64_t n = tokens * kHidden;
  Prepared p{.shape = Dims(tokens, kHidden), .bytes = 4.0 * n * 4 + kHidden * 4};
  p.copies = CopiesFor(p.bytes);
  OPS_RETURN_IF_ERROR(AllocRandom(st->residual, p.copies * n, 1));
  OPS_RETURN_IF_ERROR(AllocRandom(st->delta, p.copies * n, 2));
  OPS_RETURN_IF_ERROR(AllocRandom(st->weight, kHidden, 3));
  OPS_RETURN_IF_ERROR(Alloc(st->y, p.copies * n));
  p.run = [st, n, tokens](int k, cudaStream_t s) {
    return AddRmsNorm(st->residual.get() + k * n, st->delta.get() + k * n, st->weight.get(),
                      tokens, kHidden, kEps, st->y.get() + k * n, s);
  };
  return p;
}

namespace {

// V3's YaRN inverse frequencies (factor 40 over 4096 original positions).
std::vector<float> V3InverseFrequencies() {
  RopeConfig config;
  config.factor = 40.0;
  return cpu::YarnInverseFrequencies(config);
}

}  // namespace

// In-place rope on the last 64 of each head of q [T, 128, 192] (q_b's output): reads and writes
// those slices, reads positions [T] and inv_freq [32].
absl::StatusOr<Prepared> BuildRopeQ(int64_t tokens) {
  struct State { DeviceBuffer<float> x, inv_freq; DeviceBuffer<int32_t> positions; };
  auto st = std::make_shared<State>();
  const int64_t qk = kNope + kRope, n = tokens * kHeads * qk;
  Prepared p{.shape = "[" + std::to_string(tokens) + ",128,64]of[" + std::to_string(tokens) +
                      ",128,192]",
             .bytes = 2.0 * tokens * kHeads * kRope * 4 + tokens * 4 + kRope / 2 * 4};
  p.copies = CopiesFor(p.bytes);
  OPS_RETURN_IF_ERROR(AllocRandom(st->x, p.copies * n, 1));
  OPS_RETURN_IF_ERROR(Upload(st->inv_freq, V3InverseFrequencies()));
  OPS_RETURN_IF_ERROR(Upload(st->positions, StepPositions(tokens)));
  p.run = [st, n, tokens, qk](int k, cudaStream_t s) {
    return ApplyRope(st->x.get() + k * n + kNope, tokens, kHeads, kHeads * qk, qk,
                     st->positions.get(), st->inv_freq.get(), kRope, 1.0f, s);
  };
  return p;
}

// out = silu(gate) * up over [T, 18432]: reads gate, up; writes out.
absl::StatusOr<Prepared> BuildSiluMul(int64_t tokens) {
  struct State { DeviceBuffer<float> gate, up, out; };
  auto st = std::make_shared<State>();
  const int64_t n = tokens * kInter;
  Prepared p{.shape = Dims(tokens, kInter), .bytes = 3.0 * n * 4};
  p.copies = CopiesFor(p.bytes);
  OPS_RETURN_IF_ERROR(AllocRandom(st->gate, p.copies * n, 1));
  OPS_RETURN_IF_ERROR(AllocRandom(st->up, p.copies * n, 2));
  OPS_RETURN_IF_ERROR(Alloc(st->out, p.copies * n));
  p.run = [st, n](int k, cudaStream_t s) {
    return SiluMul(st->gate.get() + k * n, st->up.get() + k * n, n, st->out.get() + k * n, s);
  };
  return p;
}

// out [T, 7168] f32 = table[ids] (bf16 [129280, 7168], one table for all copies; ids rotate):
// reads T table rows and the ids, writes out.
absl::StatusOr<Prepared> BuildEmbed(int64_t tokens) {
  struct State { DeviceBuffer<bf16> table; DeviceBuffer<int32_t> ids; DeviceBuffer<float> out; };
  auto st = std::make_shared<State>();
  const int64_t n = tokens * kHidden;
  Prepared p{.shape = "[" + std::to_string(tokens) + "]of" + Dims(kVocab, kHidden),
             .bytes = n * 2.0 + tokens * 4.0 + n * 4.0};
  p.copies = CopiesFor(p.bytes);
  std::vector<int32_t> ids(p.copies * tokens);
  uint64_t state = 7;
  for (int32_t& id : ids) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    id = static_cast<int32_t>((state >> 33) % kVocab);
  }
  OPS_RETURN_IF_ERROR(AllocRandom(st->table, kVocab * kHidden, 1));
  OPS_RETURN_IF_ERROR(Upload(st->ids, ids));
  OPS_RETURN_IF_ERROR(Alloc(st->out, p.copies * n));
  p.run = [st, n, tokens](int k, cudaStream_t s) {
    return Embed(st->table.get(), st->ids.get() + k * tokens, tokens, kHidden, 0, kVocab,
                 st->out.get() + k * n, s);
  };
  return p;
}

// Each token's kv_a output row [576] (f32) normalised (first 512), rotated (last 64) and
// rounded into its bf16 cache slot: reads kv, the norm weight [512], positions, slots (int64),
// inv_freq; writes T * 576 bf16. T = 64: a decode batch, one token of each of 64 sequences
// (slot 63 of the sequence's own block); otherwise one prefill sequence (consecutive slots).
absl::StatusOr<Prepared> BuildWriteLatentCache(int64_t tokens) {
  struct State {
    DeviceBuffer<float> kv, weight, inv_freq;
    DeviceBuffer<int32_t> positions;
    DeviceBuffer<int64_t> slots;
    DeviceBuffer<bf16> cache;
    int64_t num_blocks = 0;
  };
  auto st = std::make_shared<State>();
  const bool decode = tokens == 64;
  const int64_t d_cache = kKvLora + kRope;
  Prepared p{.shape = "[" + std::to_string(tokens) + ",576]",
             .bytes = tokens * d_cache * 4.0 + tokens * 12.0 + kKvLora * 4.0 + kRope / 2 * 4.0 +
                      tokens * d_cache * 2.0};
  p.copies = CopiesFor(p.bytes);
  const int64_t blocks_per_copy = decode ? tokens : (tokens + kBlockSize - 1) / kBlockSize;
  st->num_blocks = p.copies * blocks_per_copy;
  std::vector<int64_t> slots(p.copies * tokens);
  for (int64_t k = 0; k < p.copies; ++k) {
    for (int64_t t = 0; t < tokens; ++t) {
      slots[k * tokens + t] = decode ? (k * tokens + t) * kBlockSize + kBlockSize - 1
                                     : k * blocks_per_copy * kBlockSize + t;
    }
  }
  OPS_RETURN_IF_ERROR(AllocRandom(st->kv, p.copies * tokens * d_cache, 1));
  OPS_RETURN_IF_ERROR(AllocRandom(st->weight, kKvLora, 2));
  OPS_RETURN_IF_ERROR(Upload(st->inv_freq, V3InverseFrequencies()));
  OPS_RETURN_IF_ERROR(Upload(st->positions, StepPositions(tokens)));
  OPS_RETURN_IF_ERROR(Upload(st->slots, slots));
  OPS_RETURN_IF_ERROR(AllocRandom(st->cache, st->num_blocks * kBlockSize * d_cache, 3));
  p.run = [st, tokens, d_cache](int k, cudaStream_t s) {
    const LatentCache cache{.data = st->cache.get(), .num_blocks = st->num_blocks,
                            .d_latent = kKvLora, .d_rope = kRope};
    return WriteLatentCache({.kv = st->kv.get() + k * tokens * d_cache,
                             .norm_weight = st->weight.get(),
                             .eps = kEps,
                             .positions = st->positions.get(),
                             .inv_freq = st->inv_freq.get(),
                             .cos_sin_scale = 1.0f,
                             .slots = st->slots.get() + k * tokens,
                             .tokens = tokens},
                            cache, s);
  };
  return p;
}

}  // namespace mla::kernels::cuda::bench
