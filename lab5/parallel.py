"""Independent trainings side by side, each in its own forked process on one torch thread.

One thread per training keeps results bit-identical for any job count; without fork the tasks run in turn.
"""
from __future__ import annotations

import multiprocessing as mp
import signal
import sys
from typing import Callable, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: the running :func:`run_all`'s function and tasks, inherited by forked workers (never pickled: closures work)
_JOB: tuple[Callable, Sequence] | None = None


def can_fork() -> bool:
    """Whether tasks can go to forked workers: fork exists, not in a worker, and CUDA not started."""
    torch = sys.modules.get("torch")
    cuda = torch is not None and torch.cuda.is_initialized()
    return "fork" in mp.get_all_start_methods() and not mp.current_process().daemon and not cuda


def run_all(fn: Callable[[T], R], tasks: Sequence[T], jobs: int, progress: str | None = None) -> list[R]:
    """``[fn(t) for t in tasks]``, up to ``jobs`` at a time in forked one-thread workers, in order."""
    from tqdm.auto import tqdm

    global _JOB
    tasks = list(tasks)
    jobs = min(jobs, len(tasks))
    bar = tqdm(total=len(tasks), desc=progress, disable=progress is None, unit="task")
    try:
        if jobs <= 1 or not can_fork():
            out = []
            for t in tasks:
                out.append(fn(t))
                bar.update()
            return out
        _JOB = (fn, tasks)
        with mp.get_context("fork").Pool(jobs, initializer=_worker_init) as pool:
            out = []
            for r in pool.imap(_run_one, range(len(tasks)), chunksize=1):
                out.append(r)
                bar.update()
            return out
    finally:
        _JOB = None
        bar.close()


def _worker_init() -> None:
    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the pool
    torch.set_num_threads(1)


def _run_one(i: int):
    fn, tasks = _JOB
    return fn(tasks[i])
