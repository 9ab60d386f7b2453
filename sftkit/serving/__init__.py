"""Use a tuned model: a batching generation engine, an OpenAI-compatible HTTP API and model loading.

- :mod:`sftkit.serving.engine`: :class:`Engine` runs one model on its own thread and decodes
  concurrent requests together (token by token, each row with its own sampling settings).
- :mod:`sftkit.serving.loading`: a run directory, a model directory or any model reference a
  recipe accepts → a :class:`ServedModel` (model, tokenizer, chat template, stop tokens).
- :mod:`sftkit.serving.api`: the Starlette app behind ``sftkit serve`` (``/v1/models``,
  ``/v1/chat/completions`` with server-sent events, ``/v1/completions``).
- :mod:`sftkit.serving.request`: a request body read (bounded size and nesting) and checked, every
  field's type and range, in one place.

Heavy libraries (torch, transformers, starlette) are imported inside functions.
"""
