// Checkpoint: a Hugging Face model directory (config.json, *.safetensors, optionally sharded
// through model.safetensors.index.json) opened for reading tensors by name.
//
// With an index, every file it names is opened and validated, and each weight must be present
// in the file the index says; without one, every *.safetensors in the directory is opened and a
// name may appear only once. Tensors are read straight from the mappings: loading a slice
// touches only its pages. Const methods are safe from any thread; views live as long as the
// Checkpoint.
#ifndef MLASERVE_WORKER_CHECKPOINT_H_
#define MLASERVE_WORKER_CHECKPOINT_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/bf16.h"
#include "worker/model_config.h"
#include "worker/safetensors.h"

namespace mla {

class Checkpoint {
 public:
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  bool Has(const std::string& name) const;
  absl::StatusOr<TensorView> Get(const std::string& name) const;

  // Reads rows [row_begin, row_end) of a 2-D tensor (or all of a 1-D one with row range
  // [0, n)) as bf16 / float, converting from the stored dtype. Checks the expected full shape
  // first: a mismatch is InvalidArgument naming the tensor, expected and actual shapes.
  absl::StatusOr<std::vector<bf16>> ReadBf16(const std::string& name,
                                             const std::vector<int64_t>& expected_shape,
                                             int64_t row_begin, int64_t row_end) const;
  absl::StatusOr<std::vector<bf16>> ReadBf16(const std::string& name,
                                             const std::vector<int64_t>& expected_shape) const;
  // Columns [col_begin, col_end) of every row of a 2-D tensor (row-parallel shards).
  absl::StatusOr<std::vector<bf16>> ReadBf16Columns(const std::string& name,
                                                    const std::vector<int64_t>& expected_shape,
                                                    int64_t col_begin, int64_t col_end) const;
  absl::StatusOr<std::vector<float>> ReadFloat(const std::string& name,
                                               const std::vector<int64_t>& expected_shape) const;

 private:
  Checkpoint() = default;
  std::string dir_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

}  // namespace mla

#endif  // MLASERVE_WORKER_CHECKPOINT_H_
