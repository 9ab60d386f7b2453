"""Domain: continued pretraining on raw text, packed, with optional replay of general text.

Documents are tokenized whole (EOS after each), optionally mixed with a share of general
"replay" text (limits forgetting), shuffled with the run's seed, concatenated and cut into rows of
``training.max_length`` tokens. Positions restart at every document start, so a document never
attends to the one before it in the same row. Every token is trained.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

from sftkit.api import IGNORE_INDEX
from sftkit.errors import DataError
from sftkit.records import TEXT_EXTENSIONS

from .base import CausalStrategy


def read_replay(path: Path, text_column: str = "text") -> list[str]:
    """General text for replay: .txt/.md (a file of blank-line separated documents, or a directory of
    files, one document each), or .jsonl/.json/.csv with a text column."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"replay text not found: {path}", where="[strategy] replay.path",
                        hint="point it at a .txt/.md file or directory, or a .jsonl/.csv with a text column")
    if path.is_dir():
        docs = []
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix.lower() in TEXT_EXTENSIONS + (".jsonl", ".json", ".csv"):
                docs += read_replay(f, text_column) if f.suffix.lower() not in TEXT_EXTENSIONS else \
                    [f.read_text(encoding="utf-8", errors="replace").strip()]
        return [d for d in docs if d]
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        from sftkit.jsonl import read_values

        docs = [str(r.get(text_column, "")) for r in read_values(path, where="[strategy] replay.path", objects=True)
                if isinstance(r, dict)]
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            docs = [str(r.get(text_column, "")) for r in csv.DictReader(fh)]
    else:
        docs = path.read_text(encoding="utf-8", errors="replace").split("\n\n")
    docs = [d.strip() for d in docs if d and d.strip()]
    if not docs:
        raise DataError(f"no replay text found in {path}", where="[strategy] replay.path",
                        hint=f"give documents in a {text_column!r} column or as plain text")
    return docs


def pack(docs: list[list[int]], max_length: int, pad_id: int) -> tuple[list[dict], dict]:
    """Concatenate token lists into rows of ``max_length`` with per-document positions; the last row
    is padded (labels ignored). Returns rows and statistics."""
    ids, pos = [], []
    for doc in docs:
        ids += doc
        pos += list(range(len(doc)))
    total = len(ids)
    if total == 0:
        return [], {"documents": 0, "tokens": 0, "rows": 0, "padding_tokens": 0}
    width = min(max_length, total)
    rows = []
    for start in range(0, total, width):
        chunk_ids, chunk_pos = ids[start:start + width], pos[start:start + width]
        labels = list(chunk_ids)
        # a row starting mid-document restarts its positions so they stay increasing from 0
        if chunk_pos and chunk_pos[0] != 0:
            offset, k = chunk_pos[0], 1
            while k < len(chunk_pos) and chunk_pos[k] == chunk_pos[k - 1] + 1:
                k += 1
            chunk_pos[:k] = [x - offset for x in chunk_pos[:k]]
        pad = width - len(chunk_ids)
        if pad:
            last = chunk_pos[-1]
            chunk_ids += [pad_id] * pad
            labels += [IGNORE_INDEX] * pad
            chunk_pos += list(range(last + 1, last + 1 + pad))
        rows.append({"input_ids": chunk_ids, "labels": labels, "position_ids": chunk_pos})
    padding = len(rows) * width - total
    return rows, {"documents": len(docs), "tokens": total, "rows": len(rows), "row_length": width,
                  "padding_tokens": padding}


class PackedCollator:
    """Stack equal-length packed rows; ``position_ids`` mark document starts (no attention mask, so
    transformers builds a per-document causal mask)."""

    def __call__(self, features):
        import torch

        return {k: torch.tensor([f[k] for f in features], dtype=torch.long)
                for k in ("input_ids", "labels", "position_ids")}


