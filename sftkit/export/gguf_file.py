"""Write a Hugging Face causal LM + tokenizer as one GGUF file (the layout llama.cpp's convert_hf_to_gguf.py writes).

Supported: the Llama family (``LlamaForCausalLM``: Llama 2-style, SmolLM2, TinyLlama...) without rope
scaling or biases, with a byte-level BPE tokenizer. Everything that would make the file unusable is
refused by :func:`check_exportable` before anything is written.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import SftkitError

SUPPORTED_ARCHITECTURES = {"LlamaForCausalLM": "llama"}
QUANTS = ("f16", "bf16", "q8_0", "f32")
STOP_KEY = "sftkit.stop_token_ids"  # every id a run stops at (eos + end-of-turn); llama.cpp keeps one eot id


def _architecture(model) -> str:
    archs = list(getattr(model.config, "architectures", None) or []) or [type(model).__name__]
    return archs[0]


def _rope_theta(config) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    return float(params.get("rope_theta") or getattr(config, "rope_theta", None) or 10000.0)


def _rope_scaled(config) -> str | None:
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    kind = params.get("rope_type") or params.get("type")
    return kind if kind not in (None, "default") else None


def _pre_tokenizer(tokenizer) -> str | None:
    """llama.cpp's name for the tokenizer's pre-tokenization ('gpt2', 'smollm'), or None if not byte-level BPE."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    spec = json.loads(backend.to_str())
    if (spec.get("model") or {}).get("type") != "BPE":
        return None
    pre = spec.get("pre_tokenizer") or {}
    if pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt2"
    parts = pre.get("pretokenizers") or []
    if [p.get("type") for p in parts] == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "smollm"
    return None


def check_exportable(model, tokenizer) -> str | None:
    """One line saying why ``model`` + ``tokenizer`` cannot be written as GGUF, or None."""
    arch = _architecture(model)
    if arch not in SUPPORTED_ARCHITECTURES:
        return (f"architecture {arch} cannot be exported to GGUF by sftkit (supported: "
                f"{', '.join(SUPPORTED_ARCHITECTURES)})")
    cfg = model.config
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        return f"{arch} with attention/MLP biases cannot be exported to GGUF by sftkit (plain Llama layout only)"
    if _rope_scaled(cfg):
        return f"{arch} with rope scaling {_rope_scaled(cfg)!r} cannot be exported to GGUF by sftkit yet"
    if tokenizer is None:
        return "the model has no tokenizer (tokenizer.json) — a GGUF file must carry one"
    vocab = tokenizer.get_vocab()
    if vocab and max(vocab.values()) >= cfg.vocab_size:
        return (f"the tokenizer has token ids up to {max(vocab.values())} but the model only {cfg.vocab_size} "
                "embeddings — resize the embeddings (model.resize_token_embeddings) before exporting")
    if _pre_tokenizer(tokenizer) is None:
        return ("the tokenizer is not a byte-level BPE of a known pre-tokenization (gpt2, smollm) — "
                "only those are exported to GGUF by sftkit")
    return None


