// Tests for worker/safetensors: writer/reader round trip, every header corruption the reader
// must reject (with its message), truncation, and random byte flips that must never crash.
#include "worker/safetensors.h"

#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mla {
namespace {

using ::testing::HasSubstr;

std::string MakeTempDir() {
  std::string pattern = testing::TempDir() + "/safetensors_test_XXXXXX";
  char* dir = mkdtemp(pattern.data());
  EXPECT_NE(dir, nullptr);
  return pattern;
}

std::vector<std::byte> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> chars((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(chars.size());
  std::memcpy(bytes.data(), chars.data(), chars.size());
  return bytes;
}

void WriteAll(const std::string& path, const std::byte* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  if (size > 0) {
    ASSERT_EQ(std::fwrite(data, 1, size, f), size);
  }
  ASSERT_EQ(std::fclose(f), 0);
}

// An image with the given 8-byte length field, header text and `data_size` data bytes.
std::vector<std::byte> ImageWithLength(uint64_t length, const std::string& header,
                                       size_t data_size) {
  std::vector<std::byte> image(8 + header.size() + data_size, std::byte{0x5A});
  for (int i = 0; i < 8; ++i) image[i] = static_cast<std::byte>((length >> (8 * i)) & 0xff);
  std::memcpy(image.data() + 8, header.data(), header.size());
  return image;
}

std::vector<std::byte> Image(const std::string& header, size_t data_size) {
  return ImageWithLength(header.size(), header, data_size);
}

absl::Status Parse(const std::vector<std::byte>& image) {
  return SafetensorsFile::FromBytes(image.data(), image.size(), "model.safetensors").status();
}

void ExpectError(const std::vector<std::byte>& image, absl::StatusCode code,
                 const std::string& fragment) {
  absl::Status s = Parse(image);
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(fragment));
  EXPECT_THAT(std::string(s.message()), HasSubstr("model.safetensors"));
}

void ExpectInvalid(const std::string& header, size_t data_size, const std::string& fragment) {
  SCOPED_TRACE(header);
  ExpectError(Image(header, data_size), absl::StatusCode::kInvalidArgument, fragment);
}

// Writes a file with five tensors of every dtype, odd sizes so later offsets are unaligned.
struct Sample {
  std::vector<TensorSpec> specs;
  std::vector<std::vector<uint8_t>> payloads;
};

Sample MakeSample() {
  Sample s;
  s.specs = {{"w.a", DType::kF32, {2, 3}},
             {"w.b", DType::kBF16, {5}},
             {"w.c", DType::kF8E4M3, {3}},
             {"empty", DType::kF32, {0, 4}},
             {"a.last", DType::kF16, {2, 2}}};
  std::mt19937 rng(7);
  for (const TensorSpec& spec : s.specs) {
    std::vector<uint8_t> bytes(spec.nbytes());
    for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng());
    s.payloads.push_back(bytes);
  }
  return s;
}

std::string WriteSample(const std::string& path, const Sample& s) {
  auto writer = SafetensorsWriter::Create(path, s.specs, {{"format", "pt"}, {"seed", "7"}});
  EXPECT_TRUE(writer.ok()) << writer.status();
  for (size_t i = 0; i < s.specs.size(); ++i) {
    EXPECT_TRUE((*writer)->Write(s.specs[i].name, s.payloads[i].data(), s.payloads[i].size()).ok());
  }
  EXPECT_TRUE((*writer)->Finish().ok());
  return path;
}

