"""Leave-one-cluster-out: [[data]] cluster tags, per-cluster n, a held-out vs seen summary, and
validate's check that held-out clusters exist to hold out."""

import json

import tomli_w
from click.testing import CliRunner

from sftkit.api import EvalResult, RunContext
from sftkit.config import resolve
from sftkit.data import load_data
from sftkit.evaluation import compare


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path.name


def test_data_cluster_tags_every_row_and_holds_out(tmp_path):
    geo = _write(tmp_path / "geo.jsonl", [{"prompt": f"Capital {i}?", "completion": f"City {i}."} for i in range(10)])
    math = _write(tmp_path / "math.jsonl", [{"prompt": f"{i}+{i}?", "completion": f"{2 * i}."} for i in range(6)])
    recipe = {"recipe": {"name": "t", "seed": 1},
              "data": [{"source": "jsonl", "path": geo, "cluster": "geo"},
                       {"source": "jsonl", "path": math, "cluster": "math"}],
              "dataset": {"holdout_clusters": ["math"]}}
    bundle = load_data(recipe, tmp_path)
    assert set(bundle.train["cluster"]) == {"geo"} and len(bundle.train) == 10
    assert set(bundle.eval["cluster"]) == {"math"} and len(bundle.eval) == 6


def test_held_out_vs_seen_summary_and_per_cluster_n(tmp_path):
    def res(scores, clusters):
        items = [{"score": s, "prompt": str(i), "cluster": c} for i, (s, c) in enumerate(zip(scores, clusters))]
        return EvalResult({"accuracy": sum(scores) / len(scores)}, "accuracy", items=items)

    clusters = ["geo"] * 4 + ["math"] * 2
    from types import SimpleNamespace

    held = SimpleNamespace(stats={"held_out": {"clusters": ["math"], "rows": 2}})  # what the data stage held out
    run = RunContext(config=resolve({"eval": [{"name": "exact_match"}], "dataset": {"holdout_clusters": ["math"]}}),
                     recipe_path=None, base_dir=tmp_path, run_dir=tmp_path, data=held)
    (row,) = compare(run, {"exact_match": res([0, 0, 1, 0, 0, 1], clusters)},
                     {"exact_match": res([1, 1, 1, 1, 0, 0], clusters)})
    s = row["held_out_clusters"]
    assert s["held_out"] == {"n": 2, "base": 0.5, "tuned": 0.0}
    assert s["seen"] == {"n": 4, "base": 0.25, "tuned": 1.0}
    assert s["clusters"]["math"]["held_out"] is True and s["clusters"]["geo"]["n"] == 4
    from sftkit.evaluation.base import by_cluster

    assert by_cluster("accuracy", [1, 0, 1], ["a", "a", "b"]) == {"accuracy[a]": 0.5, "n[a]": 2, "accuracy[b]": 1.0, "n[b]": 1}


def test_validate_holdout_clusters_without_clusters(tmp_path):
    from sftkit.cli import cli

    (tmp_path / "train.jsonl").write_text('{"prompt": "hi", "completion": "hello"}\n')
    recipe = {"recipe": {"name": "v"}, "model": {"name": "org/m"}, "data": [{"source": "jsonl", "path": "train.jsonl"}],
              "strategy": {"name": "instruction"}, "dataset": {"holdout_clusters": ["geo"]}}
    path = tmp_path / "r.toml"
    path.write_text(tomli_w.dumps(recipe))
    res = CliRunner().invoke(cli, ["validate", str(path)])
    assert res.exit_code == 1 and "holdout_clusters needs clusters" in res.output
    recipe["data"][0]["cluster"] = "geo"
    path.write_text(tomli_w.dumps(recipe))
    res = CliRunner().invoke(cli, ["validate", str(path)])
    assert res.exit_code == 0, res.output


def test_each_holdout_runs_once_per_cluster_and_writes_one_table(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_run import cli, make_recipe

    from sftkit.tiny import save_tiny_model

    tiny = save_tiny_model(tmp_path / "tiny")
    geo = _write(tmp_path / "geo.jsonl", [{"prompt": f"Capital {i}?", "completion": f"City {i}."} for i in range(8)])
    math = _write(tmp_path / "math.jsonl", [{"prompt": f"{i}+{i}?", "completion": f"{2 * i}."} for i in range(6)])
    data = [{"source": "jsonl", "path": geo, "cluster": "geo"}, {"source": "jsonl", "path": math, "cluster": "math"}]
    recipe = make_recipe(tmp_path, tiny, data=data, training={"max_steps": 1},
                         dataset={"holdout_clusters": ["geo", "math"]},
                         eval=[{"name": "exact_match", "max_new_tokens": 2}])
    res = cli("run", recipe, "--output", tmp_path / "loco", "--each-holdout")
    assert res.exit_code == 0, res.output
    table = json.loads((tmp_path / "loco" / "each_holdout.json").read_text())
    assert [(r["cluster"], r["n"]) for r in table["rows"]] == [("geo", 8), ("math", 6)]
    assert (tmp_path / "loco" / "holdout-geo" / "COMPLETE").exists()
    assert "| math | exact_match | accuracy | 6 |" in (tmp_path / "loco" / "each_holdout.md").read_text()
