// Sample on the GPU (twin of cpu::Sample; its steps 1-6 are documented in kernels/cpu/sample.cc).
// Per row b of logits [batch, vocab] f32, with params[b] and u = SampleUniformOf(seed, steps[b]):
//
//   greedy (T == 0):  token = argmax_i logits_i, lowest i on ties
//   else:             z_i = double(logit_i) / double(T),  m = max_i z_i,
//                     p_i = exp(z_i - m) / S,  S = sum_i exp(z_i - m)          (double)
//                     c_0, c_1, ... = ids by p descending, equal p by ascending id
//                     P_j = p_{c_0} + ... + p_{c_j};  n_k = min(top_k, vocab) or vocab
//                     n   = j + 1 for the first j < n_k with P_j >= top_p * P_{n_k - 1}, else n_k
//                     token = c_j for the first j < n with P_j > u * P_{n - 1}, else c_{n - 1}
//
// Launches: (1) PrepareKernel, a block per row. Greedy rows: the argmax, written to tokens, and
// empty sort segments. Sampled rows: m (= double(max logit) / T: rounding is monotone, so this
// is max_i z_i exactly) and S (summed in the same order as before, so p is bit-identical to the
// former double sort's), and a histogram over max - logit (kBuckets equal buckets spanning at
// most kMaxSpread / T) of counts and, for top-p, fixed-point masses (rounded down). The
// candidates are the buckets up to the first that brings the count to top_k (top-k), or the mass
// to top_p * S * (1 + kMassMargin) (top-p, no top-k), else all logits: every logit above some
// value, all copies of each. They are copied as (key = float logit, id) to [b * vocab, + count)
// by a stable partition into kGroups runs of whole buckets of near-equal size (every logit of a
// run above those of the next), ascending id within each run. (2) CUB's
// DeviceSegmentedRadixSort::SortPairsDescending of those runs, 32 key bits: LSD radix, stable,
// so equal logits keep ascending id; the sorted runs of a row are its sorted candidates. Rows of
// at most kBlockSortItems candidates give CUB empty segments. (3) SelectKernel, a block per
// sampled row: small rows sorted in shared memory first (cub::BlockRadixSort, stable, 32 bits);
// p_j = exp(double(key_j) / T - m) / S for the sorted keys (the CPU's expression), the prefix
// sums P_j (tiles of consecutive positions, each thread's summed in order, joined by a block-wide
// exclusive scan), the searches for n and the pick (each thread its first qualifying position,
// the block the least), and the tie check of the pick.
//
// Cost per sampled row (vocab V, c candidates): the logits read three times (after the first,
// mostly from L2) and one double exp per logit, 8 bytes written per candidate, CUB's 6 passes
// of about 20 bytes per candidate when c > kBlockSortItems (else a sort in shared memory), and
// about 20 bytes and one exp per candidate for the selection; with a top-k or a peaked top-p, c
// is tens to hundreds. Before: two exps per logit, 12 bytes written per logit of every row
// (greedy rows too) and CUB's 11 passes of about 32 bytes per logit. Greedy row: one read of V
// floats.
//
// Why logits sort like p: exp and the divisions round monotonically, so p never decreases as the
// logit grows, equal logits give equal p, and the sequence of p along our order is the CPU's;
// the prefix sums and the index j picked are the same. Only the ids can differ, where DIFFERENT
// logits give EQUAL p (the CPU orders those by id, we by logit): (a) p == 0 (exp underflows;
// common at low temperature). Such an entry is never picked: P_j = P_{j-1} + 0 = P_{j-1}, so a
// search for the first P_j above (or at) a threshold stops at an earlier, positive entry (j = 0
// is the maximum, p > 0); and the c_{n-1} fallback needs P_{n-1} <= u * P_{n-1}, false for
// u < 1 and P_{n-1} > 0 (u * P_{n-1} rounds below P_{n-1}). (b) p > 0 equal by rounding (z - m,
// exp or / S maps two logits to one double; e.g. logits within 2^-29 |z - m| of each other). So
// the selection checks the tie run of the pick: if the entries beside j have other p (the usual
// case) or the run's logits are all equal, ids[j] is the CPU's token; otherwise (rare) the token
// is the (j - r0)-th lowest id among the row's logits with that p, r0 the run's first position
// (the run may continue past the candidates: the largest logit left out is kept to tell), found
// by one ordered pass over the row. This also covers (a) should rounding at a tile boundary of
// the scan ever land j there. The run's bounds come from searches that assume p non-increasing
// along the sorted keys; the device's exp is within 1 ulp, so this only matters for logits whose
// p are within rounding of each other (like the caveat in sample.h), and indices stay in bounds.
//
// Exactness: the sort and the candidate cut change no p and no P_j. A top-k cut keeps the first
// n_k positions; a top-p cut keeps more than top_p * (1 + kMassMargin) of the mass, so n <= count,
// and M_k (the sum of all p) is taken as 1, which the CPU's sum equals up to rounding. All sums
// have a fixed shape, so a row's token never varies between runs; they differ from the CPU's
// sums in rounding only.
#include <cuda_runtime.h>

