"""``sftkit arena``: blind battles between models (``open``, the default) and votes → data (``export``)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import click

from sftkit.errors import EXIT_USAGE, SftkitError


class ArenaGroup(click.Group):
    """``sftkit arena RECIPE`` / ``sftkit arena --models A B`` mean ``sftkit arena open ...``."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["open", *args]
        return super().parse_args(ctx, args)


@click.group("arena", cls=ArenaGroup)
def arena():
    """Blind side-by-side battles between models; votes become preference data.

    \b
    sftkit arena RECIPE                  the recipe's base model vs its finished run (named as
                                         everywhere: a run by its folder, a file by its stem)
    sftkit arena --models A B [C ...]    run directories, model directories or model references
    sftkit arena export -o pairs.jsonl   votes as prompt/chosen/rejected (or --kind kto)
    """


def recipe_prompts(data: dict, base_dir: Path) -> list[str]:
    """The prompts of a recipe's [[eval]] tables (inline items, or their prompts/path files)."""
    from sftkit.evaluation.base import PROMPT_FIELDS, read_records
    from sftkit.paths import resolve_path

    prompts: list[str] = []
    for table in data.get("eval", []) or []:
        items = table.get("items")
        if items is None:
            path = table.get("prompts") or table.get("path")
            items = read_records(resolve_path(path, base_dir), where=f"[[eval]] {table.get('name')}") if path else []
        for it in items:
            text = it if isinstance(it, str) else next(
                (it[k] for k in PROMPT_FIELDS if isinstance(it, dict) and isinstance(it.get(k), str)), None)
            if text and text not in prompts:
                prompts.append(text)
    return prompts


def file_prompts(path: Path) -> list[str]:
    """Prompts from a .txt file (one per line) or .jsonl/.json rows with a prompt field."""
    from sftkit.evaluation.base import PROMPT_FIELDS, read_records

    if path.suffix.lower() in (".txt", ".md", ""):
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for i, row in enumerate(read_records(path, where=str(path))):
        text = row if isinstance(row, str) else next((row[k] for k in PROMPT_FIELDS if isinstance(row.get(k), str)), None)
        if text is None:
            raise SftkitError(f"row {i + 1} has no prompt field ({', '.join(PROMPT_FIELDS)})", where=str(path))
        out.append(text)
    return out


def _recipe_models(recipe_path: Path, overrides) -> tuple[list[str], list[tuple[str, str]]]:
    from sftkit.recipe import load_recipe
    from sftkit.run.stages import run_dir_for

    recipe = load_recipe(recipe_path, list(overrides))
    data = recipe.data
    run = run_dir_for(data, None)
    if not (run / "COMPLETE").exists():
        raise SftkitError(f"the recipe's run directory {run} has no finished run",
                          where=str(recipe_path), hint=f"train it first: sftkit run {recipe_path}")
    from sftkit.modeling.source import describe_model_source
    from sftkit.serving.loading import parse_model_arg

    src = describe_model_source(data["model"], recipe.base_dir)
    base_ref = str(src.path) if src.path is not None else src.name
    name = recipe.name
    prompts = [(f"{name} eval", p) for p in recipe_prompts(data, recipe.base_dir)]
    # each model keeps the name it has everywhere (a run by its folder, a file by its stem), so the
    # votes of the next round (this run against the one tuned from it) rate the same model the same
    if parse_model_arg(base_ref).name == parse_model_arg(str(run)).name:
        return [f"base={base_ref}", f"tuned={run}"], prompts
    return [base_ref, str(run)], prompts


@arena.command("open")
@click.argument("targets", nargs=-1, metavar="RECIPE | --models [NAME=]MODEL...")
@click.option("--models", "-m", "as_models", is_flag=True,
              help="The arguments are models (run dirs, model dirs, .gguf files or hub ids), two or more.")
