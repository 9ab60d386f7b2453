"""Loss curves, or an RL run's reward curves, as a PNG (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from pathlib import Path


def _points(log: list, key: str, *, exclude: tuple = ()) -> tuple[list, list]:
    xs, ys = [], []
    for i, e in enumerate(log):
        if not isinstance(e, dict) or e.get(key) is None or any(k in e for k in exclude):
            continue
        try:
            y = float(e[key])
        except (TypeError, ValueError):
            continue
        if math.isfinite(y):
            xs.append(float(e.get("step", i)))
            ys.append(y)
    return xs, ys


def reward_plot(log: list, path: Path) -> Path:
    """An RL run: the total reward and each reward's mean against step, and beside them the learning
    signal (share of groups without reward spread), the share of completions cut at the length limit
    and the mean completion length."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    ax.plot(*_points(log, "reward"), label="total (weighted)", color="black", linewidth=2)
    labels = sorted({k[len("rewards/"):-len("/mean")] for e in log for k in e
                     if k.startswith("rewards/") and k.endswith("/mean")})
    for label in labels:
        ax.plot(*_points(log, f"rewards/{label}/mean"), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward")
    ax.set_title("Rewards")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    ax2.plot(*_points(log, "frac_reward_zero_std"), label="groups without spread", color="#d62728")
    ax2.plot(*_points(log, "completions/clipped_ratio"), label="cut at the length limit", color="#9467bd")
    ax2.set_ylim(-0.05, 1.05)
    ax2.set_ylabel("share")
    twin = ax2.twinx()
    twin.plot(*_points(log, "completions/mean_length"), label="completion length", color="#7f7f7f", linestyle="--")
    twin.set_ylabel("tokens")
    ax2.set_xlabel("step")
    ax2.set_title("Learning signal and length")
    ax2.grid(alpha=0.3)
    handles = ax2.get_lines() + twin.get_lines()
    ax2.legend(handles, [h.get_label() for h in handles], loc="upper right", fontsize="small")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def loss_plot(log_history: list, path: Path) -> Path | None:
    """Train/eval loss (and gradient norm, learning rate when logged) against step, or for an RL run
    (rewards in the log) its reward curves (:func:`reward_plot`); None without data."""
    log = [e for e in log_history or [] if isinstance(e, dict)]
    rl = [e for e in log if "reward" in e and not any(k.startswith("eval_") for k in e)]
    if rl:
        return reward_plot(rl, path)
    train = _points(log, "loss", exclude=("eval_loss", "train_runtime"))
    evals = _points(log, "eval_loss")
    grads = _points(log, "grad_norm")
    lrs = _points(log, "learning_rate")
    if not train[0] and not evals[0]:
        return None
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    extra = bool(grads[0] or lrs[0])
    fig, axes = plt.subplots(1, 2 if extra else 1, figsize=(10 if extra else 6, 3.6), dpi=100)
    ax = axes[0] if extra else axes
    if train[0]:
        ax.plot(*train, label="train loss", color="#1f77b4", marker="." if len(train[0]) < 30 else None)
    if evals[0]:
        ax.plot(*evals, label="eval loss", color="#d62728", marker="o")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if extra:
        ax2 = axes[1]
        if grads[0]:
            ax2.plot(*grads, label="grad norm", color="#2ca02c")
            ax2.set_ylabel("grad norm")
        if lrs[0]:
            twin = ax2.twinx() if grads[0] else ax2
            twin.plot(*lrs, label="learning rate", color="#ff7f0e", linestyle="--")
            twin.set_ylabel("learning rate")
        ax2.set_xlabel("step")
        ax2.set_title("Gradient norm / learning rate")
        ax2.grid(alpha=0.3)
        handles = [h for a in fig.axes[1:] for h in a.get_lines()]
        ax2.legend(handles, [h.get_label() for h in handles], loc="upper right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