def _permute(weights, n_head: int, n_head_kv: int | None = None):
    """llama.cpp's rotary layout of q/k rows (convert_hf_to_gguf.py LlamaModel.permute)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _encode(data, quant: str):
    """(array, raw_shape, raw_dtype) of one tensor: 1-D tensors stay f32; q8_0 needs rows of 32 (else f16)."""
    import gguf
    import numpy as np

    if data.ndim <= 1:
        return data.astype(np.float32), None, gguf.GGMLQuantizationType.F32
    qtype = {"f16": gguf.GGMLQuantizationType.F16, "bf16": gguf.GGMLQuantizationType.BF16,
             "q8_0": gguf.GGMLQuantizationType.Q8_0, "f32": gguf.GGMLQuantizationType.F32}[quant]
    if qtype == gguf.GGMLQuantizationType.F32:
        return data.astype(np.float32), None, qtype
    if qtype == gguf.GGMLQuantizationType.Q8_0 and data.shape[-1] % 32:
        qtype = gguf.GGMLQuantizationType.F16
    return gguf.quants.quantize(data.astype(np.float32), qtype), None, qtype  # the writer reads a byte shape


def _vocab(tokenizer, vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """(tokens by id, their llama.cpp types, merges) of a byte-level BPE tokenizer, padded to ``vocab_size``."""
    import json

    import gguf

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    added = {a["id"]: a for a in spec.get("added_tokens") or []}
    by_id = {i: t for t, i in tokenizer.get_vocab().items()}
    tokens, types = [], []
    for i in range(max(vocab_size, len(by_id))):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
            continue
        tokens.append(by_id[i])
        if i in added:
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        else:
            types.append(gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in spec["model"].get("merges") or []]
    return tokens, [int(t) for t in types], merges


def _adds_bos(tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and list(tokenizer("a").input_ids[:1]) == [bos]


def write_gguf(model, tokenizer, path, *, quant: str = "f16", stop_ids=(), chat_template: str | None = None,
               name: str | None = None) -> Path:
    """Write ``model`` + ``tokenizer`` as GGUF at ``path`` atomically (a temp file renamed when complete)."""
    import gguf

    problem = check_exportable(model, tokenizer)
    if problem:
        raise SftkitError(problem)
    if quant not in QUANTS:
        raise SftkitError(f"unknown quantization {quant!r}", hint=f"use one of {', '.join(QUANTS)}")
    path = Path(path)
    cfg = model.config
    arch = SUPPORTED_ARCHITECTURES[_architecture(model)]
    n_head, n_kv = cfg.num_attention_heads, getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // n_head
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    writer = gguf.GGUFWriter(tmp, arch)
    try:
        writer.add_name(name or path.stem)
        writer.add_context_length(cfg.max_position_embeddings)
        writer.add_embedding_length(cfg.hidden_size)
        writer.add_block_count(cfg.num_hidden_layers)
        writer.add_feed_forward_length(cfg.intermediate_size)
        writer.add_head_count(n_head)
        writer.add_head_count_kv(n_kv)
        writer.add_rope_dimension_count(head_dim)
        if head_dim * n_head != cfg.hidden_size:  # llama.cpp assumes hidden_size / heads otherwise
            writer.add_key_length(head_dim)
            writer.add_value_length(head_dim)
        writer.add_rope_freq_base(_rope_theta(cfg))
        writer.add_layer_norm_rms_eps(float(cfg.rms_norm_eps))
        writer.add_vocab_size(cfg.vocab_size)
        writer.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                              "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0, "f32": gguf.LlamaFileType.ALL_F32}[quant])
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_tokenizer(writer, tokenizer, cfg.vocab_size, stop_ids, chat_template)
        _add_tensors(writer, model, arch, n_head, n_kv, quant)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _add_tokenizer(writer, tokenizer, vocab_size: int, stop_ids, chat_template) -> None:
    tokens, types, merges = _vocab(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(_pre_tokenizer(tokenizer))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for attr, add in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                      ("unk_token_id", writer.add_unk_token_id), ("pad_token_id", writer.add_pad_token_id)):
        if getattr(tokenizer, attr, None) is not None:
            add(int(getattr(tokenizer, attr)))
    writer.add_add_bos_token(_adds_bos(tokenizer))
    writer.add_add_eos_token(False)
    others = [int(i) for i in stop_ids if i != tokenizer.eos_token_id]
    if others:
        writer.add_eot_token_id(others[0])
    if stop_ids:
        writer.add_array(STOP_KEY, [int(i) for i in stop_ids])
    template = chat_template or getattr(tokenizer, "chat_template", None)
    if template:
        writer.add_chat_template(template)


def _add_tensors(writer, model, arch: str, n_head: int, n_kv: int, quant: str) -> None:
    import gguf
    import torch

    state = model.state_dict()
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, model.config.num_hidden_layers)
    for hf_name, tensor in state.items():
        if hf_name == "lm_head.weight" and tied:
            continue  # llama.cpp reads the output layer from token_embd when output.weight is absent
        new_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise SftkitError(f"tensor {hf_name} has no GGUF name in the {arch} layout",
                              hint="only plain Llama-family checkpoints are exported")
        data = tensor.detach().to(torch.float32).cpu().numpy()
        if hf_name.endswith("q_proj.weight"):
            data = _permute(data, n_head, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = _permute(data, n_head, n_kv)
        array, shape, qtype = _encode(data, quant)
        writer.add_tensor(new_name, array, raw_shape=shape, raw_dtype=qtype)
