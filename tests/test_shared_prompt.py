"""A group's prompt computed once (sftkit.strategies.shared_prompt): the completion log-probabilities,
entropies and gradients equal TRL's fused-head forward of every whole row."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def _batch(vocab: int, *, prompts=(7, 4), group=4, completion=5, seed=0):
    """Rows of ``group`` completions per prompt (prompts left-padded, completions right-padded), shuffled."""
    g = torch.Generator().manual_seed(seed)
    longest = max(prompts)
    ids, mask = [], []
    for length in prompts:
        prompt = torch.randint(5, vocab, (length,), generator=g)
        for _ in range(group):
            n = int(torch.randint(1, completion + 1, (), generator=g))
            comp = torch.randint(5, vocab, (n,), generator=g)
            ids.append(torch.cat([torch.zeros(longest - length, dtype=torch.long), prompt, comp,
                                  torch.zeros(completion - n, dtype=torch.long)]))
            mask.append(torch.cat([torch.zeros(longest - length), torch.ones(length + n),
                                   torch.zeros(completion - n)]).long())
    order = torch.randperm(len(ids), generator=g)
    return torch.stack(ids)[order], torch.stack(mask)[order]


def _fused_model():
    from trl.trainer.utils import add_fused_lm_head

    from sftkit.tiny import tiny_causal_lm

    torch.manual_seed(0)
    model = tiny_causal_lm()
    add_fused_lm_head(model, temperature=0.7, outputs=("log_probs", "entropy"))
    return model


def test_completion_logps_entropies_and_gradients_equal_whole_rows():
    from sftkit.strategies.shared_prompt import completion_logps

    model = _fused_model()
    completion = 5
    ids, mask = _batch(model.config.vocab_size, completion=completion)
    keep = mask[:, -completion:]

    def whole():
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, :-completion] = -100
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        return out.log_probs[:, -completion:], out.entropy[:, -completion:]

    def shared():
        got = completion_logps(model, ids, mask, completion, compute_entropy=True)
        assert got is not None  # 2 prompts in 8 rows: the shared path ran
        return got

    results = []
    for fn in (whole, shared):
        model.zero_grad()
        logps, entropy = fn()
        ((logps * keep).sum() + 0.1 * (entropy * keep).sum()).backward()
        results.append((logps.detach() * keep, entropy.detach() * keep,
                        {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}))
    (lp0, en0, g0), (lp1, en1, g1) = results
    assert torch.allclose(lp0, lp1, atol=1e-5) and torch.allclose(en0, en1, atol=1e-5)
    assert (lp0 != 0).sum() == keep.sum()  # every completion token scored
    assert g0.keys() == g1.keys() and g0
    for name in g0:  # the prompt's share of the gradient flows through the shared cache
        assert torch.allclose(g0[name], g1[name], rtol=1e-4, atol=1e-6), name


def test_nothing_to_share_falls_back():
    from sftkit.strategies.shared_prompt import completion_logps, prompt_groups

    model = _fused_model()
    ids, mask = _batch(model.config.vocab_size, prompts=(6, 3, 5), group=1)
    assert prompt_groups(ids[:, :6], mask[:, :6]) is None
    assert completion_logps(model, ids, mask, 5, compute_entropy=False) is None
    ids, mask = _batch(model.config.vocab_size, prompts=(6, 3), group=3)
    first, inverse = prompt_groups(ids[:, :6], mask[:, :6])
    assert len(first) == 2 and inverse.tolist().count(0) == 3 and inverse.tolist().count(1) == 3


@pytest.mark.parametrize("architecture", ["qwen2", "gemma2", "phi3", "gpt_neox"])
def test_other_rotary_architectures_score_the_same(architecture):
    from trl.trainer.utils import add_fused_lm_head

    from sftkit.strategies.shared_prompt import completion_logps
    from sftkit.tiny import tiny_causal_lm

    model = tiny_causal_lm(architecture=architecture)
    add_fused_lm_head(model)
    ids, mask = _batch(model.config.vocab_size)
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-5] = -100
    whole = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True).log_probs[:, -5:]
    shared = completion_logps(model, ids, mask, 5, compute_entropy=False)[0]
    assert torch.allclose(whole * mask[:, -5:], shared * mask[:, -5:], atol=1e-5)


def test_absolute_positions_are_not_shared():
    """GPT-2 numbers a left-padded row's positions differently when continued from a cache: sftkit
    computes those rows whole (the scores differed by 0.1 nats)."""
    from trl.trainer.utils import add_fused_lm_head

    from sftkit.strategies.shared_prompt import applies, completion_logps
    from sftkit.tiny import tiny_causal_lm

    model = tiny_causal_lm(architecture="gpt2")
    add_fused_lm_head(model)
    ids, mask = _batch(model.config.vocab_size)
    assert not applies(model) and applies(tiny_causal_lm())
    assert completion_logps(model, ids, mask, 5, compute_entropy=False) is None
