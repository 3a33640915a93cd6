"""Tests of whole flows (files, Kafka, Redis, recovery, the CLI): all marked ``slow``, so
``pytest -m "not slow"`` runs the unit tests of the packages alone."""

import pytest


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "/tests/flows/" in str(item.path):
            item.add_marker(pytest.mark.slow)