TEST(Safetensors, RoundTripBytesShapesDtypesMetadata) {
  const Sample sample = MakeSample();
  const std::string path = WriteSample(MakeTempDir() + "/rt.safetensors", sample);
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->path(), path);
  EXPECT_THAT((*file)->Names(), ::testing::ElementsAre("a.last", "empty", "w.a", "w.b", "w.c"));
  const std::map<std::string, std::string> want_meta = {{"format", "pt"}, {"seed", "7"}};
  EXPECT_EQ((*file)->metadata(), want_meta);
  for (size_t i = 0; i < sample.specs.size(); ++i) {
    const TensorSpec& spec = sample.specs[i];
    auto view = (*file)->Get(spec.name);
    ASSERT_TRUE(view.ok()) << view.status();
    EXPECT_EQ(view->name, spec.name);
    EXPECT_EQ(view->dtype, spec.dtype);
    EXPECT_EQ(view->shape, spec.shape);
    EXPECT_EQ(view->nbytes, spec.nbytes());
    EXPECT_EQ(view->numel() * DTypeSize(spec.dtype), view->nbytes);
    ASSERT_EQ(static_cast<size_t>(view->nbytes), sample.payloads[i].size());
    if (view->nbytes > 0) {
      EXPECT_EQ(std::memcmp(view->data, sample.payloads[i].data(), view->nbytes), 0) << spec.name;
    }
  }
  // Offsets follow spec order: w.c starts at 24 + 10 = 34, a.last at 37 (both unaligned).
  auto a = (*file)->Get("w.a");
  auto last = (*file)->Get("a.last");
  ASSERT_TRUE(a.ok() && last.ok());
  EXPECT_EQ(last->data - a->data, 37);
  uint16_t first_half;
  std::memcpy(&first_half, sample.payloads[4].data(), 2);
  float want = ElementToFloat(DType::kF16, &first_half);
  float got = ElementToFloat(DType::kF16, last->data);
  EXPECT_TRUE((std::isnan(want) && std::isnan(got)) || want == got);
  // The header length is a multiple of 8, so the data section starts aligned.
  const std::vector<std::byte> raw = ReadAll(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, raw.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(raw.size(), 8 + header_len + 24 + 10 + 3 + 0 + 8);
}

TEST(Safetensors, GetMissingTensorIsNotFound) {
  const std::vector<std::byte> image = Image("{}", 0);
  auto file = SafetensorsFile::FromBytes(image.data(), image.size(), "model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  auto view = (*file)->Get("nope");
  EXPECT_EQ(view.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(view.status().message()), HasSubstr("'nope'"));
  EXPECT_THAT(std::string(view.status().message()), HasSubstr("model.safetensors"));
}

TEST(Safetensors, OpenMissingFileIsNotFound) {
  auto file = SafetensorsFile::Open(MakeTempDir() + "/absent.safetensors");
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("absent.safetensors"));
  const std::string dir = MakeTempDir();
  auto not_file = SafetensorsFile::Open(dir);
  EXPECT_EQ(not_file.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(not_file.status().message()), HasSubstr("not a regular file"));
}

TEST(Safetensors, RejectsBadLengthField) {
  ExpectError(std::vector<std::byte>(5), absl::StatusCode::kDataLoss, "shorter than the 8-byte");
  ExpectError(ImageWithLength(100, "{}", 0), absl::StatusCode::kDataLoss, "runs past the end");
  ExpectError(ImageWithLength(uint64_t{1} << 63, "{}", 0), absl::StatusCode::kInvalidArgument,
              "exceeds the limit");
  ExpectError(ImageWithLength((100u << 20) + 1, "{}", 0), absl::StatusCode::kInvalidArgument,
              "exceeds the limit");
  ExpectError(ImageWithLength(~uint64_t{0}, "{}", 0), absl::StatusCode::kInvalidArgument,
              "exceeds the limit");
}

TEST(Safetensors, RejectsBadJson) {
  ExpectInvalid("{\"x\": ", 0, "not valid JSON");
  ExpectInvalid("[1, 2]", 0, "not a JSON object");
  ExpectInvalid("\"str\"", 0, "not a JSON object");
  ExpectInvalid(R"({"x": 3})", 0, "tensor 'x': entry is not a JSON object");
  ExpectInvalid(R"({"x": [1]})", 0, "tensor 'x': entry is not a JSON object");
}

TEST(Safetensors, RejectsBadDtypeAndShape) {
  ExpectInvalid(R"({"x": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})", 8,
                "tensor 'x': unknown dtype 'F64'");
  ExpectInvalid(R"({"x": {"shape": [1], "data_offsets": [0, 4]}})", 4, "tensor 'x': dtype");
  ExpectInvalid(R"({"x": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}})", 4, "dtype");
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": 3, "data_offsets": [0, 12]}})", 12,
                "tensor 'x': shape is missing or not an array");
  ExpectInvalid(R"({"x": {"dtype": "F32", "data_offsets": [0, 12]}})", 12, "shape is missing");
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": [-3], "data_offsets": [0, 12]}})", 12,
                "tensor 'x': shape entry -3 is not a non-negative integer");
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 12]}})", 12,
                "not a non-negative integer");
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": ["3"], "data_offsets": [0, 12]}})", 12,
                "not a non-negative integer");
  ExpectInvalid(
      R"({"x": {"dtype": "F32", "shape": [18446744073709551615], "data_offsets": [0, 4]}})", 4,
      "not a non-negative integer");
  ExpectInvalid(
      R"({"x": {"dtype": "F8_E4M3", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})",
      0, "tensor 'x': shape [4294967296, 4294967296] of F8_E4M3 overflows int64");
  ExpectInvalid(
      R"({"x": {"dtype": "F32", "shape": [2305843009213693952, 2], "data_offsets": [0, 0]}})",
      0, "overflows int64");  // numel fits, numel * 4 does not
}

