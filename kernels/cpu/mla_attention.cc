// CPU reference of multi-head latent attention over the paged latent cache (MODEL.md §3).
//
// Cache (bf16): [num_blocks, kBlockSize, d_latent + d_rope]. Token j of sequence s lives in slot
//   block_tables[s, j / kBlockSize] * kBlockSize + j % kBlockSize, and its row is
//   [c_j (normalised latent, d_latent) ; k^R_j (rotated rope key, d_rope)].
// Weights (bf16): wkv_b [heads * (d_nope + d_v), d_latent]; for head h, rows
//   h*(d_nope + d_v) + [0, d_nope) are W_UK_h and the next d_v rows are W_UV_h.
// Query row i of sequence s sits at position p = context_len - q_len + i and sees keys j <= p.
//
// Materialised (prefill, §3.2 steps 6-8), per sequence and head (up-projected once, not per row):
//   k^N_j = W_UK_h c_j,  v_j = W_UV_h c_j,
//   s_j = scale * (q^N . k^N_j + q^R . k^R_j),  out = sum_{j<=p} softmax(s)_j v_j,
//   the softmax in two passes (max and sum, then weights exp(s_j - m) / d).
// Absorbed (decode, §3.3 steps 2 and 4-6):
//   q_abs = [W_UK_h^T q^N ; q^R],  s_j = scale * q_abs . row_j (all d_latent + d_rope values),
//   out_latent = sum_{j<=p} softmax(s)_j c_j by online softmax, lse = m + ln(d),
//   out = W_UV_h out_latent.
// Numerics: bf16 values are converted to float; every product and sum is float32. Only the
// context's slots are read: never a slot past context_len, never a block-table entry past
// ceil(context_len / kBlockSize). The softmax math is kernels/softmax_state.h (STYLE.md I2).
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/bf16.h"
#include "kernels/mla_params.h"
#include "kernels/ops.h"
#include "kernels/softmax_state.h"

namespace mla::kernels::cpu {
namespace {

// Float copy of a contiguous bf16 [rows, cols] matrix.
std::vector<float> ToFloat(const bf16* w, int64_t rows, int64_t cols) {
  std::vector<float> out(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) out[i] = Bf16ToFloat(w[i]);
  return out;
}

// sum_k a[k] * b[k] accumulated in float, in index order.
float Dot(const float* a, const float* b, int64_t n) {
  float sum = 0.0f;
  for (int64_t k = 0; k < n; ++k) sum += a[k] * b[k];
  return sum;
}

// The cached rows of sequence s's first context_len tokens as float: [context_len, d_cache].
std::vector<float> GatherContext(const LatentCache& cache, const RaggedBatch& batch, int64_t s,
                                 int64_t context_len) {
  const int64_t d_cache = cache.d_latent + cache.d_rope;
  const int32_t* table = batch.block_tables + s * batch.max_blocks_per_seq;
  std::vector<float> rows(context_len * d_cache);
  for (int64_t j = 0; j < context_len; ++j) {
    const int64_t slot = static_cast<int64_t>(table[j / kBlockSize]) * kBlockSize + j % kBlockSize;
    const bf16* src = cache.data + slot * d_cache;
    for (int64_t c = 0; c < d_cache; ++c) rows[j * d_cache + c] = Bf16ToFloat(src[c]);
  }
  return rows;
}

// y[j, o] = W[o, :] . x[j, 0:in] for j < n. W: [out, in] float; x rows are x_stride apart.
std::vector<float> ProjectRows(const std::vector<float>& w, int64_t out, int64_t in, const float* x,
                               int64_t x_stride, int64_t n) {
  std::vector<float> y(n * out);
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t o = 0; o < out; ++o) y[j * out + o] = Dot(w.data() + o * in, x + j * x_stride, in);
  }
  return y;
}

}  // namespace

