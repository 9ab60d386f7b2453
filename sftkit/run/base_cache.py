"""The base model's evaluation results, reused across runs, keyed by content.

Two runs that evaluate the same base model with the same evaluators on the same items get the same
base results, so the second run takes them from ``<cache>/base_eval/<key>.json`` (``$SFTKIT_CACHE``
or ``~/.cache/sftkit``; ``$SFTKIT_BASE_EVAL_CACHE`` moves it) instead of evaluating again. The key
is a hash of everything the results depend on, by content, never by path:

- the base model: the bytes of its weight, config and tokenizer files (a GGUF file's bytes; a hub
  model's commit), and the ``[model]`` options besides the name (revision, dtype, tokenizer, ...);
- the evaluation: the ``[[eval]]`` tables with their defaults, the ``[template]``, the eval split's
  rows, every file an evaluator option names, the seed (``limit`` samples with it), the row length,
  the evaluation batch size, precision and device; the ``[[baseline]]`` tables and, when there are
  any, the training rows (few-shot examples are drawn from them); under QLoRA, the 4-bit quantization
  (the base evaluated is the 4-bit one);
- the code: the source files of the evaluation package and of each evaluator's module.

When something cannot be fingerprinted by content (a hub model not in the local cache, a smoke
run's random model, several processes) :func:`key` returns None and nothing is cached.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import uuid
from pathlib import Path

KIND = "base_eval"
VERSION = 1
MODEL_FILES = (".safetensors", ".bin", ".json", ".model", ".txt", ".jinja", ".gguf", ".tiktoken")


def directory() -> Path:
    """Where cached base results live."""
    env = os.environ.get("SFTKIT_BASE_EVAL_CACHE")
    if env:
        return Path(env).expanduser()
    from sftkit.paths import cache_root

    return cache_root() / KIND


def _files_digest(paths) -> str:
    from sftkit.modeling.cache import content_digest

    h = hashlib.sha256()
    for name, path in sorted(paths):
        h.update(f"{name}={content_digest(path)}\n".encode())
    return h.hexdigest()


def model_fingerprint(model: dict, base_dir) -> str | None:
    """The base model's identity by content (None when it cannot be had without loading it)."""
    from sftkit.modeling.source import describe_model_source

    src = describe_model_source(model, base_dir)
    if src.problem():
        return None
    if src.kind == "gguf":
        return _files_digest([("gguf", src.path)])
    if src.kind == "dir":
        root = Path(src.path)
        files = [(p.relative_to(root).as_posix(), p) for p in root.rglob("*")
                 if p.is_file() and p.name.endswith(MODEL_FILES)]
        return _files_digest(files) if files else None
    try:  # a hub model: the commit the local cache resolves the revision to
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(src.name, "config.json", revision=src.revision)
    except Exception:
        return None
    if not isinstance(found, str):
        return None
    return "hub:" + src.name + "@" + Path(found).parent.name


def _code_digest(evaluators) -> str:
    """The evaluation package's source and each evaluator's own module: code that makes the numbers."""
    import sftkit.evaluation as package

    files = [(p.name, p) for p in Path(package.__file__).parent.glob("*.py")]
    for ev in evaluators:
        try:
            source = inspect.getsourcefile(type(ev))
        except TypeError:
            source = None
        if source:
            files.append((f"{type(ev).__module__}.{type(ev).__qualname__}", Path(source)))
    return _files_digest(files)


def _split_digest(split) -> str | None:
    from sftkit.evaluation.itemset import split_digest

    return split_digest(split)


def _eval_files(config, host, base_dir) -> list:
    """Files the ``[[eval]]`` tables name (options the evaluator's schema marks as paths)."""
    from sftkit.paths import resolve_path
    from sftkit.schema import path_options

    out = []
    for i, entry in enumerate(config.eval):
        comp = host.registry.find("evaluators", str(entry.name)) if host is not None else None
        for key_path, value in path_options(comp.schema if comp else None, entry.as_dict()):
            path = resolve_path(str(value), base_dir)
            if path.is_file():
                out.append((f"eval[{i}].{'.'.join(map(str, key_path))}", path))
    return out


