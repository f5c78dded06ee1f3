"""The cases of bench/ops_torch.py: per op, the shape, the floor's bytes and FLOPs (the same
counts as bench/mla_ops_bench's builders, ops_bench_*.cc, which ops_torch.py checks line by
line), the PyTorch equivalent and a note naming it.

spec(T) returns dict(shape, bytes, flops, note, setup); setup(copies) allocates `copies`
independent sets of the op's tensors (random, never zeros) and returns one zero-argument
callable per set that runs the PyTorch equivalent on it. Dtypes match ours: fp32 activations,
bf16 weights and caches, fp32 GEMM outputs. T = 64 is a decode batch, other T one prefill
sequence (positions, cache slots), as in ours.
"""
import math

import torch
import torch.nn.functional as F

H, Q_LORA, KV_LORA, ROPE, NOPE, V_HEAD, HEADS = 7168, 1536, 512, 64, 128, 128, 128
VOCAB, INTER, MOE_INTER, EXPERTS, TOP_K, BLOCK = 129280, 18432, 2048, 256, 8, 64
EPS = 1e-6
DEV = "cuda"
BF16, F32 = torch.bfloat16, torch.float32
# Linear's fp32 output: torch.mm(..., out_dtype=float32) where this torch has it, else a bf16
# matmul then .float() (set by ops_torch.py's probe).
MM_OUT_DTYPE = {"supported": False}


def rand(*shape, dtype=F32):
    return (torch.rand(*shape, device=DEV) * 2 - 1).to(dtype)


def dims(*d):
    return "[" + ",".join(str(x) for x in d) + "]"


def mm_f32(x, w):
    if MM_OUT_DTYPE["supported"]:
        return torch.mm(x, w.t(), out_dtype=F32)
    return torch.mm(x, w.t()).float()


def step_positions(t):
    """ops_bench_elementwise.cc's StepPositions."""
    if t == 64:
        return torch.tensor([(i * 997) % 32768 for i in range(t)], device=DEV, dtype=torch.int32)
    return torch.arange(t, device=DEV, dtype=torch.int32)


def rms_norm(x, w):
    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), w, EPS)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def spec_rms_norm(t):
    def setup(copies):
        w = rand(H)
        return [(lambda x=rand(t, H): rms_norm(x, w)) for _ in range(copies)]
    return dict(shape=dims(t, H), bytes=2.0 * t * H * 4 + H * 4, flops=0.0, setup=setup,
                note="F.rms_norm (fp32)")


def spec_add_rms_norm(t):
    def setup(copies):
        w = rand(H)
        def one(r, d):
            r.add_(d)
            return rms_norm(r, w)
        return [(lambda r=rand(t, H), d=rand(t, H): one(r, d)) for _ in range(copies)]
    return dict(shape=dims(t, H), bytes=4.0 * t * H * 4 + H * 4, flops=0.0, setup=setup,
                note="residual.add_(delta), then F.rms_norm (fp32)")


def linear(rows, inp, out):
    def spec(_t):
        def setup(copies):
            return [(lambda x=rand(rows, inp, dtype=BF16), w=rand(out, inp, dtype=BF16):
                     mm_f32(x, w)) for _ in range(copies)]
        how = "torch.mm(x, w.t(), out_dtype=float32)" if MM_OUT_DTYPE["supported"] else \
            "torch.mm(x, w.t()).float() (bf16 out, then a cast)"
        return dict(shape=dims(rows, inp) + "x" + dims(out, inp),
                    bytes=2.0 * rows * inp + 2.0 * out * inp + 4.0 * rows * out,
                    flops=2.0 * rows * inp * out, setup=setup, note=how + ", bf16 x bf16")
    return spec


def rope_inplace(view, pos, inv_freq):
    """view [T, heads, 64] (strided), interleaved pairs rotated by pos * inv_freq, in place."""
    ang = pos.float()[:, None] * inv_freq[None, :]
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    x0, x1 = view[..., 0::2], view[..., 1::2]
    view.copy_(torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(-2))


