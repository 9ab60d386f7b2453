"""``sftkit serve MODEL...``: an OpenAI-compatible API for tuned models (see :mod:`sftkit.serving.api`)."""

from __future__ import annotations

import os

import click

from sftkit.errors import SftkitError


@click.command("serve")
@click.argument("models", nargs=-1, required=True, metavar="[NAME=]MODEL...")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs --api-key.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="0 = any free port.")
@click.option("--api-key", default=None, envvar="SFTKIT_API_KEY",
              help="Require Authorization: Bearer KEY on every request (env SFTKIT_API_KEY).")
@click.option("--max-batch", default=8, show_default=True, type=click.IntRange(1, 256),
              help="Most concurrent requests decoded together per model.")
@click.option("--device", default=None, help="cuda, mps or cpu (default: the best available).")
def serve(models, host, port, api_key, max_batch, device):
    """Serve MODEL (a run directory, a model directory, a .gguf file or a hub id; several as NAME=MODEL)
    behind an OpenAI-compatible API: /v1/models, /v1/chat/completions (streaming), /v1/completions.
    """
    from sftkit.serving.http import bind, check_bind, require_server_stack, run_forever

    require_server_stack()
    check_bind(host, api_key)
    sock = bind(host, port)  # before loading: a taken port fails in a second, not after minutes
    from sftkit.serving.api import Server
    from sftkit.serving.http import url_of
    from sftkit.serving.loading import load_models

    echo = lambda msg: click.echo(msg, err=True)  # noqa: E731
    try:
        served = load_models(list(models), max_batch=max_batch, device=device, console=echo)
    except SftkitError:
        sock.close()
        raise
    url = url_of(sock)
    click.echo(f"serving {', '.join(served)} at {url}/v1" + (" (API key required)" if api_key else ""), err=True)
    click.echo(f"{url}/v1", nl=True)  # stdout: the base URL alone, for scripts
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        run_forever(Server(served, api_key=api_key).app(), sock)
    finally:
        for m in served.values():
            m.engine.close()
