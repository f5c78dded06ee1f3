#!/usr/bin/env python3
# Writes the fuzzers' seed corpora (tests/fuzz/corpus/<fuzzer>/) and the small tokenizer.json the
# tokenizer fuzzer loads (tests/fuzz/tokenizer.json). The outputs are committed; rerun this only
# to change them. Deterministic: the same script always writes the same bytes.
#
#   safetensors_fuzzer:        small valid safetensors images (every dtype, a scalar, an empty
#                              tensor, __metadata__).
#   model_config_fuzzer:       the synthetic "tiny" config.json and DeepSeek-V3's own.
#   tokenizer_fuzzer:          texts (multilingual, digits, special token text, ill-formed UTF-8).
#   tokenizer_json_fuzzer:     tokenizer.json itself and a minimal loadable one.
#   request_validation_fuzzer: serialized mla.v1.GenerateRequest messages (hand-encoded protobuf
#                              wire format; field numbers from protos/mla/v1/inference.proto).
#
# tokenizer.json is a byte-level BPE of the kind coordinator/tokenizer.h loads: the four
# DeepSeek-V3 special tokens (ids 0-3) as added tokens, the 256 byte tokens (ids 4-259) spelled in
# the byte-level alphabet (coordinator/byte_level.h), merges learned here by a small BPE over a
# built-in multilingual text, DeepSeek-V3's pre-tokenizer, and one non-special added token.
import json
import os
import re
import struct
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"

# DeepSeek-V3's Split patterns, as coordinator/pretokenizer.cc spells them.
SPLIT_PATTERNS = [
    r"\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?"
    "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]

TRAINING_TEXT = """\
The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away.
In 2024 the model served 12345 requests per second, and then 678 more.
Der schnelle braune Fuchs springt über den faulen Hund. Grüße aus München!
Le renard brun rapide saute par-dessus le chien paresseux. Ça va très bien.
El zorro marrón rápido salta sobre el perro perezoso. ¿Qué tal, señor?
Быстрая коричневая лиса прыгает через ленивую собаку.
敏捷的棕色狐狸跳过了懒狗。我们今天在服务器上运行模型。
素早い茶色の狐が怠け者の犬を飛び越える。カタカナとひらがな。
def encode(self, text):
    return [self.vocab[t] for t in text.split()]
for (int i = 0; i < n; ++i) { sum += x[i] * y[i]; }
Emoji: 😀 🚀 ✨ and symbols: ± × ÷ → ∞ ≈ ≠ ≤ ≥.
"""


def byte_level_alphabet():
    """byte -> character, as coordinator/byte_level.h describes the table."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) +
                 list(range(0xAE, 0xFF + 1)))
    table = {}
    extra = 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


ALPHABET = byte_level_alphabet()


def spell(bs):
    return "".join(ALPHABET[b] for b in bs)


def train_merges(text, num_merges):
    """A small byte-level BPE: merges the most frequent adjacent pair (ties: the smallest pair)."""
    # A rough pre-split (Python's re has no \p{..}); it only decides which merges are learned.
    pieces = re.findall(r"\d{1,3}|[\u4e00-\u9fa5\u3040-\u30ff]+| ?[^\W\d_]+| ?[^\w\s]+|\s+",
                        text)
    words = Counter(tuple(bytes([b]) for b in p.encode("utf-8")) for p in pieces)
    merges = []
    for _ in range(num_merges):
        pairs = Counter()
        for word, count in words.items():
            for a, b in zip(word, word[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = best[0] + best[1]
        new_words = Counter()
        for word, count in words.items():
            out = []
            i = 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(merged)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            new_words[tuple(out)] += count
        words = new_words
    return merges


def added(id_, content, special):
    return {"id": id_, "content": content, "single_word": False, "lstrip": False,
            "rstrip": False, "normalized": False, "special": special}


def pre_tokenizer(patterns):
    steps = [{"type": "Split", "pattern": {"Regex": p}, "behavior": "Isolated", "invert": False}
             for p in patterns]
    steps.append({"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": False})
    return {"type": "Sequence", "pretokenizers": steps}


def tokenizer_json(num_merges):
    specials = [BOS, EOS, USER, ASSISTANT]
    vocab = {}
    for b in range(256):
        vocab[spell([b])] = len(specials) + b
    merges = []
    for left, right in train_merges(TRAINING_TEXT, num_merges):
        text = spell(left + right)
        if text not in vocab:
            vocab[text] = len(specials) + len(vocab)
        merges.append(spell(left) + " " + spell(right))
    tokens = [added(i, s, True) for i, s in enumerate(specials)]
    tokens.append(added(len(specials) + len(vocab), "<think>", False))
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": tokens,
        "normalizer": {"type": "Sequence", "normalizers": []},
        "pre_tokenizer": pre_tokenizer(SPLIT_PATTERNS),
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": BOS, "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": BOS, "type_id": 0}},
                     {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {BOS: {"id": BOS, "ids": [0], "tokens": [BOS]}},
        },
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": merges},
    }


def minimal_tokenizer_json():
    """Bytes only, no merges, no added tokens, a bare ByteLevel pre-tokenizer."""
    vocab = {spell([b]): b for b in range(256)}
    return {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False,
                              "use_regex": True},
            "decoder": {"type": "ByteLevel"},
            "model": {"type": "BPE", "vocab": vocab, "merges": []}}


def safetensors(tensors, metadata=None, pad_to=8):
    """tensors: [(name, dtype, shape, data bytes)] laid out in order."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % pad_to)
    return struct.pack("<Q", len(text)) + text + b"".join(t[3] for t in tensors)


def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3 | 0) + varint(value)


