"""A model under evaluation: greedy batched generation, log-likelihoods and perplexity.

Speed without changing results: the model runs in eval mode with the KV cache on, in the run's
precision (:mod:`sftkit.modeling.precision`); requests are sorted by length so a batch holds rows
of similar length, padded on the left with positions counted per row; generation stops each row at
its own end-of-turn token; scoring sends only the positions it reads through the output layer; results
come back in the caller's order. Batched greedy generation equals one-by-one generation (tested).
Long calls report progress with an ETA on stderr.

Log-likelihoods are computed the way lm-evaluation-harness does (trailing context whitespace
moved to the continuation, context + continuation encoded together and split, empty contexts
conditioned on BOS/EOS, left truncation to the model's length), so numbers agree with it.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable, Sequence

from ..api import IGNORE_INDEX
from ..modeling.stops import stop_token_ids
from .metrics import clean_text
from .progress import Progress


class Target:
    """``model`` + ``tokenizer`` + ``formatter`` (renders chat prompts), named ``label`` ("base"/"tuned").

    ``batch_size`` None picks one for the device (:func:`auto_batch_size`); ``precision`` is the run's
    :class:`~sftkit.modeling.precision.Precision` (None: the model's own dtype, no autocast).
    ``row_length``: tokens per row in training (``[training] max_length``, passed by the run), so an
    evaluator that encodes eval rows (the loss) encodes them as training did; None outside a run."""

    def __init__(self, model: Any, tokenizer: Any, formatter: Any = None, label: str = "tuned", *,
                 batch_size: int | None = None, max_length: int | None = None, precision: Any = None,
                 row_length: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.formatter = formatter
        self.label = label
        self._batch_size = max(1, int(batch_size)) if batch_size else None
        self._max_length = max_length
        self.row_length = row_length
        self.precision = precision
        self._keeps_logits: bool | None = None

    @property
    def batch_size(self) -> int:
        if self._batch_size is None:
            self._batch_size = auto_batch_size(self.model, self.device)
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = max(1, int(value))

    @contextlib.contextmanager
    def _inference(self):
        """Eval mode, no gradients, the run's autocast; the model's training mode restored after."""
        import torch

        model = self.model
        was_training = bool(getattr(model, "training", False))
        model.eval()
        autocast = self.precision.autocast() if self.precision is not None else contextlib.nullcontext()
        try:
            with torch.no_grad(), autocast:
                yield model
        finally:
            if was_training:
                model.train()

    # ------------------------------------------------------------------ basics
    @property
    def device(self):
        try:
            return next(self.model.parameters()).device
        except (StopIteration, AttributeError):
            import torch

            return torch.device("cpu")

    @property
    def max_length(self) -> int:
        if self._max_length:
            return int(self._max_length)
        from ..modeling.loading import context_length

        return context_length(self.model)

    @property
    def is_classifier(self) -> bool:
        archs = getattr(getattr(self.model, "config", None), "architectures", None) or []
        name = type(self.model).__name__
        return "SequenceClassification" in name or any("SequenceClassification" in a for a in archs)

    @property
    def prefix_token_id(self) -> int:
        tok = self.tokenizer
        if tok.bos_token_id is not None:
            return tok.bos_token_id
        return tok.eos_token_id

    def encode(self, text: str, add_special_tokens: bool | None = None) -> list[int]:
        """Token ids of ``text``: the tokenizer's default special tokens, unless ``text`` already starts with BOS."""
        tok = self.tokenizer
        kwargs = {}
        if add_special_tokens is not None:
            kwargs["add_special_tokens"] = add_special_tokens
        elif tok.bos_token and text.startswith(tok.bos_token):
            kwargs["add_special_tokens"] = False
        return list(tok.encode(text, **kwargs))

    def render(self, messages: list[dict] | str) -> str:
        """The generation prompt for ``messages`` (a string is one user turn)."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        if self.formatter is not None:
            return self.formatter.render_prompt(messages)
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nAssistant:"

    # ------------------------------------------------------------------ generation
    def _stop_ids(self) -> list[int]:
        return stop_token_ids(self.model, self.tokenizer)

    def generate(self, list_of_messages: Sequence[list[dict] | str], max_new_tokens: int = 128) -> list[str]:
        """Greedy answers to each conversation, rendered with the formatter (batched, left padding)."""
        return self.generate_text([self.render(m) for m in list_of_messages], max_new_tokens=max_new_tokens)

    def generate_text(self, prompts: Sequence[str], max_new_tokens: int = 128) -> list[str]:
        """Greedy continuations of raw prompt strings (no template), cut at the first end-of-turn token.

        Each (prompt, ``max_new_tokens``) is generated once per Target: evaluators scoring the same
        prompts with the same settings share the answers (greedy decoding gives the same text)."""
        done = self.__dict__.setdefault("_generated", {})
        prompts = list(prompts)
        missing = list(dict.fromkeys(p for p in prompts if (p, max_new_tokens) not in done))
        if missing:
            tok = self.tokenizer
            for prompt, ids in zip(missing, self.generate_ids(missing, max_new_tokens=max_new_tokens)):
                done[(prompt, max_new_tokens)] = clean_text(tok.decode(ids, skip_special_tokens=True))
        return [done[(p, max_new_tokens)] for p in prompts]

    def generate_ids(self, prompts: Sequence[str], max_new_tokens: int = 128) -> list[list[int]]:
        """Greedy new token ids for each prompt, without the stop token; in the order of ``prompts``.

        Prompts are sorted by length and batched with left padding; the KV cache is on and each row
        stops at its own end-of-turn token (a batch ends when all its rows have)."""
        import torch

        if not prompts:
            return []
        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        stop_ids = self._stop_ids()
        stops = set(stop_ids) | {pad_id}
        limit = max(1, self.max_length - max_new_tokens)
        encoded = [self.encode(p)[-limit:] or [self.prefix_token_id] for p in prompts]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        outputs: list[list[int]] = [[] for _ in prompts]
        progress = Progress(f"generate ({self.label})", len(prompts), unit="prompts")
        with self._inference() as model:
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                width = max(len(encoded[i]) for i in idx)
                ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    seq = encoded[i]
                    ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                    mask[row, width - len(seq):] = 1
                out = model.generate(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                    max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                    num_beams=1, use_cache=True, pad_token_id=pad_id, eos_token_id=stop_ids or None,
                )
                for row, i in enumerate(idx):
                    new = out[row, width:].tolist()
                    cut = next((pos for pos, t in enumerate(new) if t in stops), len(new))
                    outputs[i] = new[:cut]
                progress.advance(len(idx))
        progress.close()
        return outputs

    # ------------------------------------------------------------------ log-likelihood
    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context ids, continuation ids) as lm-evaluation-harness splits them."""
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces > 0:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        if not context:
            return [self.prefix_token_id], self.encode(continuation)
        whole = self.encode(context + continuation)
        ctx = self.encode(context)
        return ctx, whole[len(ctx):]

    def loglikelihood(self, pairs: Iterable[tuple[str, str]]) -> list[float]:
        """Sum of log-probabilities of each continuation given its context."""
        reqs = [self.encode_pair(c, x) for c, x in pairs]
        return [ll for ll, _n in self.loglikelihood_tokens(reqs)]

    def loglikelihood_tokens(self, requests: Sequence[tuple[list[int], list[int]]]) -> list[tuple[float, int]]:
        """(sum log-prob, token count) of each continuation id list given its context id list.

        Requests whose model input is identical (e.g. the four one-token answers " A".." D" of a
        multiple-choice question) share one forward pass; only the continuation positions are
        normalised (log-softmax), not the whole sequence."""
        import torch

        results: list[tuple[float, int] | None] = [None] * len(requests)
        limit = self.max_length
        groups: dict[tuple, list[tuple[int, list[int]]]] = {}
        for i, (ctx, cont) in enumerate(requests):
            if not cont:
                results[i] = (0.0, 0)
                continue
            seq = tuple((list(ctx) + list(cont))[-(limit + 1):][:-1])
            groups.setdefault(seq, []).append((i, list(cont)[-limit:]))
        inputs = sorted(groups.items(), key=lambda kv: -len(kv[0]))
        progress = Progress(f"score ({self.label})", len(requests), unit="requests")
        with self._inference():
            for start in range(0, len(inputs), self.batch_size):
                batch = inputs[start:start + self.batch_size]
                keep = max(len(cont) for _, members in batch for _, cont in members)
                logits = self._tail_logits([seq for seq, _ in batch], keep)
                for row, (seq, members) in enumerate(batch):
                    longest = max(len(cont) for _, cont in members)
                    lp = torch.log_softmax(logits[row, keep - longest:].float(), dim=-1).cpu()
                    for i, cont in members:
                        n = len(cont)
                        target = torch.tensor(cont, dtype=torch.long).unsqueeze(-1)
                        results[i] = (float(lp[longest - n:].gather(-1, target).sum()), n)
                progress.advance(sum(len(members) for _, members in batch))
        progress.close()
        return results  # type: ignore[return-value]

    def _tail_logits(self, seqs: Sequence[Sequence[int]], keep: int):
        """Logits of the last ``keep`` positions of each sequence, shape (rows, keep, vocab).

        Rows are padded on the left with positions counted from each row's first token, so the
        last positions line up and only they go through the output layer (``logits_to_keep``)."""
        import torch

        width = max(len(s) for s in seqs)
        keep = max(1, min(keep, width))
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, width - len(seq):] = torch.tensor(list(seq), dtype=torch.long)
            mask[row, width - len(seq):] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        kwargs = {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device),
                  "position_ids": positions.to(self.device), "use_cache": False}
        if self._keeps_logits is not False:
            try:
                logits = self.model(**kwargs, logits_to_keep=keep).logits
                self._keeps_logits = True
                return logits[:, -keep:]
            except TypeError:  # a model without logits_to_keep: compute all positions
                self._keeps_logits = False
        return self.model(**kwargs).logits[:, -keep:]

    def rolling_loglikelihood(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        """(sum log-prob, token count) of each whole text, in disjoint windows of the model's length
        (first window conditioned on BOS/EOS), as lm-evaluation-harness's loglikelihood_rolling."""
        requests = []
        owners = []
        limit = self.max_length
        for t_i, text in enumerate(texts):
            tokens = self.encode(text)
            first = True
            pos = 0
            while pos < len(tokens):
                chunk = tokens[pos:pos + limit]
                if first:
                    ctx = [self.prefix_token_id]
                    first = False
                else:
                    ctx = tokens[max(0, pos + len(chunk) - limit - 1):pos]
                requests.append((ctx, chunk))
                owners.append(t_i)
                pos += len(chunk)
        totals = [[0.0, 0] for _ in texts]
        for owner, (ll, n) in zip(owners, self.loglikelihood_tokens(requests)):
            totals[owner][0] += ll
            totals[owner][1] += n
        return [(ll, n) for ll, n in totals]

    def perplexity(self, texts: Sequence[str]) -> float:
        """Token-level perplexity over all texts: exp(-sum log-prob / tokens)."""
        pairs = self.rolling_loglikelihood(texts)
        total = sum(ll for ll, _ in pairs)
        count = sum(n for _, n in pairs)
        if count == 0:
            raise ValueError("no tokens to score")
        return math.exp(-total / count)

    def labeled_nll(self, rows: Sequence[dict]) -> list[tuple[float, int]]:
        """(sum negative log-likelihood, trained token count) of encoded rows (``input_ids``, ``labels``
        with -100 where untrained), as a trainer's causal-LM loss counts them."""
        requests = []
        for row in rows:
            ids, labels = list(row["input_ids"]), list(row["labels"])
            requests.append((ids, labels))
        import torch

        order = sorted(range(len(requests)), key=lambda i: -len(requests[i][0]))
        res: dict[int, tuple[float, int]] = {}
        progress = Progress(f"score ({self.label})", len(requests), unit="rows")
        with self._inference():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                # position p predicts token p + 1: keep the positions from the first trained label on
                firsts = {i: next((p for p, label in enumerate(requests[i][1][1:]) if label != IGNORE_INDEX), None) for i in idx}
                scored = [i for i in idx if firsts[i] is not None]
                for i in idx:
                    if firsts[i] is None:
                        res[i] = (0.0, 0)
                if not scored:
                    progress.advance(len(idx))
                    continue
                keep = max(len(requests[i][0]) - 1 - firsts[i] for i in scored)
                logits = self._tail_logits([requests[i][0][:-1] for i in scored], keep)
                for row, i in enumerate(scored):
                    seq, labels = requests[i]
                    targets = torch.tensor(labels[1:][len(seq) - 1 - keep:] if len(seq) - 1 >= keep
                                           else labels[1:], dtype=torch.long)
                    n = len(targets)
                    lp = torch.log_softmax(logits[row, keep - n:].float(), dim=-1).cpu()
                    valid = targets != IGNORE_INDEX
                    picked = lp[valid].gather(-1, targets[valid].unsqueeze(-1))
                    res[i] = (float(-picked.sum()), int(valid.sum()))
                progress.advance(len(idx))
        progress.close()
        return [res[i] for i in range(len(requests))]

    # ------------------------------------------------------------------ classification
    def classify(self, texts: Sequence[str]) -> list[str]:
        """Predicted label names of a sequence-classification model."""
        tok = self.tokenizer
        id2label = getattr(self.model.config, "id2label", None) or {}
        preds: list[str] = []
        with self._inference() as model:
            for start in range(0, len(texts), self.batch_size):
                chunk = list(texts[start:start + self.batch_size])
                enc = tok(chunk, return_tensors="pt", padding=True, truncation=True,
                          max_length=min(self.max_length, 4096))
                enc = {k: v.to(self.device) for k, v in enc.items()}
                logits = model(**enc).logits
                for i in logits.argmax(-1).tolist():
                    preds.append(str(id2label.get(i, id2label.get(str(i), i))))
        return preds


def auto_batch_size(model: Any, device: Any, *, tokens: int = 1024, cap: int = 64) -> int:
    """Evaluation batch size for ``device``: 16 rows on a CPU (a fixed choice: rows are sorted by
    length, so a batch adds little padding); on a GPU as many rows as a quarter of the free memory
    holds in key/value cache for ``tokens`` tokens a row, between 8 and ``cap``."""
    if getattr(device, "type", str(device)) != "cuda":
        return 16
    import torch

    cfg = getattr(model, "config", None)
    layers = int(getattr(cfg, "num_hidden_layers", 0) or 0)
    heads = int(getattr(cfg, "num_key_value_heads", None) or getattr(cfg, "num_attention_heads", 0) or 0)
    head_dim = int(getattr(cfg, "head_dim", 0) or 0) or (
        int(getattr(cfg, "hidden_size", 0) or 0) // max(1, int(getattr(cfg, "num_attention_heads", 1) or 1)))
    per_row = 2 * layers * heads * head_dim * tokens * 2  # keys + values, 2-byte dtype
    if per_row <= 0:
        return 16
    free, _total = torch.cuda.mem_get_info(device)
    return max(8, min(cap, int(free // 4 // per_row)))
