"""Two groups (the UK carers', a French one), a coordinator of each, and an admin."""

from __future__ import annotations

import pytest

from telline.accounts import users
from telline.models import Group


@pytest.fixture
def group(session):
    g = Group(name="Carers", language="en", timezone="Europe/London", default_region="GB")
    session.add(g)
    session.flush()
    return g


@pytest.fixture
def other_group(session):
    g = Group(name="Aidants", language="fr", timezone="Europe/Paris", default_region="FR")
    session.add(g)
    session.flush()
    return g


@pytest.fixture
def coordinator(session, group):
    return users.create_user(session, email="sam@example.org", display_name="Sam", password="correct horse 1",
                             role="coordinator", group_ids=[group.id])


@pytest.fixture
def other_coordinator(session, other_group):
    return users.create_user(session, email="lea@example.org", display_name="Léa", password="correct horse 1",
                             role="coordinator", group_ids=[other_group.id])


@pytest.fixture
def admin(session):
    return users.create_user(session, email="root@example.org", display_name="Admin", password="correct horse 1",
                             role="admin")
