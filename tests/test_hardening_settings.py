"""Settings that keep the worker's safety nets working."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings
from core.queue import make_celery


def test_hard_time_limit_must_be_above_the_soft_one():
    # Celery arms the hard timer only after the soft one: hard ≤ soft would never fire.
    with pytest.raises(ValidationError, match="HARD_TIME_LIMIT"):
        Settings(soft_time_limit=300, hard_time_limit=4)
    assert Settings(soft_time_limit=3, hard_time_limit=6).hard_time_limit == 6


def test_render_processes_get_time_to_load_their_model():
    conf = make_celery(Settings(render_process_start_timeout=123)).conf
    assert conf.worker_proc_alive_timeout == 123
    assert conf.task_time_limit > conf.task_soft_time_limit
