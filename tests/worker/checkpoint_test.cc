// Tests for worker/checkpoint: sharded (indexed) and unindexed directories, missing files and
// duplicate names, shape-mismatch messages, dtype conversion, and row / column slices.
#include "worker/checkpoint.h"

#include <stdlib.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

using ::testing::HasSubstr;

// The tiny preset in DeepSeek-V3 config.json form.
constexpr char kTinyConfig[] = R"({
  "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
  "vocab_size": 1024, "hidden_size": 256, "intermediate_size": 512,
  "moe_intermediate_size": 64, "num_hidden_layers": 4, "first_k_dense_replace": 1,
  "moe_layer_freq": 1, "num_attention_heads": 8, "num_key_value_heads": 8,
  "q_lora_rank": 96, "kv_lora_rank": 64, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16,
  "v_head_dim": 32, "n_routed_experts": 8, "n_shared_experts": 1, "num_experts_per_tok": 2,
  "n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5, "norm_topk_prob": true,
  "scoring_func": "sigmoid", "topk_method": "noaux_tc", "hidden_act": "silu",
  "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
  "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 128,
                   "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
  "max_position_embeddings": 5120, "bos_token_id": 0, "eos_token_id": 1,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16"
})";

struct Tensor {
  TensorSpec spec;
  std::vector<uint8_t> bytes;
};

std::string MakeTempDir() {
  std::string pattern = testing::TempDir() + "/checkpoint_test_XXXXXX";
  EXPECT_NE(mkdtemp(pattern.data()), nullptr);
  return pattern;
}

void WriteText(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(text.data(), 1, text.size(), f), text.size());
  ASSERT_EQ(std::fclose(f), 0);
}

void WriteTensors(const std::string& path, const std::vector<Tensor>& tensors) {
  std::vector<TensorSpec> specs;
  for (const Tensor& t : tensors) specs.push_back(t.spec);
  auto writer = SafetensorsWriter::Create(path, specs);
  ASSERT_TRUE(writer.ok()) << writer.status();
  for (const Tensor& t : tensors) {
    ASSERT_TRUE((*writer)->Write(t.spec.name, t.bytes.data(), t.bytes.size()).ok());
  }
  ASSERT_TRUE((*writer)->Finish().ok());
}

// A tensor of random finite values of `dtype` (seeded by its name's length and dims).
Tensor RandomTensor(const std::string& name, DType dtype, std::vector<int64_t> shape,
                    uint32_t seed) {
  Tensor t{{name, dtype, std::move(shape)}, {}};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-3.0f, 3.0f);
  const int64_t numel = t.spec.nbytes() / DTypeSize(dtype);
  for (int64_t i = 0; i < numel; ++i) {
    const float f = value(rng);
    uint8_t buf[4];
    switch (dtype) {
      case DType::kF32:
        std::memcpy(buf, &f, 4);
        break;
      case DType::kBF16: {
        const bf16 b = FloatToBf16(f);
        std::memcpy(buf, &b.bits, 2);
        break;
      }
      case DType::kF16:  // random finite half: exponent field below 0x1f
      case DType::kF8E4M3: {  // any byte except the two NaNs
        uint16_t h = static_cast<uint16_t>(rng());
        if (dtype == DType::kF16 && ((h >> 10) & 0x1f) == 0x1f) h &= 0xbfff;
        if (dtype == DType::kF8E4M3 && (h & 0x7f) == 0x7f) h &= 0xfe;
        std::memcpy(buf, &h, 2);
        break;
      }
    }
    t.bytes.insert(t.bytes.end(), buf, buf + DTypeSize(dtype));
  }
  return t;
}

std::string Index(const std::vector<std::pair<std::string, std::string>>& weight_map) {
  std::string text = R"({"metadata": {"total_size": 0}, "weight_map": {)";
  for (size_t i = 0; i < weight_map.size(); ++i) {
    text += (i ? ", " : "") + ("\"" + weight_map[i].first + "\": \"" + weight_map[i].second + "\"");
  }
  return text + "}}";
}

// Two shards: a.w (F32) and a.b (BF16) in shard 1, b.w (F16) and b.q (F8) in shard 2.
std::string MakeShardedDir() {
  const std::string dir = MakeTempDir();
  WriteText(dir + "/config.json", kTinyConfig);
  WriteTensors(dir + "/model-00001-of-00002.safetensors",
               {RandomTensor("a.w", DType::kF32, {6, 10}, 1),
                RandomTensor("a.b", DType::kBF16, {7}, 2)});
  WriteTensors(dir + "/model-00002-of-00002.safetensors",
               {RandomTensor("b.w", DType::kF16, {5, 9}, 3),
                RandomTensor("b.q", DType::kF8E4M3, {4, 11}, 4)});
  WriteText(dir + "/model.safetensors.index.json",
            Index({{"a.w", "model-00001-of-00002.safetensors"},
                   {"a.b", "model-00001-of-00002.safetensors"},
                   {"b.w", "model-00002-of-00002.safetensors"},
                   {"b.q", "model-00002-of-00002.safetensors"}}));
  return dir;
}