class DomainStrategy(CausalStrategy):
    name = "domain"

    def encode_docs(self, run, ds, tokenizer) -> list[list[int]]:
        """Token ids of each document, EOS appended (never truncated: packing cuts the rows)."""
        fmt = run.formatter
        out = []
        if "text" in ds.column_names:
            for text in ds["text"]:
                out.append(self._encode_text(fmt, tokenizer, text))
        else:  # conversations, trained on whole as text
            for messages in ds["messages"]:
                enc = fmt.encode_messages(messages) if fmt is not None else None
                out.append(list(enc["input_ids"]) if enc else self._encode_text(
                    None, tokenizer, "\n".join(m["content"] for m in messages)))
        return [d for d in out if d]

    @staticmethod
    def _encode_text(fmt, tokenizer, text: str) -> list[int]:
        if fmt is not None and hasattr(fmt, "encode_text"):
            return list(fmt.encode_text(text)["input_ids"])
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])

    def replay_docs(self, run, tokenizer, domain_tokens: int) -> tuple[list[list[int]], dict]:
        replay = self.options.get("replay")
        if not replay:
            return [], {}
        from sftkit.paths import resolve_path

        fraction = float(replay.get("fraction", 0.2))
        if fraction <= 0:
            return [], {}
        texts = read_replay(resolve_path(replay["path"], run.base_dir), replay.get("text_column", "text"))
        rng = random.Random(run.seed)
        rng.shuffle(texts)
        want = int(domain_tokens * fraction / (1 - fraction))
        docs, got = [], 0
        for text in texts:
            if got >= want:
                break
            ids = self._encode_text(run.formatter, tokenizer, text)
            docs.append(ids)
            got += len(ids)
        share = got / (got + domain_tokens) if got + domain_tokens else 0.0
        info = {"path": str(replay["path"]), "fraction": fraction, "documents": len(docs), "tokens": got,
                "share": round(share, 4)}
        if share < fraction * 0.8 and run.console:
            run.console(f"warning: the replay text is short: {share:.0%} of the training tokens instead of "
                        f"{fraction:.0%}")
            info["warning"] = "replay text shorter than the requested fraction"
        return docs, info

    def rows(self, run, docs, tokenizer, packing: bool):
        max_length = run.training.max_length
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if packing:
            return pack(docs, max_length, pad_id)
        rows = []
        for doc in docs:  # each document on its own rows
            for start in range(0, len(doc), max_length):
                piece = doc[start:start + max_length]
                rows.append({"input_ids": piece, "labels": list(piece)})
        return rows, {"documents": len(docs), "tokens": sum(map(len, docs)), "rows": len(rows)}

    def packing(self, run) -> bool:
        """Whether rows are packed: ``[strategy] packing``, else ``training.packing``, else true."""
        packing = self.options.get("packing")
        if packing is None:
            packing = run.training.packing
        return True if packing is None else bool(packing)

    def encoded_rows(self, run, tokenizer, split: str = "train") -> tuple[list[dict], dict, dict]:
        """The rows training feeds the model for ``split`` (``input_ids``, ``labels``, and
        ``position_ids`` when packed), its packing facts and the replay facts (train only). The one
        encoding of both :meth:`train` and :meth:`preview_encode`."""
        packing = self.packing(run)
        if split != "train":
            ds = run.data.eval
            if ds is None or len(ds) == 0:
                return [], {}, {}
            rows, info = self.rows(run, self.encode_docs(run, ds, tokenizer), tokenizer, packing)
            return rows, info, {}
        rng = random.Random(run.seed)
        docs = self.encode_docs(run, run.data.train, tokenizer)
        if not docs:
            raise DataError("no text to train on", where="[[data]]", hint="the text rows are empty")
        domain_tokens = sum(map(len, docs))
        replay, replay_info = self.replay_docs(run, tokenizer, domain_tokens)
        mixed = docs + replay
        rng.shuffle(mixed)
        rows, pack_info = self.rows(run, mixed, tokenizer, packing)
        return rows, {"packing": packing, **pack_info, "domain_tokens": domain_tokens,
                      "replay_tokens": replay_info.get("tokens", 0)}, replay_info

    def preview_encode(self, run, split: str = "train") -> list[dict] | None:
        """What training feeds the model for ``split``: the documents packed into rows of
        ``max_length`` (replay text mixed in), every token but padding trained."""
        rows, _info, _replay = self.encoded_rows(run, run.tokenizer, split)
        return rows or None

    def train(self, run):
        import datasets

        from .collate import PadCollator, TokenCounter
        from .trainer import fit

        model, tokenizer = self.load(run)
        rows, tokens_info, replay_info = self.encoded_rows(run, tokenizer, "train")
        packing, pack_info = tokens_info["packing"], tokens_info
        if replay_info:
            run.data_stats["replay"] = replay_info
        run.data_stats["tokens"] = tokens_info
        train = datasets.Dataset.from_list(rows)
        eval_rows, _, _ = self.encoded_rows(run, tokenizer, "eval")
        eval_ = datasets.Dataset.from_list(eval_rows) if eval_rows else None
        model = self.prepare_model(run, model)
        counter = TokenCounter()
        if packing:
            collator, lengths = PackedCollator(), None
        else:
            collator = PadCollator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
            lengths = [len(r["input_ids"]) for r in rows] if run.training.group_by_length else None
        trainer = self.build_trainer(run, model, tokenizer, train, eval_, collator, lengths=lengths, counter=counter)
        result = fit(run, trainer, tokenizer=tokenizer, counter=counter)
        if packing:
            result.metrics["padding_tokens"] = pack_info.get("padding_tokens", 0)
            width = pack_info.get("row_length") or 1
            result.metrics["padding_fraction"] = round(pack_info["padding_tokens"] / (pack_info["rows"] * width), 4)
        if result.metrics.get("eval_loss") is not None:
            import math

            result.metrics["eval_perplexity"] = round(math.exp(min(result.metrics["eval_loss"], 50)), 4)
        result.metrics["packing"] = bool(packing)
        if replay_info:
            result.metrics["replay_share"] = replay_info["share"]
        return result


def create(options: dict | None = None) -> DomainStrategy:
    return DomainStrategy(options)
