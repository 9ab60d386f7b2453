"""Chunked cross-entropy: a causal LM's training loss from its hidden states, without the logits.

The plain loss projects every position's hidden state onto the whole vocabulary and keeps the
result for the backward pass: for SmolLM2 (49,152 tokens) a batch of 8 x 512 tokens holds its
logits in bf16, their float32 copy and its log-softmax, about 2 GB, more than the model's weights,
gradients and optimizer state together.

:class:`ChunkedLoss` computes the same number another way. The model runs with
``logits_to_keep = 1`` (its output layer projects one position), a forward hook on its decoder
keeps the final hidden states, and :class:`LinearCrossEntropy` takes only the positions that have
a label, a few hundred rows at a time: logits of the chunk (under the run's autocast, as the
model's own output layer computes them), their float32 log-sum-exp and loss, and at once the
gradients of the chunk's hidden states and of the output weights, ``(softmax - onehot) @ W`` and
``(softmax - onehot)^T @ h``. Nothing of a chunk is kept but those gradients, so the peak holds one
chunk's logits instead of the batch's, and positions without a label (prompt, padding) cost
nothing. The reduction is the transformers one exactly (``ForCausalLMLoss``: labels shifted by one,
``-100`` ignored, sum over ``num_items_in_batch`` when the trainer passes it, else the mean), so loss
and gradients equal the plain loss's within float rounding (tested on a tiny model, forward and
backward, padded and packed rows).

It is used only where that equality holds, decided once on the first batch: a plain ``nn.Linear``
output layer (not LoRA-wrapped or quantized), the transformers causal-LM loss, and a probe showing
that the model's logits are its output layer applied to the hooked hidden states (no soft-capping or
scaling in between). Otherwise, and for FSDP / DeepSpeed (sharded weights), the plain loss runs and
the reason is recorded in metrics.json (``chunked_loss``).
"""

from __future__ import annotations

from typing import Any

from sftkit.api import IGNORE_INDEX

CHUNK_ELEMENTS = 1 << 24  # logits per chunk (rows x vocabulary): 64 MB in float32


def _linear_cross_entropy():
    import torch
    import torch.nn.functional as F

    class LinearCrossEntropy(torch.autograd.Function):
        """``sum_i CE(h_i @ W^T + b, t_i)`` over rows of ``hidden``, in chunks of ``rows`` rows; the
        gradients are computed in the forward pass, chunk by chunk, so no chunk's logits are kept."""

        @staticmethod
        def forward(ctx, hidden, weight, bias, targets, rows):
            need_h, need_w, need_b = ctx.needs_input_grad[:3]
            device = hidden.device.type
            # the dtype the model's output layer multiplies in: the autocast's, else the tensors' own
            dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else hidden.dtype
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            grad_h = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if need_h else None
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
            grad_b = (torch.zeros(bias.shape, dtype=torch.float32, device=bias.device)
                      if need_b and bias is not None else None)
            with torch.autocast(device, enabled=False):
                w = weight.to(dtype)  # cast once, not per chunk
                b = bias.to(dtype) if bias is not None else None
                for start in range(0, hidden.shape[0], rows):
                    h = hidden[start:start + rows].to(dtype)
                    t = targets[start:start + rows]
                    logp = torch.log_softmax(F.linear(h, w, b).float(), dim=-1)
                    total -= logp.gather(1, t[:, None]).sum()
                    if not (need_h or need_w or need_b):
                        continue
                    g = logp.exp_()  # softmax
                    g[torch.arange(t.shape[0], device=t.device), t] -= 1.0
                    if grad_b is not None:
                        grad_b += g.sum(0)
                    g = g.to(dtype)  # the plain backward multiplies in the autocast dtype too
                    if grad_h is not None:
                        grad_h[start:start + rows] = g @ w
                    if grad_w is not None:
                        grad_w += g.t() @ h
            ctx.save_for_backward(grad_h, grad_w, grad_b)
            ctx.dtypes = (hidden.dtype, weight.dtype, bias.dtype if bias is not None else None)
            return total

        @staticmethod
        def backward(ctx, grad):
            grad_h, grad_w, grad_b = ctx.saved_tensors
            dh, dw, db = ctx.dtypes
            return ((grad_h * grad).to(dh) if grad_h is not None else None,
                    (grad_w * grad).to(dw) if grad_w is not None else None,
                    (grad_b * grad).to(db) if grad_b is not None else None, None, None)

    return LinearCrossEntropy


