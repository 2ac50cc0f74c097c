"""``python -m lab5 reproduce``: execute notebooks 01-06 in order, in place (figures/, test_with_label.txt)."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .config import REPO_ROOT, ConfigError
from .io import atomic_write_bytes

NOTEBOOKS = REPO_ROOT / "notebooks"


class NotebookFailed(Exception):
    """A notebook cell raised; the message names the notebook and the cell."""


def notebook_paths(only: str | None = None) -> list[Path]:
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        wanted = {f"{int(n):02d}" for n in only.split(",")}
        paths = [p for p in paths if p.name[:2] in wanted]
    if not paths:
        raise ConfigError(f"no notebooks to run in {NOTEBOOKS}" + (f" matching --only {only}" if only else ""))
    return paths


def run_notebooks(data: Path, only: str | None = None, timeout: int = 1800) -> list[tuple[str, float]]:
    """Execute each notebook with ``LAB5_DATA=data``; a failing cell raises :class:`NotebookFailed`."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    os.environ["LAB5_DATA"] = str(Path(data).resolve())
    times = []
    paths = notebook_paths(only)
    for k, path in enumerate(paths, 1):
        print(f"[{k}/{len(paths)}] {path.name} ...", end="", flush=True, file=sys.stderr)
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                extra_arguments=["--IPKernelApp.log_level=ERROR"], resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.log.setLevel("WARNING")  # not its "Executing notebook with kernel" line
        t = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError as e:
            cell = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))), "?")
            print(" failed", file=sys.stderr)
            raise NotebookFailed(f"{path.name}: cell {cell} failed: {str(e).strip().splitlines()[-1]}") from None
        except DeadKernelError:
            print(" failed", file=sys.stderr)
            raise NotebookFailed(f"{path.name}: the kernel died (out of memory, or killed) while running it") from None
        dt = time.perf_counter() - t
        atomic_write_bytes(path, nbformat.writes(nb).encode("utf-8") + b"\n")
        print(f" done in {dt:.0f}s", file=sys.stderr)
        times.append((path.name, dt))
    return times
