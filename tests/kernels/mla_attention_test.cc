// Tests of the CPU MLA ops (kernels/cpu/mla_attention.cc) over a poisoned paged latent cache:
// every unused slot and block holds NaN, block-table entries past a sequence's blocks hold a huge
// index, and block tables are shuffled. References are computed here in double precision.
// Tolerances (float32 math on bf16-exact inputs): |got - ref| <= 2e-6 + 1e-5 * |ref| against
// double; prefill (materialised) vs absorbed path: relative L2 <= 1e-5; batched vs single:
// bit-identical.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/bf16.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"

namespace mla::kernels::cpu {
namespace {

constexpr int32_t kHugeBlock = 1 << 30;  // unused block-table entries: must never be read
constexpr double kAtol = 2e-6;
constexpr double kRtol = 1e-5;
constexpr bf16 kNaN{0x7fc0};  // a quiet NaN

MlaDims SmallDims() { return {.heads = 4, .d_latent = 32, .d_rope = 8, .d_nope = 16, .d_v = 16}; }
MlaDims TinyDims() { return {.heads = 8, .d_latent = 64, .d_rope = 16, .d_nope = 32, .d_v = 32}; }

// One step's ragged batch with its inputs and a NaN-poisoned cache.
struct Problem {
  MlaDims dims;
  std::vector<int32_t> q_start = {0}, context_lens, block_tables;
  int64_t max_blocks = 0, num_blocks = 0;
  std::vector<bf16> cache, wkv_b;
  std::vector<float> q;
  float scale = 0.0f;