def spec_rope(heads, row, offset, head_stride, shape_of):
    def spec(t):
        def setup(copies):
            pos = step_positions(t)
            inv_freq = 10000.0 ** (-torch.arange(0, ROPE, 2, device=DEV, dtype=F32) / ROPE)
            def one(x):
                rope_inplace(x.as_strided((t, heads, ROPE), (row, head_stride, 1), offset), pos,
                             inv_freq)
            return [(lambda x=rand(t, row): one(x)) for _ in range(copies)]
        return dict(shape=shape_of(t), bytes=2.0 * t * heads * ROPE * 4 + t * 4 + ROPE // 2 * 4,
                    flops=0.0, setup=setup,
                    note="cos/sin of positions x inv_freq, interleaved pairs rotated, copy_ back "
                         "into the strided slice (fp32)")
    return spec


def spec_silu_mul(t):
    def setup(copies):
        return [(lambda g=rand(t, INTER), u=rand(t, INTER): F.silu(g) * u) for _ in range(copies)]
    return dict(shape=dims(t, INTER), bytes=3.0 * t * INTER * 4, flops=0.0, setup=setup,
                note="F.silu(gate) * up (fp32)")


def spec_embed(t):
    def setup(copies):
        table = rand(VOCAB, H, dtype=BF16)
        return [(lambda ids=torch.randint(0, VOCAB, (t,), device=DEV, dtype=torch.int32):
                 F.embedding(ids, table).float()) for _ in range(copies)]
    return dict(shape=dims(t) + "of" + dims(VOCAB, H), bytes=t * H * 2.0 + t * 4.0 + t * H * 4.0,
                flops=0.0, setup=setup, note="F.embedding(ids, bf16 table).float()")


def spec_write_latent_cache(t):
    d = KV_LORA + ROPE
    def setup(copies):
        decode = t == 64
        per = t if decode else (t + BLOCK - 1) // BLOCK
        pos = step_positions(t)
        inv_freq = 10000.0 ** (-torch.arange(0, ROPE, 2, device=DEV, dtype=F32) / ROPE)
        w = rand(KV_LORA)
        def one(cache, slots, kv):
            rope_inplace(kv[:, KV_LORA:].unsqueeze(1), pos, inv_freq)
            row = torch.cat([rms_norm(kv[:, :KV_LORA], w), kv[:, KV_LORA:]], 1)
            cache.index_copy_(0, slots, row.to(BF16))
        fns = []
        for _ in range(copies):
            cache = rand(per * BLOCK, d, dtype=BF16)
            slots = torch.arange(t, device=DEV) * BLOCK + BLOCK - 1 if decode else \
                torch.arange(t, device=DEV)
            fns.append(lambda c=cache, s=slots, kv=rand(t, d): one(c, s, kv))
        return fns
    return dict(shape=dims(t, d),
                bytes=t * d * 4.0 + t * 12.0 + KV_LORA * 4.0 + ROPE // 2 * 4.0 + t * d * 2.0,
                flops=0.0, setup=setup,
                note="F.rms_norm(latent), rope of k_rope in place, cat, .to(bf16), "
                     "cache.index_copy_ (fp32)")


def spec_absorb_query(t):
    def setup(copies):
        def one(q, wkv_b):
            lat = torch.einsum("thd,hdc->thc", q[..., :NOPE].to(BF16), wkv_b[:, :NOPE])
            return torch.cat([lat.float(), q[..., NOPE:]], -1)
        return [(lambda q=rand(t, HEADS, NOPE + ROPE), w=rand(HEADS, NOPE + V_HEAD, KV_LORA,
                                                             dtype=BF16):
                 one(q, w)) for _ in range(copies)]
    return dict(shape=dims(t, HEADS, NOPE + ROPE) + "x" + dims(HEADS, NOPE, KV_LORA),
                bytes=4.0 * t * HEADS * (NOPE + ROPE) + 2.0 * HEADS * NOPE * KV_LORA +
                4.0 * t * HEADS * (KV_LORA + ROPE),
                flops=2.0 * t * HEADS * NOPE * KV_LORA, setup=setup,
                note="einsum('thd,hdc->thc') on q_nope.to(bf16) and W_UK (bf16 out), .float(), "
                     "cat with q_rope")


