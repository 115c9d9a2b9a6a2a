"""The facade called from Python through stubs generated from proto/.

Every RPC of PaymentPrepareService and PaymentLinkService, the prepare → pay
(in the sandbox) → verify flow of PaymentVerificationService, the gRPC health
service, and the rich error details (google.rpc.Status in
grpc-status-details-bin) decoded with grpcio-status, as DESIGN.md §1-§2 and §9
fix them.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

from stubs import link_pb2, prepare_pb2, verification_pb2

TIMEOUT = 10  # seconds, the deadline of every call
DOMAIN = "portone-facade"
NOT_FOUND_MESSAGE = "사전등록된 결제정보가 존재하지 않습니다."  # PortOne's, verbatim
HANGUL = re.compile(r"[\uac00-\ud7a3]")


# ---------------------------------------------------------------- helpers


def call_error(fn, request) -> grpc.RpcError:
    """Calls fn expecting a failure; returns the grpc.RpcError (also a grpc.Call)."""
    with pytest.raises(grpc.RpcError) as info:
        fn(request, timeout=TIMEOUT)
    return info.value


def rich_status(err: grpc.RpcError) -> status_pb2.Status:
    """Decodes grpc-status-details-bin; fails when the server sent none."""
    status = rpc_status.from_call(err)
    assert status is not None, (
        f"{err.code()} {err.details()!r} carries no grpc-status-details-bin"
    )
    assert status.code == err.code().value[0]
    assert status.message == err.details()
    return status


def details_of(status: status_pb2.Status, cls):
    """All details of type cls in status.details, unpacked."""
    found = []
    for any_ in status.details:
        if any_.Is(cls.DESCRIPTOR):
            msg = cls()
            any_.Unpack(msg)
            found.append(msg)
    return found


def one_detail(status, cls):
    found = details_of(status, cls)
    assert len(found) == 1, (
        f"expected one {cls.DESCRIPTOR.full_name} in details, got "
        f"{[a.type_url for a in status.details]}"
    )
    return found[0]


def bad_request_fields(err: grpc.RpcError) -> list[str]:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert err.details(), "status message must be human readable, not empty"
    br = one_detail(rich_status(err), error_details_pb2.BadRequest)
    for v in br.field_violations:
        assert v.description, f"violation of {v.field!r} has no description"
    return [v.field for v in br.field_violations]


def error_info(err: grpc.RpcError, code: grpc.StatusCode, reason: str):
    assert err.code() == code, (err.code(), err.details())
    assert err.details(), "status message must be human readable, not empty"
    info = one_detail(rich_status(err), error_details_pb2.ErrorInfo)
    assert info.reason == reason
    assert info.domain == DOMAIN
    return info


def future_ts(seconds_ahead: int = 3600) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=int(time.time()) + seconds_ahead)


def link_request(uid: str, **overrides) -> link_pb2.CreatePaymentLinkRequest:
    custom = struct_pb2.Struct()
    custom.update({"order": uid, "qty": 2, "gift": False})
    fields = dict(
        title="Polyglot test order",
        amount="50000",
        merchant_uid=uid,
        name="Test goods",
        currency="KRW",
        language="ko",
        display_language="en",
        buyer=link_pb2.Buyer(name="홍길동", tel="010-1234-5678", email="buyer@example.com"),
        custom_data=custom,
        expire_at=future_ts(),
        pay_methods=[
            link_pb2.PayMethod(pg="html5_inicis", pay_method="card", label="신용카드"),
            link_pb2.PayMethod(pg="html5_inicis", pay_method="trans", label="계좌이체"),
        ],
    )
    fields.update(overrides)
    return link_pb2.CreatePaymentLinkRequest(**fields)


# ---------------------------------------------------------------- health


def test_health_overall_is_serving(health):
    resp = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=TIMEOUT)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "service",
    [
        "portone.facade.v1.PaymentPrepareService",
        "portone.facade.v1.PaymentLinkService",
        "portone.facade.v1.PaymentVerificationService",
    ],
)
def test_health_each_service_is_serving(health, service):
    resp = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


# ---------------------------------------------------------------- PaymentPrepareService


def test_prepare_get_update_round_trip(prepare, new_uid):
    uid = new_uid("rt")

    resp = prepare.PreparePayment(
        prepare_pb2.PreparePaymentRequest(merchant_uid=uid, amount="10000", currency="KRW"),
        timeout=TIMEOUT,
    )
    assert resp.prepared_payment.merchant_uid == uid
    assert resp.prepared_payment.amount == "10000"
    assert resp.prepared_payment.currency == "KRW"
    assert resp.already_prepared is False

    got = prepare.GetPreparedPayment(
        prepare_pb2.GetPreparedPaymentRequest(merchant_uid=uid), timeout=TIMEOUT
    )
    assert got.prepared_payment == resp.prepared_payment

    upd = prepare.UpdatePreparedPayment(
        prepare_pb2.UpdatePreparedPaymentRequest(merchant_uid=uid, amount="12000", currency="KRW"),
        timeout=TIMEOUT,
    )
    assert upd.prepared_payment.merchant_uid == uid
    assert upd.prepared_payment.amount == "12000"
    assert upd.prepared_payment.currency == "KRW"

    got = prepare.GetPreparedPayment(
        prepare_pb2.GetPreparedPaymentRequest(merchant_uid=uid), timeout=TIMEOUT
    )
    assert got.prepared_payment.amount == "12000"


def test_prepare_decimal_amount_without_currency(prepare, new_uid):
    """Fractional amounts come back exact; no currency comes back empty."""
    uid = new_uid("dec")
    resp = prepare.PreparePayment(
        prepare_pb2.PreparePaymentRequest(merchant_uid=uid, amount="19.99"), timeout=TIMEOUT
    )
    assert resp.prepared_payment.amount == "19.99"
    assert resp.prepared_payment.currency == ""
    got = prepare.GetPreparedPayment(
        prepare_pb2.GetPreparedPaymentRequest(merchant_uid=uid), timeout=TIMEOUT
    )
    assert got.prepared_payment.amount == "19.99"
    assert got.prepared_payment.currency == ""


def test_prepare_same_amount_twice_is_idempotent(prepare, new_uid):
    uid = new_uid("idem")
    req = prepare_pb2.PreparePaymentRequest(merchant_uid=uid, amount="3000", currency="KRW")
    first = prepare.PreparePayment(req, timeout=TIMEOUT)
    assert first.already_prepared is False
    again = prepare.PreparePayment(req, timeout=TIMEOUT)
    assert again.already_prepared is True
    assert again.prepared_payment.merchant_uid == uid
    assert again.prepared_payment.amount == "3000"
    assert again.prepared_payment.currency == "KRW"


def test_prepare_other_amount_is_already_exists_with_registered_amount(prepare, new_uid):
    uid = new_uid("dup")
    prepare.PreparePayment(
        prepare_pb2.PreparePaymentRequest(merchant_uid=uid, amount="10000", currency="KRW"),
        timeout=TIMEOUT,
    )
    err = call_error(
        prepare.PreparePayment,
        prepare_pb2.PreparePaymentRequest(merchant_uid=uid, amount="20000", currency="KRW"),
    )
    info = error_info(err, grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS")
    assert info.metadata["registered_amount"] == "10000"
    assert info.metadata["registered_currency"] == "KRW"


def test_invalid_prepare_has_bad_request_violation_per_field(prepare):
    err = call_error(
        prepare.PreparePayment, prepare_pb2.PreparePaymentRequest(merchant_uid="", amount="-1")
    )
    fields = bad_request_fields(err)
    assert sorted(fields) == ["amount", "merchant_uid"], fields


@pytest.mark.parametrize("amount", ["0", "01", "1e3", " 1", "+1", "1.2345", "1234567890123456"])
def test_invalid_amounts_name_amount(prepare, new_uid, amount):
    err = call_error(
        prepare.PreparePayment,
        prepare_pb2.PreparePaymentRequest(merchant_uid=new_uid("bad"), amount=amount),
    )
    assert bad_request_fields(err) == ["amount"]


def test_get_unknown_is_not_found_with_upstream_error_info(prepare, new_uid):
    err = call_error(
        prepare.GetPreparedPayment,
        prepare_pb2.GetPreparedPaymentRequest(merchant_uid=new_uid("none")),
    )
    info = error_info(err, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert info.metadata["http_status"] == "404"
    assert "upstream_code" in info.metadata, dict(info.metadata)
    # PortOne's Korean message, kept verbatim.
    assert HANGUL.search(info.metadata["upstream_message"]), dict(info.metadata)
    assert info.metadata["upstream_message"] == NOT_FOUND_MESSAGE


def test_update_unknown_is_not_found(prepare, new_uid):
    err = call_error(
        prepare.UpdatePreparedPayment,
        prepare_pb2.UpdatePreparedPaymentRequest(merchant_uid=new_uid("none"), amount="1000"),
    )
    info = error_info(err, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert info.metadata["http_status"] == "404"


# ---------------------------------------------------------------- PaymentLinkService


def test_create_and_disable_payment_link(link, new_uid):
    req = link_request(new_uid("link"))
    resp = link.CreatePaymentLink(req, timeout=TIMEOUT)
    assert re.fullmatch(r"https?://\S+", resp.url), resp.url
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", resp.link_id), resp.link_id
    assert resp.url.rstrip("/").rsplit("/", 1)[-1] == resp.link_id
    assert resp.expire_at.seconds == req.expire_at.seconds

    out = link.DisablePaymentLink(
        link_pb2.DisablePaymentLinkRequest(link_id=resp.link_id), timeout=TIMEOUT
    )
    assert out == link_pb2.DisablePaymentLinkResponse()


def test_create_payment_link_minimal_required_fields(link, new_uid):
    """user_code left empty: the sandbox has a default."""
    req = link_pb2.CreatePaymentLinkRequest(
        title="Minimal",
        amount="1000",
        merchant_uid=new_uid("min"),
        name="Goods",
        currency="KRW",
        buyer=link_pb2.Buyer(tel="01000000000"),
        expire_at=future_ts(600),
        pay_methods=[link_pb2.PayMethod(pg="html5_inicis", pay_method="card", label="Card")],
    )
    resp = link.CreatePaymentLink(req, timeout=TIMEOUT)
    assert resp.link_id
    link.DisablePaymentLink(link_pb2.DisablePaymentLinkRequest(link_id=resp.link_id), timeout=TIMEOUT)


def test_invalid_payment_link_has_bad_request(link, new_uid):
    req = link_request(new_uid("badlink"), title="", amount="12.5")
    fields = bad_request_fields(call_error(link.CreatePaymentLink, req))
    assert "title" in fields and "amount" in fields, fields
    assert len(fields) == len(set(fields)) == 2, fields


def test_disable_invalid_link_id_has_bad_request(link):
    err = call_error(link.DisablePaymentLink, link_pb2.DisablePaymentLinkRequest(link_id="../x"))
    assert bad_request_fields(err) == ["link_id"]


def test_disable_unknown_link_is_not_found(link, run_id):
    err = call_error(
        link.DisablePaymentLink, link_pb2.DisablePaymentLinkRequest(link_id=f"nosuchlink{run_id}")
    )
    info = error_info(err, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert info.metadata["http_status"] == "404"


# ---------------------------------------------------------------- PaymentVerificationService


def sandbox_pay(sandbox_url: str, **payment) -> str:
    """Stands in for the buyer: POST /__sandbox/payments; returns the imp_uid."""
    request = urllib.request.Request(
        f"{sandbox_url}/__sandbox/payments",
        data=json.dumps(payment).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
        return json.load(answer)["imp_uid"]


def test_a_paid_order_verifies(prepare, verification, sandbox_url, new_uid):
    uid = new_uid("paid")
    prepare.PreparePayment(
        prepare_pb2.PreparePaymentRequest(merchant_uid=uid, amount="19.99", currency="USD"),
        timeout=TIMEOUT,
    )
    imp_uid = sandbox_pay(sandbox_url, merchant_uid=uid, amount=19.99, currency="USD")

    resp = verification.VerifyPayment(
        verification_pb2.VerifyPaymentRequest(imp_uid=imp_uid, merchant_uid=uid), timeout=TIMEOUT
    )
    assert resp.verdict == verification_pb2.VERDICT_VERIFIED, resp
    assert resp.payment.imp_uid == imp_uid
    assert resp.payment.amount == "19.99"
    assert resp.payment.status == verification_pb2.PAYMENT_STATUS_PAID
    assert resp.prepared_payment.amount == "19.99"
    assert resp.detail


def test_a_tampered_amount_is_amount_mismatch(prepare, verification, sandbox_url, new_uid):
    uid = new_uid("tampered")
    prepare.PreparePayment(
        prepare_pb2.PreparePaymentRequest(merchant_uid=uid, amount="10000", currency="KRW"),
        timeout=TIMEOUT,
    )
    imp_uid = sandbox_pay(sandbox_url, merchant_uid=uid, amount=100, currency="KRW")

    resp = verification.VerifyPayment(
        verification_pb2.VerifyPaymentRequest(imp_uid=imp_uid, merchant_uid=uid), timeout=TIMEOUT
    )
    assert resp.verdict == verification_pb2.VERDICT_AMOUNT_MISMATCH, resp
    assert resp.payment.amount == "100"
    assert resp.prepared_payment.amount == "10000"
    assert "100" in resp.detail and "10000" in resp.detail, resp.detail


def test_get_payment_of_an_unknown_imp_uid_is_not_found(verification, run_id):
    err = call_error(
        verification.GetPayment, verification_pb2.GetPaymentRequest(imp_uid=f"imp_none_{run_id}")
    )
    info = error_info(err, grpc.StatusCode.NOT_FOUND, "NOT_FOUND")
    assert info.metadata["http_status"] == "404"
    assert HANGUL.search(info.metadata["upstream_message"]), dict(info.metadata)


def test_verify_with_an_invalid_imp_uid_names_imp_uid(verification):
    err = call_error(
        verification.VerifyPayment, verification_pb2.VerifyPaymentRequest(imp_uid="../x")
    )
    assert bad_request_fields(err) == ["imp_uid"]