def field_fixed32_float(number, value):
    return varint(number << 3 | 5) + struct.pack("<f", value)


def field_bytes(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def packed_int32(number, values):
    return field_bytes(number, b"".join(varint(v) for v in values))


def generate_request(prompt=None, prompt_text=None, temperature=None, top_p=None, top_k=None,
                     seed=None, max_tokens=None, stop=None, ignore_eos=None, priority=None,
                     request_id=None):
    """An mla.v1.GenerateRequest in protobuf wire format."""
    out = b""
    if prompt is not None:
        out += field_bytes(1, packed_int32(1, prompt))      # TokenIds prompt_token_ids = 1
    if prompt_text is not None:
        out += field_bytes(2, prompt_text.encode("utf-8"))  # string prompt_text = 2
    sampling = b""
    if temperature is not None:
        sampling += field_fixed32_float(1, temperature)
    if top_p is not None:
        sampling += field_fixed32_float(2, top_p)
    if top_k is not None:
        sampling += field_varint(3, top_k)
    if seed is not None:
        sampling += field_varint(4, seed)
    if sampling or temperature is not None:
        out += field_bytes(3, sampling)                     # SamplingParams sampling = 3
    if max_tokens is not None:
        out += field_varint(4, max_tokens)
    if stop is not None:
        out += packed_int32(5, stop)
    if ignore_eos is not None:
        out += field_varint(6, int(ignore_eos))
    if priority is not None:
        out += field_varint(7, priority)
    if request_id is not None:
        out += field_bytes(8, request_id.encode("utf-8"))
    return out


def write(name, filename, data):
    directory = os.path.join(CORPUS, name)
    os.makedirs(directory, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(directory, filename), "wb") as f:
        f.write(data)


def tiny_config():
    return {
        "vocab_size": 1024, "hidden_size": 256, "intermediate_size": 512,
        "moe_intermediate_size": 64, "num_hidden_layers": 4, "first_k_dense_replace": 1,
        "moe_layer_freq": 1, "num_attention_heads": 8, "num_key_value_heads": 8,
        "q_lora_rank": 96, "kv_lora_rank": 64, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16,
        "v_head_dim": 32, "n_routed_experts": 8, "n_shared_experts": 1,
        "num_experts_per_tok": 2, "n_group": 4, "topk_group": 2, "routed_scaling_factor": 2.5,
        "topk_method": "noaux_tc", "scoring_func": "sigmoid", "norm_topk_prob": True,
        "rope_theta": 10000,
        "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 128,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
        "max_position_embeddings": 5120, "rms_norm_eps": 1e-6, "bos_token_id": 0,
        "eos_token_id": 1, "tie_word_embeddings": False,
    }


def v3_config():
    c = tiny_config()
    c.update({
        "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432,
        "moe_intermediate_size": 2048, "num_hidden_layers": 61, "first_k_dense_replace": 3,
        "num_attention_heads": 128, "num_key_value_heads": 128, "q_lora_rank": 1536,
        "kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
        "v_head_dim": 128, "n_routed_experts": 256, "num_experts_per_tok": 8, "n_group": 8,
        "topk_group": 4, "max_position_embeddings": 163840,
    })
    c["rope_scaling"] = {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0,
                         "mscale_all_dim": 1.0, "original_max_position_embeddings": 4096,
                         "type": "yarn"}
    return c


def main():
    # safetensors_fuzzer
    write("safetensors_fuzzer", "two_tensors.safetensors", safetensors(
        [("model.embed_tokens.weight", "BF16", [2, 3], bytes(range(12))),
         ("model.norm.weight", "F32", [2], struct.pack("<2f", 1.0, -2.5))],
        metadata={"format": "pt"}))
    write("safetensors_fuzzer", "every_dtype.safetensors", safetensors(
        [("e4m3", "F8_E4M3", [4], bytes([0x00, 0x38, 0x7E, 0xFF])),
         ("half", "F16", [], struct.pack("<e", 1.5)),
         ("empty", "F32", [0, 5], b""),
         ("float", "F32", [1, 1, 1], struct.pack("<f", 3.0))]))
    write("safetensors_fuzzer", "header_only.safetensors", safetensors([], metadata={}))

    # model_config_fuzzer
    write("model_config_fuzzer", "tiny_config.json", json.dumps(tiny_config(), indent=2))
    write("model_config_fuzzer", "v3_config.json", json.dumps(v3_config(), indent=2))

    # tokenizer.json (loaded by tokenizer_fuzzer) and tokenizer_json_fuzzer's seeds.
    full = json.dumps(tokenizer_json(num_merges=300), ensure_ascii=False, indent=1)
    with open(os.path.join(HERE, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(full)
    write("tokenizer_json_fuzzer", "tokenizer.json",
          json.dumps(tokenizer_json(num_merges=300), ensure_ascii=False, separators=(",", ":")))
    write("tokenizer_json_fuzzer", "minimal.json",
          json.dumps(minimal_tokenizer_json(), ensure_ascii=False))

    # tokenizer_fuzzer: the whole input is the text (and, read as 16-bit words, the ids).
    write("tokenizer_fuzzer", "english.txt", "The quick brown fox jumps over 12345 lazy dogs.\n")
    write("tokenizer_fuzzer", "multilingual.txt",
          "Grüße! 敏捷的棕色狐狸 カタカナ Быстрая 😀🚀 ±×÷\r\n\t  end")
    write("tokenizer_fuzzer", "chat.txt",
          BOS + "You are helpful." + USER + "Hi<think>2+2?" + ASSISTANT + "4" + EOS)
    write("tokenizer_fuzzer", "ill_formed.bin",
          b"ok \xff\xfe \xe4\xb8 \xf0\x9f\x98 \xc0\xaf \xed\xa0\x80 tail")
    write("tokenizer_fuzzer", "code.txt", "for (int i = 0; i < n; ++i) { sum += x[i]; }\n")

    # request_validation_fuzzer
    write("request_validation_fuzzer", "greedy.pb", generate_request(prompt=[0, 5, 17, 900]))
    write("request_validation_fuzzer", "sampled.pb", generate_request(
        prompt=[1, 2, 3], temperature=0.7, top_p=0.9, top_k=40, seed=12345, max_tokens=64,
        stop=[1, 7], ignore_eos=True, priority=-3, request_id="req-42"))
    write("request_validation_fuzzer", "prompt_text.pb", generate_request(prompt_text="Hello"))


if __name__ == "__main__":
    main()
