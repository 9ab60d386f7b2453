"""Record formats: detection from fields, column mapping, conversion to canonical records, bad rows."""

import json

import pytest

from sftkit.data import load_data
from sftkit.data.formats import RowError, convert, detect_format, parse_label
from sftkit.errors import DataError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFTKIT_CACHE", str(tmp_path / "cache"))


def load_rows(tmp_path, rows, **entry):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = {"recipe": {"name": "t", "seed": 1}, "dataset": {"shuffle": False, "dedupe": False},
              "data": [{"source": "jsonl", "path": "rows.jsonl", **entry}]}
    return load_data(recipe, tmp_path)


USER_ASSISTANT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


@pytest.mark.parametrize("row, fmt, kind, expected", [
    ({"prompt": "Hi", "completion": "Hello!"}, "prompt_completion", "messages", {"messages": USER_ASSISTANT}),
    ({"messages": USER_ASSISTANT}, "messages", "messages", {"messages": USER_ASSISTANT}),
    ({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
     "sharegpt", "messages", {"messages": USER_ASSISTANT}),
    ({"instruction": "Hi", "input": "", "output": "Hello!"}, "alpaca", "messages", {"messages": USER_ASSISTANT}),
    ({"text": "A document."}, "text", "text", {"text": "A document."}),
    ({"prompt": "Hi", "chosen": "Hello!", "rejected": "Go away."}, "preference", "preference",
     {"prompt": [{"role": "user", "content": "Hi"}], "chosen": "Hello!", "rejected": "Go away."}),
    ({"prompt": "Hi", "completion": "Hello!", "label": "good"}, "labeled", "labeled",
     {"prompt": [{"role": "user", "content": "Hi"}], "completion": "Hello!", "label": True}),
    ({"text": "I love it", "label": "positive"}, "classification", "classification",
     {"text": "I love it", "label": "positive"}),
])
def test_every_format_is_detected_and_converted(tmp_path, row, fmt, kind, expected):
    second = {k: (v + " again" if isinstance(v, str) and k in ("completion", "output", "text", "chosen") else v)
              for k, v in row.items()}
    if fmt == "classification":
        second["label"] = "negative"  # one class alone is an error
    bundle = load_rows(tmp_path, [row, second])
    assert bundle.kind == kind
    assert bundle.stats["sources"]["jsonl:rows.jsonl"]["format"] == fmt
    first = bundle.train[0]
    for key, value in expected.items():
        assert first[key] == value
    assert first["source"] == "jsonl:rows.jsonl"


def test_detect_format_names_closest_format_and_near_miss_fields():
    with pytest.raises(DataError) as err:
        detect_format(["promt", "completion"], {"promt": "x", "completion": "y"}, "data.jsonl")
    msg = str(err.value)
    assert "closest is prompt_completion" in msg
    assert 'did you mean "promt"?' in msg
    assert 'columns = {prompt = "promt"}' in msg
    assert "promt, completion" in msg  # the fields found


def test_format_override_beats_detection(tmp_path):
    # fields text + label would be detected as classification; format = "text" keeps documents only
    bundle = load_rows(tmp_path, [{"text": "doc one", "label": "x"}, {"text": "doc two", "label": "y"}], format="text")
    assert bundle.kind == "text"
    assert bundle.train["text"] == ["doc one", "doc two"]


def test_explicit_format_with_missing_fields_lists_fields_found(tmp_path):
    with pytest.raises(DataError, match=r'format alpaca needs field\(s\) "instruction".*fields found: prompt, completion'):
        load_rows(tmp_path, [{"prompt": "a", "completion": "b"}], format="alpaca")


def test_column_mapping_renames_fields(tmp_path):
    rows = [{"question": "2+2?", "answer": "4", "prompt": "ignored"}]
    bundle = load_rows(tmp_path, rows, columns={"prompt": "question", "completion": "answer"})
    assert bundle.train[0]["messages"] == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


def test_column_mapping_to_a_missing_column_suggests_a_name(tmp_path):
    with pytest.raises(DataError, match=r'columns.prompt = "questoin", but the data has no field "questoin".*did you mean "question"'):
        load_rows(tmp_path, [{"question": "q", "completion": "a"}], columns={"prompt": "questoin"})


def test_prompt_completion_conversational_and_system(tmp_path):
    row = {"system": "Be brief.", "prompt": [{"role": "user", "content": "Hi"}],
           "completion": [{"role": "assistant", "content": "Hello"}]}
    msgs = load_rows(tmp_path, [row]).train[0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]


def test_alpaca_input_is_appended_to_the_instruction():
    rec = convert({"instruction": "Translate", "input": "chat", "output": "cat"}, "alpaca", "messages")
    assert rec["messages"][0]["content"] == "Translate\n\nchat"


def test_sharegpt_system_and_tool_roles():
    conv = [{"from": "system", "value": "S"}, {"from": "human", "value": "call it"},
            {"from": "gpt", "value": "calling"}, {"from": "tool", "value": "42"}, {"from": "gpt", "value": "42!"}]
    rec = convert({"conversations": conv}, "sharegpt", "messages")
    assert [m["role"] for m in rec["messages"]] == ["system", "user", "assistant", "tool", "assistant"]


def test_preference_with_message_lists_and_implicit_prompt():
    chosen = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    rejected = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Bye"}]
    rec = convert({"chosen": chosen, "rejected": rejected}, "preference", "preference")
    assert rec == {"prompt": [{"role": "user", "content": "Hi"}], "chosen": "Hello", "rejected": "Bye"}
    rec = convert({"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "A"}],
                   "rejected": "B"}, "preference", "preference")
    assert rec["chosen"] == "A" and rec["rejected"] == "B"


@pytest.mark.parametrize("value, expected", [(True, True), (False, False), ("good", True), ("bad", False),
                                             (1, True), (0, False), ("true", True), ("False", False), ("1", True)])
def test_labels_parse(value, expected):
    assert parse_label(value) is expected


def test_bad_label_is_a_row_error():
    with pytest.raises(RowError, match='label "maybe" is not one of'):
        parse_label("maybe")


def test_classification_integer_labels_become_strings(tmp_path):
    bundle = load_rows(tmp_path, [{"text": "a", "label": 1}, {"text": "b", "label": 0}])
    assert sorted(bundle.train["label"]) == ["0", "1"]


def test_messages_and_text_mix_is_an_error_unless_the_strategy_trains_on_text(tmp_path):
    (tmp_path / "chat.jsonl").write_text(json.dumps({"messages": USER_ASSISTANT}) + "\n")
    (tmp_path / "docs.jsonl").write_text(json.dumps({"text": "A long document."}) + "\n")
    recipe = {"recipe": {"name": "t"}, "data": [{"source": "jsonl", "path": "chat.jsonl"},
                                                 {"source": "jsonl", "path": "docs.jsonl"}]}
    with pytest.raises(DataError, match=r"different kinds of records: jsonl:chat.jsonl \(messages\), jsonl:docs.jsonl \(text\)"):
        load_data(recipe, tmp_path, accepts=("messages",))  # instruction's kinds
    bundle = load_data(recipe, tmp_path, accepts=("text", "messages"))  # domain's: chat rows become text
    assert bundle.kind == "text"
    assert sorted(bundle.train["text"]) == ["A long document.", "Hi\n\nHello!"]


# ---------------------------------------------------------------------------------- bad rows

@pytest.mark.parametrize("row, message", [
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "bot", "content": "x"}]},
     'unknown role "bot" in turn 1; expected one of system, user, assistant, tool'),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "asistant", "content": "x"}]},
     'did you mean "assistant"?'),
    ({"messages": [{"role": "user", "content": "Hi"}]}, "no assistant turn to train on (roles: user)"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " "}]},
     "assistant turn 1 is empty"),
    ({"conversations": [{"from": "human", "value": "Hi"}, {"from": "gtp", "value": "x"}]}, 'unknown role "gtp"'),
])
def test_bad_conversations_name_line_and_problem(tmp_path, row, message):
    good = {"messages": USER_ASSISTANT} if "messages" in row else {
        "conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}
    with pytest.raises(DataError) as err:
        load_rows(tmp_path, [good, row])
    text = str(err.value)
    assert "rows.jsonl:2:" in text
    assert message in text
    assert "\n" not in text


def test_missing_field_names_fields_found_and_suggests_mapping(tmp_path):
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c", "completoin": "d"}]
    with pytest.raises(DataError) as err:
        load_rows(tmp_path, rows)
    text = str(err.value)
    assert "rows.jsonl:2:" in text
    assert 'missing field "completion"' in text
    assert "fields found: prompt, completoin" in text
    assert 'did you mean "completoin"?' in text


def test_blank_lines_do_not_shift_reported_line_numbers(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n\n\n{"prompt": "c", "completion": ""}\n')
    recipe = {"recipe": {"name": "t"}, "data": [{"source": "jsonl", "path": "rows.jsonl"}]}
    with pytest.raises(DataError, match=r"rows.jsonl:4: .*assistant turn 1 is empty"):
        load_data(recipe, tmp_path)


def test_on_error_skip_counts_reasons(tmp_path):
    rows = [{"prompt": "a", "completion": "b"}, {"prompt": "c"},
            {"prompt": "e", "completion": " "}, {"prompt": "f", "completion": "g"}]
    bundle = load_rows(tmp_path, rows, on_error="skip")
    assert len(bundle.train) == 2
    assert bundle.stats["skipped"] == {'missing field "completion"': 1, "empty assistant turn": 1}
    src = bundle.stats["sources"]["jsonl:rows.jsonl"]
    assert src["rows"] == 2 and src["read"] == 4


def test_all_rows_bad_with_skip_is_an_error_naming_why(tmp_path):
    with pytest.raises(DataError) as err:
        load_rows(tmp_path, [{"prompt": "a", "completion": ""}, {"prompt": "b", "completion": None}], on_error="skip")
    text = str(err.value)
    assert "no train rows left" in text
    assert 'skipped as bad: empty assistant turn: 1, missing field "completion": 1' in text
