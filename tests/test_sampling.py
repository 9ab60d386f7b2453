"""limit / max_rows: seeded, stratified subsets instead of the first rows in file order."""

from collections import Counter

from sftkit.api import RunContext
from sftkit.config import resolve
from sftkit.sampling import sample_indices, sample_rows


def test_sample_indices_is_seeded_sorted_and_proportional():
    strata = ["virology"] * 80 + ["law"] * 15 + ["math"] * 5
    idx = sample_indices(100, 20, seed=7, strata=strata)
    assert idx == sorted(idx) and len(set(idx)) == 20
    assert idx == sample_indices(100, 20, seed=7, strata=strata) != sample_indices(100, 20, seed=8, strata=strata)
    assert Counter(strata[i] for i in idx) == {"virology": 16, "law": 3, "math": 1}
    assert sample_indices(5, 10, seed=0) == [0, 1, 2, 3, 4]
    plain = sample_indices(1000, 10, seed=1)
    assert plain != list(range(10)) and max(plain) > 100  # not the head of the file


def test_multiple_choice_limit_covers_every_subject(tmp_path):
    from sftkit.evaluation.choice import MultipleChoiceEvaluator

    items = [{"question": f"q{i}", "choices": ["a", "b"], "answer": 0, "subject": "virology" if i < 30 else s}
             for i, s in zip(range(40), ["law", "math"] * 20)]
    ev = MultipleChoiceEvaluator({"items": items, "limit": 8})
    run = RunContext(config=resolve({"recipe": {"seed": 3}}), recipe_path=None, base_dir=tmp_path, run_dir=tmp_path)
    chosen = ev.items(run)
    assert Counter(i["subject"] for i in chosen) == {"virology": 6, "law": 1, "math": 1}
    assert [i["question"] for i in chosen] == [i["question"] for i in ev.items(run)]
    assert sample_rows(items, None, seed=0) == items
