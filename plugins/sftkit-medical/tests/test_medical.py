"""sftkit-medical: conformance, sources, the held-out split, the evaluator, the shipped recipe."""

from pathlib import Path

import pytest

from sftkit.api import SourceContext
from sftkit.errors import DataError
from sftkit.testing import check_plugin

RECIPE = Path(__file__).resolve().parents[1] / "src" / "sftkit_medical" / "recipes" / "medical-domain.toml"


def make_source(host, name, options, base_dir=Path(".")):
    return host.registry.get("sources", name).create(options, SourceContext(base_dir=Path(base_dir), name=name))


# [docs:conformance]
def test_plugin_conforms(sftkit_plugin):
    host = check_plugin(sftkit_plugin)  # hooks match specs, schemas valid, factories import, light import
    names = {(c.kind, c.name) for c in host.registry.by_origin(sftkit_plugin.__name__)}
    assert names == {("sources", "medical_text"), ("sources", "mmlu_medical"),
                     ("evaluators", "medical_mmlu"), ("recipes", "medical-domain")}
# [/docs:conformance]


def test_medical_text_bundled_sections(sftkit_host):
    rows = make_source(sftkit_host, "medical_text", {})
    assert len(rows) == 24  # 6 documents x 4 sections, "References" excluded by default
    assert all("References" not in r["text"].split("\n")[0] for r in rows)
    assert rows[0]["text"].startswith("Asthma — Overview\n\n")
    treatment = make_source(sftkit_host, "medical_text", {"sections": ["treatment"]})
    assert len(treatment) == 6 and all(" — Treatment\n" in r["text"] for r in treatment)
    docs = make_source(sftkit_host, "medical_text", {"by": "document", "exclude_sections": []})
    assert len(docs) == 6 and all("\nReferences\n" in r["text"] for r in docs)