def linear_cross_entropy(hidden, weight, bias, targets, *, chunk_elements: int = CHUNK_ELEMENTS):
    """Summed cross-entropy of ``hidden @ weight.T + bias`` against ``targets`` (rows x hidden, rows),
    computed in chunks of about ``chunk_elements`` logits."""
    rows = max(1, int(chunk_elements) // max(1, weight.shape[0]))
    return _linear_cross_entropy().apply(hidden, weight, bias, targets, rows)


def unwrap(model) -> Any:
    """The transformers model inside DDP / torch.compile / PEFT wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            break
        model = inner
    if hasattr(model, "get_base_model") and callable(model.get_base_model):
        model = model.get_base_model()
    return model


class ChunkedLoss:
    """The chunked loss for one trainer; :meth:`decide` once, then :meth:`__call__` per batch.

    ``used`` / ``reason`` say whether it runs and why (metrics.json ``chunked_loss``)."""

    def __init__(self, autocast=None, *, chunk_elements: int = CHUNK_ELEMENTS):
        import contextlib

        self.autocast = autocast or contextlib.nullcontext
        self.chunk_elements = chunk_elements
        self.used: bool | None = None
        self.reason = "not decided: no training batch yet"
        self._parts: tuple | None = None
        self._hidden: list = []
        self._capturing = False
        self._handle = None

    def as_dict(self) -> dict:
        return {"used": bool(self.used), "reason": self.reason}

    def refuse(self, reason: str) -> None:
        self.used, self.reason = False, reason

    def decide(self, model, inputs: dict) -> bool:
        """Whether this model's loss can be chunked exactly (probed on the first batch's first row)."""
        if self.used is not None:
            return self.used
        import inspect

        import torch
        import torch.nn.functional as F

        inner = unwrap(model)
        head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
        if head is None:
            return self._no("the model has no output embedding layer (not a causal LM)")
        if type(head) is not torch.nn.Linear:
            return self._no(f"its output layer is a {type(head).__name__} (LoRA-wrapped or quantized), "
                            "not a plain Linear")
        try:
            from transformers.loss.loss_utils import LOSS_MAPPING

            if inner.loss_function is not LOSS_MAPPING["ForCausalLM"]:
                return self._no("the model computes its loss with its own function, not transformers' causal-LM loss")
        except (ImportError, KeyError, AttributeError):
            return self._no("the model has no transformers causal-LM loss")
        decoder = inner.get_decoder() if hasattr(inner, "get_decoder") else None
        if decoder is None or decoder is inner:
            return self._no("the model's decoder cannot be told apart from its output layer")
        keep = "logits_to_keep" in inspect.signature(inner.forward).parameters
        self._parts = (decoder, head, keep)
        self._handle = decoder.register_forward_hook(self._hook)
        probe = {"input_ids": inputs["input_ids"][:1, :16]}
        if "position_ids" in inputs:
            probe["position_ids"] = inputs["position_ids"][:1, :16]
        with torch.no_grad(), self.autocast(), self._capture():
            logits = inner(**probe).logits
            again = F.linear(self._hidden[-1], head.weight, head.bias) if self._hidden else None
            self._hidden.clear()
        if again is None or not torch.allclose(logits.float(), again.float(), rtol=1e-5, atol=1e-5):
            self.close()
            return self._no("the model's logits are not its output layer applied to the decoder's hidden "
                            "states (soft-capping or scaling)")
        self.used, self.reason = True, ("exact: the loss from hidden states in chunks, no full-vocabulary logits"
                                        + ("" if keep else " kept (the model has no logits_to_keep)"))
        return True

    def _no(self, reason: str) -> bool:
        self.refuse(reason)
        return False

    def close(self) -> None:
        """Remove the decoder hook (the trained model goes on to evaluation without it)."""
        if self._handle is not None:
            self._handle.remove()
        self._handle = self._parts = None

    def _capture(self):
        import contextlib

        @contextlib.contextmanager
        def capturing():
            self._hidden.clear()
            self._capturing = True
            try:
                yield
            finally:
                self._capturing = False

        return capturing()

    def _hook(self, module, args, output) -> None:
        if self._capturing:
            self._hidden.append(output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0])

    def __call__(self, model, inputs: dict):
        """The loss of one batch, as ``model(**inputs).loss`` would compute it (inputs hold ``labels``;
        ``num_items_in_batch`` when the trainer passes it)."""
        import torch
        import torch.nn.functional as F

        decoder, head, keep = self._parts
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        shift = inputs.pop("shift_labels", None)
        items = inputs.pop("num_items_in_batch", None)
        if keep:
            inputs["logits_to_keep"] = 1
        with self._capture():
            model(**inputs)
        hidden = self._hidden[-1]
        self._hidden.clear()
        if shift is None:
            shift = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
        flat = shift.reshape(-1).to(hidden.device)
        rows = (flat != IGNORE_INDEX).nonzero().squeeze(1)
        h = hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows)
        with self.autocast():
            total = linear_cross_entropy(h, head.weight, head.bias, flat.index_select(0, rows),
                                         chunk_elements=self.chunk_elements)
        if items is None:
            return total / rows.numel()  # the mean over labelled positions (nan without any, as plain)
        if torch.is_tensor(items):
            items = items.to(total.device)
        return total / items


class LossModel:
    """Stands in for the model in ``Trainer.compute_loss``: returns ``{"loss": chunked loss}``, so the
    trainer's own handling around the call (num_items_in_batch, scaling across devices) is unchanged."""

    def __init__(self, model, loss: ChunkedLoss):
        self.model, self.loss = model, loss

    def __call__(self, **inputs):
        return {"loss": self.loss(self.model, inputs)}