def spec_unabsorb_output(t):
    def setup(copies):
        return [(lambda x=rand(t, HEADS, KV_LORA),
                 w=rand(HEADS, NOPE + V_HEAD, KV_LORA, dtype=BF16):
                 torch.einsum("thc,hdc->thd", x.to(BF16), w[:, NOPE:]).float())
                for _ in range(copies)]
    return dict(shape=dims(t, HEADS, KV_LORA) + "x" + dims(HEADS, V_HEAD, KV_LORA),
                bytes=4.0 * t * HEADS * KV_LORA + 2.0 * HEADS * V_HEAD * KV_LORA +
                4.0 * t * HEADS * V_HEAD,
                flops=2.0 * t * HEADS * KV_LORA * V_HEAD, setup=setup,
                note="einsum('thc,hdc->thd') on latent.to(bf16) and W_UV (bf16 out), .float()")


def spec_prefill_attention(t):
    m = 0.1 * math.log(40.0) + 1.0
    scale = (NOPE + ROPE) ** -0.5 * m * m
    def setup(copies):
        def one(q, cache, wkv_b):
            kv = torch.mm(cache[:, :KV_LORA], wkv_b.t()).view(t, HEADS, NOPE + V_HEAD)
            k = torch.cat([kv[..., :NOPE], cache[:, None, KV_LORA:].expand(t, HEADS, ROPE)], -1)
            o = F.scaled_dot_product_attention(q.to(BF16).transpose(0, 1), k.transpose(0, 1),
                                               kv[..., NOPE:].transpose(0, 1), is_causal=True,
                                               scale=scale)
            return o.transpose(0, 1).float()
        return [(lambda q=rand(t, HEADS, NOPE + ROPE), c=rand(t, KV_LORA + ROPE, dtype=BF16),
                 w=rand(HEADS * (NOPE + V_HEAD), KV_LORA, dtype=BF16): one(q, c, w))
                for _ in range(copies)]
    attended = 0.5 * t * (t + 1)
    return dict(shape="1x" + dims(t, HEADS, NOPE + ROPE) + f",ctx{t}",
                bytes=4.0 * t * HEADS * (NOPE + ROPE) + 2.0 * t * (KV_LORA + ROPE) +
                2.0 * HEADS * (NOPE + V_HEAD) * KV_LORA + 4.0 * t * HEADS * V_HEAD,
                flops=2.0 * t * KV_LORA * HEADS * (NOPE + V_HEAD) +
                2.0 * HEADS * (NOPE + ROPE + V_HEAD) * attended, setup=setup,
                note="latent @ wkv_b.T (bf16), K = cat(K_nope, k_rope), "
                     "F.scaled_dot_product_attention(is_causal) in bf16 (backend PyTorch's "
                     "choice), .float()")


