"""Pure scoring functions and gate logic."""


import pytest

from sftkit.evaluation import gate_failures
from sftkit.evaluation import metrics as M
from sftkit.evaluation.gates import check_gate


def test_normalize_and_matches():
    assert M.exact_match("  The Answer:  PARIS ", "the answer: paris")
    assert M.exact_match("Paris.", "paris")  # trailing punctuation is normalised by default
    assert not M.exact_match("Paris.", "paris", ["lower", "strip"])
    assert M.exact_match("Paris.", "paris", ["lower", "punctuation", "strip"])
    assert M.exact_match("the cat", ["dog", "a cat"], ["lower", "articles", "whitespace", "strip"])
    assert M.contains("I think it is Paris, France", "paris")
    assert not M.contains("anything", "")
    assert M.regex_match("Answer: 42", r"\d+")
    assert not M.regex_match("Answer: 42", r"\d+", full=True)
    assert M.regex_match("YES", "yes", ignore_case=True)


@pytest.mark.parametrize("text,value", [
    ("so the answer is\n#### 1,234", 1234.0),
    ("2 apples and 3 pears, 5 in total", 5.0),
    ("costs $12.50.", 12.5),
    ("negative: -7", -7.0),
    ("#### 18\nthen 99", 18.0),
    ("no number here", None),
])
def test_extract_number(text, value):
    assert M.extract_number(text) == value


def test_parse_json_variants():
    assert M.parse_json('{"a": 1}')[0]
    assert M.parse_json('```json\n{"a": [1, 2]}\n```')[1] == {"a": [1, 2]}
    ok, value, _ = M.parse_json('Sure! Here it is: {"a": "}"} hope it helps')
    assert ok and value == {"a": "}"}
    assert not M.parse_json('Sure! {"a": ', extract=True)[0]
    assert not M.parse_json('x {"a": 1}', extract=False)[0]
    assert not M.parse_json("")[0]


