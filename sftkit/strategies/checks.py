"""Cross-field rules ``sftkit validate`` runs for the built-in strategies (no heavy imports)."""

from __future__ import annotations

from sftkit.errors import Problem


def _kinds(ctx) -> set:
    recipe = ctx.recipe
    out = set()
    for kind, item in zip(ctx.data_kinds or [], recipe.get("data") or []):
        if kind and not (isinstance(item, dict) and item.get("role") == "replay"):
            out.add(kind)
    return out


# tone's methods and the data kinds each trains on (one table: validation and training read it)
METHOD_KINDS = {"dpo": ("preference",), "kto": ("labeled",), "sft": ("messages", "labeled", "preference")}


def check_tone(options: dict, ctx) -> list:
    """``method = "dpo"`` needs preference pairs, ``"kto"`` good/bad labels, ``"sft"`` good answers
    (conversations, labelled answers or the chosen side of pairs)."""
    method = options.get("method", "auto")
    kinds = _kinds(ctx)
    if method in METHOD_KINDS and kinds and not kinds & set(METHOD_KINDS[method]):
        return [Problem(f"method {method!r} needs {' or '.join(METHOD_KINDS[method])} data, "
                        f"but the data is {', '.join(sorted(kinds))}",
                        path="method",
                        hint='use method = "auto" to pick the method from the data')]
    return []


def check_domain(options: dict, ctx) -> list:
    """A replay table needs a path (or a source) and a fraction below 1."""
    replay = options.get("replay")
    if isinstance(replay, dict) and not replay.get("path"):
        return [Problem("replay needs a path to general text (.txt/.md files, or .jsonl/.csv with a text column)",
                        path="replay")]
    return []


def check_reasoning(options: dict, ctx) -> list:
    """The reasoning strategy: ``num_generations`` fits the batch
    (a group may span processes, so the batch of one process must divide it or be divided by it; the
    exact rule, with the process count, is checked when the run starts); GRPO-only options not
    given to RLOO; ``epsilon_high`` not below ``epsilon``; vLLM installed when asked for."""
    import importlib.util

    problems = []  # [[reward]] tables present and readable: validate's own rule for rewards=True strategies
    from sftkit.config import Training

    training = Training.of(ctx.recipe.get("training") if isinstance(ctx.recipe.get("training"), dict) else None)
    per_device, accumulation = training.per_device_train_batch_size, training.gradient_accumulation_steps
    n = options.get("num_generations")
    if all(isinstance(v, int) and v > 0 for v in (per_device, accumulation, n)):
        batch = per_device * accumulation
        if batch % n and n % batch:
            problems.append(Problem(f"num_generations = {n} does not fit the batch of {batch} completions per process "
                                    f"(per_device_train_batch_size {per_device} x gradient_accumulation_steps "
                                    f"{accumulation})", path="num_generations",
                                    hint="make per_device_train_batch_size x gradient_accumulation_steps a multiple "
                                         "of num_generations"))
    if options.get("method") == "rloo":
        for key in ("loss_type", "scale_rewards"):
            if key in (ctx.recipe.get("strategy") or {}):
                problems.append(Problem(f"{key} is a GRPO option; method = \"rloo\" does not use it", path=key,
                                        hint='remove it, or use method = "grpo"'))
    low, high = options.get("epsilon"), options.get("epsilon_high")
    if isinstance(high, (int, float)) and isinstance(low, (int, float)) and high < low:
        problems.append(Problem(f"epsilon_high = {high} is below epsilon = {low}", path="epsilon_high",
                                hint="set epsilon_high >= epsilon (DAPO uses 0.28 with 0.2), or remove it"))
    if options.get("use_vllm") and importlib.util.find_spec("vllm") is None:
        problems.append(Problem("use_vllm = true needs vLLM, which is not installed", path="use_vllm",
                                hint="pip install vllm (GPU machines only), or remove use_vllm"))
    return problems
