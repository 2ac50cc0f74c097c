"""nbval runs each notebook with this checkout's ``lab5`` (the project folder first on the kernel's PYTHONPATH) and
with a temporary output root (``LAB5_OUT``), so that ``pytest`` leaves the work tree as it found it: figures,
tables and predictions of the test run go to the temporary folder, and the committed ones stay as they are."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def pytest_configure(config) -> None:
    out = tempfile.mkdtemp(prefix="lab5-nbval-")
    config.add_cleanup(lambda: shutil.rmtree(out, ignore_errors=True))
    os.environ["LAB5_OUT"] = out  # the kernels nbval starts inherit this environment
    os.environ["PYTHONPATH"] = os.pathsep.join([str(PROJECT), *filter(None, [os.environ.get("PYTHONPATH")])])
