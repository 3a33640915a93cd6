"""Real servers for tests and benchmarks: Apache Kafka (KRaft, from Maven jars) and Redis.

Both bind to 127.0.0.1 on free ports and are stopped by PID. Nothing is started when
``KAFKA_BOOTSTRAP_SERVERS`` / ``REDIS_URL`` are set: those servers are used instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROKER_PIDS: dict[str, int] = {}  # bootstrap -> PID of a broker started here (for its CPU)
# bootstrap -> the broker's TLS + SASL/SCRAM listener: {"bootstrap", "ca", "user", "password"}
SECURE_LISTENERS: dict[str, dict[str, str]] = {}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def kafka_server():
    """Yields a bootstrap string for a real Apache Kafka broker."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        return
    from confluent_kafka.admin import AdminClient

    work = Path(tempfile.mkdtemp(prefix="bespoke-kafka-"))
    out = subprocess.run([str(ROOT / "scripts/kafka-broker.sh"), "start", str(work)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"Kafka did not start:\n{out.stdout}\n{out.stderr}")
    bootstrap = (work / "bootstrap").read_text().strip()
    pid = int((work / "kafka.pid").read_text())
    BROKER_PIDS[bootstrap] = pid
    user, password = (work / "tls" / "scram").read_text().split()
    SECURE_LISTENERS[bootstrap] = {
        "bootstrap": (work / "secure_bootstrap").read_text().strip(),
        "ca": str(work / "tls" / "ca.pem"), "user": user, "password": password}
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5)
                if md.brokers:
                    break
            except Exception:  # noqa: BLE001 - not ready yet
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("Kafka broker did not answer metadata requests in 120 s")
            time.sleep(0.3)
        yield bootstrap
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.2)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        BROKER_PIDS.pop(bootstrap, None)
        SECURE_LISTENERS.pop(bootstrap, None)
        shutil.rmtree(work, ignore_errors=True)


@contextmanager
def redis_server():
    """Yields a redis:// URL for a real Redis server."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    with redis_process() as (url, _):
        yield url


def _redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: run 'make deps' (apt-get install redis-server)")
    return binary


def _await_ping(client, proc: subprocess.Popen, failure: Callable[[], str],
                timeout_s: float = 30.0) -> None:
    """Wait until the Redis ``proc`` answers ``client``'s PING (then close the client)."""
    import redis

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if client.ping():
                break
        except redis.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(failure())
        time.sleep(0.05)
    client.close()


@contextmanager
def redis_process(port: int | None = None):
    """Yields (url, process) of a private Redis server on 127.0.0.1 (``port``: a given one,
    e.g. to restart a server where its clients expect it); stopped by PID."""
    import redis

    binary = _redis_binary()
    port = port or free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _await_ping(redis.Redis.from_url(url), proc, lambda: "redis-server did not start")
        yield url, proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)  # a stopped server cannot take SIGTERM
        _stop(proc)


def make_certs(d: Path) -> Path:
    """A throwaway CA (``ca.pem``) and a server certificate for 127.0.0.1 and localhost
    (``server.pem``, ``server.key``) in ``d``, made with openssl."""
    d.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=bespoke-test-ca", "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"))
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.pem"), "-CAkey",
        str(d / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(d / "san.ext"),
        "-out", str(d / "server.pem"))
    return d


@contextmanager
def redis_tls_acl_process(work: Path):
    """Yields ``(rediss URL, CA file, user, password)`` of a private Redis that accepts only
    TLS (certificates made in ``work``) and one ACL user (the default user is off)."""
    import secrets

    import redis

    binary = _redis_binary()
    certs = make_certs(work)
    port, user, password = free_port(), "bespoke", secrets.token_hex(16)
    acl = work / "users.acl"  # the password never appears on a command line
    acl.write_text(f"user default off\nuser {user} on >{password} ~* &* +@all\n")
    proc = subprocess.Popen(
        [binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(certs / "server.pem"), "--tls-key-file",
         str(certs / "server.key"), "--tls-ca-cert-file", str(certs / "ca.pem"),
         "--tls-auth-clients", "no", "--aclfile", str(acl), "--save", "", "--appendonly", "no",
         "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=(work / "redis.log").open("w"))
    url = f"rediss://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url, username=user, password=password,
                                      ssl_ca_certs=str(certs / "ca.pem"))
        _await_ping(client, proc, lambda: "redis-server (TLS) did not start: "
                    + (work / "redis.log").read_text()[-2000:])
        yield url, str(certs / "ca.pem"), user, password
    finally:
        _stop(proc)


@contextmanager
def enterprise_service(seed: int = 42, items: int = 200, capacity: int = 20):
    """Yields the base URL of the reference enterprise service
    (``scripts/enterprise_service.py``) running as its own process on 127.0.0.1; stopped
    by PID."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(prefix="bespoke-enterprise-") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "scripts.enterprise_service", "--port", str(port),
             "--seed", str(seed), "--items", str(items), "--capacity", str(capacity)],
            stdout=log, stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError("the enterprise service did not start: "
                                       + log.read()[-2000:].decode(errors="replace"))
                time.sleep(0.1)
            yield url
        finally:
            _stop(proc)
