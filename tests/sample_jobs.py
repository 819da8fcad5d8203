"""Job functions for the tests: importable by a worker process (PYTHONPATH=repo)."""

import logging

from rq import get_current_job

from telline import db
from telline.job_queues import queues
from telline.models import Group
from telline.tasks import durable

log = logging.getLogger(__name__)


@durable
def rename_group(group_id: int, name: str) -> None:
    session = db.session()
    group = session.get(Group, group_id)
    group.name = name
    session.commit()
    log.info("renamed group", extra={"group_id": group_id})


def append_to_list(key: str, value: str) -> None:
    queues().connection.rpush(key, value)


def fail_until(key: str, succeed_on_attempt: int) -> int:
    attempt = queues().connection.incr(key)
    if attempt < succeed_on_attempt:
        raise RuntimeError(f"attempt {attempt} fails on purpose (job {get_current_job().id})")
    return attempt


@durable
def flaky_task(key: str, succeed_on_attempt: int) -> int:
    """A task that fails until its n-th run (the attempts are counted in Redis)."""
    return fail_until(key, succeed_on_attempt)
