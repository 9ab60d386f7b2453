"""tokenize_bundle: ids and labels from the formatter, truncation/drop counts, statistics."""

import json

import pytest

from sftkit.api import IGNORE_INDEX
from sftkit.data import TokenizedBundle, load_data, tokenize_bundle
from sftkit.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))


class TinyFormatter:
    """A minimal api.Formatter: ChatML-like turns, assistant content + end token trained."""

    name = "tiny"
    chat_template = None

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def setup(self, tokenizer, model=None):
        self.tokenizer = tokenizer

    def _ids(self, text):
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_messages(self, messages, max_length=None):
        ids, labels = [], []
        for m in messages:
            head, body = self._ids(f"<|im_start|>{m['role']}\n"), self._ids(m["content"] + "<|im_end|>")
            ids += head + body
            labels += [IGNORE_INDEX] * len(head) + (body if m["role"] == "assistant" else [IGNORE_INDEX] * len(body))
        return {"input_ids": ids[:max_length], "labels": labels[:max_length]}

    def encode_text(self, text, max_length=None):
        ids = self._ids(text) + [self.tokenizer.eos_token_id]
        return {"input_ids": ids, "labels": list(ids)}

    def render_prompt(self, messages):
        return ""


def bundle_of(tmp_path, rows, **dataset):
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {"recipe": {"name": "t"}, "data": [{"source": "jsonl", "path": "a.jsonl"}],
              "dataset": {"shuffle": False, **dataset}}
    return load_data(recipe, tmp_path)


ROWS = [{"prompt": "Hi", "completion": "Hello!"},
        {"prompt": "What is the capital of France? " * 8, "completion": "Paris."},
        {"prompt": "Thanks", "completion": "You are welcome."}]


def test_ids_labels_length_and_stats(tmp_path, tiny_tokenizer):
    fmt = TinyFormatter(tiny_tokenizer)
    tb = tokenize_bundle(bundle_of(tmp_path, ROWS), fmt, max_length=512)
    assert isinstance(tb, TokenizedBundle) and tb.kind == "messages"
    row = tb.train[0]
    expected = fmt.encode_messages(row["messages"])
    assert row["input_ids"] == expected["input_ids"] and row["labels"] == expected["labels"]
    assert row["length"] == len(row["input_ids"])
    st = tb.stats
    assert st["truncated"] == 0 and st["dropped"] == {} and st["no_trained_rows"] == 0
    assert st["total_tokens"] == sum(tb.train["length"])
    assert 0 < st["trained_tokens"] < st["total_tokens"]
    assert sum(b["count"] for b in st["length_histogram"]) == 3
    assert st["sources"]["jsonl:a.jsonl"]["rows"] == 3  # load statistics are kept


def test_truncation_counts_and_rows_left_without_trained_tokens(tmp_path, tiny_tokenizer):
    fmt = TinyFormatter(tiny_tokenizer)
    bundle = bundle_of(tmp_path, ROWS)
    long_len = len(fmt.encode_messages(bundle.train[1]["messages"])["input_ids"])
    tb = tokenize_bundle(bundle, fmt, max_length=40)
    assert long_len > 40
    assert tb.stats["truncated"] == 1
    # the long prompt fills all 40 tokens: nothing trained, so the row is dropped and counted
    assert tb.stats["no_trained_rows"] == 1 and tb.stats["dropped"] == {"no_trained_tokens": 1}
    assert len(tb.train) == 2 and max(tb.train["length"]) <= 40
    assert tb.stats["length_histogram"][-1] == {"lo": 41, "hi": None, "count": 1}


def test_drop_mode_drops_long_rows(tmp_path, tiny_tokenizer):
    tb = tokenize_bundle(bundle_of(tmp_path, ROWS), TinyFormatter(tiny_tokenizer), max_length=40, truncation="drop")
    assert tb.stats["dropped"] == {"too_long": 1} and tb.stats["truncated"] == 0 and len(tb.train) == 2


def test_every_row_dropped_is_an_error_with_the_reason(tmp_path, tiny_tokenizer):
    with pytest.raises(DataError, match=r"no train rows left after tokenizing \(dropped too_long: 3; max_length 3\).*raise training.max_length"):
        tokenize_bundle(bundle_of(tmp_path, ROWS), TinyFormatter(tiny_tokenizer), max_length=3, truncation="drop")


def test_eval_split_gets_its_own_token_stats(tmp_path, tiny_tokenizer):
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(20)]
    tb = tokenize_bundle(bundle_of(tmp_path, rows, eval_fraction=0.25), TinyFormatter(tiny_tokenizer), max_length=64)
    assert len(tb.eval) == 5 and tb.stats["eval_tokens"]["rows"] == 5 and tb.stats["eval_rows"] == 5


def test_text_and_preference_kinds(tmp_path, tiny_tokenizer):
    fmt = TinyFormatter(tiny_tokenizer)
    tb = tokenize_bundle(bundle_of(tmp_path, [{"text": "A document."}, {"text": "Another one."}]), fmt, max_length=64)
    assert tb.kind == "text" and tb.train[0]["labels"] == tb.train[0]["input_ids"]
    pref = bundle_of(tmp_path, [{"prompt": "Hi", "chosen": "Hello", "rejected": "Go"},
                                {"prompt": "Yo", "chosen": "Hey", "rejected": "No"}])
    tb = tokenize_bundle(pref, fmt, max_length=64)  # viewed as prompt + chosen
    assert tiny_tokenizer.decode([t for t in tb.train[0]["labels"] if t != IGNORE_INDEX]) == "Hello<|im_end|>"


def test_with_the_built_in_chatml_formatter(tmp_path):
    from sftkit.config import Template
    from sftkit.templates import make_formatter
    from sftkit.tiny import tiny_tokenizer as make_tokenizer

    tiny_tokenizer = make_tokenizer()  # set-up changes the tokenizer: not the shared fixture
    fmt = make_formatter(Template.of({"formatter": "chatml"}))
    fmt.setup(tiny_tokenizer)
    tb = tokenize_bundle(bundle_of(tmp_path, ROWS), fmt, max_length=512)
    row = tb.train[0]
    trained = tiny_tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX])
    assert trained.startswith("Hello!")
    assert tb.stats["dropped"] == {}