void WriteLatentCache(const LatentWrite& in, const LatentCache& cache) {
  const int64_t d_cache = cache.d_latent + cache.d_rope;
  std::vector<float> row(d_cache);
  for (int64_t t = 0; t < in.tokens; ++t) {
    if (in.slots[t] < 0) continue;
    // [c ; k^R] = [RmsNorm(kv_c) ; rope(kv_r)]
    std::copy_n(in.kv + t * d_cache, d_cache, row.data());
    RmsNorm(row.data(), in.norm_weight, 1, cache.d_latent, in.eps, row.data());
    ApplyRope(row.data() + cache.d_latent, 1, 1, cache.d_rope, cache.d_rope, in.positions + t,
              in.inv_freq, cache.d_rope, in.cos_sin_scale);
    bf16* dst = cache.data + in.slots[t] * d_cache;
    for (int64_t c = 0; c < d_cache; ++c) dst[c] = FloatToBf16(row[c]);
  }
}

void MlaPrefillAttention(const MlaPrefillParams& params) {
  const MlaDims& dims = params.dims;
  const RaggedBatch& batch = params.batch;
  const int64_t d_cache = dims.d_cache();
  const int64_t d_qk = dims.d_qk();
  const int64_t head_rows = dims.d_nope + dims.d_v;
  std::vector<float> scores;
  for (int64_t s = 0; s < batch.num_seqs; ++s) {
    const int64_t q_begin = batch.q_start[s];
    const int64_t q_len = batch.q_start[s + 1] - q_begin;
    const int64_t context_len = batch.context_lens[s];
    if (q_len == 0) continue;
    const std::vector<float> rows = GatherContext(params.cache, batch, s, context_len);
    for (int64_t h = 0; h < dims.heads; ++h) {
      const bf16* w_head = params.wkv_b + h * head_rows * dims.d_latent;
      const std::vector<float> w_uk = ToFloat(w_head, dims.d_nope, dims.d_latent);
      const std::vector<float> w_uv =
          ToFloat(w_head + dims.d_nope * dims.d_latent, dims.d_v, dims.d_latent);
      // k^N_j = W_UK_h c_j: [context_len, d_nope];  v_j = W_UV_h c_j: [context_len, d_v].
      const std::vector<float> k_nope =
          ProjectRows(w_uk, dims.d_nope, dims.d_latent, rows.data(), d_cache, context_len);
      const std::vector<float> v =
          ProjectRows(w_uv, dims.d_v, dims.d_latent, rows.data(), d_cache, context_len);
      for (int64_t i = 0; i < q_len; ++i) {
        const int64_t position = context_len - q_len + i;
        const float* q = params.q + ((q_begin + i) * dims.heads + h) * d_qk;
        // s_j = scale * (q^N . k^N_j + q^R . k^R_j) for j <= position; (m, d) over them.
        scores.assign(position + 1, 0.0f);
        SoftmaxState state;
        for (int64_t j = 0; j <= position; ++j) {
          const float nope = Dot(q, k_nope.data() + j * dims.d_nope, dims.d_nope);
          const float rope =
              Dot(q + dims.d_nope, rows.data() + j * d_cache + dims.d_latent, dims.d_rope);
          scores[j] = params.softmax_scale * (nope + rope);
          state.Update(scores[j]);
        }
        // out = sum_j (exp(s_j - m) / d) v_j.
        float* out = params.out + ((q_begin + i) * dims.heads + h) * dims.d_v;
        for (int64_t e = 0; e < dims.d_v; ++e) out[e] = 0.0f;
        for (int64_t j = 0; j <= position; ++j) {
          const float p = state.Probability(scores[j]);
          const float* v_j = v.data() + j * dims.d_v;
          for (int64_t e = 0; e < dims.d_v; ++e) out[e] += p * v_j[e];
        }
      }
    }
  }
}