TEST(Safetensors, RejectsBadDataOffsets) {
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": [1]}})", 4,
                "tensor 'x': data_offsets must be two non-negative integers");
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4]}})", 4,
                "data_offsets must be two");
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})", 8,
                "data_offsets must be two");
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}})", 4,
                "data_offsets must be two");
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": [1], "data_offsets": "0,4"}})", 4,
                "data_offsets must be two");
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 8,
                "tensor 'x': data_offsets [8, 4] have begin > end");
  ExpectInvalid(R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 10]}})", 10,
                "model.safetensors: tensor 'x': data_offsets [0, 10] hold 10 bytes but shape [3] "
                "of F32 needs 12");
  ExpectError(Image(R"({"x": {"dtype": "F32", "shape": [3], "data_offsets": [4, 16]}})", 12),
              absl::StatusCode::kDataLoss,
              "tensor 'x': data_offsets [4, 16] extend past the end of the data section");
  ExpectError(Image(R"({"x": {"dtype": "BF16", "shape": [2],
                          "data_offsets": [9223372036854775803, 9223372036854775807]}})",
                    4),
              absl::StatusCode::kDataLoss, "extend past the end");
}

TEST(Safetensors, RejectsOverlapsAndGaps) {
  ExpectInvalid(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                12, "tensor 'b': data_offsets [4, 12] overlap tensor 'a'");
  ExpectInvalid(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
                8, "overlap tensor 'a'");
  ExpectInvalid(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                    "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                12, "tensor 'b': gap in the data section: bytes [4, 8)");
  ExpectInvalid(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8,
                "gap in the data section: bytes [0, 4)");
  ExpectInvalid(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 9,
                "data section has 9 bytes but tensors cover only 4");
  ExpectInvalid("{}", 1, "data section has 1 bytes but tensors cover only 0");
}

TEST(Safetensors, RejectsBadMetadata) {
  ExpectInvalid(R"({"__metadata__": 3})", 0, "__metadata__ is not a string->string object");
  ExpectInvalid(R"({"__metadata__": {"k": 1}})", 0, "not a string->string object (key 'k')");
  ExpectInvalid(R"({"__metadata__": ["a"]})", 0, "__metadata__");
  const std::vector<std::byte> image = Image(R"({"__metadata__": {"k": "v"}})", 0);
  auto ok = SafetensorsFile::FromBytes(image.data(), image.size(), "model.safetensors");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->metadata().at("k"), "v");
  EXPECT_TRUE((*ok)->Names().empty());
}

TEST(Safetensors, TruncatedFilesAreDataLoss) {
  const std::string dir = MakeTempDir();
  const std::vector<std::byte> full = ReadAll(WriteSample(dir + "/full.safetensors", MakeSample()));
  uint64_t header_len = 0;
  std::memcpy(&header_len, full.data(), 8);
  const size_t lengths[] = {0, 1, 7, 8, 9, 8 + header_len - 1, 8 + header_len,
                            8 + header_len + 5, full.size() - 8, full.size() - 1};
  for (size_t len : lengths) {
    SCOPED_TRACE(len);
    const std::string path = dir + "/cut" + std::to_string(len) + ".safetensors";
    WriteAll(path, full.data(), len);
    auto file = SafetensorsFile::Open(path);
    EXPECT_EQ(file.status().code(), absl::StatusCode::kDataLoss) << file.status();
    EXPECT_THAT(std::string(file.status().message()), HasSubstr(path));
    std::vector<std::byte> prefix(full.begin(), full.begin() + len);
    EXPECT_EQ(Parse(prefix).code(), absl::StatusCode::kDataLoss);
  }
  WriteAll(dir + "/whole.safetensors", full.data(), full.size());
  EXPECT_TRUE(SafetensorsFile::Open(dir + "/whole.safetensors").ok());
}

