"""The facade behind mutual TLS, called from Python (DESIGN.md §8).

scripts/polyglot-test.sh starts a second facade with TLS_CERT_FILE,
TLS_KEY_FILE, TLS_CLIENT_CA_FILE and AUTHZ_POLICY_FILE, with a CA and client
certificates that scripts/dev-certs made for this run, and a policy that lets
the checkout identity call all of PaymentPrepareService and the billing
identity only GetPreparedPayment. These tests call it the way a Python
service would: grpc.ssl_channel_credentials with its own certificate.
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import stubs
from stubs import prepare_pb2
from test_facade import TIMEOUT, call_error, error_info


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise pytest.UsageError(f"{name} is not set: run scripts/polyglot-test.sh")
    return value


@pytest.fixture(scope="module")
def certs() -> Path:
    return Path(_env("FACADE_CERTS_DIR"))


def _channel(certs: Path, client: str | None) -> grpc.Channel:
    """A TLS channel trusting the run's CA, with client-N's certificate or none."""
    key = cert = None
    if client is not None:
        key = (certs / f"{client}.key").read_bytes()
        cert = (certs / f"{client}.crt").read_bytes()
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.crt").read_bytes(),
        private_key=key,
        certificate_chain=cert,
    )
    return grpc.secure_channel(_env("FACADE_TLS_ADDR"), credentials)


@pytest.fixture(scope="module")
def checkout(certs):
    """PaymentPrepareService as the checkout identity (client-1)."""
    channel = _channel(certs, "client-1")
    yield stubs.prepare_grpc.PaymentPrepareServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def billing(certs):
    """PaymentPrepareService as the billing identity (client-2)."""
    channel = _channel(certs, "client-2")
    yield stubs.prepare_grpc.PaymentPrepareServiceStub(channel)
    channel.close()


def test_an_allowed_caller_prepares_and_reads_over_mutual_tls(checkout, new_uid):
    uid = new_uid("mtls")
    prepared = checkout.PreparePayment(
        prepare_pb2.PreparePaymentRequest(merchant_uid=uid, amount="15000", currency="KRW"),
        timeout=TIMEOUT,
    )
    assert prepared.prepared_payment.amount == "15000"
    read = checkout.GetPreparedPayment(
        prepare_pb2.GetPreparedPaymentRequest(merchant_uid=uid), timeout=TIMEOUT
    )
    assert read.prepared_payment.merchant_uid == uid


def test_a_caller_allowed_only_reads_may_read(checkout, billing, new_uid):
    uid = new_uid("mtls-read")
    checkout.PreparePayment(
        prepare_pb2.PreparePaymentRequest(merchant_uid=uid, amount="1000"), timeout=TIMEOUT
    )
    read = billing.GetPreparedPayment(
        prepare_pb2.GetPreparedPaymentRequest(merchant_uid=uid), timeout=TIMEOUT
    )
    assert read.prepared_payment.amount == "1000"


def test_a_call_the_policy_does_not_allow_is_caller_not_allowed(billing, new_uid):
    err = call_error(
        billing.PreparePayment,
        prepare_pb2.PreparePaymentRequest(merchant_uid=new_uid("mtls-deny"), amount="1000"),
    )
    info = error_info(err, grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED")
    assert info.metadata["caller"] == _env("FACADE_BILLING_ID")
    assert info.metadata["rpc"] == "portone.facade.v1.PaymentPrepareService/PreparePayment"


def test_health_is_open_to_every_authenticated_caller(certs):
    channel = _channel(certs, "client-2")
    try:
        health = health_pb2_grpc.HealthStub(channel)
        resp = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        channel.close()


def test_a_caller_without_a_certificate_is_refused(certs, new_uid):
    channel = _channel(certs, None)
    try:
        stub = stubs.prepare_grpc.PaymentPrepareServiceStub(channel)
        err = call_error(
            stub.GetPreparedPayment,
            prepare_pb2.GetPreparedPaymentRequest(merchant_uid=new_uid("mtls-nocert")),
        )
        # The handshake fails, so no RPC reaches the facade: grpc reports
        # the connection as UNAVAILABLE, never an answer of the facade's.
        assert err.code() == grpc.StatusCode.UNAVAILABLE, (err.code(), err.details())
    finally:
        channel.close()


def test_plaintext_is_refused_on_the_tls_port(new_uid):
    channel = grpc.insecure_channel(_env("FACADE_TLS_ADDR"))
    try:
        stub = stubs.prepare_grpc.PaymentPrepareServiceStub(channel)
        err = call_error(
            stub.GetPreparedPayment,
            prepare_pb2.GetPreparedPaymentRequest(merchant_uid=new_uid("mtls-plain")),
        )
        assert err.code() == grpc.StatusCode.UNAVAILABLE, (err.code(), err.details())
    finally:
        channel.close()
