"""Which training jobs tests/preloaded_jobs.py may fork instead of starting a new interpreter."""

from __future__ import annotations

from conftest import REPO, train_env
from preloaded_jobs import PreloadedJobs


def test_a_job_with_the_servers_startup_variables_is_forked(tmp_path, monkeypatch):
    # Machines here set PYTHONDONTWRITEBYTECODE=1: comparing against a fixed {PYTHONPATH} sent every job to a
    # new interpreter, ~3.6 s of imports each, and nothing said so.
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    assert PreloadedJobs().forkable(train_env(tmp_path))


def test_a_job_whose_environment_changes_how_python_starts_gets_a_new_interpreter(tmp_path, monkeypatch):
    monkeypatch.delenv("PYTHONDONTWRITEBYTECODE", raising=False)
    jobs = PreloadedJobs()
    assert not jobs.forkable(train_env(tmp_path, {"PYTHONPATH": f"{tmp_path}:{REPO}"}))
    assert not jobs.forkable(train_env(tmp_path, {"PYTHONSAFEPATH": "1"}))
    assert not jobs.forkable(train_env(tmp_path, {"PYTHONDONTWRITEBYTECODE": "1"}))