TEST(Checkpoint, OpensShardedDirectoryThroughIndex) {
  const std::string dir = MakeShardedDir();
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->dir(), dir);
  EXPECT_EQ((*ckpt)->config().hidden_size, 256);
  EXPECT_EQ((*ckpt)->config().n_routed_experts, 8);
  for (const char* name : {"a.w", "a.b", "b.w", "b.q"}) EXPECT_TRUE((*ckpt)->Has(name)) << name;
  EXPECT_FALSE((*ckpt)->Has("c.w"));
  auto view = (*ckpt)->Get("b.w");
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->dtype, DType::kF16);
  EXPECT_EQ(view->shape, (std::vector<int64_t>{5, 9}));
  auto missing = (*ckpt)->Get("c.w");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("'c.w'"));
}

TEST(Checkpoint, IndexNamingMissingFileIsNotFound) {
  const std::string dir = MakeShardedDir();
  WriteText(dir + "/model.safetensors.index.json",
            Index({{"a.w", "model-00001-of-00002.safetensors"},
                   {"z.w", "model-00003-of-00002.safetensors"}}));
  auto ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ckpt.status().message()), HasSubstr("model-00003-of-00002.safetensors"));
  EXPECT_THAT(std::string(ckpt.status().message()), HasSubstr("missing"));
}

TEST(Checkpoint, IndexedTensorAbsentFromItsFileIsAnError) {
  const std::string dir = MakeShardedDir();
  WriteText(dir + "/model.safetensors.index.json",
            Index({{"a.w", "model-00001-of-00002.safetensors"},
                   {"b.w", "model-00001-of-00002.safetensors"}}));
  auto ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ckpt.status().message()),
              HasSubstr("maps 'b.w' to model-00001-of-00002.safetensors"));
}

TEST(Checkpoint, MalformedIndexIsInvalidArgument) {
  const std::string dir = MakeShardedDir();
  WriteText(dir + "/model.safetensors.index.json", R"({"weight_map": [1]})");
  EXPECT_EQ(Checkpoint::Open(dir).status().code(), absl::StatusCode::kInvalidArgument);
  WriteText(dir + "/model.safetensors.index.json", R"({"weight_map": {"a.w": "../x"}})");
  EXPECT_EQ(Checkpoint::Open(dir).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(Checkpoint, OpensEveryFileWithoutIndex) {
  const std::string dir = MakeShardedDir();
  ASSERT_EQ(std::remove((dir + "/model.safetensors.index.json").c_str()), 0);
  WriteText(dir + "/notes.txt", "not a tensor file");
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  for (const char* name : {"a.w", "a.b", "b.w", "b.q"}) EXPECT_TRUE((*ckpt)->Has(name)) << name;
}

TEST(Checkpoint, DuplicateNameAcrossFilesWithoutIndexIsAnError) {
  const std::string dir = MakeShardedDir();
  ASSERT_EQ(std::remove((dir + "/model.safetensors.index.json").c_str()), 0);
  WriteTensors(dir + "/extra.safetensors", {RandomTensor("b.w", DType::kF32, {1}, 9)});
  auto ckpt = Checkpoint::Open(dir);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ckpt.status().message()), HasSubstr("tensor 'b.w' appears in both"));
  EXPECT_THAT(std::string(ckpt.status().message()), HasSubstr("extra.safetensors"));
  EXPECT_THAT(std::string(ckpt.status().message()), HasSubstr("model-00002-of-00002"));
}

TEST(Checkpoint, MissingConfigOrWeightsIsAnError) {
  const std::string empty = MakeTempDir();
  EXPECT_FALSE(Checkpoint::Open(empty).ok());
  WriteText(empty + "/config.json", kTinyConfig);
  auto ckpt = Checkpoint::Open(empty);
  EXPECT_EQ(ckpt.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ckpt.status().message()),
              HasSubstr("no model.safetensors.index.json and no *.safetensors"));
}

TEST(Checkpoint, ShapeMismatchNamesTensorAndBothShapes) {
  auto ckpt = Checkpoint::Open(MakeShardedDir());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto read = (*ckpt)->ReadBf16("a.w", {10, 6});
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(read.status().message()),
              HasSubstr("tensor 'a.w' has shape [6, 10], expected [10, 6]"));
  EXPECT_FALSE((*ckpt)->ReadFloat("a.b", {7, 1}).ok());
  EXPECT_FALSE((*ckpt)->ReadBf16Columns("b.w", {5}, 0, 1).ok());
  EXPECT_FALSE((*ckpt)->ReadBf16("b.q", {4, 11, 1}, 0, 1).ok());
}