TEST(Safetensors, RandomByteFlipsNeverCrash) {
  const std::string dir = MakeTempDir();
  const std::vector<std::byte> valid = ReadAll(WriteSample(dir + "/v.safetensors", MakeSample()));
  const uint32_t seed = 20240601;
  std::printf("RandomByteFlipsNeverCrash seed %u\n", seed);
  std::mt19937 rng(seed);
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<std::byte> image = valid;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly flip inside the length field and the header, where the parsing happens.
      const size_t limit = (rng() % 4 == 0) ? image.size() : std::min<size_t>(image.size(), 160);
      image[rng() % limit] ^= static_cast<std::byte>(1u << (rng() % 8));
    }
    if (rng() % 8 == 0) image.resize(rng() % (image.size() + 1));
    auto file = SafetensorsFile::FromBytes(image.data(), image.size(), "fuzz");
    if (!file.ok()) {
      EXPECT_FALSE(file.status().message().empty());
      continue;
    }
    ++accepted;
    int64_t covered = 0;
    for (const std::string& name : (*file)->Names()) {
      auto view = (*file)->Get(name);
      ASSERT_TRUE(view.ok());
      ASSERT_EQ(view->numel() * DTypeSize(view->dtype), view->nbytes);
      ASSERT_GE(view->data, image.data());
      ASSERT_LE(view->data + view->nbytes, image.data() + image.size());
      unsigned sum = 0;
      for (int64_t i = 0; i < view->nbytes; ++i) sum += static_cast<unsigned>(view->data[i]);
      (void)sum;
      covered += view->nbytes;
    }
    ASSERT_LE(covered, static_cast<int64_t>(image.size()));
  }
  std::printf("RandomByteFlipsNeverCrash: %d of 20000 mutated images accepted\n", accepted);
  EXPECT_GT(accepted, 0);  // flips in the data section leave the image valid
}

TEST(Safetensors, WriterRejectsMissingDirectory) {
  auto writer = SafetensorsWriter::Create(MakeTempDir() + "/no/such/dir/x.safetensors",
                                          {{"x", DType::kF32, {1}}});
  EXPECT_EQ(writer.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(writer.status().message()), HasSubstr("no/such/dir/x.safetensors"));
  EXPECT_THAT(std::string(writer.status().message()), HasSubstr("directory exist"));
}

TEST(Safetensors, WriterChecksOrderSizesAndCompleteness) {
  const std::string dir = MakeTempDir();
  auto dup = SafetensorsWriter::Create(dir + "/d.safetensors",
                                       {{"x", DType::kF32, {1}}, {"x", DType::kF32, {1}}});
  EXPECT_THAT(std::string(dup.status().message()), HasSubstr("'x': name appears twice"));
  auto neg = SafetensorsWriter::Create(dir + "/n.safetensors", {{"x", DType::kF32, {-1}}});
  EXPECT_EQ(neg.status().code(), absl::StatusCode::kInvalidArgument);

  auto writer = SafetensorsWriter::Create(dir + "/w.safetensors",
                                          {{"a", DType::kF32, {2}}, {"b", DType::kBF16, {3}}});
  ASSERT_TRUE(writer.ok()) << writer.status();
  const float a[2] = {1.0f, 2.0f};
  const uint16_t b[3] = {0x3F80, 0x4000, 0x4040};
  absl::Status s = (*writer)->Write("b", b, sizeof b);
  EXPECT_THAT(std::string(s.message()), HasSubstr("out of order; expected 'a'"));
  s = (*writer)->Write("a", a, 4);
  EXPECT_THAT(std::string(s.message()), HasSubstr("got 4 bytes but shape [2] of F32 needs 8"));
  ASSERT_TRUE((*writer)->Write("a", a, sizeof a).ok());
  s = (*writer)->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("only 1 of 2 tensors written; next is 'b'"));
  ASSERT_TRUE((*writer)->Write("b", b, sizeof b).ok());
  EXPECT_FALSE((*writer)->Write("c", b, 2).ok());
  ASSERT_TRUE((*writer)->Finish().ok());
  EXPECT_FALSE((*writer)->Finish().ok());

  auto file = SafetensorsFile::Open(dir + "/w.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  auto view = (*file)->Get("b");
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(ElementToFloat(DType::kBF16, view->data + 4), 3.0f);
  EXPECT_TRUE((*file)->metadata().empty());
}

}  // namespace
}  // namespace mla
