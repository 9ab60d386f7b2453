"""Faster multiple-choice scoring: one forward pass per question instead of one per choice.

MMLU's four continuations (`` A``..`` D``) are single tokens after the same context, so their
log-likelihoods are four entries of one next-token distribution. :class:`SharedContextTarget`
wraps a :class:`sftkit.evaluation.Target` and answers ``loglikelihood`` that way (4x fewer forward
passes on CPU); any pair that does not fit (multi-token continuation) goes through the target's
own method. Token ids and truncation are the target's, so the numbers equal
``Target.loglikelihood``'s.
"""

from __future__ import annotations

from typing import Any


class SharedContextTarget:
    """Delegates everything to ``target`` except ``loglikelihood``, which shares forward passes."""

    def __init__(self, target: Any):
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def loglikelihood(self, pairs) -> list[float]:
        t = self._target
        pairs = list(pairs)
        if not all(hasattr(t, a) for a in ("encode_pair", "loglikelihood_tokens", "model")):
            return t.loglikelihood(pairs)  # not an sftkit Target: nothing to share
        encoded = [t.encode_pair(c, x) for c, x in pairs]
        results: list[float | None] = [None] * len(pairs)
        groups: dict[tuple, list[int]] = {}
        rest = []
        for i, (ctx, cont) in enumerate(encoded):
            if len(cont) == 1 and ctx:
                groups.setdefault(tuple(ctx), []).append(i)
            else:
                rest.append(i)
        contexts = list(groups)
        for ctx, dist in zip(contexts, self._next_token_logprobs(contexts)):
            for i in groups[ctx]:
                results[i] = float(dist[encoded[i][1][0]])
        if rest:
            for i, (ll, _n) in zip(rest, t.loglikelihood_tokens([encoded[i] for i in rest])):
                results[i] = ll
        return results  # type: ignore[return-value]

    def _next_token_logprobs(self, contexts: list[tuple]) -> list:
        """Log-probabilities of the next token after each context (batched, right padding)."""
        import torch

        t = self._target
        limit = t.max_length
        seqs = [list(c)[-limit:] for c in contexts]
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        out: list = [None] * len(seqs)
        pad_id = t.tokenizer.pad_token_id if t.tokenizer.pad_token_id is not None else 0
        model = t.model
        model.eval()
        for start in range(0, len(order), t.batch_size):
            idx = order[start:start + t.batch_size]
            width = max(len(seqs[i]) for i in idx)
            ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                ids[row, :len(seqs[i])] = torch.tensor(seqs[i], dtype=torch.long)
                mask[row, :len(seqs[i])] = 1
            with torch.no_grad():
                logits = model(input_ids=ids.to(t.device), attention_mask=mask.to(t.device)).logits
            for row, i in enumerate(idx):
                out[i] = torch.log_softmax(logits[row, len(seqs[i]) - 1].float(), dim=-1).cpu()
        return out