TEST(Checkpoint, FullReadsConvertEveryDtype) {
  const std::string dir = MakeShardedDir();
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const std::vector<std::pair<std::string, std::vector<int64_t>>> all = {
      {"a.w", {6, 10}}, {"a.b", {7}}, {"b.w", {5, 9}}, {"b.q", {4, 11}}};
  for (const auto& [name, shape] : all) {
    SCOPED_TRACE(name);
    auto view = (*ckpt)->Get(name);
    ASSERT_TRUE(view.ok());
    auto floats = (*ckpt)->ReadFloat(name, shape);
    auto bf = (*ckpt)->ReadBf16(name, shape);
    ASSERT_TRUE(floats.ok() && bf.ok()) << floats.status() << bf.status();
    ASSERT_EQ(static_cast<int64_t>(floats->size()), view->numel());
    ASSERT_EQ(static_cast<int64_t>(bf->size()), view->numel());
    const int64_t size = DTypeSize(view->dtype);
    for (int64_t i = 0; i < view->numel(); ++i) {
      const float want = ElementToFloat(view->dtype, view->data + i * size);
      ASSERT_EQ((*floats)[i], want) << i;
      ASSERT_EQ((*bf)[i].bits, FloatToBf16(want).bits) << i;
    }
  }
  // BF16 is copied bit for bit.
  auto view = (*ckpt)->Get("a.b");
  auto bf = (*ckpt)->ReadBf16("a.b", {7});
  ASSERT_TRUE(view.ok() && bf.ok());
  EXPECT_EQ(std::memcmp(bf->data(), view->data, 14), 0);
}

TEST(Checkpoint, RowAndColumnSlicesMatchFullRead) {
  auto ckpt = Checkpoint::Open(MakeShardedDir());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  const std::vector<std::pair<std::string, std::vector<int64_t>>> mats = {
      {"a.w", {6, 10}}, {"b.w", {5, 9}}, {"b.q", {4, 11}}};
  for (const auto& [name, shape] : mats) {
    SCOPED_TRACE(name);
    const int64_t rows = shape[0], cols = shape[1];
    auto full = (*ckpt)->ReadBf16(name, shape);
    ASSERT_TRUE(full.ok()) << full.status();
    for (auto [r0, r1] : {std::pair<int64_t, int64_t>{0, rows}, {1, 3}, {rows - 1, rows}, {2, 2}}) {
      auto part = (*ckpt)->ReadBf16(name, shape, r0, r1);
      ASSERT_TRUE(part.ok()) << part.status();
      ASSERT_EQ(static_cast<int64_t>(part->size()), (r1 - r0) * cols);
      for (int64_t i = 0; i < (r1 - r0) * cols; ++i) {
        ASSERT_EQ((*part)[i].bits, (*full)[r0 * cols + i].bits) << r0 << " " << i;
      }
    }
    for (auto [c0, c1] : {std::pair<int64_t, int64_t>{0, cols}, {3, 7}, {cols - 1, cols}}) {
      auto part = (*ckpt)->ReadBf16Columns(name, shape, c0, c1);
      ASSERT_TRUE(part.ok()) << part.status();
      ASSERT_EQ(static_cast<int64_t>(part->size()), rows * (c1 - c0));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = c0; c < c1; ++c) {
          ASSERT_EQ((*part)[r * (c1 - c0) + (c - c0)].bits, (*full)[r * cols + c].bits);
        }
      }
    }
  }
  auto vec = (*ckpt)->ReadBf16("a.b", {7}, 2, 5);
  auto vec_full = (*ckpt)->ReadBf16("a.b", {7});
  ASSERT_TRUE(vec.ok() && vec_full.ok());
  ASSERT_EQ(vec->size(), 3u);
  EXPECT_EQ((*vec)[0].bits, (*vec_full)[2].bits);
  EXPECT_EQ((*vec)[2].bits, (*vec_full)[4].bits);
}

TEST(Checkpoint, OutOfRangeSlicesAreRejected) {
  auto ckpt = Checkpoint::Open(MakeShardedDir());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto rows = (*ckpt)->ReadBf16("a.w", {6, 10}, 4, 7);
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(rows.status().message()),
              HasSubstr("tensor 'a.w': rows [4, 7) out of range for shape [6, 10]"));
  EXPECT_FALSE((*ckpt)->ReadBf16("a.w", {6, 10}, -1, 2).ok());
  EXPECT_FALSE((*ckpt)->ReadBf16("a.w", {6, 10}, 3, 2).ok());
  auto cols = (*ckpt)->ReadBf16Columns("a.w", {6, 10}, 8, 11);
  EXPECT_THAT(std::string(cols.status().message()), HasSubstr("columns [8, 11) out of range"));
  auto one_d = (*ckpt)->ReadBf16Columns("a.b", {7}, 0, 1);
  EXPECT_THAT(std::string(one_d.status().message()), HasSubstr("need a 2-D tensor"));
}

}  // namespace
}  // namespace mla
