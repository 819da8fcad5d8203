"""Job functions for the tests: importable by a worker process (PYTHONPATH=repo)."""

import logging

from rq import get_current_job

from telline import db
from telline.models import Group
from telline.queue import queues

log = logging.getLogger(__name__)


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