def test_classification_metrics():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    assert M.accuracy(pred, gold) == pytest.approx(0.6)
    # per class F1: a: tp1 fp1 fn1 -> 0.5; b: tp2 fp1 fn0 -> 0.8; c: 0 -> mean 0.4333
    assert M.macro_f1(pred, gold) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    cm = M.confusion_matrix(pred, gold)
    assert cm["labels"] == ["a", "b", "c"]
    assert cm["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_clean_text_invalid_utf8():
    assert M.clean_text(b"\xffok") == "\ufffdok"
    s = M.clean_text("a\udcffb")
    s.encode("utf-8")  # writable
    assert M.has_invalid_utf8(s)


def test_ngram_overlap_and_pass_at_k():
    ref = "one two three four five six seven eight nine ten"
    assert M.ngram_overlap(ref, ref, 4) == 1.0
    assert M.ngram_overlap("alpha beta gamma delta epsilon", ref, 4) == 0.0
    assert M.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert M.pass_at_k(5, 5, 1) == 1.0


def _row(tuned, base=None, hib=True, label="json_valid", primary="valid_rate", error=None):
    return {"label": label, "primary": primary, "tuned": tuned, "base": base, "higher_is_better": hib,
            "errors": {"base": None, "tuned": error}}


def test_gate_messages():
    row = _row(0.42)
    row["gate"] = check_gate(row, {"min": 0.9})
    assert not row["gate"]["passed"]
    assert gate_failures([row]) == ["gate failed: json_valid.valid_rate = 0.42 < min 0.9"]

    row = _row(3.2, primary="eval_loss", label="loss", hib=False)
    row["gate"] = check_gate(row, {"max": 3.0})
    assert gate_failures([row]) == ["gate failed: loss.eval_loss = 3.2 > max 3"]

    # regression: higher is better, drop 0.2 > 0.05
    row = _row(0.5, base=0.7, label="mmlu", primary="accuracy")
    row["gate"] = check_gate(row, {"max_regression": 0.05})
    msg = gate_failures([row])[0]
    assert "mmlu.accuracy regressed by 0.2" in msg and "max_regression 0.05" in msg
    # lower is better: loss went down, no regression
    row = _row(1.0, base=2.0, hib=False, label="loss", primary="eval_loss")
    row["gate"] = check_gate(row, {"max_regression": 0.0})
    assert row["gate"]["passed"]
    # no base: regression gate cannot be checked, noted but not failed
    row = _row(0.5)
    row["gate"] = check_gate(row, {"max_regression": 0.1})
    assert row["gate"]["passed"] and row["gate"]["notes"]
    # value missing (evaluator failed) with a gate -> failure naming the error
    row = _row(None, error="judge model 'x' could not be loaded")
    row["gate"] = check_gate(row, {"min": 0.5})
    assert "could not be computed (judge model 'x' could not be loaded)" in gate_failures([row])[0]
    # no thresholds, no failure
    row = _row(None)
    row["gate"] = check_gate(row, {})
    assert row["gate"]["passed"] and gate_failures([row]) == []


def test_better_scorers_whole_words_trailing_punctuation_and_extract():
    from sftkit.evaluation import metrics as M

    assert not M.contains("They do not overlap", "No") and M.contains("No, they do not.", "no")
    assert not M.contains("The answer is C", "A") and M.contains("answer: (A)", "A")
    assert M.contains("They do not overlap", "No", whole_words=False)
    assert M.exact_match("Yes.", "Yes") and M.exact_match("yes!", "Yes.") and not M.exact_match("Yes no", "Yes")
    assert M.extract_answer("(B) because ...", "first_letter") == "B"
    assert M.extract_answer("I think: Paris, France", "first_word") == "I"
    assert M.extract_answer("Final answer: 42 apples", r"regex:answer:\s*(\d+)") == "42"
    assert M.extract_answer('Sure: {"answer": {"city": "Kyiv"}}', "json:answer.city") == "Kyiv"
    assert M.extract_answer("no json", "json:answer") == ""


def test_numeric_answer_strict_flexible_and_truncation(tmp_path):
    from sftkit.api import RunContext
    from sftkit.evaluation.generation import NumericAnswerEvaluator

    class Tok:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

    class T:
        label = "tuned"
        tokenizer = Tok()

        def generate(self, convs, max_new_tokens=128):
            return [{"a": "so 2+2 is 4\n#### 4", "b": "Three plus three makes", "c": "it is 9 then 6",
                     "d": " ".join(["step"] * 8) + " #### 12"}[c[-1]["content"]] for c in convs]

    items = [{"question": "a", "answer": "#### 4"}, {"question": "b", "answer": "6"},
             {"question": "c", "answer": "6"}, {"question": "d", "answer": "12"}]
    run = RunContext(recipe={}, recipe_path=None, base_dir=tmp_path, run_dir=tmp_path)
    res = NumericAnswerEvaluator({"items": items, "max_new_tokens": 10}).evaluate(T(), run)
    m = res.metrics
    # strict: only the "#### 4" answer (d's "#### 12" was cut off at the token limit: not an answer);
    # flexible: the last number also in c and in the cut-off d
    assert m["strict"] == 0.25 and m["flexible"] == 0.75 and m["truncated"] == 1
    assert res.samples[3]["truncated"] is True and res.samples[3]["strict"] is None
    assert m["accuracy"] == m["flexible"]
    strict = NumericAnswerEvaluator({"items": items, "max_new_tokens": 10, "match": "strict"}).evaluate(T(), run)
    assert strict.metrics["accuracy"] == 0.25


def test_abstention_hallucination_and_false_refusals(tmp_path):
    from sftkit.api import RunContext
    from sftkit.evaluation.abstention import AbstentionEvaluator

    answers = {"Capital of France?": "Paris.", "Who won the 2031 World Cup?": "Brazil won it.",
               "Name of my cat?": "I don't know your cat's name.", "2+2?": "I'm not sure."}

    class T:
        label = "tuned"

        def generate(self, convs, max_new_tokens=64):
            return [answers[c[-1]["content"]] for c in convs]

    items = [{"prompt": "Capital of France?", "answerable": True}, {"prompt": "Who won the 2031 World Cup?", "answerable": False},
             {"prompt": "Name of my cat?", "answerable": "false"}, {"prompt": "2+2?", "answerable": True}]
    run = RunContext(recipe={}, recipe_path=None, base_dir=tmp_path, run_dir=tmp_path)
    m = AbstentionEvaluator({"items": items}).evaluate(T(), run).metrics
    assert m["accuracy"] == 0.5 and m["hallucination_rate"] == 0.5 and m["false_refusal_rate"] == 0.5
    custom = AbstentionEvaluator({"items": items, "refusal_patterns": ["won it"]}).evaluate(T(), run).metrics
    assert custom["hallucination_rate"] == 0.5 and custom["false_refusal_rate"] == 0.0
