"""``python -m lab5 reproduce``: execute the project's notebooks in order for one dataset and output root.

``course-data`` cells are committed without output, and stream outputs are merged so flushing never changes a file.
"""
from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

from . import profile
from .errors import ConfigError, UserError
from .cache import atomic_write_bytes

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class NotebookFailed(UserError):
    """A notebook cell raised; the message names the notebook and the cell."""


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (tracebacks from a kernel carry them)."""
    return _ANSI.sub("", text)


#: the tag of a cell whose output shows course data: the committed notebook keeps no output for it
COURSE_DATA_TAG = "course-data"


def notebook_paths(folder: Path, only: str | None = None) -> list[Path]:
    """The numbered notebooks of ``folder``, or those ``only`` lists (``"1,3"``); unknown is a ConfigError."""
    paths = sorted(Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise ConfigError(f"no numbered notebooks in {folder}")
    if only is None:
        return paths
    by_number = {p.name[:2]: p for p in paths}
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    bad = [w for w in wanted if not w.isdigit() or f"{int(w):02d}" not in by_number]
    if bad or not wanted:
        raise ConfigError(f"--only {only!r} names no notebook of {', '.join(by_number)}" if not wanted else
                          f"--only: no notebook numbered {bad[0]!r}; choose from {', '.join(by_number)}")
    numbers = {f"{int(w):02d}" for w in wanted}
    return [p for p in paths if p.name[:2] in numbers]


def kernel_env(project: Path, data: Path, out: Path, cache: Path | None = None,
               profile_to: Path | None = None) -> dict[str, str]:
    """The environment of every notebook kernel: the run's folders as absolute paths, the project first on
    ``PYTHONPATH``, and the profile's file.
    """
    env = {**os.environ, "LAB5_DATA": str(Path(data).resolve()), "LAB5_OUT": str(Path(out).resolve()),
           "PYTHONPATH": os.pathsep.join([str(Path(project).resolve()), *filter(None, [os.environ.get("PYTHONPATH")])])}
    for name, path in (("LAB5_CACHE", cache), (profile.ENV, profile_to)):
        if path is not None:
            env[name] = str(Path(path).resolve())
    return env


def run_notebooks(project: Path, data: Path, out: Path, paths: list[Path], timeout: int = 3600,
                  profile_to: Path | None = None, cache: Path | None = None) -> list[tuple[str, float]]:
    """Execute ``paths`` in order; a failing cell raises :class:`NotebookFailed`. Returns (name, seconds)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, DeadKernelError
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor, TagRemovePreprocessor

    tidy = [CoalesceStreamsPreprocessor()]

    project, out = Path(project).resolve(), Path(out).resolve()
    env = kernel_env(project, data, out, cache, profile_to)
    if out == project:  # the committed notebooks: without the outputs that show course data
        tidy.append(TagRemovePreprocessor(remove_all_outputs_tags={COURSE_DATA_TAG}))
    times = []
    for k, path in enumerate(paths, 1):
        print(f"[{k}/{len(paths)}] {path.name} ...", end="", flush=True, file=sys.stderr)
        nb = nbformat.read(path, as_version=4)
        # no execution timestamps in the cells: a re-run that reproduces every output leaves the file byte for byte
        for cell in nb.cells:
            cell.get("metadata", {}).pop("execution", None)
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", extra_arguments=["--IPKernelApp.log_level=ERROR"],
                                resources={"metadata": {"path": str(path.parent)}}, record_timing=False)
        client.log.setLevel("WARNING")  # not its "Executing notebook with kernel" line
        t = time.perf_counter()
        try:
            client.execute(env=env)
        except CellExecutionError as e:
            cell = next((i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))), "?")
            print(" failed", file=sys.stderr)
            last = strip_ansi(str(e)).strip().splitlines()[-1]
            raise NotebookFailed(f"{path.name}: cell {cell} failed: {last}") from None
        except DeadKernelError:
            print(" failed", file=sys.stderr)
            raise NotebookFailed(f"{path.name}: the kernel died (out of memory, or killed) while running it") from None
        dt = time.perf_counter() - t
        if profile_to is not None:
            profile.record(f"notebook {path.stem}", dt, Path(profile_to))
        for step in tidy:
            nb, _ = step.preprocess(nb, {})
        target = path if out == project else out / "notebooks" / path.name
        atomic_write_bytes(target, nbformat.writes(nb).encode("utf-8") + b"\n")
        print(f" done in {dt:.0f}s", file=sys.stderr)
        times.append((path.name, dt))
    return times
