"""Ideas measured beside the core and not part of the final model's path: each module runs one idea and writes its
table (with a provenance ``.json`` beside it) for notebook 5 or 6 to read. The core never imports this package.

The commands add no option to the core's: they run the final model's config (``lab5.Config()``) on the dataset, cache
and output root of ``LAB5_DATA``, ``LAB5_CACHE`` and ``LAB5_OUT``. Like ``python -m lab5``, a bad option or dataset
exits 2 with one ``error:`` line before any work.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable


def seed_list(text: str) -> list[int]:
    """An argparse type: comma-separated seeds, each in [0, 2**32)."""
    from ..config import AT_MOST

    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated seeds, e.g. 0,1,2; not {text!r}") from None
    if any(not 0 <= s <= AT_MOST["seed"] for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds must lie in [0, 2**32), not {text!r}")
    return seeds


def parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The command line of an experiment command: ``python -m lab5``'s parser (a usage mistake is one line)."""
    from ..cli import Parser

    return Parser(prog=prog, description=doc.split("\n\n")[0])


def prepare(out: str | None, default: Callable, cv: bool = True):
    """What every command checks before any work: the final model's config, the dataset (large enough for its CV,
    unless ``cv`` is False)
    and the table's path (``out``, else ``default(output root)``), writable. Raises a UserError otherwise."""
    from ..config import Config
    from ..data import load_dataset
    from ..evaluation import check_cv_rows
    from ..outputs import check_writable, output_root

    cfg = Config(progress=False)
    ds = load_dataset(cfg.data)
    if cv:
        check_cv_rows(ds, cfg.folds)
    path = Path(out) if out else default(output_root(cfg, ds))
    check_writable(path, folder=False, what="CSV file")
    return cfg, ds, path


def run(p: argparse.ArgumentParser, argv: list[str] | None, out: str,
        default: Callable[..., Path], build: Callable[..., tuple], cv: bool = True) -> int:
    """A command: ``p`` and ``--out`` (help ``out``) parsed, :func:`prepare` (``default(output root, args)``), then
    ``build(args, cfg, ds)`` -> (table, text) timed, the table written with its provenance, the text printed."""
    import sys
    import time

    from ..cli import report_error
    from ..errors import UserError
    from ..runtime import provenance, write_table

    p.add_argument("--out", help=f"{out}; its provenance goes beside it as .json")
    argv = sys.argv[1:] if argv is None else argv
    args = p.parse_args(argv)
    try:
        cfg, ds, path = prepare(args.out, lambda root: default(root, args), cv)
    except UserError as e:
        return report_error(e)
    made, t = provenance(p.prog.removeprefix("python -m "), argv), time.perf_counter()
    table, text = build(args, cfg, ds)
    write_table(path, table, made, t)
    print(text)
    print(f"-> {path} [{time.perf_counter() - t:.0f}s]")
    return 0
