#include "worker/service/shard_loader.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/config_hash.h"
#include "worker/status_macros.h"

namespace mla::worker_service {

absl::StatusOr<std::unique_ptr<Model>> MakeModel(const Checkpoint& checkpoint,
                                                 const v1::Assignment& assignment) {
  ShardSpec shard;
  shard.layer_begin = assignment.first_layer();
  shard.layer_end = assignment.end_layer();
  shard.tp_rank = assignment.tp_rank();
  shard.tp_size = assignment.tp_size();
  return Model::Load(checkpoint, shard);
}

absl::StatusOr<LoadedShard> LoadShard(const std::string& checkpoint_dir,
                                      const v1::Assignment& assignment,
                                      const CacheSizing& sizing) {
  MLA_ASSIGN_OR_RETURN(const std::string config_json, ReadConfigJson(checkpoint_dir));
  const std::string hash = ConfigHash(config_json);
  if (!assignment.config_hash().empty() && assignment.config_hash() != hash) {
    return absl::FailedPreconditionError(
        absl::StrCat(checkpoint_dir, "/config.json has hash ", hash, "; the group serves ",
                     assignment.config_hash()));
  }
  LoadedShard shard;
  MLA_ASSIGN_OR_RETURN(shard.checkpoint, Checkpoint::Open(checkpoint_dir));
  MLA_ASSIGN_OR_RETURN(shard.model, MakeModel(*shard.checkpoint, assignment));
  const ModelConfig& c = shard.model->config();
  const int64_t layers = shard.model->num_local_layers();

  int64_t blocks = sizing.requested_blocks > 0 ? sizing.requested_blocks : sizing.flag_blocks;
  if (blocks <= 0) {
    blocks = LatentCachePool::BlocksForBytes(sizing.memory_bytes, layers, c.kv_lora_rank,
                                             c.qk_rope_head_dim);
  }
  if (blocks < 1 || blocks >= (int64_t{1} << 31)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache of ", blocks, " blocks for ", layers, " layers; need between 1 and 2^31 - 1 "
        "(raise --cache_memory_mb or set --num_cache_blocks)"));
  }
  shard.cache = std::make_unique<LatentCachePool>(layers, blocks, c.kv_lora_rank,
                                                  c.qk_rope_head_dim);

  int64_t params = 0;
  for (int64_t l = assignment.first_layer(); l < assignment.end_layer(); ++l) {
    params += c.LayerParams(l);
  }
  if (assignment.stage() == 0) params += c.vocab_size * c.hidden_size;  // embedding
  if (assignment.stage() + 1 == assignment.pp_size()) {
    params += c.vocab_size * c.hidden_size + c.hidden_size;  // lm_head, final norm
  }
  shard.weight_bytes = 2 * params / std::max(1, assignment.tp_size());
  return shard;
}

}  // namespace mla::worker_service
