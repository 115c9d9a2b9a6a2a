"""Shared fixtures: one channel to the running facade at $FACADE_ADDR, and the
URL of its embedded sandbox ($SANDBOX_URL)."""

from __future__ import annotations

import itertools
import os
import secrets

import grpc
import pytest
from grpc_health.v1 import health_pb2_grpc

import stubs


def pytest_configure(config):
    if not os.environ.get("FACADE_ADDR"):
        raise pytest.UsageError(
            "FACADE_ADDR is not set: start the facade (e.g. `portone-facade --sandbox "
            "--listen-addr 127.0.0.1:50051`) and set FACADE_ADDR=127.0.0.1:50051, "
            "or run scripts/polyglot-test.sh"
        )


@pytest.fixture(scope="session")
def facade_addr() -> str:
    return os.environ["FACADE_ADDR"]


@pytest.fixture(scope="session")
def channel(facade_addr):
    ch = grpc.insecure_channel(facade_addr)
    try:
        grpc.channel_ready_future(ch).result(timeout=15)
    except grpc.FutureTimeoutError:
        pytest.fail(f"facade at {facade_addr} not reachable within 15 s")
    yield ch
    ch.close()


@pytest.fixture(scope="session")
def prepare(channel):
    return stubs.prepare_grpc.PaymentPrepareServiceStub(channel)


@pytest.fixture(scope="session")
def link(channel):
    return stubs.link_grpc.PaymentLinkServiceStub(channel)


@pytest.fixture(scope="session")
def verification(channel):
    return stubs.verification_grpc.PaymentVerificationServiceStub(channel)


@pytest.fixture(scope="session")
def sandbox_url() -> str:
    """The embedded sandbox behind the facade (scripts/polyglot-test.sh reads
    it from the facade's start-up log)."""
    url = os.environ.get("SANDBOX_URL")
    if not url:
        pytest.fail(
            "SANDBOX_URL is not set: it is the `url` of the facade's "
            "'using the embedded PortOne sandbox' log line; scripts/polyglot-test.sh sets it"
        )
    return url


@pytest.fixture(scope="session")
def health(channel):
    return health_pb2_grpc.HealthStub(channel)


@pytest.fixture(scope="session")
def run_id() -> str:
    """Random per run, so that reruns against one server never collide."""
    return secrets.token_hex(5)


@pytest.fixture(scope="session")
def new_uid(run_id):
    """Returns a function making a fresh merchant_uid (<= 40 chars) for a tag."""
    counter = itertools.count()

    def make(tag: str) -> str:
        uid = f"py-{tag}-{run_id}-{next(counter)}"
        assert len(uid) <= 40, uid
        return uid

    return make
