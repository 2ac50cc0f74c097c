"""lab5.parallel and the side-by-side trainings built on it: results independent of the number of jobs."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from synthetic import GUIDS, LABELS_, make_features, small_config

import lab5.evaluation as E
from lab5.batches import make_data
from lab5.data import load_dataset
from lab5.features import Features
from lab5.models import build_model
from lab5.parallel import can_fork, run_all
from lab5.training import fit, predict_logits

needs_fork = pytest.mark.skipif(not can_fork(), reason="no fork on this platform: tasks run one after another")


def _square_and_pid(x: int) -> tuple[int, int, int]:
    return x * x, os.getpid(), torch.get_num_threads()


@needs_fork
def test_run_all_returns_results_in_task_order_from_one_thread_workers():
    out = run_all(_square_and_pid, list(range(7)), jobs=2)
    assert [r[0] for r in out] == [x * x for x in range(7)]
    assert os.getpid() not in {r[1] for r in out}  # computed in workers
    assert {r[2] for r in out} == {1}


def test_run_all_with_one_job_runs_in_this_process():
    out = run_all(_square_and_pid, [1, 2], jobs=1)
    assert [r[0] for r in out] == [1, 4] and {r[1] for r in out} == {os.getpid()}


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("task three")
    return x


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_failing_task_raises_its_error_in_the_caller(jobs):
    with pytest.raises(ValueError, match="task three"):
        run_all(_fails_on_three, [1, 2, 3, 4], jobs=jobs)


@needs_fork
def test_cross_validation_gives_the_same_bits_with_two_jobs_as_with_one(dataset_factory, tmp_path, monkeypatch):
    ds = load_dataset(dataset_factory(n_train=45, n_test=2))
    feats = make_features(list(ds.all.guid), list(ds.all.label))
    monkeypatch.setattr(E, "load_features", lambda d, c: feats)
    cfg = small_config(tmp_path, folds=3, epochs=2)
    configs = {m: cfg.replace(model=m) for m in ("concat", "cross_attention")}
    one = E.cv_runs(ds, configs, cache=False)
    two = E.cv_runs(ds, {n: c.replace(jobs=2) for n, c in configs.items()}, cache=False)
    for n in configs:
        assert np.array_equal(one[n].probs, two[n].probs)
        assert one[n].folds.equals(two[n].folds)
    assert one["concat"].folds.accuracy.min() > 0.8  # it did learn the separable features


@needs_fork
def test_an_ensemble_trains_its_members_side_by_side_to_the_same_weights(tmp_path):
    other = make_features(GUIDS, LABELS_, dt=12, seed=5).text
    f = make_features(GUIDS, LABELS_)
    f = Features({"first": f.text, "other": other}, f.image)
    cfg = small_config(tmp_path, model="late+cross_attention", text_encoder="first+other", epochs=2)
    models = {}
    for jobs in (1, 2):
        models[jobs] = build_model(cfg.replace(jobs=jobs), f.dims())
        fit(models[jobs], make_data(cfg.model_group, None, GUIDS, LABELS_, f), None, cfg.replace(jobs=jobs))
    s1, s2 = models[1].state_dict(), models[2].state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    untrained = build_model(cfg, f.dims()).state_dict()
    assert not all(torch.equal(untrained[k], s2[k]) for k in s2)  # the workers' weights reached the parent's model
    data = make_data(cfg.model_group, None, GUIDS, LABELS_, f)
    assert torch.equal(predict_logits(models[1], data, cfg.training_group), predict_logits(models[2], data, cfg.training_group))


FORK_AFTER_THREADS = """
import lab5, torch
from lab5.parallel import run_all
from lab5.runtime import reproducible

def task(n):
    with reproducible(0, 2):  # a worker asked for two threads must stay on one, or OpenMP hangs after the fork
        return float(torch.ones(n, 512).matmul(torch.ones(512, 512)).sum() + torch.zeros(10**6).fill_(1).sum())

torch.set_num_threads(2)
torch.ones(2000, 2000).matmul(torch.ones(2000, 2000))  # the parent's thread pool is up before the fork
print(run_all(task, [256, 512, 1024], jobs=2))
"""


@needs_fork
def test_workers_forked_after_the_parent_used_threads_do_not_hang(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FORK_AFTER_THREADS], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str([float(n * 512 * 512 + 10**6) for n in (256, 512, 1024)])