void MlaAbsorbQuery(const float* q, const bf16* wkv_b, int64_t tokens, const MlaDims& dims,
                    float* q_abs) {
  const int64_t d_qk = dims.d_qk();
  const int64_t d_cache = dims.d_cache();
  for (int64_t h = 0; h < dims.heads; ++h) {
    const std::vector<float> w_uk =
        ToFloat(wkv_b + h * (dims.d_nope + dims.d_v) * dims.d_latent, dims.d_nope, dims.d_latent);
    for (int64_t t = 0; t < tokens; ++t) {
      const float* q_th = q + (t * dims.heads + h) * d_qk;
      float* q_abs_th = q_abs + (t * dims.heads + h) * d_cache;
      // q_abs[0:d_latent] = W_UK_h^T q^N = sum_n q^N[n] W_UK_h[n, :].
      for (int64_t c = 0; c < dims.d_latent; ++c) q_abs_th[c] = 0.0f;
      for (int64_t n = 0; n < dims.d_nope; ++n) {
        const float* w_row = w_uk.data() + n * dims.d_latent;
        for (int64_t c = 0; c < dims.d_latent; ++c) q_abs_th[c] += q_th[n] * w_row[c];
      }
      // q_abs[d_latent:] = q^R.
      for (int64_t r = 0; r < dims.d_rope; ++r) {
        q_abs_th[dims.d_latent + r] = q_th[dims.d_nope + r];
      }
    }
  }
}

void MlaDecodeAttention(const MlaDecodeParams& params) {
  const MlaDims& dims = params.dims;
  const RaggedBatch& batch = params.batch;
  const int64_t d_cache = dims.d_cache();
  std::vector<float> acc(dims.d_latent);
  for (int64_t s = 0; s < batch.num_seqs; ++s) {
    const int64_t q_begin = batch.q_start[s];
    const int64_t q_len = batch.q_start[s + 1] - q_begin;
    const int64_t context_len = batch.context_lens[s];
    if (q_len == 0) continue;
    const std::vector<float> rows = GatherContext(params.cache, batch, s, context_len);
    for (int64_t i = 0; i < q_len; ++i) {
      const int64_t position = context_len - q_len + i;
      for (int64_t h = 0; h < dims.heads; ++h) {
        const int64_t row = (q_begin + i) * dims.heads + h;
        const float* q_abs = params.q_abs + row * d_cache;
        SoftmaxState state;
        for (int64_t c = 0; c < dims.d_latent; ++c) acc[c] = 0.0f;
        for (int64_t j = 0; j <= position; ++j) {
          const float* key = rows.data() + j * d_cache;
          // s_j = scale * q_abs . [c_j ; k^R_j];  o <- o * exp(m - m') + exp(s_j - m') c_j.
          const SoftmaxRescale r = state.Update(params.softmax_scale * Dot(q_abs, key, d_cache));
          for (int64_t c = 0; c < dims.d_latent; ++c) acc[c] = acc[c] * r.mine + r.theirs * key[c];
        }
        // out_latent = o / d;  lse = m + ln(d).
        const float inv_sum = state.InverseSum();
        float* out = params.out_latent + row * dims.d_latent;
        for (int64_t c = 0; c < dims.d_latent; ++c) out[c] = acc[c] * inv_sum;
        if (params.lse != nullptr) params.lse[row] = state.Lse();
      }
    }
  }
}

void MlaUnabsorbOutput(const float* latent_out, const bf16* wkv_b, int64_t tokens,
                       const MlaDims& dims, float* out) {
  for (int64_t h = 0; h < dims.heads; ++h) {
    const bf16* w_head = wkv_b + h * (dims.d_nope + dims.d_v) * dims.d_latent;
    const std::vector<float> w_uv =
        ToFloat(w_head + dims.d_nope * dims.d_latent, dims.d_v, dims.d_latent);
    for (int64_t t = 0; t < tokens; ++t) {
      // out[t, h] = W_UV_h latent_out[t, h].
      const float* latent = latent_out + (t * dims.heads + h) * dims.d_latent;
      float* out_th = out + (t * dims.heads + h) * dims.d_v;
      for (int64_t e = 0; e < dims.d_v; ++e) {
        out_th[e] = Dot(w_uv.data() + e * dims.d_latent, latent, dims.d_latent);
      }
    }
  }
}

}  // namespace mla::kernels::cpu
