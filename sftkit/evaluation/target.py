"""A model under evaluation: greedy batched generation, log-likelihoods and perplexity.

Log-likelihoods are computed the way lm-evaluation-harness does (trailing context whitespace
moved to the continuation, context + continuation encoded together and split, empty contexts
conditioned on BOS/EOS, left truncation to the model's length), so numbers agree with it.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from .metrics import clean_text

# end-of-turn tokens that stop generation when the tokenizer has them
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<|end|>", "</s>", "<|endoftext|>", "<end_of_turn>", "<|end_of_text|>")


class Target:
    """``model`` + ``tokenizer`` + ``formatter`` (renders chat prompts), named ``label`` ("base"/"tuned")."""

    def __init__(self, model: Any, tokenizer: Any, formatter: Any = None, label: str = "tuned", *,
                 batch_size: int = 8, max_length: int | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.formatter = formatter
        self.label = label
        self.batch_size = max(1, int(batch_size))
        self._max_length = max_length

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
        cfg = getattr(self.model, "config", None)
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(cfg, attr, None)
            if isinstance(value, int) and 0 < value < 10**7:
                return value
        return 2048

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
        tok = self.tokenizer
        ids = set()
        if tok.eos_token_id is not None:
            ids.add(int(tok.eos_token_id))
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif isinstance(gen_eos, (list, tuple)):
            ids.update(int(i) for i in gen_eos)
        vocab = tok.get_vocab()
        for t in END_OF_TURN:
            if t in vocab and t != tok.bos_token:
                ids.add(int(vocab[t]))
        return sorted(ids)

    def generate(self, list_of_messages: Sequence[list[dict] | str], max_new_tokens: int = 128) -> list[str]:
        """Greedy answers to each conversation, rendered with the formatter (batched, left padding)."""
        return self.generate_text([self.render(m) for m in list_of_messages], max_new_tokens=max_new_tokens)

    def generate_text(self, prompts: Sequence[str], max_new_tokens: int = 128) -> list[str]:
        """Greedy continuations of raw prompt strings (no template), batched with left padding.

        Each (prompt, ``max_new_tokens``) is generated once per Target: evaluators scoring the same
        prompts with the same settings share the answers (greedy decoding gives the same text)."""
        done = self.__dict__.setdefault("_generated", {})
        prompts = list(prompts)
        missing = list(dict.fromkeys(p for p in prompts if (p, max_new_tokens) not in done))
        if missing:
            for prompt, text in zip(missing, self._generate_uncached(missing, max_new_tokens)):
                done[(prompt, max_new_tokens)] = text
        return [done[(p, max_new_tokens)] for p in prompts]

    def _generate_uncached(self, prompts: Sequence[str], max_new_tokens: int = 128) -> list[str]:
        import torch

        if not prompts:
            return []
        tok = self.tokenizer
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        stop_ids = self._stop_ids()
        limit = max(1, self.max_length - max_new_tokens)
        encoded = [self.encode(p)[-limit:] or [self.prefix_token_id] for p in prompts]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        outputs: list[str] = [""] * len(prompts)
        model = self.model
        was_training = getattr(model, "training", False)
        model.eval()
        try:
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                width = max(len(encoded[i]) for i in idx)
                ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    seq = encoded[i]
                    ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                    mask[row, width - len(seq):] = 1
                ids, mask = ids.to(self.device), mask.to(self.device)
                with torch.no_grad():
                    out = model.generate(
                        input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                        do_sample=False, temperature=None, top_p=None, top_k=None,
                        pad_token_id=pad_id, eos_token_id=stop_ids or None,
                    )
                for row, i in enumerate(idx):
                    new = out[row, width:].tolist()
                    cut = len(new)
                    for pos, t in enumerate(new):
                        if t in stop_ids or t == pad_id:
                            cut = pos
                            break
                    outputs[i] = clean_text(tok.decode(new[:cut], skip_special_tokens=True))
        finally:
            if was_training:
                model.train()
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
        model = self.model
        model.eval()
        pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        for start in range(0, len(inputs), self.batch_size):
            batch = inputs[start:start + self.batch_size]
            width = max(len(seq) for seq, _ in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, (seq, _) in enumerate(batch):
                ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, :len(seq)] = 1
            with torch.no_grad():
                logits = model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                for row, (seq, members) in enumerate(batch):
                    end = len(seq)
                    longest = max(len(cont) for _, cont in members)
                    lp = torch.log_softmax(logits[row, end - longest:end].float(), dim=-1).cpu()
                    for i, cont in members:
                        n = len(cont)
                        target = torch.tensor(cont, dtype=torch.long).unsqueeze(-1)
                        results[i] = (float(lp[longest - n:].gather(-1, target).sum()), n)
        return results  # type: ignore[return-value]

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

        out: list[tuple[float, int]] = []
        model = self.model
        model.eval()
        order = sorted(range(len(requests)), key=lambda i: -len(requests[i][0]))
        res: dict[int, tuple[float, int]] = {}
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            width = max(len(requests[i][0]) for i in idx)
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            lab = torch.full((len(idx), width), -100, dtype=torch.long)
            for row, i in enumerate(idx):
                seq, labels = requests[i]
                ids[row, :len(seq)] = torch.tensor(seq)
                mask[row, :len(seq)] = 1
                lab[row, :len(labels)] = torch.tensor(labels)
            shift_lab = lab[:, 1:]
            valid = shift_lab != -100
            with torch.no_grad():
                logits = model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits
                for row, i in enumerate(idx):
                    v = valid[row]
                    if not bool(v.any()):
                        res[i] = (0.0, 0)
                        continue
                    lp = torch.log_softmax(logits[row, :-1][v.to(logits.device)].float(), dim=-1).cpu()
                    picked = lp.gather(-1, shift_lab[row][v].unsqueeze(-1))
                    res[i] = (float(-picked.sum()), int(v.sum()))
        for i in range(len(requests)):
            out.append(res[i])
        return out

    # ------------------------------------------------------------------ classification
    def classify(self, texts: Sequence[str]) -> list[str]:
        """Predicted label names of a sequence-classification model."""
        import torch

        tok = self.tokenizer
        id2label = getattr(self.model.config, "id2label", None) or {}
        preds: list[str] = []
        self.model.eval()
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start:start + self.batch_size])
            enc = tok(chunk, return_tensors="pt", padding=True, truncation=True,
                      max_length=min(self.max_length, 4096))
            enc = {k: v.to(self.device) for k, v in enc.items()}
            with torch.no_grad():
                logits = self.model(**enc).logits
            for i in logits.argmax(-1).tolist():
                preds.append(str(id2label.get(i, id2label.get(str(i), i))))
        return preds