#include <climits>
#include <cmath>
#include <cstdint>

#include <cub/device/device_segmented_radix_sort.cuh>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_status.h"
#include "kernels/cuda/sample/sample.h"
#include "kernels/cuda/sample/sample_block.cuh"
#include "kernels/ops.h"
#include "kernels/sample_uniform.h"

namespace mla::kernels::cuda {
namespace {

using sample_block::Better;
using sample_block::BlockArgmax;
using sample_block::BlockExclusiveSum;
using sample_block::BlockPartition;
using sample_block::BlockReduce;
using sample_block::BlockSortDescending;
using sample_block::Candidate;
using sample_block::ForEachLogit;
using sample_block::kBlockSortItems;
using sample_block::kGroups;
using sample_block::kThreads;
using sample_block::kTileRounds;
using sample_block::kWarpSize;
using sample_block::MaxFloatOp;
using sample_block::Min64;
using sample_block::MinFloatOp;
using sample_block::MinOp;
using sample_block::SumOp;
using sample_block::WarpFirstTrue;

constexpr size_t kAlignment = 256;
constexpr int kKeyBits = 32;            // all bits of the float keys
constexpr int kBuckets = kThreads;      // one histogram bucket per thread
constexpr int kScanItems = 8;           // prefix sums: consecutive positions per thread per tile
constexpr float kMaxSpread = 746.0f;    // exp(-746) == 0 in double: no bucket beyond
constexpr double kMassScale = 0x1p40;   // fixed point of exp(z - m) <= 1
constexpr int64_t kMaxMassVocab = int64_t{1} << 23;  // a row's fixed-point mass stays < 2^63
constexpr double kMassMargin = 1e-6;    // >> the relative rounding of any double sum here

size_t AlignUp(size_t bytes) { return (bytes + kAlignment - 1) / kAlignment * kAlignment; }

// What a sampled row's candidate cut must keep (PrepareKernel) and how its mass is measured
// (SelectKernel). Vocabularies above kMaxMassVocab sort every logit of a top-p row.
enum class Cut { kNone, kTopK, kTopP };
__device__ __forceinline__ Cut CutOf(const SamplingParams& params, int64_t vocab) {
  if (params.top_k > 0 && params.top_k < vocab) return Cut::kTopK;
  if (params.top_p < 1.0f && vocab <= kMaxMassVocab) return Cut::kTopP;
  return Cut::kNone;
}

// Per sampled row, from PrepareKernel to SelectKernel.
struct RowStats {
  double max_z;    // m
  double sum_exp;  // S
  int64_t count;   // candidates, sorted in [b * vocab, + count)
  float top_out;   // the largest logit left out (when count < vocab: some were left out)
};

// p of a logit: exactly the CPU's expression (kernels/cpu/sample.cc step 2).
__device__ __forceinline__ double Probability(float logit, double t, double m, double s) {
  return exp(static_cast<double>(logit) / t - m) / s;
}

// Row b: greedy -> tokens[b] and empty segments; sampled -> stats[b] and the candidates (keys,
// ids) in [b * vocab, + count) as kGroups runs, ascending id within each, every logit of run g
// above those of run g + 1; CUB's segment (b, g) = [begin, end)[b * kGroups + g] is run g, or
// empty when SelectKernel sorts the row itself (count <= kBlockSortItems).
__global__ void __launch_bounds__(kThreads)
    PrepareKernel(const float* __restrict__ logits, const SamplingParams* __restrict__ params,
                  int64_t vocab, float* __restrict__ keys, int32_t* __restrict__ ids,
                  int32_t* __restrict__ begin, int32_t* __restrict__ end,
                  RowStats* __restrict__ stats, int32_t* __restrict__ tokens) {
  const int64_t b = blockIdx.x;
  const int64_t segment = b * vocab;
  const float* row = logits + segment;
  const SamplingParams params_b = params[b];
  if (params_b.temperature == 0.0f) {
    // Each thread starts from its first element, so an all -inf row gives id 0 as on the CPU.
    Candidate best{-INFINITY, INT_MAX};
    bool any = false;
    ForEachLogit(row, vocab, [&](int64_t i, float logit) {
      const Candidate c{logit, static_cast<int>(i)};
      if (!any || Better(c, best)) best = c;
      any = true;
    });
    best = BlockArgmax(best);
    if (threadIdx.x == 0) tokens[b] = best.id < vocab ? best.id : 0;  // INT_MAX: NaN logits only
    if (threadIdx.x < kGroups) {
      begin[b * kGroups + threadIdx.x] = static_cast<int32_t>(segment);
      end[b * kGroups + threadIdx.x] = static_cast<int32_t>(segment);
    }
    return;
  }
  const Cut cut = CutOf(params_b, vocab);
  const double t = static_cast<double>(params_b.temperature);

  // m = max_i z_i = double(max_i logit_i) / T; the logit range sizes the buckets.
  float hi = -INFINITY;
  float lo = INFINITY;
  ForEachLogit(row, vocab, [&](int64_t, float logit) {
    hi = fmaxf(hi, logit);
    lo = fminf(lo, logit);
  });
  hi = BlockReduce(hi, MaxFloatOp{}, -INFINITY);
  lo = BlockReduce(lo, MinFloatOp{}, INFINITY);
  const double m = static_cast<double>(hi) / t;
  const float spread = fminf(hi - lo, kMaxSpread * params_b.temperature);
  float scale = spread > 0.0f ? kBuckets / spread : 0.0f;
  if (isinf(scale)) scale = 0.0f;
  // Non-decreasing as the logit falls, so the buckets up to any cut hold every logit above a
  // value, all copies of each; -inf and NaN go to the last bucket.
  const auto bucket = [hi, scale](float logit) {
    return static_cast<int>(fminf((hi - logit) * scale, static_cast<float>(kBuckets - 1)));
  };

  // S = sum_i exp(z_i - m) (the order of the former kernel), and per bucket the count and, for
  // top-p, the mass floor(exp(z_i - m) * kMassScale): integers, so the order does not matter.
  __shared__ unsigned int bucket_count[kBuckets];
  __shared__ unsigned long long bucket_mass[kBuckets];
  bucket_count[threadIdx.x] = 0;
  bucket_mass[threadIdx.x] = 0;
  __syncthreads();
  // Each thread adds its logits i = thread, thread + kThreads, ... in order; kTileRounds loads
  // are issued before their use.
  double s = 0.0;
  for (int64_t tile = 0; tile < vocab; tile += int64_t{kTileRounds} * kThreads) {
    float value[kTileRounds];
#pragma unroll
    for (int r = 0; r < kTileRounds; ++r) {
      const int64_t i = tile + r * kThreads + threadIdx.x;
      value[r] = i < vocab ? row[i] : 0.0f;
    }
#pragma unroll
    for (int r = 0; r < kTileRounds; ++r) {
      if (tile + r * kThreads + threadIdx.x >= vocab) break;
      const double e = exp(static_cast<double>(value[r]) / t - m);
      s += e;
      const int k = bucket(value[r]);
      atomicAdd(&bucket_count[k], 1u);
      if (cut == Cut::kTopP && e > 0.0) {
        atomicAdd(&bucket_mass[k], static_cast<unsigned long long>(e * kMassScale));
      }
    }
  }
  s = BlockReduce(s, SumOp{}, 0.0);  // its barriers also end the histogram's atomics

  // The last bucket to keep: the first whose running count reaches top_k, or whose running
  // mass reaches top_p * S * (1 + margin) (the fixed point rounds down: the true mass is more).
  const unsigned long long mine = bucket_count[threadIdx.x];
  const unsigned long long count_before = BlockExclusiveSum(mine);
  bool enough = false;
  if (cut == Cut::kTopK) {
    enough = count_before + mine >= static_cast<unsigned long long>(params_b.top_k);
  } else if (cut == Cut::kTopP) {
    const unsigned long long mass = bucket_mass[threadIdx.x];
    const unsigned long long upto = BlockExclusiveSum(mass) + mass;
    const double need = static_cast<double>(params_b.top_p) * s * (1.0 + kMassMargin) * kMassScale;
    enough = upto > 0 && static_cast<double>(upto) >= need;
  }
  const int last_bucket =
      BlockReduce(enough ? static_cast<int>(threadIdx.x) : kBuckets - 1, MinOp{}, kBuckets - 1);

  // Sort segments: bucket k <= last_bucket goes to group kGroups * (count before k) / count, so
  // the groups split the candidates into near-equal runs of whole buckets (a bucket never
  // splits). group_begin[g] = candidates before group g; group_begin[kGroups] = count.
  __shared__ int bucket_group[kBuckets];
  __shared__ int64_t group_begin[kGroups + 1];
  __shared__ int64_t candidates;
  if (threadIdx.x == last_bucket) candidates = static_cast<int64_t>(count_before + mine);
  __syncthreads();
  const int64_t count = candidates;  // >= 1: >= top_k, or holds mass > 0, or everything
  const int my_group =
      threadIdx.x <= last_bucket
          ? static_cast<int>(count_before * kGroups / static_cast<unsigned long long>(count))
          : kGroups;
  bucket_group[threadIdx.x] = my_group;
  __syncthreads();
  if (threadIdx.x <= last_bucket) {
    const int previous = threadIdx.x == 0 ? -1 : bucket_group[threadIdx.x - 1];
    for (int g = previous + 1; g <= my_group; ++g) group_begin[g] = count_before;
    if (threadIdx.x == last_bucket) {
      for (int g = my_group + 1; g <= kGroups; ++g) group_begin[g] = count;
    }
  }
  __syncthreads();

  // Copy the candidates (-0 as +0: one key per logit value, same p); the largest logit left out.
  float* row_keys = keys + segment;
  int32_t* row_ids = ids + segment;
  float top_out = -INFINITY;
  BlockPartition(
      row, vocab,
      [&](float logit) {
        const int k = bucket(logit);
        if (k > last_bucket) top_out = fmaxf(top_out, logit);
        return k <= last_bucket ? bucket_group[k] : kGroups;
      },
      [&](int64_t i, float logit, int group, int64_t rank) {
        const int64_t at = group_begin[group] + rank;
        row_keys[at] = logit == 0.0f ? 0.0f : logit;
        row_ids[at] = static_cast<int32_t>(i);
      });
  top_out = BlockReduce(top_out, MaxFloatOp{}, -INFINITY);
  if (threadIdx.x < kGroups) {  // a row SelectKernel sorts itself gives CUB empty segments
    const bool cub_sorts = count > kBlockSortItems;
    const int64_t first = cub_sorts ? group_begin[threadIdx.x] : 0;
    const int64_t last = cub_sorts ? group_begin[threadIdx.x + 1] : 0;
    begin[b * kGroups + threadIdx.x] = static_cast<int32_t>(segment + first);
    end[b * kGroups + threadIdx.x] = static_cast<int32_t>(segment + last);
  }
  if (threadIdx.x == 0) {
    stats[b] = RowStats{.max_z = m, .sum_exp = s, .count = count, .top_out = top_out};
  }
}

// tokens[b] of a sampled row: top-k / top-p / inverse CDF over the sorted candidates, then the
// tie check of the pick (see the top). Rows of at most kBlockSortItems candidates are sorted here,
// in place; the others were sorted by CUB into sorted_keys / sorted_ids.
__global__ void __launch_bounds__(kThreads)
    SelectKernel(const float* __restrict__ logits, const SamplingParams* __restrict__ params,
                 const uint64_t* __restrict__ steps, int64_t vocab, float* candidate_keys,
                 int32_t* candidate_ids, const float* sorted_keys, const int32_t* sorted_ids,
                 const RowStats* __restrict__ stats, double* __restrict__ prefix,
                 int32_t* __restrict__ tokens) {
  const int64_t b = blockIdx.x;
  const SamplingParams params_b = params[b];
  if (params_b.temperature == 0.0f) return;  // PrepareKernel wrote the argmax
  const RowStats stats_b = stats[b];
  const double t = static_cast<double>(params_b.temperature);
  const auto p_of = [t, &stats_b](float logit) {
    return Probability(logit, t, stats_b.max_z, stats_b.sum_exp);
  };
  const int64_t count = stats_b.count;  // >= 1, and >= n_k under a top-k cut
  const float* key = sorted_keys + b * vocab;
  const int32_t* id = sorted_ids + b * vocab;
  if (count <= kBlockSortItems) {
    BlockSortDescending(candidate_keys + b * vocab, candidate_ids + b * vocab, count);
    key = candidate_keys + b * vocab;
    id = candidate_ids + b * vocab;
  }
  double* cdf = prefix + b * vocab;
  const Cut cut = CutOf(params_b, vocab);
  const int64_t kept_k = cut == Cut::kTopK ? Min64(params_b.top_k, count) : count;

  // P_j for j < n_k, a tile of kThreads * kScanItems positions at a time: each thread sums the
  // p of its kScanItems consecutive positions in order, after the sum of the threads before it
  // (block-wide exclusive scan) and of the tiles before.
  double carry = 0.0;
  for (int64_t tile = 0; tile < kept_k; tile += int64_t{kThreads} * kScanItems) {
    const int64_t first = tile + int64_t{threadIdx.x} * kScanItems;
    double p[kScanItems];
    double local = 0.0;
#pragma unroll
    for (int q = 0; q < kScanItems; ++q) {
      p[q] = first + q < kept_k ? p_of(key[first + q]) : 0.0;
      local += p[q];
    }
    double tile_total;
    double running = carry + BlockExclusiveSum(local, &tile_total);
#pragma unroll
    for (int q = 0; q < kScanItems; ++q) {
      running += p[q];
      if (first + q < kept_k) cdf[first + q] = running;
    }
    carry += tile_total;
  }
  __syncthreads();

  // n = the first j + 1 with P_j >= top_p * M, n_k if none; M = P_{n_k - 1}, or 1 when a top-p
  // cut left logits out (the sum of all p is 1 up to rounding; the CPU's sum differs from 1 in
  // rounding only). Each thread finds its first qualifying j (stride kThreads), the block the
  // least of those.
  const double mass = cut == Cut::kTopP && stats_b.count < vocab ? 1.0 : cdf[kept_k - 1];
  const double threshold = static_cast<double>(params_b.top_p) * mass;
  int first = INT_MAX;
  for (int64_t j = threadIdx.x; j < kept_k; j += kThreads) {
    if (cdf[j] >= threshold) {
      first = static_cast<int>(j);
      break;
    }
  }
  first = BlockReduce(first, MinOp{}, INT_MAX);
  const int64_t kept = first == INT_MAX ? kept_k : first + 1;

  // The first j < n with P_j > u * P_{n - 1}; n - 1 if none.
  const double target = SampleUniformOf(params_b.seed, steps[b]) * cdf[kept - 1];
  int pick = INT_MAX;
  for (int64_t j = threadIdx.x; j < kept; j += kThreads) {
    if (cdf[j] > target) {
      pick = static_cast<int>(j);
      break;
    }
  }
  pick = BlockReduce(pick, MinOp{}, INT_MAX);
  const int64_t j = pick == INT_MAX ? kept - 1 : pick;

  // The tie run of p_j: [r0, stop) in our order, and beyond the candidates when the largest
  // logit left out has p_j too. tie_rank = j - r0 when the run mixes logits, else -1.
  __shared__ int64_t tie_rank;
  if (threadIdx.x < kWarpSize) {
    const double pj = p_of(key[j]);
    const bool tie_before = j > 0 && p_of(key[j - 1]) == pj;
    const bool spills = stats_b.count < vocab && p_of(stats_b.top_out) == pj;
    const bool tie_after = j + 1 < count ? p_of(key[j + 1]) == pj : spills;
    int64_t rank = -1;
    if (tie_before || tie_after) {
      const auto at_or_below = [&](int64_t i) { return p_of(key[i]) <= pj; };
      const auto below = [&](int64_t i) { return p_of(key[i]) < pj; };
      const int64_t r0 = WarpFirstTrue(0, j, at_or_below);
      const int64_t stop = WarpFirstTrue(j + 1, count, below);
      if ((stop == count && spills) || key[r0] != key[stop - 1]) rank = j - r0;
    }
    if (threadIdx.x == 0) tie_rank = rank;
  }
  __syncthreads();
  if (tie_rank < 0) {
    if (threadIdx.x == 0) tokens[b] = id[j];
    return;
  }
  // Rare: the CPU's token is the tie_rank-th lowest id among the row's logits with p == p_j.
  __shared__ int32_t tied_token;
  if (threadIdx.x == 0) tied_token = id[j];
  const double pj = p_of(key[j]);
  const int64_t rank = tie_rank;
  BlockPartition(
      logits + b * vocab, vocab, [&](float logit) { return p_of(logit) == pj ? 0 : kGroups; },
      [&](int64_t i, float, int, int64_t r) {
        if (r == rank) tied_token = static_cast<int32_t>(i);
      });
  if (threadIdx.x == 0) tokens[b] = tied_token;  // BlockPartition ends with a barrier
}

// CUB's sort of the segments [begin[k], end[k]), k < batch * kGroups: with temp == nullptr it
// only sets temp_bytes (host work, no launch). The result is in keys.Current() / ids.Current().
cudaError_t SortRows(void* temp, size_t& temp_bytes, cub::DoubleBuffer<float>& keys,
                     cub::DoubleBuffer<int32_t>& ids, int64_t batch, int64_t vocab,
                     const int32_t* begin, const int32_t* end, cudaStream_t stream) {
  return cub::DeviceSegmentedRadixSort::SortPairsDescending(
      temp, temp_bytes, keys, ids, static_cast<int>(batch * vocab),
      static_cast<int>(batch * kGroups), begin, end, 0, kKeyBits, stream);
}

}  // namespace

absl::StatusOr<SamplePlan> PlanSample(int64_t batch, int64_t vocab) {
  if (batch < 0 || vocab < 1 || batch * vocab >= INT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "PlanSample: need batch >= 0, vocab >= 1 and batch * vocab < 2^31, got batch ", batch,
        " and vocab ", vocab));
  }
  SamplePlan plan;
  plan.batch = batch;
  plan.vocab = vocab;
  const size_t items = static_cast<size_t>(batch * vocab);
  const size_t rows = static_cast<size_t>(batch);
  size_t offset = 0;
  const auto take = [&offset](size_t bytes) {
    const size_t at = offset;
    offset += AlignUp(bytes);
    return at;
  };
  plan.keys[0] = take(items * sizeof(float));
  plan.keys[1] = take(items * sizeof(float));
  plan.ids[0] = take(items * sizeof(int32_t));
  plan.ids[1] = take(items * sizeof(int32_t));
  plan.prefix = take(items * sizeof(double));
  plan.begin = take(rows * kGroups * sizeof(int32_t));
  plan.end = take(rows * kGroups * sizeof(int32_t));
  plan.stats = take(rows * sizeof(RowStats));
  if (batch > 0) {
    cub::DoubleBuffer<float> keys(nullptr, nullptr);
    cub::DoubleBuffer<int32_t> ids(nullptr, nullptr);
    MLA_CUDA_RETURN_IF_ERROR(SortRows(nullptr, plan.sort_temp_bytes, keys, ids, batch, vocab,
                                      nullptr, nullptr, nullptr));
  }
  plan.sort_temp = take(plan.sort_temp_bytes);
  plan.workspace_bytes = offset;
  return plan;
}

