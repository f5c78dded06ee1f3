#include "worker/service/shard_loader.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/config_hash.h"
#include "worker/cpu_backend.h"
#include "worker/service/backend_factory.h"
#include "worker/service/rendezvous_client.h"
#include "worker/status_macros.h"

namespace mla::worker_service {

absl::Status MakeModel(const v1::Assignment& a, const CollectiveOptions& options,
                       std::shared_ptr<Backend> backend, LoadedShard* shard) {
  ModelComms comms;
  if (a.tp_size() * a.pp_size() > 1) {
    GroupJoin join{.device = backend->device(),
                   .gloo_host = options.gloo_host,
                   .timeout = absl::ToChronoMilliseconds(options.timeout)};
    if (join.device < 0 && join.gloo_host.empty()) {
      MLA_ASSIGN_OR_RETURN(join.gloo_host, LocalAddressToward(options.coordinator));
    }
    const std::string& store_address = a.rendezvous().store_address();
    RendezvousClient store(store_address.empty() ? options.coordinator : store_address,
                           absl::ToChronoMilliseconds(options.meet_timeout));
    auto connect = [&](const std::string& group, int rank, int size) -> absl::Status {
      join.key = a.rendezvous().key_prefix() + group;
      join.rank = rank;
      join.size = size;
      MLA_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> c, JoinGroup(store, join));
      shard->communicators.push_back(std::move(c));
      return absl::OkStatus();
    };
    // Groups in a fixed order on every rank: pipeline links of earlier stages first, so that
    // no two ranks wait on each other's later group.
    if (a.stage() > 0) {
      MLA_RETURN_IF_ERROR(connect(absl::StrCat("pp", a.stage() - 1, "/", a.tp_rank()), 1, 2));
      comms.pp_prev = shard->communicators.back().get();
    }
    if (a.tp_size() > 1) {
      MLA_RETURN_IF_ERROR(connect(absl::StrCat("tp", a.stage()), a.tp_rank(), a.tp_size()));
      comms.tp = shard->communicators.back().get();
    }
    if (a.stage() + 1 < a.pp_size()) {
      MLA_RETURN_IF_ERROR(connect(absl::StrCat("pp", a.stage(), "/", a.tp_rank()), 0, 2));
      comms.pp_next = shard->communicators.back().get();
    }
  }
  const ShardSpec spec{.layer_begin = a.first_layer(),
                       .layer_end = a.end_layer(),
                       .tp_rank = a.tp_rank(),
                       .tp_size = a.tp_size()};
  MLA_ASSIGN_OR_RETURN(shard->model,
                       Model::Load(*shard->checkpoint, spec, comms, std::move(backend)));
  return absl::OkStatus();
}

absl::StatusOr<LoadedShard> LoadShard(const std::string& checkpoint_dir,
                                      const v1::Assignment& assignment,
                                      const CacheSizing& sizing,
                                      const CollectiveOptions& collectives,
                                      std::shared_ptr<Backend> backend,
                                      std::unique_ptr<Checkpoint> reuse) {
  MLA_ASSIGN_OR_RETURN(const std::string config_json, ReadConfigJson(checkpoint_dir));
  const std::string hash = ConfigHash(config_json);
  if (!assignment.config_hash().empty() && assignment.config_hash() != hash) {
    return absl::FailedPreconditionError(
        absl::StrCat(checkpoint_dir, "/config.json has hash ", hash, "; the group serves ",
                     assignment.config_hash()));
  }
  LoadedShard shard;
  if (reuse != nullptr) {
    shard.checkpoint = std::move(reuse);
  } else {
    MLA_ASSIGN_OR_RETURN(shard.checkpoint, Checkpoint::Open(checkpoint_dir));
  }
  if (backend == nullptr) backend = MakeCpuBackend();
  MLA_RETURN_IF_ERROR(MakeModel(assignment, collectives, std::move(backend), &shard));
  const ModelConfig& c = shard.model->config();
  const int64_t layers = shard.model->num_local_layers();

  int64_t blocks = sizing.requested_blocks > 0 ? sizing.requested_blocks : sizing.flag_blocks;
  if (blocks <= 0) {
    int64_t bytes = sizing.memory_bytes;
    if (shard.model->backend().device() >= 0) {  // a share of what the weights left free
      MLA_ASSIGN_OR_RETURN(const int64_t free, shard.model->backend().FreeMemoryBytes());
      bytes = static_cast<int64_t>(static_cast<double>(free) * sizing.device_fraction);
    }
    blocks = LatentCachePool::BlocksForBytes(bytes, layers, c.kv_lora_rank, c.qk_rope_head_dim);
  }
  if (blocks < 1 || blocks >= (int64_t{1} << 31)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cache of ", blocks, " blocks for ", layers, " layers; need between 1 and 2^31 - 1 "
        "(raise --cache_memory_mb / --cache_memory_fraction or set --num_cache_blocks)"));
  }
  MLA_ASSIGN_OR_RETURN(shard.cache, shard.model->NewCache(blocks));

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
