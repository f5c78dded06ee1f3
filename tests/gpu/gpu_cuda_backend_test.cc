// CudaBackend (worker/cuda_backend.h) on its own: what the model relies on beyond the kernels'
// own tests. BeginStep's StepIndex must hold FlatBatch's arrays laid out as FlatBatch::Prefill()
// and Decode() lay them out; scratch handed out before the arena grows must stay valid; Linear
// must give the same result whatever the alignment of its weight and output (misaligned ones go
// through an aligned copy); LinearF32 is cpu::Linear in float32, its weight copy never stale;
// float partials, Copy2D, GatherRows, Add, greedy Sample; attention
// outside the planned step is refused; a recorded step replays on a later step's arrays, and is
// dropped (not replayed) once the scratch it wrote has moved; released scratch is reused. Tolerances: Linear as in gpu_linear_test (bf16-rounded
// input, so only the summation order differs: relative L2 <= 1e-4); everything else is a copy or
// an exact float op (bit-identical).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/gpu/gpu_test_util.h"
#include "worker/cuda_backend.h"
#include "worker/flat_batch.h"
#include "worker/model_config.h"

namespace mla {
namespace {

namespace gt = kernels::cuda::testing;

std::unique_ptr<Backend> MakeBackendOrDie() {
  absl::StatusOr<std::unique_ptr<Backend>> be = MakeCudaBackend(0);
  EXPECT_TRUE(be.ok()) << be.status();
  return be.ok() ? std::move(*be) : nullptr;
}

template <typename T>
std::vector<T> Download(Backend& be, const T* device, int64_t count) {
  std::vector<T> host(count);
  const absl::Status s =
      be.CopyToHost(device, count * static_cast<int64_t>(sizeof(T)), host.data());
  EXPECT_TRUE(s.ok()) << s;
  return host;
}

template <typename T>
T* Upload(Backend& be, const std::vector<T>& host) {
  absl::StatusOr<T*> device = be.Scratch<T>(static_cast<int64_t>(host.size()));
  EXPECT_TRUE(device.ok()) << device.status();
  if (!device.ok()) return nullptr;
  const absl::Status s = be.CopyToBackend(host.data(), host.size() * sizeof(T), *device);
  EXPECT_TRUE(s.ok()) << s;
  return *device;
}

bool Aligned256(const void* p) { return reinterpret_cast<uintptr_t>(p) % 256 == 0; }

const StepOptions kStep{
    .attention = {.heads = 16, .d_latent = 512, .d_rope = 64, .d_nope = 128, .d_v = 128}};

// Two prefill chunks (one with a cached prefix) and two decodes, given out of order.
absl::StatusOr<FlatBatch> MixedBatch() {
  ModelConfig c;
  c.vocab_size = 100;
  c.max_position_embeddings = 4096;
  StepBatch batch;
  batch.seqs.push_back({.seq_id = 10, .tokens = {5}, .start_pos = 70, .block_table = {3, 7},
                        .sample = true});
  batch.seqs.push_back({.seq_id = 11, .tokens = {1, 2, 3}, .start_pos = 0, .block_table = {5},
                        .sample = true});
  batch.seqs.push_back({.seq_id = 12, .tokens = {4}, .start_pos = 0, .block_table = {9},
                        .sample = true});
  SequenceStep chunk{.seq_id = 13, .start_pos = 10, .block_table = {1, 2}};
  for (int i = 0; i < 70; ++i) chunk.tokens.push_back(i % 100);
  batch.seqs.push_back(chunk);
  return FlattenBatch(batch, c, /*num_blocks=*/16);
}

// A backend on GPU 0 with the step of MixedBatch() begun (its scratch is usable); null, with
// the failure reported, if either step fails.
std::unique_ptr<Backend> StartedBackendOrDie() {
  std::unique_ptr<Backend> be = MakeBackendOrDie();
  if (be == nullptr) return nullptr;
  const absl::StatusOr<FlatBatch> b = MixedBatch();
  EXPECT_TRUE(b.ok()) << b.status();
  if (!b.ok()) return nullptr;
  const absl::Status begun = be->BeginStep(*b, kStep).status();
  EXPECT_TRUE(begun.ok()) << begun;
  return begun.ok() ? std::move(be) : nullptr;
}

TEST(GpuCudaBackend, BadDeviceIsRefused) {
  const absl::StatusOr<std::unique_ptr<Backend>> be = MakeCudaBackend(-1);
  ASSERT_FALSE(be.ok());
  if (gt::NoGpuReason().empty()) {
    EXPECT_EQ(be.status().code(), absl::StatusCode::kInvalidArgument) << be.status();
    EXPECT_NE(be.status().message().find("device index must be in [0, "), std::string::npos);
  } else {
    EXPECT_EQ(be.status().code(), absl::StatusCode::kFailedPrecondition) << be.status();
  }
}

TEST(GpuCudaBackend, BeginStepUploadsTheFlatBatch) {
  MLA_SKIP_WITHOUT_GPU();
  std::unique_ptr<Backend> be = MakeBackendOrDie();
  ASSERT_NE(be, nullptr);
  std::printf("%s\n", be->Describe().c_str());
  EXPECT_EQ(be->Describe().rfind("cuda:0 (", 0), 0u) << be->Describe();
  MLA_ASSERT_OK_AND_ASSIGN(const FlatBatch b, MixedBatch());
  ASSERT_EQ(b.prefill_seqs, 2);
  MLA_ASSERT_OK_AND_ASSIGN(const StepIndex index, be->BeginStep(b, kStep));
  const int64_t n = static_cast<int64_t>(b.order.size()), T = b.num_tokens;
  EXPECT_EQ(Download(*be, index.tokens, T), b.tokens);
  EXPECT_EQ(Download(*be, index.positions, T), b.positions);
  EXPECT_EQ(Download(*be, index.slots, T), b.slots);
  EXPECT_EQ(Download(*be, index.sample_rows, 3), b.sample_rows);

  auto expect_same = [&](const char* which, const kernels::RaggedBatch& got,
                         const kernels::RaggedBatch& want) {
    SCOPED_TRACE(which);
    ASSERT_EQ(got.num_seqs, want.num_seqs);
    ASSERT_EQ(got.max_blocks_per_seq, want.max_blocks_per_seq);
    const int64_t s = want.num_seqs, m = want.max_blocks_per_seq;
    EXPECT_EQ(Download(*be, got.q_start, s + 1),
              std::vector<int32_t>(want.q_start, want.q_start + s + 1));
    EXPECT_EQ(Download(*be, got.context_lens, s),
              std::vector<int32_t>(want.context_lens, want.context_lens + s));
    EXPECT_EQ(Download(*be, got.block_tables, s * m),
              std::vector<int32_t>(want.block_tables, want.block_tables + s * m));
  };
  expect_same("prefill", index.prefill, b.Prefill());
  expect_same("decode", index.decode, b.Decode());
  EXPECT_EQ(index.decode.num_seqs, n - 2);
}

TEST(GpuCudaBackend, ScratchStaysValidWhenTheArenaGrows) {
  MLA_SKIP_WITHOUT_GPU();
  std::unique_ptr<Backend> be = MakeBackendOrDie();
  ASSERT_NE(be, nullptr);
  MLA_ASSERT_OK_AND_ASSIGN(const FlatBatch b, MixedBatch());
  for (int step = 0; step < 2; ++step) {
    MLA_ASSERT_OK(be->BeginStep(b, kStep).status());
    std::mt19937 rng(gt::TestSeed());
    const std::vector<float> pattern = gt::RandomNormals(rng, 1000, 1.0f);
    float* early = Upload(*be, pattern);
    ASSERT_NE(early, nullptr);
    // More than the initial 64 MB arena: a new block; `early` must survive.
    MLA_ASSERT_OK_AND_ASSIGN(char* big, be->Scratch<char>(int64_t{200} << 20));
    MLA_ASSERT_OK_AND_ASSIGN(float* late, be->Scratch<float>(7));
    EXPECT_TRUE(Aligned256(early) && Aligned256(big) && Aligned256(late));
    MLA_ASSERT_OK(be->FillBytes(big, 0x5a, int64_t{200} << 20));
    EXPECT_EQ(Download(*be, early, 1000), pattern) << "step " << step;
    EXPECT_EQ(Download(*be, big + (int64_t{200} << 20) - 1, 1), std::vector<char>{0x5a});
  }
}

TEST(GpuCudaBackend, ReleasedScratchIsReused) {
  MLA_SKIP_WITHOUT_GPU();
  std::unique_ptr<Backend> be = StartedBackendOrDie();
  ASSERT_NE(be, nullptr);
  MLA_ASSERT_OK_AND_ASSIGN(float* kept, be->Scratch<float>(100));
  const ScratchMark mark = be->MarkScratch();
  MLA_ASSERT_OK_AND_ASSIGN(float* first, be->Scratch<float>(1000));
  MLA_ASSERT_OK(be->ReleaseScratch(mark));
  MLA_ASSERT_OK_AND_ASSIGN(float* again, be->Scratch<float>(1000));
  EXPECT_EQ(again, first) << "released scratch is handed out again";
  EXPECT_NE(again, kept);
  // Released after the arena grew: the new block is free again, the old pieces stay valid.
  MLA_ASSERT_OK(be->FillBytes(kept, 0x3c, 100 * 4));
  const ScratchMark before_growth = be->MarkScratch();
  MLA_ASSERT_OK_AND_ASSIGN(char* big, be->Scratch<char>(int64_t{300} << 20));
  MLA_ASSERT_OK(be->ReleaseScratch(before_growth));
  MLA_ASSERT_OK_AND_ASSIGN(char* after, be->Scratch<char>(int64_t{300} << 20));
  EXPECT_EQ(after, big) << "the grown block's start is handed out again";
  EXPECT_EQ(Download(*be, reinterpret_cast<const uint32_t*>(kept), 100),
            std::vector<uint32_t>(100, 0x3c3c3c3cu));
}

TEST(GpuCudaBackend, LinearIsTheSameAtAnyAlignment) {
  MLA_SKIP_WITHOUT_GPU();
  std::unique_ptr<Backend> be = StartedBackendOrDie();
  ASSERT_NE(be, nullptr);
  std::mt19937 rng(gt::TestSeed());
  const int64_t rows = 5, in = 64, out = 24;
  const std::vector<float> x = gt::RandomNormals(rng, rows * in, 1.0f);
  std::vector<float> x_rounded(x.size());
  for (size_t i = 0; i < x.size(); ++i) x_rounded[i] = RoundToBf16(x[i]);
  // The weight at element 1 of its allocation: 2 bytes past an aligned address.
  std::vector<bf16> w = gt::ToBf16(gt::RandomNormals(rng, out * in + 1, 0.125f));
  std::vector<float> ref(rows * out);
  kernels::cpu::Linear(x_rounded.data(), w.data() + 1, rows, in, out, ref.data());
  MLA_ASSERT_OK_AND_ASSIGN(Array<bf16> d_w, be->Place(w));
  const float* d_x = Upload(*be, x);
  MLA_ASSERT_OK_AND_ASSIGN(float* y, be->Scratch<float>(rows * out + 1));
  for (int64_t offset : {0, 1}) {  // aligned and misaligned output
    MLA_ASSERT_OK(be->FillBytes(y, 0xff, (rows * out + 1) * 4));
    MLA_ASSERT_OK(be->Linear(d_x, d_w.data() + 1, rows, in, out, y + offset));
    gt::ExpectClose("Linear, output offset " + std::to_string(offset),
                    Download(*be, y + offset, rows * out), ref,
                    {.rel_l2 = 1e-4, .atol = 1e-4 * gt::Rms(ref), .rtol = 1e-4});
  }
  // Into a float partial: the same op.
  MLA_ASSERT_OK_AND_ASSIGN(const Partial p, be->ScratchPartial(rows * out));
  MLA_ASSERT_OK_AND_ASSIGN(float* from_partial, be->Scratch<float>(rows * out));
  MLA_ASSERT_OK(be->ZeroPartial(p));
  MLA_ASSERT_OK(be->PartialToFloat(p, from_partial));
  EXPECT_EQ(Download(*be, from_partial, rows * out), std::vector<float>(rows * out, 0.0f));
  MLA_ASSERT_OK(be->Linear(d_x, d_w.data() + 1, rows, in, out, p));
  MLA_ASSERT_OK(be->PartialToFloat(p, from_partial));
  gt::ExpectClose("Linear into a partial", Download(*be, from_partial, rows * out), ref,
                  {.rel_l2 = 1e-4, .atol = 1e-4 * gt::Rms(ref), .rtol = 1e-4});
}

// LinearF32 keeps x in float32 and widens the weight exactly: cpu::Linear's function, only the
// summation order differs (fp32 math: relative L2 <= 1e-5). Its float32 weight copy belongs to
// the weight: a new weight at a freed one's address is widened afresh.
TEST(GpuCudaBackend, LinearF32IsTheCpuLinearInFloat32) {
  MLA_SKIP_WITHOUT_GPU();
  std::unique_ptr<Backend> be = StartedBackendOrDie();
  ASSERT_NE(be, nullptr);
  std::mt19937 rng(gt::TestSeed());
  const int64_t rows = 7, in = 256, out = 40;
  const std::vector<float> x = gt::RandomNormals(rng, rows * in, 1.0f);
  const float* d_x = Upload(*be, x);
  MLA_ASSERT_OK_AND_ASSIGN(float* y, be->Scratch<float>(rows * out));
  for (int round = 0; round < 3; ++round) {
    const std::vector<bf16> w = gt::ToBf16(gt::RandomNormals(rng, out * in, 0.125f));
    std::vector<float> ref(rows * out);
    kernels::cpu::Linear(x.data(), w.data(), rows, in, out, ref.data());
    MLA_ASSERT_OK_AND_ASSIGN(const Array<bf16> d_w, be->Place(w));
    MLA_ASSERT_OK(be->FillBytes(y, 0xff, rows * out * 4));
    MLA_ASSERT_OK(be->LinearF32(d_x, d_w, rows, in, out, y));
    gt::ExpectClose("LinearF32, weight " + std::to_string(round), Download(*be, y, rows * out),
                    ref, {.rel_l2 = 1e-5, .atol = 1e-5 * gt::Rms(ref), .rtol = 1e-5});
  }  // each round's weight is freed: the next may take its address
}

TEST(GpuCudaBackend, CopiesGathersAddsAndSamples) {
  MLA_SKIP_WITHOUT_GPU();
  std::unique_ptr<Backend> be = StartedBackendOrDie();
  ASSERT_NE(be, nullptr);
  std::mt19937 rng(gt::TestSeed());
  const std::vector<float> src = gt::RandomNormals(rng, 3 * 7, 1.0f);
  std::vector<float> want(3 * 6, -1.0f);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 5; ++c) want[r * 6 + c] = src[r * 7 + c];
  }
  float* d_src = Upload(*be, src);
  float* d_dst = Upload(*be, std::vector<float>(3 * 6, -1.0f));
  MLA_ASSERT_OK(be->Copy2D(d_src, 7, 3, 5, d_dst, 6));
  EXPECT_EQ(Download(*be, d_dst, 3 * 6), want);