def key(state) -> str | None:
    """The content key of this run's base evaluation, or None when it is not cacheable."""
    ctx = state.ctx
    world = ctx.world
    if ctx.smoke or (world is not None and world.distributed) or not state.config.eval:
        return None
    config, base_dir = state.config, state.recipe.base_dir
    from sftkit.config import Model

    if config.model.loader != Model().loader:  # a plugin's loader: its references mean what it says
        return None
    model = model_fingerprint(config.model.as_dict(), base_dir)
    if model is None:
        return None
    tokenizer = config.model.tokenizer
    if tokenizer:
        tokenizer = model_fingerprint({"name": tokenizer}, base_dir)
        if tokenizer is None:
            return None
    from sftkit.evaluation.runner import eval_specs

    specs = eval_specs(ctx)
    bundle = ctx.data
    precision = ctx.precision.as_dict() if ctx.precision is not None else None
    parts = {
        "version": VERSION,
        "model": model, "tokenizer": tokenizer,
        "model_options": {k: v for k, v in config.model.as_dict().items() if k not in ("name", "tokenizer")},
        "eval": [e.as_dict() for e in config.eval], "template": config.template.as_dict(),
        "eval_split": _split_digest(getattr(bundle, "eval", None)),
        "eval_files": _files_digest(_eval_files(config, state.host, base_dir)),
        # prompt-only baselines: their tables, and the training rows few-shot examples are drawn from
        "baselines": [b.as_dict() for b in config.baseline],
        "train_split": _split_digest(getattr(bundle, "train", None)) if config.baseline else None,
        "seed": config.seed, "row_length": config.training.max_length,
        "batch": config.training.per_device_eval_batch_size, "precision": precision, "device": ctx.device,
        "code": _code_digest([s.evaluator for s in specs if s.evaluator is not None]),
    }
    adapter = config.adapter
    if adapter is not None and adapter.quantized:  # QLoRA: the base evaluated is the 4-bit one
        parts["quantization"] = {"kind": adapter.kind, "double_quant": adapter.double_quant}
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def load(digest: str) -> tuple[dict, dict] | None:
    """The cached results for ``digest``: (eval label -> EvalResult, baseline label -> the same), or None."""
    from sftkit.api import EvalResult

    try:
        stored = json.loads((directory() / f"{digest}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stored.get("key") != digest or not isinstance(stored.get("results"), dict):
        return None
    names = set(EvalResult.__dataclass_fields__)

    def results(by_label: dict) -> dict:
        return {label: EvalResult(**{k: v for k, v in r.items() if k in names}) for label, r in by_label.items()}

    return results(stored["results"]), {b: results(r) for b, r in (stored.get("baselines") or {}).items()}


def store(digest: str, results: dict, baselines: dict | None = None, *, about: dict | None = None) -> None:
    """Keep ``results`` (eval label -> EvalResult) and the ``[[baseline]]`` results (baseline label ->
    the same) under ``digest``; written whole or not at all. Results with an evaluator error are not
    kept (the next run tries again), nor results that show a value taken from the environment (a
    label, prompt, expected answer or sample holding a secret: the cache lives outside the run
    directory, and redacted results could not stand in for the real ones)."""
    from dataclasses import asdict

    from sftkit.evaluation import jsonable

    everything = [*results.values(), *(r for by in (baselines or {}).values() for r in by.values())]
    if any(getattr(r, "error", None) for r in everything):
        return

    def plain(by_label: dict) -> dict:
        return {label: jsonable(asdict(r)) for label, r in by_label.items()}

    from sftkit.redaction import holds_secret, scrub_obj

    kept = {"results": plain(results), "baselines": {b: plain(r) for b, r in (baselines or {}).items()}}
    if holds_secret(kept):  # results redacted would not be the results: a secret stays out of the cache
        return
    where = directory()
    try:
        where.mkdir(parents=True, exist_ok=True)
        tmp = where / f".{digest}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        payload = {"key": digest, **scrub_obj(about or {}), **kept}
        tmp.write_text(json.dumps(payload), encoding="utf-8")
        os.replace(tmp, where / f"{digest}.json")
    except OSError:  # a cache that cannot be written is no reason to fail the run
        pass
