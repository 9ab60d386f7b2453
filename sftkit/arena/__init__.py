"""The arena: blind pairwise battles between models, human votes, ratings, and votes → training data.

- :mod:`sftkit.arena.store`: the SQLite file (WAL, schema versioned) of answers, battles and votes.
- :mod:`sftkit.arena.export`: votes → preference pairs and KTO rows (also the ``arena`` data source).
- :mod:`sftkit.arena.ratings`: win rates and Bradley–Terry scores with bootstrap intervals.
- :mod:`sftkit.arena.loop`: a run trained on votes reports the ratings before and after it.
- :mod:`sftkit.arena.app`: the web page (Starlette; no JavaScript, every text escaped, CSRF-checked votes).

Only ``app`` needs the model stack; the rest imports nothing heavy.
"""

DB_NAME = "arena.sqlite"