  int64_t tokens() const { return q_start.back(); }
  RaggedBatch Batch() const {
    return {.num_seqs = static_cast<int64_t>(context_lens.size()),
            .q_start = q_start.data(),
            .context_lens = context_lens.data(),
            .block_tables = block_tables.data(),
            .max_blocks_per_seq = max_blocks};
  }
  // The ops under test only read the cache through this (non-const) pointer.
  LatentCache Cache() const {
    return {.data = const_cast<bf16*>(cache.data()),
            .num_blocks = num_blocks,
            .d_latent = dims.d_latent,
            .d_rope = dims.d_rope};
  }
  // Index in `cache` of the row of token j of sequence s.
  int64_t RowIndex(int64_t s, int64_t j) const {
    const int64_t block = block_tables[s * max_blocks + j / kBlockSize];
    return (block * kBlockSize + j % kBlockSize) * dims.d_cache();
  }
  const bf16* Row(int64_t s, int64_t j) const { return cache.data() + RowIndex(s, j); }
};

bf16 RandomBf16(std::mt19937& rng, float bound) {
  return FloatToBf16(std::uniform_real_distribution<float>(-bound, bound)(rng));
}

// Sequences s get contexts[s] cached tokens and q_lens[s] query rows; 3 spare blocks stay unused.
Problem MakeProblem(const MlaDims& dims, const std::vector<int32_t>& contexts,
                    const std::vector<int32_t>& q_lens, std::mt19937& rng) {
  Problem p;
  p.dims = dims;
  p.context_lens = contexts;
  std::vector<int64_t> blocks_of(contexts.size());
  for (size_t s = 0; s < contexts.size(); ++s) {
    p.q_start.push_back(p.q_start.back() + q_lens[s]);
    blocks_of[s] = (contexts[s] + kBlockSize - 1) / kBlockSize;
    p.max_blocks = std::max(p.max_blocks, blocks_of[s] + 1);
    p.num_blocks += blocks_of[s];
  }
  p.num_blocks += 3;
  std::vector<int32_t> order(p.num_blocks);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  p.block_tables.assign(contexts.size() * p.max_blocks, kHugeBlock);
  p.cache.assign(p.num_blocks * kBlockSize * dims.d_cache(), kNaN);
  size_t next = 0;
  for (size_t s = 0; s < contexts.size(); ++s) {
    for (int64_t b = 0; b < blocks_of[s]; ++b) p.block_tables[s * p.max_blocks + b] = order[next++];
    for (int64_t j = 0; j < contexts[s]; ++j) {
      const int64_t row = p.RowIndex(s, j);
      for (int64_t c = 0; c < dims.d_cache(); ++c) p.cache[row + c] = RandomBf16(rng, 1.0f);
    }
  }
  p.wkv_b.resize(dims.heads * (dims.d_nope + dims.d_v) * dims.d_latent);
  for (bf16& w : p.wkv_b) w = RandomBf16(rng, 2.0f / std::sqrt(static_cast<float>(dims.d_latent)));
  p.q.resize(p.tokens() * dims.heads * dims.d_qk());
  for (float& x : p.q) x = Bf16ToFloat(RandomBf16(rng, 2.0f));
  p.scale = 1.0f / std::sqrt(static_cast<float>(dims.d_qk()));
  return p;
}

// out: [tokens, heads, d_v], poisoned with NaN before the call.
std::vector<float> RunPrefill(const Problem& p) {
  std::vector<float> out(p.tokens() * p.dims.heads * p.dims.d_v, NAN);
  MlaPrefillAttention({.dims = p.dims,
                       .batch = p.Batch(),
                       .cache = p.Cache(),
                       .q = p.q.data(),
                       .wkv_b = p.wkv_b.data(),
                       .softmax_scale = p.scale,
                       .out = out.data()});
  return out;
}

struct Absorbed {
  std::vector<float> latent, lse, out;  // [tokens, heads, d_latent], [tokens, heads], [.., d_v]
};

Absorbed RunAbsorbed(const Problem& p, bool with_lse) {
  const int64_t rows = p.tokens() * p.dims.heads;
  std::vector<float> q_abs(rows * p.dims.d_cache(), NAN);
  Absorbed a{std::vector<float>(rows * p.dims.d_latent, NAN), std::vector<float>(rows, NAN),
             std::vector<float>(rows * p.dims.d_v, NAN)};
  MlaAbsorbQuery(p.q.data(), p.wkv_b.data(), p.tokens(), p.dims, q_abs.data());
  MlaDecodeAttention({.dims = p.dims,
                      .batch = p.Batch(),
                      .cache = p.Cache(),
                      .q_abs = q_abs.data(),
                      .softmax_scale = p.scale,
                      .out_latent = a.latent.data(),
                      .lse = with_lse ? a.lse.data() : nullptr});
  MlaUnabsorbOutput(a.latent.data(), p.wkv_b.data(), p.tokens(), p.dims, a.out.data());
  return a;
}

struct Reference {
  std::vector<double> latent, lse, out;
};

// Naive double precision, straight from MODEL.md §3.3: q_abs = W_UK^T q^N, s_j = scale *
// (q_abs . c_j + q^R . k^R_j), p = softmax over j <= position (max subtracted), latent =
// sum p_j c_j, lse = ln sum exp(s_j), out = W_UV latent (= the materialised §3.2 result).
Reference NaiveReference(const Problem& p) {
  const MlaDims& d = p.dims;
  Reference ref;
  auto w = [&](int64_t h, int64_t row, int64_t c) {
    return static_cast<double>(
        Bf16ToFloat(p.wkv_b[(h * (d.d_nope + d.d_v) + row) * d.d_latent + c]));
  };
  for (size_t s = 0; s < p.context_lens.size(); ++s) {
    const int64_t q_len = p.q_start[s + 1] - p.q_start[s];
    for (int64_t i = 0; i < q_len; ++i) {
      const int64_t position = p.context_lens[s] - q_len + i;
      for (int64_t h = 0; h < d.heads; ++h) {
        const float* q = p.q.data() + ((p.q_start[s] + i) * d.heads + h) * d.d_qk();
        std::vector<double> q_abs(d.d_cache(), 0.0), scores(position + 1, 0.0), lat(d.d_latent);
        for (int64_t c = 0; c < d.d_latent; ++c) {
          for (int64_t n = 0; n < d.d_nope; ++n) q_abs[c] += w(h, n, c) * q[n];
        }
        for (int64_t r = 0; r < d.d_rope; ++r) q_abs[d.d_latent + r] = q[d.d_nope + r];
        for (int64_t j = 0; j <= position; ++j) {
          for (int64_t c = 0; c < d.d_cache(); ++c) {
            scores[j] += q_abs[c] * Bf16ToFloat(p.Row(s, j)[c]);
          }
          scores[j] *= p.scale;
        }
        const double m = *std::max_element(scores.begin(), scores.end());
        double sum = 0.0;
        for (double x : scores) sum += std::exp(x - m);
        for (int64_t c = 0; c < d.d_latent; ++c) {
          for (int64_t j = 0; j <= position; ++j) {
            lat[c] += std::exp(scores[j] - m) / sum * Bf16ToFloat(p.Row(s, j)[c]);
          }
        }
        ref.latent.insert(ref.latent.end(), lat.begin(), lat.end());
        ref.lse.push_back(m + std::log(sum));
        for (int64_t e = 0; e < d.d_v; ++e) {
          double o = 0.0;
          for (int64_t c = 0; c < d.d_latent; ++c) o += w(h, d.d_nope + e, c) * lat[c];
          ref.out.push_back(o);
        }
      }
    }
  }
  return ref;
}

// Checks |got - ref| <= atol + rtol * |ref| and finiteness everywhere; returns the max error.
double ExpectClose(const std::vector<float>& got, const std::vector<double>& ref, double atol,
                   double rtol, const char* what) {
  EXPECT_EQ(got.size(), ref.size()) << what;
  double max_err = 0.0, worst_share = 0.0;
  size_t worst = 0;
  for (size_t k = 0; k < std::min(got.size(), ref.size()); ++k) {
    EXPECT_TRUE(std::isfinite(got[k])) << what << " [" << k << "]";
    const double err = std::abs(got[k] - ref[k]), share = err / (atol + rtol * std::abs(ref[k]));
    if (!(share <= worst_share)) worst = k;
    max_err = std::max(max_err, err);
    worst_share = std::max(worst_share, share);
  }
  EXPECT_LE(worst_share, 1.0) << what << " worst at [" << worst << "]";
  std::printf("  %-12s max abs error %.3g; worst [%zu] at %.3g of tolerance\n", what, max_err,
              worst, worst_share);
  return max_err;
}

double RelL2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0.0, den = 0.0;
  for (size_t k = 0; k < a.size(); ++k) {
    num += (static_cast<double>(a[k]) - b[k]) * (static_cast<double>(a[k]) - b[k]);
    den += static_cast<double>(b[k]) * b[k];
  }
  return std::sqrt(num / den);
}

// A hand-computable case: 1 head, d_latent = d_rope = d_nope = d_v = 2, one sequence whose two
// tokens (both query rows, positions 0 and 1) sit at offsets 0 and 1 of block 1 of 2.
//   W_UK = [[1, 0], [0, 2]], W_UV = [[0, 1], [1, 1]], scale 0.5,
//   c_0 = (1, 0), k^R_0 = (0, 1), c_1 = (0.5, 1), k^R_1 = (1, 0),
//   q_0 = (1, 1 | 0.5, 0), q_1 = (2, -1 | 1, 0.5).
// Keys k^N_0 = (1, 0), k^N_1 = (0.5, 2); values v_0 = (0, 1), v_1 = (1, 1.5).
// Row 0 sees token 0 only: s = 0.5 * (1 + 0) = 0.5, out = v_0, lse = 0.5.
// Row 1: s_0 = 0.5 * (2 + 0.5) = 1.25, s_1 = 0.5 * (1 - 2 + 1) = 0, p_1 = 1 / (1 + e^1.25),
//   p_0 = 1 - p_1, out = (p_1, p_0 + 1.5 p_1), latent = (p_0 + 0.5 p_1, p_1),
//   lse = ln(e^1.25 + 1).
TEST(MlaAttention, HandComputedTwoTokens) {
  Problem p;
  p.dims = {.heads = 1, .d_latent = 2, .d_rope = 2, .d_nope = 2, .d_v = 2};
  p.q_start = {0, 2};
  p.context_lens = {2};
  p.block_tables = {1, kHugeBlock};
  p.max_blocks = 2;
  p.num_blocks = 2;
  p.cache.assign(2 * kBlockSize * 4, kNaN);
  const float rows[2][4] = {{1, 0, 0, 1}, {0.5f, 1, 1, 0}};
  for (int j = 0; j < 2; ++j) {
    for (int c = 0; c < 4; ++c) p.cache[(kBlockSize + j) * 4 + c] = FloatToBf16(rows[j][c]);
  }
  for (float w : {1, 0, 0, 2, 0, 1, 1, 1}) p.wkv_b.push_back(FloatToBf16(w));
  p.q = {1, 1, 0.5f, 0, 2, -1, 1, 0.5f};
  p.scale = 0.5f;

  const double p1 = 1.0 / (1.0 + std::exp(1.25)), p0 = 1.0 - p1;
  const std::vector<double> out = {0, 1, p1, p0 + 1.5 * p1};
  const std::vector<double> latent = {1, 0, p0 + 0.5 * p1, p1};
  const std::vector<double> lse = {0.5, std::log(std::exp(1.25) + 1.0)};
  std::printf("hand-computed case (atol 1e-6, rtol 1e-6):\n");
  ExpectClose(RunPrefill(p), out, 1e-6, 1e-6, "prefill out");
  const Absorbed a = RunAbsorbed(p, /*with_lse=*/true);
  ExpectClose(a.latent, latent, 1e-6, 1e-6, "latent");
  ExpectClose(a.lse, lse, 1e-6, 1e-6, "lse");
  ExpectClose(a.out, out, 1e-6, 1e-6, "absorbed out");
}

// WriteLatentCache = RmsNorm of the latent part and ApplyRope of the rope part, rounded to bf16,
// into exactly the named slots: bit-exact against those two reference ops applied separately,
// and within one bf16 rounding (2^-8 relative, plus 1e-6 for the float32 steps) of the same
// math in double. Unnamed slots and padding rows (slot -1) stay NaN.
TEST(MlaAttention, WriteLatentCacheNormalisesRotatesAndRoundsIntoTheNamedSlots) {
  const uint32_t seed = 4242;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const MlaDims dims = TinyDims();
  const int64_t num_blocks = 4, tokens = 70, d_cache = dims.d_cache(), dl = dims.d_latent;
  const int64_t dr = dims.d_rope;
  std::vector<bf16> data(num_blocks * kBlockSize * d_cache, kNaN);
  std::vector<int64_t> all_slots(num_blocks * kBlockSize);
  std::iota(all_slots.begin(), all_slots.end(), 0);
  std::shuffle(all_slots.begin(), all_slots.end(), rng);
  std::vector<int64_t> slots(all_slots.begin(), all_slots.begin() + tokens);
  slots[5] = slots[40] = -1;  // padding rows
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  std::uniform_int_distribution<int32_t> pos_dist(0, 200000);
  std::vector<float> kv(tokens * d_cache), weight(dl), inv_freq(dr / 2);
  std::vector<int32_t> positions(tokens);
  for (float& x : kv) x = dist(rng);
  for (float& x : weight) x = dist(rng);
  for (int64_t i = 0; i < dr / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / dr);
  for (int32_t& p : positions) p = pos_dist(rng);
  const float eps = 1e-6f, scale = 1.25f;
  WriteLatentCache({.kv = kv.data(),
                    .norm_weight = weight.data(),
                    .eps = eps,
                    .positions = positions.data(),
                    .inv_freq = inv_freq.data(),
                    .cos_sin_scale = scale,
                    .slots = slots.data(),
                    .tokens = tokens},
                   {.data = data.data(), .num_blocks = num_blocks, .d_latent = dl, .d_rope = dr});
  // The separate ops: [RmsNorm(latent) ; ApplyRope(k_rope)].
  std::vector<float> want(kv);
  for (int64_t t = 0; t < tokens; ++t) {
    RmsNorm(&want[t * d_cache], weight.data(), 1, dl, eps, &want[t * d_cache]);
  }
  ApplyRope(want.data() + dl, tokens, 1, d_cache, dr, positions.data(), inv_freq.data(), dr,
            scale);
  std::vector<int64_t> token_of(num_blocks * kBlockSize, -1);
  for (int64_t t = 0; t < tokens; ++t) {
    if (slots[t] >= 0) token_of[slots[t]] = t;
  }
  int64_t written = 0;
  for (int64_t slot = 0; slot < num_blocks * kBlockSize; ++slot) {
    const int64_t t = token_of[slot];
    if (t >= 0) ++written;
    const float* x = &kv[(t < 0 ? 0 : t) * d_cache];
    double ss = 0.0;
    for (int64_t c = 0; c < dl; ++c) ss += static_cast<double>(x[c]) * x[c];
    const double inv_rms = 1.0 / std::sqrt(ss / dl + eps);
    for (int64_t c = 0; c < d_cache; ++c) {
      const bf16 got = data[slot * d_cache + c];
      if (t < 0) {
        ASSERT_TRUE(std::isnan(Bf16ToFloat(got))) << "slot " << slot << " was written";
        continue;
      }
      ASSERT_EQ(got.bits, FloatToBf16(want[t * d_cache + c]).bits)
          << "slot " << slot << " value " << c;
      double exact;  // the same math in double (the angle in float32, as specified)
      if (c < dl) {
        exact = weight[c] * x[c] * inv_rms;
      } else {
        const int64_t i = (c - dl) / 2;
        const double a = static_cast<float>(positions[t]) * inv_freq[i];
        const double x0 = x[dl + 2 * i], x1 = x[dl + 2 * i + 1];
        exact = scale * ((c - dl) % 2 == 0 ? x0 * std::cos(a) - x1 * std::sin(a)
                                           : x0 * std::sin(a) + x1 * std::cos(a));
      }
      ASSERT_LE(std::fabs(Bf16ToFloat(got) - exact), std::fabs(exact) / 256 + 1e-5)
          << "slot " << slot << " value " << c << " exact " << exact;
    }
  }
  EXPECT_EQ(written, tokens - 2);
  std::printf("  %lld slots written, padding rows and the rest still NaN\n",
              static_cast<long long>(written));
}

// Prefill (materialised) vs absorbed path vs double reference on ragged, poisoned batches.
TEST(MlaAttention, PrefillAndAbsorbedAgreeOnRaggedBatches) {
  const int32_t kLens[] = {1, 63, 64, 65, 130};
  uint32_t seed = 100;
  for (const MlaDims& dims : {SmallDims(), TinyDims()}) {
    for (int batch : {1, 3, 17}) {
      for (bool chunked : {false, true}) {
        std::printf("heads %lld latent %lld batch %d %s seed %u\n",
                    static_cast<long long>(dims.heads), static_cast<long long>(dims.d_latent),
                    batch, chunked ? "chunks after a cached prefix" : "decode", seed);
        std::mt19937 rng(seed++);
        std::vector<int32_t> contexts, q_lens;
        const int first = static_cast<int>(rng() % 5);
        for (int s = 0; s < batch; ++s) {
          const int32_t ctx = kLens[(first + s) % 5];
          // Chunked: odd sequences take the whole context (a first prefill), even ones a chunk
          // of random length after a cached prefix.
          const int32_t chunk = s % 2 == 1 ? ctx : 1 + static_cast<int32_t>(rng() % ctx);
          contexts.push_back(ctx);
          q_lens.push_back(chunked ? chunk : 1);
        }
        const Problem p = MakeProblem(dims, contexts, q_lens, rng);
        const Reference ref = NaiveReference(p);
        const std::vector<float> prefill = RunPrefill(p);
        const Absorbed a = RunAbsorbed(p, /*with_lse=*/true);
        ExpectClose(prefill, ref.out, kAtol, kRtol, "prefill out");
        ExpectClose(a.latent, ref.latent, kAtol, kRtol, "decode latent");
        ExpectClose(a.lse, ref.lse, kAtol, kRtol, "decode lse");
        ExpectClose(a.out, ref.out, kAtol, kRtol, "absorbed out");
        const double rel = RelL2(a.out, prefill);
        std::printf("  prefill vs absorbed relative L2 %.3g (bound 1e-5)\n", rel);
        EXPECT_LE(rel, 1e-5);
      }
    }
  }
}

// Each sequence of a batch gets exactly (bit for bit) what it gets when run alone. The batch
// mixes decode rows, whole prefills, chunks, and empty sequences (no context, no rows).
TEST(MlaAttention, BatchedEqualsSingle) {
  const uint32_t seed = 9001;
  std::printf("seed %u\n", seed);
  std::mt19937 rng(seed);
  const MlaDims dims = TinyDims();
  std::vector<int32_t> contexts, q_lens;
  for (int s = 0; s < 19; ++s) {
    const int32_t ctx = s == 0 || s == 9 ? 0 : 1 + static_cast<int32_t>(rng() % 200);
    // Decode row, whole prefill, or a chunk after a cached prefix.
    const int kind = static_cast<int>(rng() % 3);
    const int32_t chunk = ctx == 0 ? 0 : 1 + static_cast<int32_t>(rng() % ctx);
    contexts.push_back(ctx);
    q_lens.push_back(ctx == 0 ? 0 : kind == 0 ? 1 : kind == 1 ? ctx : chunk);
  }
  const Problem p = MakeProblem(dims, contexts, q_lens, rng);
  const std::vector<float> prefill = RunPrefill(p);
  const Absorbed a = RunAbsorbed(p, /*with_lse=*/true);
  int64_t compared = 0;
  for (size_t s = 0; s < contexts.size(); ++s) {
    // The same sequence alone: its query rows, its block-table row, the same cache.
    Problem one = p;
    const int32_t begin = p.q_start[s], end = p.q_start[s + 1];
    one.q_start = {0, end - begin};
    one.context_lens = {contexts[s]};
    one.block_tables.assign(p.block_tables.begin() + s * p.max_blocks,
                            p.block_tables.begin() + (s + 1) * p.max_blocks);
    one.q.assign(p.q.begin() + begin * dims.heads * dims.d_qk(),
                 p.q.begin() + end * dims.heads * dims.d_qk());
    const std::vector<float> prefill_one = RunPrefill(one);
    const Absorbed a_one = RunAbsorbed(one, /*with_lse=*/false);
    for (int64_t k = 0; k < (end - begin) * dims.heads * dims.d_v; ++k) {
      ASSERT_EQ(prefill_one[k], prefill[begin * dims.heads * dims.d_v + k]) << "seq " << s;
      ASSERT_EQ(a_one.out[k], a.out[begin * dims.heads * dims.d_v + k]) << "seq " << s;
      ++compared;
    }
    for (int64_t k = 0; k < (end - begin) * dims.heads * dims.d_latent; ++k) {
      ASSERT_EQ(a_one.latent[k], a.latent[begin * dims.heads * dims.d_latent + k]) << "seq " << s;
    }
  }
  std::printf("  %lld outputs of %zu sequences bit-identical batched and alone\n",
              static_cast<long long>(compared), contexts.size());
}

}  // namespace
}  // namespace mla::kernels::cpu
