"""Where outputs go: ``--out-dir``/``LAB5_OUT``, else the project folder for the course data, else
``<project>/runs/<dataset-name>-<fingerprint>/``; never the package's install folder.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from .config import Config, find_project
from .data import Dataset
from .errors import ConfigError

#: :attr:`lab5.data.Dataset.fingerprint` of the course data (train.txt + test_without_label.txt)
COURSE_DATASET = "22abc7daf210db48"
PREDICTIONS = "test_with_label.txt"


def is_course_data(ds: Dataset) -> bool:
    return ds.fingerprint == COURSE_DATASET


@dataclass(frozen=True)
class Outputs:
    """The output root and the places under it."""

    root: Path

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def predictions(self) -> Path:
        return self.root / PREDICTIONS

    @property
    def notebooks(self) -> Path:
        return self.root / "notebooks"

    def run(self, name: str) -> Path:
        """A checkpoint folder, ``runs/<name>``."""
        return self.root / "runs" / name


def output_root(cfg: Config, ds: Dataset) -> Outputs:
    """The output root of ``cfg`` for dataset ``ds`` (see the module docstring)."""
    if cfg.out_dir is not None:
        return Outputs(Path(cfg.out_dir))
    home = find_project() or Path.cwd()
    if is_course_data(ds):
        return Outputs(home)
    return Outputs(home / "runs" / f"{ds.root.resolve().name}-{ds.fingerprint}")


def committed(relative: str) -> Path | None:
    """The project's committed file ``relative``, or None."""
    project = find_project()
    path = project / relative if project else None
    return path if path is not None and path.is_file() else None


def committed_predictions() -> Path | None:
    """The project's committed ``test_with_label.txt`` (None outside a project or when there is none)."""
    return committed(PREDICTIONS)


def check_writable(path: Path, *, folder: bool = True, what: str = "output folder") -> None:
    """Refuse, before any work, a path that cannot be written; creates nothing."""
    path = Path(path).resolve()
    if path.exists():
        if path.is_dir() != folder:
            raise ConfigError(f"{what} {path} is a {'file' if folder else 'folder'}")
        probe = path if folder else path.parent
    else:
        probe = path.parent
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            raise ConfigError(f"{what} {path} cannot be created: {probe} is a file")
    problem = _cannot_write_in(probe)
    if problem:
        raise ConfigError(f"{what} {path} cannot be written: {problem}")


def _cannot_write_in(folder: Path) -> str | None:
    """Why a new file cannot be made in ``folder`` (None when it can), tried with an unnamed ``O_TMPFILE``.

    ``os.access`` says yes to root everywhere, so it only decides where ``O_TMPFILE`` is missing.
    """
    flag = getattr(os, "O_TMPFILE", None)
    if flag is not None:
        try:
            os.close(os.open(folder, flag | os.O_WRONLY, 0o600))
            return None
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                return f"no write permission on {folder}"
            if e.errno not in _NO_TMPFILE:
                return f"{folder}: {os.strerror(e.errno or 0)}"
    if hasattr(os, "statvfs"):
        fs = os.statvfs(folder)
        if fs.f_flag & os.ST_RDONLY:
            return f"{folder} is on a read-only filesystem"
        if fs.f_blocks == 0:
            return f"{folder} is on a pseudo filesystem (such as proc or sysfs) that holds no files"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"no write permission on {folder}"
    return None


#: errors of a filesystem (or kernel) without ``O_TMPFILE``: they say nothing about permission
_NO_TMPFILE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EISDIR, errno.EINVAL}