  const std::vector<int32_t> index = {9, 2, 3, 11};  // rows 2, 0, 0, 2 of src as [3, 7]
  MLA_ASSERT_OK_AND_ASSIGN(float* gathered, be->Scratch<float>(4 * 7));
  MLA_ASSERT_OK(be->GatherRows(d_src, Upload(*be, index), 4, 4, 7, gathered));
  std::vector<float> want_rows;
  for (int32_t i : index) want_rows.insert(want_rows.end(), &src[i / 4 * 7], &src[i / 4 * 7 + 7]);
  EXPECT_EQ(Download(*be, gathered, 4 * 7), want_rows);

  std::vector<float> sum = want_rows;
  for (size_t i = 0; i < sum.size(); ++i) sum[i] += src[i % src.size()];
  MLA_ASSERT_OK(be->Add(d_src, 3 * 7, gathered));
  MLA_ASSERT_OK(be->Add(d_src, 7, gathered + 3 * 7));
  EXPECT_EQ(Download(*be, gathered, 4 * 7), sum);

  // Greedy rows: the argmax, the lowest id on a tie.
  const int64_t rows = 3, vocab = 1000;
  std::vector<float> logits = gt::RandomNormals(rng, rows * vocab, 2.0f);
  logits[0 * vocab + 17] = 50.0f;
  logits[1 * vocab + 999] = 50.0f;
  logits[2 * vocab + 400] = 50.0f;
  logits[2 * vocab + 300] = 50.0f;
  MLA_ASSERT_OK_AND_ASSIGN(
      const std::vector<int32_t> tokens,
      be->Sample(Upload(*be, logits), rows, vocab, std::vector<kernels::SamplingParams>(rows),
                 std::vector<uint64_t>(rows, 0)));
  EXPECT_EQ(tokens, (std::vector<int32_t>{17, 999, 300}));
}

