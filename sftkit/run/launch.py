"""``sftkit run --nproc N``: start N sftkit processes through ``torch.distributed.run`` (torchrun).

The launcher re-runs the same ``sftkit`` command line (without the launch options) as
``python -m sftkit`` in every process; each one learns its rank from the environment, exactly as
under ``torchrun -m sftkit`` or ``accelerate launch -m sftkit``. When any process fails, torchrun
stops the others; the launcher then prints one line: the failing rank's own message (each process
leaves it in ``$SFTKIT_ERROR_DIR``) or how it died.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sftkit.errors import SftkitError

ERROR_DIR_ENV = "SFTKIT_ERROR_DIR"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class LaunchOptions:
    """Where the processes run: ``nproc`` per machine, ``nnodes`` machines, this one ``node_rank``,
    rendezvous at ``master_addr:master_port`` (default: a free port on this machine)."""

    nproc: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    @property
    def needed(self) -> bool:
        return self.nproc > 1 or self.nnodes > 1

    def torchrun_args(self) -> list[str]:
        args = ["--nproc-per-node", str(self.nproc), "--nnodes", str(self.nnodes), "--node-rank", str(self.node_rank),
                "--max-restarts", "0"]
        if self.nnodes == 1 and self.master_port is None:
            args.append("--standalone")  # a free port on this machine: runs side by side never collide
        else:
            args += ["--master-addr", self.master_addr or "127.0.0.1", "--master-port", str(self.master_port or 29500)]
        return args

    def local_only(self) -> bool:
        return self.nnodes == 1 or (self.master_addr or "127.0.0.1") in LOOPBACK


def check(options: LaunchOptions) -> None:
    """One-line errors for launch options that cannot work."""
    if options.nproc < 1 or options.nnodes < 1:
        raise SftkitError("--nproc and --nnodes must be at least 1", exit_code=2)
    if not 0 <= options.node_rank < options.nnodes:
        raise SftkitError(f"--node-rank {options.node_rank} is outside 0..{options.nnodes - 1}",
                          hint="number the machines 0, 1, ... up to --nnodes - 1", exit_code=2)
    if options.nnodes > 1 and not options.master_addr:
        raise SftkitError("a run on several machines needs --master-addr (the address of node 0)",
                          hint="pass --master-addr HOST --master-port PORT on every machine", exit_code=2)


def launch(options: LaunchOptions, sftkit_args: list[str]) -> int:
    """Run ``python -m sftkit *sftkit_args`` in ``options.nproc`` processes; return the exit code.
    Raises :class:`SftkitError` with the failing process's message when the run failed."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    check(options)
    for name in ("torch.distributed.elastic", "torch.distributed.run", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # failures are reported below, once
    if options.local_only():
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    with tempfile.TemporaryDirectory(prefix="sftkit-launch-") as errors:
        os.environ[ERROR_DIR_ENV] = errors
        args = parse_args([*options.torchrun_args(), "-m", "sftkit", *sftkit_args])
        try:
            run(args)
        except ChildFailedError as exc:
            raise _failure(exc, Path(errors)) from None
        except (SignalException, KeyboardInterrupt):  # Ctrl-C / SIGTERM of the launcher
            raise SftkitError("stopped before the run finished", hint="continue it with --resume",
                              exit_code=130) from None
        finally:
            os.environ.pop(ERROR_DIR_ENV, None)
    return 0


def _failure(exc, errors: Path) -> SftkitError:
    reports = []
    for f in errors.glob("rank-*.txt"):
        try:
            code, message = f.read_text(encoding="utf-8").split("\n", 1)
            reports.append((f.stat().st_mtime, int(f.stem.split("-")[1]), int(code), message.strip()))
        except (OSError, ValueError):
            continue
    if reports:
        _, rank, code, message = min(reports)
        return SftkitError(f"rank {rank}: {message}", exit_code=code)
    rank, failure = exc.get_first_failure()
    how = f"was killed by {failure.signal_name()}" if failure.exitcode < 0 else f"exited with code {failure.exitcode}"
    return SftkitError(f"process of rank {rank} {how}; the run was stopped on every rank",
                       hint="see its output above; continue the run with --resume")


def report_error(err: SftkitError, rank: int) -> bool:
    """In a launched process: leave ``err`` for the launcher (which prints it once); True when the
    launcher will, so this process need not print it."""
    folder = os.environ.get(ERROR_DIR_ENV)
    if not folder:
        return False
    try:
        Path(folder, f"rank-{rank}.txt").write_text(f"{err.exit_code}\n{err}\n", encoding="utf-8")
    except OSError:
        return False
    return True


PEER_LOST = ("connection closed by peer", "connection reset by peer", "broken pipe", "socket closed")


def peer_lost(exc: BaseException, rank: int) -> bool:
    """Whether ``exc`` only says another process of the run is gone (it failed first and reported,
    or its connection dropped): then this process stops quietly and the launcher names the cause."""
    folder = os.environ.get(ERROR_DIR_ENV)
    if folder and any(f.name != f"rank-{rank}.txt" for f in Path(folder).glob("rank-*.txt")):
        return True
    text = str(exc).lower()
    return type(exc).__name__.startswith("Dist") or any(k in text for k in PEER_LOST)