def moe_gate(logits, bias):
    s = logits.sigmoid()
    b = (s + bias).view(-1, 8, EXPERTS // 8)
    group = b.topk(2, dim=-1).values.sum(-1)
    best_groups = group.topk(4, dim=-1).indices
    keep = torch.zeros_like(group, dtype=torch.bool).scatter_(1, best_groups, True)
    ids = b.masked_fill(~keep[..., None], float("-inf")).flatten(1).topk(TOP_K, dim=-1).indices
    w = s.gather(1, ids)
    return ids, w / w.sum(-1, keepdim=True) * 2.5


def spec_moe_gate(t):
    def setup(copies):
        bias = rand(EXPERTS)
        return [(lambda x=rand(t, EXPERTS): moe_gate(x, bias)) for _ in range(copies)]
    return dict(shape=dims(t, EXPERTS) + "top8", bytes=4.0 * t * EXPERTS + 4.0 * EXPERTS +
                8.0 * t * TOP_K, flops=0.0, setup=setup,
                note="sigmoid, +bias, per-group top-2 sum, top-4 groups, masked top-8, gather, "
                     "normalise x 2.5 (fp32)")


def random_ids(t):
    return torch.rand(t, EXPERTS, device=DEV).topk(TOP_K, dim=-1).indices.int()


def spec_moe_dispatch(t):
    def setup(copies):
        bounds = torch.arange(EXPERTS + 1, device=DEV, dtype=torch.int32)
        def one(ids):
            sorted_ids, pairs = torch.sort(ids.flatten(), stable=True)
            return torch.searchsorted(sorted_ids, bounds), pairs
        return [(lambda ids=random_ids(t): one(ids)) for _ in range(copies)]
    return dict(shape=dims(t, TOP_K) + "of256", bytes=4.0 * t * TOP_K + 4.0 * (EXPERTS + 1) +
                4.0 * t * TOP_K, flops=0.0, setup=setup,
                note="torch.sort(ids, stable=True) + searchsorted for the offsets (int64 pairs)")


def spec_moe_combine(t):
    m = t * TOP_K
    def setup(copies):
        def one(x, pairs, w, out):
            out.index_add_(0, pairs // TOP_K, x * w.flatten()[pairs, None])
        fns = []
        for _ in range(copies):
            pairs = torch.sort(random_ids(t).flatten(), stable=True).indices
            fns.append(lambda x=rand(m, H), p=pairs, w=rand(t, TOP_K), o=rand(t, H):
                       one(x, p, w, o))
        return fns
    return dict(shape=dims(m, H) + "to" + dims(t, H), bytes=4.0 * m * H + 8.0 * m + 2 * 4.0 * t * H,
                flops=0.0, setup=setup,
                note="out.index_add_(0, pairs // 8, expert_out * weights[pairs]) (fp32, atomics)")


def grouped_routing(t):
    """ops_bench_moe.cc's StridedExpertIds: token t's choice c is expert (8t + c) % 256. Returns
    the sorted pairs (by expert, then pair: MoeDispatch's order) and (expert, first row, rows) for
    each expert with rows."""
    ids = torch.arange(t * TOP_K, device=DEV) % EXPERTS
    pairs = torch.sort(ids, stable=True).indices
    segments, row = [], 0
    for e, n in enumerate(torch.bincount(ids, minlength=EXPERTS).tolist()):
        if n:
            segments.append((e, row, n))
            row += n
    return pairs, segments


def experts_bf16(out, inp):
    """[256, out, inp] bf16 uniform in [-1, 1), drawn in bf16 (no fp32 copy of GBs)."""
    return torch.empty(EXPERTS, out, inp, device=DEV, dtype=BF16).uniform_(-1, 1)


def spec_moe_grouped_gate_up(t):
    m = t * TOP_K
    def setup(copies):
        gate, up = experts_bf16(MOE_INTER, H), experts_bf16(MOE_INTER, H)
        pairs, segments = grouped_routing(t)
        token_of = pairs // TOP_K
        def one(x, act):
            xb = x.to(BF16)
            for e, r, n in segments:
                xs = xb.index_select(0, token_of[r:r + n])
                act[r:r + n] = F.silu(mm_f32(xs, gate[e])) * mm_f32(xs, up[e])
        return [(lambda x=rand(t, H), a=torch.empty(m, MOE_INTER, device=DEV): one(x, a))
                for _ in range(copies)]
    return dict(shape=dims(m, H) + "x" + dims(EXPERTS, 2 * MOE_INTER, H),
                bytes=2.0 * min(m, EXPERTS) * 2 * MOE_INTER * H + 4.0 * t * H +
                4.0 * (EXPERTS + 1) + 4.0 * m + 4.0 * m * MOE_INTER,
                flops=2.0 * m * H * 2 * MOE_INTER, setup=setup,
                note="per expert with rows: x.to(bf16).index_select(rows), two torch.mm to fp32 "
                     "(gate, up), F.silu(g) * u into act's rows (a loop of ~6 launches per "
                     "expert; ours: one launch)")


def spec_moe_grouped_down(t):
    m = t * TOP_K
    def setup(copies):
        down = experts_bf16(H, MOE_INTER)
        _, segments = grouped_routing(t)
        def one(act, y):
            ab = act.to(BF16)
            for e, r, n in segments:
                y[r:r + n] = mm_f32(ab[r:r + n], down[e])
        return [(lambda a=rand(m, MOE_INTER), y=torch.empty(m, H, device=DEV): one(a, y))
                for _ in range(copies)]
    return dict(shape=dims(m, MOE_INTER) + "x" + dims(EXPERTS, H, MOE_INTER),
                bytes=2.0 * min(m, EXPERTS) * H * MOE_INTER + 4.0 * m * MOE_INTER +
                4.0 * (EXPERTS + 1) + 4.0 * m * H,
                flops=2.0 * m * MOE_INTER * H, setup=setup,
                note="act.to(bf16), then per expert with rows one torch.mm to fp32 into y's rows "
                     "(a loop; ours: one launch)")


def sample_top_p(logits, top_p=0.9):
    sp, si = torch.sort(torch.softmax(logits, -1), -1, descending=True)
    sp = sp.masked_fill(sp.cumsum(-1) - sp > top_p, 0.0)
    cdf = sp.cumsum(-1)
    u = torch.rand(logits.shape[0], 1, device=DEV) * cdf[:, -1:]
    return si.gather(-1, torch.searchsorted(cdf, u).clamp_max(logits.shape[1] - 1))


def spec_sample(greedy):
    def spec(t):
        def setup(copies):
            fn = (lambda x: torch.argmax(x, -1)) if greedy else sample_top_p
            return [(lambda x=rand(t, VOCAB): fn(x)) for _ in range(copies)]
        return dict(shape=dims(t, VOCAB), bytes=4.0 * t * VOCAB + 4.0 * t, flops=0.0, setup=setup,
                    note="torch.argmax (fp32)" if greedy else
                    "softmax, sort descending, mask where cumsum - p > 0.9, inverse CDF by "
                    "torch.rand + searchsorted (fp32; ours: double)")
    return spec


# op -> (default T list, spec); the same cases as kCases in ops_bench.cu.
OPS = {
    "rms_norm": ((64, 4096), spec_rms_norm),
    "add_rms_norm": ((64, 4096), spec_add_rms_norm),
    "linear_q_a": ((64, 4096), lambda t: linear(t, H, Q_LORA)(t)),
    "linear_q_b": ((64, 4096), lambda t: linear(t, Q_LORA, HEADS * (NOPE + ROPE))(t)),
    "linear_kv_a": ((64, 4096), lambda t: linear(t, H, KV_LORA + ROPE)(t)),
    "linear_o_proj": ((64, 4096), lambda t: linear(t, HEADS * V_HEAD, H)(t)),
    "linear_mlp_gate_up": ((64, 4096), lambda t: linear(t, H, INTER)(t)),
    "linear_mlp_down": ((64, 4096), lambda t: linear(t, INTER, H)(t)),
    "linear_expert_gate": ((64, 4096), lambda t: linear((t * TOP_K + EXPERTS - 1) // EXPERTS, H,
                                                        MOE_INTER)(t)),
    "linear_lm_head": ((64,), lambda t: linear(t, H, VOCAB)(t)),
    "rope_q": ((64, 4096), lambda t: spec_rope(
        HEADS, HEADS * (NOPE + ROPE), NOPE, NOPE + ROPE,
        lambda t: dims(t, HEADS, ROPE) + "of" + dims(t, HEADS, NOPE + ROPE))(t)),
    "silu_mul": ((64, 4096), spec_silu_mul),
    "embed": ((64, 4096), spec_embed),
    "write_latent_cache": ((64, 4096), spec_write_latent_cache),
    "absorb_query": ((64,), spec_absorb_query),
    "unabsorb_output": ((64,), spec_unabsorb_output),
    "moe_gate": ((64, 4096), spec_moe_gate),
    "moe_dispatch": ((64, 4096), spec_moe_dispatch),
    "moe_combine": ((64, 4096), spec_moe_combine),
    "moe_grouped_gate_up": ((64,), spec_moe_grouped_gate_up),
    "moe_grouped_down": ((64,), spec_moe_grouped_down),
    "sample_greedy": ((64,), spec_sample(True)),
    "sample_top_p": ((64,), spec_sample(False)),
    "prefill_attention": ((4096,), spec_prefill_attention),
}
