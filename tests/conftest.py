"""Session-wide real infrastructure: one Kafka broker and one Redis server per test run."""

from __future__ import annotations

import os
import uuid

import pytest

# decision flows refuse to start without a real pseudonym key; the suite (and the processes
# it starts, which inherit the environment) uses this one
os.environ.setdefault("BESPOKE_PSEUDONYM_KEY", "bespoke-test-suite-pseudonym-key")

from scripts.servers import kafka_server, redis_server  # noqa: E402


def pytest_sessionstart(session) -> None:
    """With BESPOKE_REQUIRE_NATIVE=1 (``make test`` where cargo exists) a missing native
    extension fails the run instead of skipping every parity test."""
    from features.native import available

    if os.environ.get("BESPOKE_REQUIRE_NATIVE") == "1" and not available():
        raise pytest.UsageError("bespoke_native is not built, yet cargo is here: "
                                "`make venv` builds it; its parity tests must run")


@pytest.fixture(scope="session")
def kafka_bootstrap():
    with kafka_server() as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def redis_url():
    with redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def enterprise_url():
    """The reference enterprise service (PLM, MES, ERP, pricing) as a real process."""
    from scripts.servers import enterprise_service

    with enterprise_service(seed=42, items=200) as url:
        yield url


@pytest.fixture
def redis_client(redis_url):
    import redis

    r = redis.Redis.from_url(redis_url)
    r.flushdb()
    yield r
    r.close()


@pytest.fixture
def topic_prefix() -> str:
    """A fresh topic namespace per test, so tests never see each other's messages."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture(autouse=True)
def _no_linger_gave_up():
    """A flow run in the test process must not end by its source giving up waiting for
    held decisions (``connectors.linger``): that means something stayed pinned."""
    from connectors.linger import GAVE_UP

    before = GAVE_UP[0]
    yield
    assert GAVE_UP[0] == before, "a finite input gave up waiting for held decisions"
