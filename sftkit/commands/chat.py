"""``sftkit chat MODEL``: talk to a model in the terminal (history, /reset, /system TEXT, streaming)."""

from __future__ import annotations

import sys
import threading
from typing import Callable, Iterable

import click

HELP = "commands: /system TEXT (set the system prompt, clears the history), /reset (clear the history), /quit"


def chat_loop(served, sampling, lines: Iterable[str], write: Callable[[str], None], *, system: str | None = None,
              prompt: Callable[[], None] = lambda: None) -> list[dict]:
    """Answer each line of ``lines`` with the whole conversation so far, streaming through ``write``.

    Returns the final conversation. Slash commands change it instead of being sent."""
    history: list[dict] = [{"role": "system", "content": system}] if system else []
    prompt()
    for raw in lines:
        line = raw.rstrip("\n")
        if not line.strip():
            prompt()
            continue
        if line.strip() in ("/quit", "/exit"):
            break
        if line.strip() == "/reset":
            history = [m for m in history if m["role"] == "system"]
            write("(history cleared)\n")
        elif line.startswith("/system"):
            text = line[len("/system"):].strip()
            history = [{"role": "system", "content": text}] if text else []
            write("(system prompt set; history cleared)\n" if text else "(system prompt removed; history cleared)\n")
        elif line.startswith("/"):
            write(HELP + "\n")
        else:
            history.append({"role": "user", "content": line})
            answer = _stream(served, history, sampling, write)
            history.append({"role": "assistant", "content": answer})
        prompt()
    return history


def _stream(served, history: list[dict], sampling, write) -> str:
    parts: list[str] = []
    done = threading.Event()
    failed: list[str] = []

    def sink(delta: str, finish: str | None) -> None:
        if finish == "error":
            failed.append(delta)
        elif delta:
            parts.append(delta)
            write(delta)
        if finish is not None:
            done.set()

    served.engine.submit(served.encode(served.render(history)), sampling, sink)
    done.wait()
    write("\n")
    if failed:
        write(f"(generation failed: {failed[0]})\n")
    return "".join(parts)


@click.command("chat")
@click.argument("model", metavar="MODEL")
@click.option("--system", default=None, help="A system prompt to start with.")
@click.option("--temperature", default=0.7, show_default=True, type=click.FloatRange(0, 2), help="0 = greedy.")
@click.option("--top-p", default=0.9, show_default=True, type=click.FloatRange(0, 1))
@click.option("--max-tokens", default=512, show_default=True, type=click.IntRange(1))
@click.option("--seed", default=None, type=int, help="Sampling seed (each answer reuses it).")
@click.option("--device", default=None, help="cuda, mps or cpu (default: the best available).")
def chat(model, system, temperature, top_p, max_tokens, seed, device):
    """Chat with MODEL (a run directory, a model directory, a .gguf file or a hub id) in the terminal.

    Answers stream as they are generated, with the model's saved chat template and stop tokens.
    /system TEXT, /reset and /quit (or Ctrl-D) change the conversation.
    """
    from sftkit.serving.engine import Sampling
    from sftkit.serving.loading import load_model, parse_model_arg

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    served = load_model(parse_model_arg(model), device=device, console=echo)
    served.render([{"role": "user", "content": "hi"}])  # no chat template: say so before the first question
    sampling = Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed)
    interactive = sys.stdin.isatty()
    if interactive:
        echo(f"chatting with {served.name}; {HELP}")

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def show_prompt() -> None:
        if interactive:
            write("> ")

    try:
        chat_loop(served, sampling, sys.stdin, write, system=system, prompt=show_prompt)
    except KeyboardInterrupt:
        write("\n")
    finally:
        served.engine.close()
