"""An independent numpy implementation of the DeepSeek-V3 forward pass, written from
docs MODEL.md (sections 2-5), for cross-checking the C++ model.

It reads a Hugging Face model directory (config.json, *.safetensors, optional
model.safetensors.index.json) and computes full-sequence logits for a token list
in float32: materialised causal attention (MODEL.md 3.2), YaRN RoPE on interleaved
pairs (4.2, 4.4), RMSNorm, sigmoid group-limited routing with the bias used for
selection only (5.2), shared expert, final norm and lm_head.

Conventions chosen to match the project's C++ reference:
- activations are float32; weights are the bf16 values widened to float32;
- the normalised KV latent and the rotated rope key are rounded to bf16 before
  attention uses them (the C++ model stores them in a bf16 cache and reads them
  back); queries are not rounded;
- YaRN inverse frequencies are computed in float64 and stored as float32; angles
  are position * inv_freq in float32.

Usage: python3 deepseek_numpy.py CHECKPOINT_DIR 0,17,923,5
"""

import json
import math
import os
import struct
import sys

import numpy as np


# ---------------------------------------------------------------- checkpoint

class Checkpoint:
    """Tensors of a model directory by name, read lazily as float32 arrays."""

    def __init__(self, directory):
        self.dir = directory
        with open(os.path.join(directory, "config.json")) as f:
            self.config = json.load(f)
        index_path = os.path.join(directory, "model.safetensors.index.json")
        if os.path.exists(index_path):
            with open(index_path) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        else:
            files = sorted(n for n in os.listdir(directory) if n.endswith(".safetensors"))
        self.entries = {}  # name -> (memmap, dtype, shape, begin, end)
        for name in files:
            self._read_header(os.path.join(directory, name))

    def _read_header(self, path):
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(header_len))
        data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + header_len)
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            begin, end = entry["data_offsets"]
            self.entries[name] = (data, entry["dtype"], tuple(entry["shape"]), begin, end)

    def has(self, name):
        return name in self.entries

    def get(self, name):
        data, dtype, shape, begin, end = self.entries[name]
        raw = np.asarray(data[begin:end])
        if dtype == "BF16":
            bits = raw.view("<u2").astype(np.uint32) << 16
            values = bits.view(np.float32)
        elif dtype == "F32":
            values = raw.view("<f4").astype(np.float32)
        else:
            raise ValueError(f"{name}: dtype {dtype} not supported by the reference")
        return values.reshape(shape)


def round_to_bf16(x):
    """Round float32 values to the nearest bf16 (ties to even), returned as float32."""
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16 << 16
    return (rounded & 0xFFFFFFFF).astype(np.uint32).view(np.float32)


# ---------------------------------------------------------------- building blocks

def rms_norm(x, weight, eps):
    """weight * x / sqrt(mean(x^2) + eps), per row, float32 (MODEL.md 2)."""
    x = x.astype(np.float32)
    mean_square = np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32)
    return (x / np.sqrt(mean_square + np.float32(eps))) * weight


def linear(x, weight):
    """y = x W^T with W in PyTorch's [out, in] layout."""
    return x @ weight.T


def silu(x):
    return x / (np.float32(1.0) + np.exp(-x))


def yarn_get_mscale(factor, mscale):
    return 1.0 if factor <= 1.0 else 0.1 * mscale * math.log(factor) + 1.0


def rope_params(cfg):
    """(factor, original length, beta_fast, beta_slow, mscale, mscale_all_dim) with HF defaults."""
    scaling = cfg.get("rope_scaling") or {}
    if not scaling:
        return 1.0, 4096, 32.0, 1.0, 1.0, 0.0
    return (float(scaling["factor"]), scaling.get("original_max_position_embeddings", 4096),
            scaling.get("beta_fast", 32.0), scaling.get("beta_slow", 1.0),
            scaling.get("mscale", 1.0), scaling.get("mscale_all_dim", 0.0))