@click.option("--prompts", "prompts_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Prompts to answer ahead: .txt (one per line) or .jsonl rows with a prompt field.")
@click.option("--dir", "arena_dir", default="arena", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where arena.sqlite (answers, battles, votes) is kept.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Anything but loopback needs --key.")
@click.option("--port", default=8001, show_default=True, type=click.IntRange(0, 65535))
@click.option("--key", default=None, envvar="SFTKIT_ARENA_KEY", help="Access key voters open /?key=KEY with.")
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(0, 2))
@click.option("--top-p", default=0.9, show_default=True, type=click.FloatRange(0, 1))
@click.option("--max-tokens", default=256, show_default=True, type=click.IntRange(1, 8192))
@click.option("--seed", default=0, show_default=True, type=int, help="Sampling seed of the answers.")
@click.option("--device", default=None, help="cuda, mps or cpu (default: the best available).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe key.")
def open_arena(targets, as_models, prompts_file, arena_dir, host, port, key, temperature, top_p, max_tokens, seed,
               device, overrides):
    """Open the arena page for RECIPE (its base model vs its finished run) or for --models A B [C ...]."""
    from sftkit.serving.http import bind, check_bind, require_server_stack, run_forever, url_of

    require_server_stack()
    prompts: list[tuple[str, str]] = []
    if as_models:
        models = list(targets)
    elif len(targets) == 1:
        recipe = Path(targets[0])
        if not recipe.is_file():
            raise SftkitError(f"no recipe file {recipe}", hint="pass a recipe .toml, or --models A B", exit_code=EXIT_USAGE)
        models, prompts = _recipe_models(recipe, overrides)
    else:
        raise SftkitError("give one RECIPE, or --models A B [C ...]", exit_code=EXIT_USAGE)
    if len(models) < 2:
        raise SftkitError("an arena needs two models or more", hint="sftkit arena RECIPE, or --models A B",
                          exit_code=EXIT_USAGE)
    if prompts_file is not None:
        prompts += [(prompts_file.stem, p) for p in file_prompts(prompts_file)]
    check_bind(host, key, option="--key")
    sock = bind(host, port)
    from sftkit.arena.app import Arena
    from sftkit.arena.store import Store
    from sftkit.serving.loading import load_models

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    try:
        served = load_models(models, device=device, console=echo)
    except SftkitError:
        sock.close()
        raise
    for m in served.values():  # a model without a chat template fails here, not in a background thread
        m.render([{"role": "user", "content": "hi"}])
    settings = {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens, "seed": seed}
    store = Store(arena_dir)
    app = Arena(store, served, prompts, settings, access_key=key)
    threading.Thread(target=app.generate_ahead, daemon=True, name="arena-ahead").start()
    url = url_of(sock) + (f"/?key={key}" if key else "/")
    echo(f"arena of {', '.join(served)} with {len(prompts)} listed prompt(s); votes in {store.path}")
    click.echo(url)
    run_forever(app.app(), sock)


@arena.command("export")
@click.option("--dir", "arena_dir", default="arena", show_default=True, type=click.Path(path_type=Path),
              help="The arena directory (or its arena.sqlite).")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .jsonl file to write.")
@click.option("--kind", type=click.Choice(["pairs", "kto"]), default="pairs", show_default=True,
              help="pairs: prompt/chosen/rejected (DPO); kto: prompt/completion/label good|bad.")
@click.option("--min-votes", default=1, show_default=True, type=click.IntRange(1),
              help="Votes a pair of answers (or an answer, for kto) needs.")
@click.option("--include-ties", is_flag=True, help="Count tie votes (kto: both answers good).")
@click.option("--prompt-set", default=None, help="Only votes on prompts of this set.")
def export(arena_dir, output, kind, min_votes, include_ties, prompt_set):
    """Write the votes as training data the tone strategy reads (format detected from the fields)."""
    from sftkit.arena.export import export_rows, write_jsonl
    from sftkit.arena.store import Store

    store = Store(arena_dir, create=False)
    rows = export_rows(store, kind, min_votes=min_votes, exclude_ties=not include_ties, prompt_set=prompt_set)
    n_votes = store.count("votes")
    if not rows:
        raise SftkitError(f"{n_votes} vote(s) in {store.path} make no {kind} rows with --min-votes {min_votes}",
                          hint="collect more votes, or lower --min-votes")
    write_jsonl(rows, output)
    click.echo(f"wrote {len(rows)} {kind} rows from {n_votes} votes to {output}")
    click.echo(json.dumps({"rows": len(rows), "votes": n_votes, "kind": kind}), err=True)