def test_medical_text_user_file(sftkit_host, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "sepsis.md").write_text(
        "Sepsis is a life-threatening organ dysfunction caused by a dysregulated host response.\n\n"
        "## Management\nGive antibiotics within one hour and fluids for hypotension; measure lactate.\n"
        "## Private\nnot for training\n", encoding="utf-8")
    rows = make_source(sftkit_host, "medical_text",
                       {"path": "notes", "exclude_sections": ["private"], "min_chars": 10}, tmp_path)
    assert [r["text"].split("\n")[0] for r in rows] == ["sepsis", "sepsis — Management"]
    with pytest.raises(DataError, match="no text left"):
        make_source(sftkit_host, "medical_text", {"path": "notes", "sections": ["nothing"]}, tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        make_source(sftkit_host, "medical_text", {"path": "missing.md"}, tmp_path)


def test_mmlu_source_never_trains_on_evaluated_questions(sftkit_host):
    from sftkit_medical.evaluators import MedicalMMLU
    from sftkit_medical.mmlu import MEDICAL_TOPICS

    train = make_source(sftkit_host, "mmlu_medical", {"style": "prompt_completion"})
    everything = make_source(sftkit_host, "mmlu_medical", {"questions": "all"})
    evaluated = MedicalMMLU({"limit": 100000}).items()
    assert len(train) + len(evaluated) == len(everything) == 1417
    train_questions = {r["prompt"].split("\n\n", 1)[1].rsplit("\nA. ", 1)[0] for r in train}
    assert not train_questions & {item["question"].strip() for item in evaluated}
    assert {item["subject"] for item in evaluated} == set(MEDICAL_TOPICS)
    assert train[0]["completion"][:3] in (" A.", " B.", " C.", " D.")


class OracleTarget:
    """Prefers the right letter: checks that gold answers are mapped and scored correctly."""

    def __init__(self, items):
        self.gold = {it["question"].strip(): "ABCD"[it["gold"]] for it in items}

    def loglikelihood(self, pairs):
        out = []
        for context, continuation in pairs:
            question = next(q for q in self.gold if q in context)
            out.append(0.0 if continuation.strip() == self.gold[question] else -5.0)
        return out


def test_medical_mmlu_scores_by_loglikelihood(sftkit_host):
    evaluator = sftkit_host.registry.get("evaluators", "medical_mmlu").create({"limit": 14})
    items = evaluator.items()
    assert len(items) == 14 and len({it["subject"] for it in items}) == 7  # balanced over topics
    result = evaluator.evaluate(OracleTarget(items), None)
    assert result.primary == "accuracy" and result.metrics["accuracy"] == 1.0 and result.metrics["n"] == 14
    assert result.metrics["accuracy[virology]"] == 1.0


def test_medical_mmlu_on_a_tiny_model(sftkit_host, sftkit_tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftkit.evaluation import Target

    target = Target(AutoModelForCausalLM.from_pretrained(sftkit_tiny_model),
                    AutoTokenizer.from_pretrained(sftkit_tiny_model), None, "base")
    evaluator = sftkit_host.registry.get("evaluators", "medical_mmlu").create({"limit": 7})
    result = evaluator.evaluate(target, None)
    assert result.metrics["n"] == 7 and 0.0 <= result.metrics["accuracy"] <= 1.0
    assert result.samples and result.samples[0]["expected"][0] in "ABCD"


def test_shared_context_scoring_equals_the_targets_loglikelihood(sftkit_tiny_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftkit.evaluation import Target
    from sftkit.evaluation.choice import build_requests
    from sftkit_medical.evaluators import MedicalMMLU
    from sftkit_medical.scoring import SharedContextTarget

    target = Target(AutoModelForCausalLM.from_pretrained(sftkit_tiny_model),
                    AutoTokenizer.from_pretrained(sftkit_tiny_model), None, "base", batch_size=3)
    pairs = [p for item in MedicalMMLU({"limit": 5}).items() for p in build_requests(item, "letters")]
    pairs.append(("Question: what helps?\nAnswer:", " rest and fluids"))  # several tokens: the target's own path
    fast = SharedContextTarget(target).loglikelihood(pairs)
    slow = target.loglikelihood(pairs)
    assert len(fast) == len(slow) == 21
    assert all(abs(a - b) < 1e-4 for a, b in zip(fast, slow)), list(zip(fast, slow))


def test_shipped_recipe_is_listed_and_valid(sftkit_cli):
    listed = sftkit_cli("recipes", "list")
    assert listed.exit_code == 0 and "medical-domain" in listed.output and "sftkit_medical.plugin" in listed.output
    result = sftkit_cli("validate", RECIPE)
    assert result.exit_code == 0, result.output


def test_recipe_extends_the_shipped_one_by_name(sftkit_host, tmp_path):
    from sftkit.recipe import load_recipe

    mine = tmp_path / "mine.toml"
    mine.write_text('[recipe]\nname = "my-medical"\nextends = "medical-domain"\n\n[training]\nmax_steps = 5\n')
    recipe = load_recipe(mine, host=sftkit_host)
    assert recipe.config.training.max_steps == 5
    assert recipe.config.strategy.name == "domain"
    glossary = recipe.config.data[1].options["path"]  # stays relative to the shipped recipe's folder
    assert Path(glossary).is_file() and Path(glossary).name == "glossary.md"


# [docs:run]
def test_copied_recipe_runs_two_steps(sftkit_cli, sftkit_run, sftkit_tiny_model, tmp_path):
    copied = sftkit_cli("recipes", "copy", "medical-domain", tmp_path / "med")
    assert copied.exit_code == 0, copied.output
    recipe = tmp_path / "med" / "medical-domain.toml"
    assert (tmp_path / "med" / "data" / "glossary.md").is_file()
    outcome = sftkit_run(recipe, f"model.name={sftkit_tiny_model!r}", "data[2].max_rows=20",
                         "eval[0].smoke_limit=3")
    assert (outcome.run_dir / "COMPLETE").exists()
    (row,) = outcome.metrics["eval"]
    assert row["name"] == "medical_mmlu" and row["tuned"] is not None
# [/docs:run]