TEST(GpuCudaBackend, AttentionOutsideThePlannedStepIsRefused) {
  MLA_SKIP_WITHOUT_GPU();
  std::unique_ptr<Backend> be = MakeBackendOrDie();
  ASSERT_NE(be, nullptr);
  kernels::MlaDecodeParams params{.dims = {.heads = 16, .d_latent = 512, .d_rope = 64}};
  absl::Status s = be->MlaDecodeAttention(params);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  MLA_ASSERT_OK_AND_ASSIGN(const FlatBatch b, MixedBatch());
  MLA_ASSERT_OK_AND_ASSIGN(const StepIndex index, be->BeginStep(b, kStep));
  params.batch = index.prefill;  // not the decode rows
  s = be->MlaDecodeAttention(params);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("is not this step's StepIndex::decode"), std::string::npos) << s;
  params.batch = index.decode;
  params.dims.heads = 32;  // BeginStep planned for 16
  s = be->MlaDecodeAttention(params);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("planned the step for 16 heads"), std::string::npos) << s;
  kernels::MlaPrefillParams prefill{.dims = params.dims, .batch = index.decode};
  s = be->MlaPrefillAttention(prefill);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("is not this step's StepIndex::prefill"), std::string::npos) << s;
  // A step with decodes needs the head count to plan them.
  s = be->BeginStep(b, StepOptions{}).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(s.message().find("attention.heads"), std::string::npos) << s;
}