def yarn_inverse_frequencies(cfg):
    """The d_r/2 inverse frequencies w'_i of MODEL.md 4.2: float64 math, float32 result."""
    dim = cfg["qk_rope_head_dim"]
    theta = float(cfg.get("rope_theta", 10000.0))
    factor, original, beta_fast, beta_slow, _, _ = rope_params(cfg)
    i = np.arange(dim // 2, dtype=np.float64)
    base = theta ** (-2.0 * i / dim)
    if factor <= 1.0:
        return base.astype(np.float32)

    def correction_dim(rotations):
        return dim * math.log(original / (2 * math.pi * rotations)) / (2 * math.log(theta))

    low = max(math.floor(correction_dim(beta_fast)), 0)
    high = min(math.ceil(correction_dim(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((i - low) / (high - low), 0.0, 1.0)
    return (base / factor * ramp + base * (1.0 - ramp)).astype(np.float32)


def softmax_scale(cfg):
    """d_qk^-1/2 * m^2 with m = 0.1 * mscale_all_dim * ln(factor) + 1 (MODEL.md 3.4)."""
    factor, _, _, _, _, mscale_all_dim = rope_params(cfg)
    m = yarn_get_mscale(factor, mscale_all_dim)
    d_qk = cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]
    return np.float32(d_qk ** -0.5 * m * m)


def apply_rope(x, positions, inv_freq, cos_sin_scale):
    """Rotates adjacent pairs (x[2i], x[2i+1]) by positions * inv_freq (MODEL.md 4.4).

    x: [tokens, ..., d_r]; positions: [tokens]."""
    angles = positions.astype(np.float32)[:, None] * inv_freq[None, :]  # float32
    cos = (np.cos(angles) * np.float32(cos_sin_scale)).astype(np.float32)
    sin = (np.sin(angles) * np.float32(cos_sin_scale)).astype(np.float32)
    shape = (x.shape[0],) + (1,) * (x.ndim - 2) + (inv_freq.shape[0],)
    cos, sin = cos.reshape(shape), sin.reshape(shape)
    even, odd = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = even * cos - odd * sin
    out[..., 1::2] = even * sin + odd * cos
    return out


# ---------------------------------------------------------------- model parts

def attention(ckpt, layer, x, positions):
    """Multi-head latent attention, materialised form (MODEL.md 3.2)."""
    cfg = ckpt.config
    heads, d_nope, d_rope = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"]
    d_latent, d_v, eps = cfg["kv_lora_rank"], cfg["v_head_dim"], cfg.get("rms_norm_eps", 1e-6)
    p = f"model.layers.{layer}.self_attn."
    tokens = x.shape[0]
    factor, _, _, _, mscale, mscale_all_dim = rope_params(cfg)
    inv_freq = yarn_inverse_frequencies(cfg)
    cos_sin_scale = yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)

    # 1-2. query latent, its norm, query heads [tokens, heads, d_nope + d_rope]
    c_q = rms_norm(linear(x, ckpt.get(p + "q_a_proj.weight")), ckpt.get(p + "q_a_layernorm.weight"), eps)
    q = linear(c_q, ckpt.get(p + "q_b_proj.weight")).reshape(tokens, heads, d_nope + d_rope)
    q_nope, q_rope = q[..., :d_nope], apply_rope(q[..., d_nope:], positions, inv_freq, cos_sin_scale)
    # 3-5. latent and shared rope key, both as the bf16 cache holds them
    a = linear(x, ckpt.get(p + "kv_a_proj_with_mqa.weight"))
    c_kv = round_to_bf16(rms_norm(a[:, :d_latent], ckpt.get(p + "kv_a_layernorm.weight"), eps))
    k_rope = round_to_bf16(apply_rope(a[:, d_latent:], positions, inv_freq, cos_sin_scale))
    # 6. per-head keys and values from the latent
    kv = linear(c_kv, ckpt.get(p + "kv_b_proj.weight")).reshape(tokens, heads, d_nope + d_v)
    k_nope, v = kv[..., :d_nope], kv[..., d_nope:]
    # 7. scores s_h(t, j), causal softmax in float32
    scores = np.einsum("thd,jhd->htj", q_nope, k_nope) + np.einsum("thd,jd->htj", q_rope, k_rope)
    scores = scores * softmax_scale(cfg)
    future = positions[None, :] > positions[:, None]  # [t, j]: key j after query t
    scores = np.where(future[None], np.float32(-np.inf), scores)
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs = probs / probs.sum(axis=-1, keepdims=True)
    # 8-9. per-head output and o_proj
    out = np.einsum("htj,jhd->thd", probs, v).reshape(tokens, heads * d_v)
    return linear(out, ckpt.get(p + "o_proj.weight"))


def mlp(ckpt, prefix, x):
    """SwiGLU: down(silu(gate x) * up x) (MODEL.md 5.1)."""
    gate = linear(x, ckpt.get(prefix + "gate_proj.weight"))
    up = linear(x, ckpt.get(prefix + "up_proj.weight"))
    return linear(silu(gate) * up, ckpt.get(prefix + "down_proj.weight"))


def route(cfg, logits, bias):
    """noaux_tc routing (MODEL.md 5.2) for one token: (expert ids, weights)."""
    experts, groups = cfg["n_routed_experts"], cfg.get("n_group", 8)
    top_k, keep_groups = cfg["num_experts_per_tok"], cfg.get("topk_group", 4)
    scores = np.float32(1.0) / (np.float32(1.0) + np.exp(-logits))  # unbiased affinities
    biased = scores + bias  # selection only
    per_group = experts // groups
    grouped = biased.reshape(groups, per_group)
    best_two = -np.sort(-grouped, axis=1)[:, :min(2, per_group)]
    group_score = best_two.sum(axis=1)
    kept = np.argsort(-group_score, kind="stable")[:keep_groups]
    masked = np.full(experts, -np.inf, dtype=np.float32)
    for g in kept:
        masked[g * per_group:(g + 1) * per_group] = grouped[g]
    chosen = np.argsort(-masked, kind="stable")[:top_k]
    weights = scores[chosen]
    if cfg.get("norm_topk_prob", True):
        weights = weights / weights.sum()
    return chosen, weights * np.float32(cfg.get("routed_scaling_factor", 2.5))


def moe(ckpt, layer, x):
    """Routed experts weighted by the router plus the shared expert (MODEL.md 5.2 step 8)."""
    cfg = ckpt.config
    p = f"model.layers.{layer}.mlp."
    logits = linear(x, ckpt.get(p + "gate.weight"))
    bias_name = p + "gate.e_score_correction_bias"
    bias = ckpt.get(bias_name) if ckpt.has(bias_name) else np.zeros(logits.shape[1], np.float32)
    out = np.zeros_like(x)
    for t in range(x.shape[0]):
        ids, weights = route(cfg, logits[t], bias)
        for e, w in zip(ids, weights):
            out[t] += w * mlp(ckpt, f"{p}experts.{e}.", x[t:t + 1])[0]
    if cfg.get("n_shared_experts", 1) > 0:
        out += mlp(ckpt, p + "shared_experts.", x)
    return out


def is_moe_layer(cfg, layer):
    return (layer >= cfg.get("first_k_dense_replace", 3)
            and layer % cfg.get("moe_layer_freq", 1) == 0)


def decoder_layer(ckpt, layer, h, positions):
    """Pre-norm block: h += MLA(norm(h)); h += FFN(norm(h)) (MODEL.md 2)."""
    cfg = ckpt.config
    eps = cfg.get("rms_norm_eps", 1e-6)
    p = f"model.layers.{layer}."
    h = h + attention(ckpt, layer, rms_norm(h, ckpt.get(p + "input_layernorm.weight"), eps), positions)
    x = rms_norm(h, ckpt.get(p + "post_attention_layernorm.weight"), eps)
    ffn = moe(ckpt, layer, x) if is_moe_layer(cfg, layer) else mlp(ckpt, p + "mlp.", x)
    return h + ffn


def forward(ckpt, tokens, layer_rms=None):
    """Logits [len(tokens), vocab] for every position of the sequence (float32).

    layer_rms, if a list, receives the hidden state's RMS after the embedding and each layer."""
    cfg = ckpt.config
    tokens = np.asarray(tokens, dtype=np.int64)
    positions = np.arange(tokens.shape[0], dtype=np.int32)
    h = ckpt.get("model.embed_tokens.weight")[tokens]
    if layer_rms is not None:
        layer_rms.append(float(np.sqrt(np.mean(h * h))))
    for layer in range(cfg["num_hidden_layers"]):
        h = decoder_layer(ckpt, layer, h, positions)
        if layer_rms is not None:
            layer_rms.append(float(np.sqrt(np.mean(h * h))))
    h = rms_norm(h, ckpt.get("model.norm.weight"), cfg.get("rms_norm_eps", 1e-6))
    head = "model.embed_tokens.weight" if cfg.get("tie_word_embeddings") else "lm_head.weight"
    return linear(h, ckpt.get(head)).astype(np.float32)


def greedy_generate(ckpt, prompt, max_tokens):
    """Greedy continuation (argmax, lowest id on ties), recomputing the full sequence each step."""
    tokens, generated = list(prompt), []
    for _ in range(max_tokens):
        next_token = int(np.argmax(forward(ckpt, tokens)[-1]))
        generated.append(next_token)
        tokens.append(next_token)
    return generated


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    ckpt = Checkpoint(argv[1])
    tokens = [int(t) for t in (argv[2] if len(argv) > 2 else "0,17,923,5").split(",")]
    rms = []
    logits = forward(ckpt, tokens, rms)
    print("hidden RMS after embedding:", f"{rms[0]:.4f}")
    for layer, value in enumerate(rms[1:]):
        kind = "moe" if is_moe_layer(ckpt.config, layer) else "dense"
        print(f"hidden RMS after layer {layer} ({kind}): {value:.4f}")
    last = logits[-1]
    print(f"last-position logits: std {last.std():.4f}, argmax {int(last.argmax())}")
    print("greedy:", ",".join(map(str, greedy_generate(ckpt, tokens, 8))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
