"""Loaded into a drill's Celery worker (``--include tests.faults.worker_hooks``), never into the app.

Each delivery of a task is written down, and while the drill's ``block`` file exists the named task, once it
has done its work and committed, hangs before the worker can acknowledge it: the moment a drill kills the worker.
"""

import os
import time
from pathlib import Path

from celery.signals import task_postrun, task_prerun

DRILL_DIR = Path(os.environ.get("FAULT_DRILL_DIR", "/nonexistent"))
BLOCKED_TASK = os.environ.get("FAULT_DRILL_BLOCK_TASK", "")


@task_prerun.connect
def _write_down_the_delivery(task_id=None, task=None, **kwargs) -> None:
    with (DRILL_DIR / "deliveries").open("a") as deliveries:
        deliveries.write(f"{task.name} {task_id}\n")


@task_postrun.connect
def _hang_before_the_acknowledgement(task_id=None, task=None, **kwargs) -> None:
    if task.name != BLOCKED_TASK or not (DRILL_DIR / "block").exists():
        return
    (DRILL_DIR / "blocked").write_text(task_id)
    while (DRILL_DIR / "block").exists():
        time.sleep(0.1)