absl::Status Sample(const float* logits, const SamplingParams* params, const uint64_t* steps,
                    const SamplePlan& plan, void* workspace, int32_t* tokens,
                    cudaStream_t stream) {
  if (plan.batch == 0) return absl::OkStatus();
  if (workspace == nullptr || reinterpret_cast<uintptr_t>(workspace) % kAlignment != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Sample: needs a 256-byte aligned workspace of ", plan.workspace_bytes, " bytes"));
  }
  char* base = static_cast<char*>(workspace);
  cub::DoubleBuffer<float> keys(reinterpret_cast<float*>(base + plan.keys[0]),
                                reinterpret_cast<float*>(base + plan.keys[1]));
  cub::DoubleBuffer<int32_t> ids(reinterpret_cast<int32_t*>(base + plan.ids[0]),
                                 reinterpret_cast<int32_t*>(base + plan.ids[1]));
  double* prefix = reinterpret_cast<double*>(base + plan.prefix);
  int32_t* begin = reinterpret_cast<int32_t*>(base + plan.begin);
  int32_t* end = reinterpret_cast<int32_t*>(base + plan.end);
  RowStats* stats = reinterpret_cast<RowStats*>(base + plan.stats);
  const unsigned rows = static_cast<unsigned>(plan.batch);

  float* candidate_keys = keys.Current();  // PrepareKernel's output, CUB's input
  int32_t* candidate_ids = ids.Current();
  PrepareKernel<<<rows, kThreads, 0, stream>>>(logits, params, plan.vocab, candidate_keys,
                                               candidate_ids, begin, end, stats, tokens);
  if (absl::Status s = LaunchStatus("Sample PrepareKernel"); !s.ok()) return s;
  size_t temp_bytes = plan.sort_temp_bytes;
  MLA_CUDA_RETURN_IF_ERROR(SortRows(base + plan.sort_temp, temp_bytes, keys, ids, plan.batch,
                                    plan.vocab, begin, end, stream));
  if (absl::Status s = LaunchStatus("Sample cub::DeviceSegmentedRadixSort"); !s.ok()) return s;
  SelectKernel<<<rows, kThreads, 0, stream>>>(logits, params, steps, plan.vocab, candidate_keys,
                                              candidate_ids, keys.Current(), ids.Current(), stats,
                                              prefix, tokens);
  return LaunchStatus("Sample SelectKernel");
}

}  // namespace mla::kernels::cuda
