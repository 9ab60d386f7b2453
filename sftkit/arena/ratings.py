"""Ratings from votes: win rates and Bradley–Terry scores with bootstrap intervals.

Bradley–Terry: P(i beats j) = p_i / (p_i + p_j). A vote for A is a win of A over B; a tie or
"both bad" is half a win each (as Chatbot Arena counts them). Strengths are fitted by the
minorization–maximization iteration (Hunter 2004) with a small prior (one tie against every other
model, so a model that never lost still has a finite score) and reported on the Elo scale:
``1000 + 400 * log10(p_i / geometric mean of p)``. Intervals are the 2.5th and 97.5th percentiles
over ``rounds`` bootstrap resamples of the votes (seeded: the same votes give the same page).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict

from .store import Vote


def _fit(models: list[str], games: list[tuple[str, str, float]], iterations: int = 200) -> dict[str, float]:
    """Elo-scale Bradley–Terry scores from (i, j, score of i) games."""
    idx = {m: k for k, m in enumerate(models)}
    n = len(models)
    wins = [0.0] * n
    pairs: dict = defaultdict(float)
    for i, j, s in games:
        a, b = idx[i], idx[j]
        wins[a] += s
        wins[b] += 1.0 - s
        pairs[(min(a, b), max(a, b))] += 1.0
    for a in range(n):  # prior: one tie with every other model
        for b in range(a + 1, n):
            wins[a] += 0.5
            wins[b] += 0.5
            pairs[(a, b)] += 1.0
    p = [1.0] * n
    for _ in range(iterations):
        new = []
        for a in range(n):
            denom = sum(cnt / (p[x] + p[y]) for (x, y), cnt in pairs.items() if a in (x, y))
            new.append(wins[a] / denom if denom > 0 else p[a])
        mean = math.exp(sum(math.log(v) for v in new) / n)
        p = [v / mean for v in new]
    return {m: 1000.0 + 400.0 * math.log10(p[idx[m]]) for m in models}


def _games(votes: list[Vote]) -> list[tuple[str, str, float]]:
    score = {"a": 1.0, "b": 0.0, "tie": 0.5, "bad": 0.5}
    return [(v.battle.model_a, v.battle.model_b, score[v.choice]) for v in votes
            if v.battle.model_a != v.battle.model_b]


def ratings(votes: list[Vote], *, rounds: int = 200, seed: int = 0) -> list[dict]:
    """One row per model, best first: score, interval, votes, wins/losses/ties, win rate."""
    games = _games(votes)
    models = sorted({m for g in games for m in g[:2]})
    if not models:
        return []
    scores = _fit(models, games)
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {m: [] for m in models}
    for _ in range(rounds if games else 0):
        resample = [games[rng.randrange(len(games))] for _ in games]
        for m, s in _fit(models, resample, iterations=60).items():
            samples[m].append(s)
    rows = []
    for m in models:
        won = sum(1 for i, j, s in games if (i == m and s == 1.0) or (j == m and s == 0.0))
        lost = sum(1 for i, j, s in games if (i == m and s == 0.0) or (j == m and s == 1.0))
        tied = sum(1 for i, j, s in games if m in (i, j) and s == 0.5)
        total = won + lost + tied
        ss = sorted(samples[m])
        low, high = (ss[int(0.025 * (len(ss) - 1))], ss[int(math.ceil(0.975 * (len(ss) - 1)))]) if ss else (None, None)
        rows.append({"model": m, "score": scores[m], "low": low, "high": high, "votes": total, "wins": won,
                     "losses": lost, "ties": tied, "win_rate": won / total if total else None})
    return sorted(rows, key=lambda r: -r["score"])


def ratings_by_set(votes: list[Vote], *, rounds: int = 200) -> dict[str, list[dict]]:
    """``{"all": ratings, prompt_set: ratings, ...}``."""
    out = {"all": ratings(votes, rounds=rounds)}
    for name in sorted({v.battle.prompt_set for v in votes}):
        out[name] = ratings([v for v in votes if v.battle.prompt_set == name], rounds=rounds)
    return out