// Three decodes of a GraphShape; `base` shifts the tokens.
FlatBatch DecodeBatch(int32_t base) {
  ModelConfig c;
  c.vocab_size = 100;
  c.max_position_embeddings = 4096;
  StepBatch batch;
  for (int32_t i = 0; i < 3; ++i) {
    batch.seqs.push_back({.seq_id = i, .tokens = {base + i}, .start_pos = 5 * i,
                          .block_table = {i}, .sample = true});
  }
  absl::StatusOr<FlatBatch> b = FlattenBatch(batch, c, /*num_blocks=*/4);
  EXPECT_TRUE(b.ok()) << b.status();
  PadToGraphShape(*b, *GraphShapeFor(*b, 64));
  return *std::move(b);
}

TEST(GpuCudaBackend, RecordedStepReplaysOnALaterStepsArrays) {
  MLA_SKIP_WITHOUT_GPU();
  std::unique_ptr<Backend> be = MakeBackendOrDie();
  ASSERT_NE(be, nullptr);
  ASSERT_TRUE(be->CanCaptureSteps());
  const int64_t vocab = 100, dim = 8;
  std::vector<bf16> table(vocab * dim);
  for (int64_t i = 0; i < vocab * dim; ++i) table[i] = FloatToBf16(static_cast<float>(i));
  MLA_ASSERT_OK_AND_ASSIGN(const Array<bf16> d_table, be->Place(table));
  const StepOptions graphed{.attention = kStep.attention, .graph_shape = true};
  auto want = [&](const FlatBatch& b) {  // Embed of every row, then doubled by Add
    std::vector<float> rows;
    for (int32_t t : b.tokens) {
      for (int64_t c = 0; c < dim; ++c) rows.push_back(2.0f * Bf16ToFloat(table[t * dim + c]));
    }
    return rows;
  };

  // Record: the ops run only when replayed.
  const FlatBatch first = DecodeBatch(10);
  const GraphShape shape = *GraphShapeFor(first, 64);
  MLA_ASSERT_OK_AND_ASSIGN(StepIndex index, be->BeginStep(first, graphed));
  MLA_ASSERT_OK_AND_ASSIGN(float* out, be->Scratch<float>(4 * dim));
  MLA_ASSERT_OK(be->FillBytes(out, 0xff, 4 * dim * 4));
  MLA_ASSERT_OK(be->BeginCapture());
  MLA_ASSERT_OK(be->Embed(d_table.data(), index.tokens, 4, dim, 0, vocab, out));
  MLA_ASSERT_OK(be->Add(out, 4 * dim, out));
  MLA_ASSERT_OK_AND_ASSIGN(bool kept, be->EndCapture(shape, true));
  ASSERT_TRUE(kept);
  std::vector<float> got = Download(*be, out, 4 * dim);
  EXPECT_TRUE(std::isnan(got[0])) << "recording ran the ops";
  MLA_ASSERT_OK_AND_ASSIGN(bool replayed, be->Replay(shape));
  ASSERT_TRUE(replayed);
  EXPECT_EQ(Download(*be, out, 4 * dim), want(first));

  // A later step of the same shape: its own tokens, the same addresses.
  const FlatBatch second = DecodeBatch(40);
  MLA_ASSERT_OK_AND_ASSIGN(index, be->BeginStep(second, graphed));
  MLA_ASSERT_OK_AND_ASSIGN(replayed, be->Replay(shape));
  ASSERT_TRUE(replayed);
  EXPECT_EQ(Download(*be, out, 4 * dim), want(second));
  // Scratch handed out after a replay does not overlap what the replay wrote.
  MLA_ASSERT_OK_AND_ASSIGN(float* after, be->Scratch<float>(1));
  EXPECT_TRUE(after >= out + 4 * dim || after + 1 <= out);

  // A recording that is not kept leaves nothing to replay, and ran nothing.
  MLA_ASSERT_OK_AND_ASSIGN(index, be->BeginStep(first, graphed));
  MLA_ASSERT_OK(be->BeginCapture());
  MLA_ASSERT_OK(be->FillBytes(out, 0, 4 * dim * 4));
  MLA_ASSERT_OK_AND_ASSIGN(kept, be->EndCapture(GraphShape{.tokens = 2, .max_blocks = 1}, false));
  EXPECT_FALSE(kept);
  MLA_ASSERT_OK_AND_ASSIGN(replayed, be->Replay(GraphShape{.tokens = 2, .max_blocks = 1}));
  EXPECT_FALSE(replayed);
  EXPECT_EQ(Download(*be, out, 4 * dim), want(second));

  // The arena grows (a new block): the recording's memory moved, so it is dropped.
  MLA_ASSERT_OK(be->Scratch<char>(int64_t{512} << 20).status());
  MLA_ASSERT_OK_AND_ASSIGN(index, be->BeginStep(first, graphed));
  MLA_ASSERT_OK_AND_ASSIGN(replayed, be->Replay(shape));
  EXPECT_FALSE(replayed);
}

}  // namespace
}  // namespace mla
