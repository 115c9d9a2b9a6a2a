// The facade called from Node through @grpc/grpc-js, with our .proto files
// (all three services, and the prepare → pay in the sandbox → verify flow)
// loaded at run time by @grpc/proto-loader (no generated code), and the rich
// error details (google.rpc.Status in grpc-status-details-bin) decoded with
// protobufjs (./support.js).
//
// Needs FACADE_ADDR (host:port of a running facade, e.g. `portone-facade
// --sandbox`) and SANDBOX_URL (its embedded sandbox, from its start-up log);
// scripts/polyglot-test.sh starts one, sets both and runs this.
'use strict';

const { describe, test, before, after } = require('node:test');
const assert = require('node:assert/strict');

const grpc = require('@grpc/grpc-js');

const { RUN_ID, TIMEOUT_MS, badRequestFields, callError, errorInfo, loaded, newUid, unary, v1 } = require('./support');

const ADDR = process.env.FACADE_ADDR;
if (!ADDR) {
  throw new Error('FACADE_ADDR is not set: start the facade and set FACADE_ADDR=host:port, or run scripts/polyglot-test.sh');
}
// The facade's embedded sandbox, to pay orders as a buyer would; the `url` of
// the facade's "using the embedded PortOne sandbox" start-up log line.
const SANDBOX_URL = process.env.SANDBOX_URL;
if (!SANDBOX_URL) {
  throw new Error("SANDBOX_URL is not set: it is the url in the facade's 'using the embedded PortOne sandbox' log line; scripts/polyglot-test.sh sets it");
}
const NOT_FOUND_MESSAGE = '사전등록된 결제정보가 존재하지 않습니다.'; // PortOne's, verbatim
const HANGUL = /[\uac00-\ud7a3]/;

const credentials = grpc.credentials.createInsecure();
const prepareClient = new v1.PaymentPrepareService(ADDR, credentials);
const linkClient = new v1.PaymentLinkService(ADDR, credentials);
const verificationClient = new v1.PaymentVerificationService(ADDR, credentials);
const healthClient = new loaded.grpc.health.v1.Health(ADDR, credentials);

function futureTs(secondsAhead = 3600) {
  return { seconds: String(Math.floor(Date.now() / 1000) + secondsAhead), nanos: 0 };
}

function linkRequest(uid, overrides = {}) {
  return {
    title: 'Polyglot test order',
    amount: '50000',
    merchant_uid: uid,
    name: 'Test goods',
    currency: 'KRW',
    language: 'ko',
    display_language: 'en',
    buyer: { name: '홍길동', tel: '010-1234-5678', email: 'buyer@example.com' },
    // google.protobuf.Struct as proto-loader takes it. Its bundled well-known
    // types name their fields in camelCase whatever keepCase says.
    custom_data: {
      fields: {
        order: { stringValue: uid },
        qty: { numberValue: 2 },
        gift: { boolValue: false },
      },
    },
    expire_at: futureTs(),
    pay_methods: [
      { pg: 'html5_inicis', pay_method: 'card', label: '신용카드' },
      { pg: 'html5_inicis', pay_method: 'trans', label: '계좌이체' },
    ],
    ...overrides,
  };
}

before(async () => {
  await new Promise((resolve, reject) =>
    prepareClient.waitForReady(Date.now() + 15_000, (err) =>
      err ? reject(new Error(`facade at ${ADDR} not reachable within 15 s: ${err.message}`)) : resolve(),
    ),
  );
});

after(() => {
  prepareClient.close();
  linkClient.close();
  verificationClient.close();
  healthClient.close();
});

// ------------------------------------------------------------------ health

describe('grpc.health.v1.Health', () => {
  for (const service of [
    '',
    'portone.facade.v1.PaymentPrepareService',
    'portone.facade.v1.PaymentLinkService',
    'portone.facade.v1.PaymentVerificationService',
  ]) {
    test(`Check("${service}") is SERVING`, async () => {
      const resp = await unary(healthClient, 'Check', { service });
      assert.equal(resp.status, 'SERVING');
    });
  }
});

// ------------------------------------------------------------------ PaymentPrepareService

describe('PaymentPrepareService', () => {
  test('PreparePayment, GetPreparedPayment, UpdatePreparedPayment round trip', async () => {
    const uid = newUid('rt');
    const prepared = await unary(prepareClient, 'PreparePayment', { merchant_uid: uid, amount: '10000', currency: 'KRW' });
    assert.deepEqual(prepared.prepared_payment, { merchant_uid: uid, amount: '10000', currency: 'KRW' });
    assert.equal(prepared.already_prepared, false);

    let got = await unary(prepareClient, 'GetPreparedPayment', { merchant_uid: uid });
    assert.deepEqual(got.prepared_payment, prepared.prepared_payment);

    const updated = await unary(prepareClient, 'UpdatePreparedPayment', { merchant_uid: uid, amount: '12000', currency: 'KRW' });
    assert.deepEqual(updated.prepared_payment, { merchant_uid: uid, amount: '12000', currency: 'KRW' });

    got = await unary(prepareClient, 'GetPreparedPayment', { merchant_uid: uid });
    assert.equal(got.prepared_payment.amount, '12000');
  });

  test('a fractional amount comes back exact, no currency comes back empty', async () => {
    const uid = newUid('dec');
    const prepared = await unary(prepareClient, 'PreparePayment', { merchant_uid: uid, amount: '19.99' });
    assert.deepEqual(prepared.prepared_payment, { merchant_uid: uid, amount: '19.99', currency: '' });
    const got = await unary(prepareClient, 'GetPreparedPayment', { merchant_uid: uid });
    assert.deepEqual(got.prepared_payment, { merchant_uid: uid, amount: '19.99', currency: '' });
  });

  test('PreparePayment twice with the same amount is idempotent', async () => {
    const req = { merchant_uid: newUid('idem'), amount: '3000', currency: 'KRW' };
    const first = await unary(prepareClient, 'PreparePayment', req);
    assert.equal(first.already_prepared, false);
    const again = await unary(prepareClient, 'PreparePayment', req);
    assert.equal(again.already_prepared, true);
    assert.deepEqual(again.prepared_payment, { merchant_uid: req.merchant_uid, amount: '3000', currency: 'KRW' });
  });

  test('PreparePayment again with another amount is ALREADY_EXISTS with registered_amount', async () => {
    const uid = newUid('dup');
    await unary(prepareClient, 'PreparePayment', { merchant_uid: uid, amount: '10000', currency: 'KRW' });
    const err = await callError(prepareClient, 'PreparePayment', { merchant_uid: uid, amount: '20000', currency: 'KRW' });
    const info = errorInfo(err, grpc.status.ALREADY_EXISTS, 'ALREADY_EXISTS');
    assert.equal(info.metadata.registered_amount, '10000');
    assert.equal(info.metadata.registered_currency, 'KRW');
  });

  test('an invalid PreparePayment has one BadRequest violation per bad field', async () => {
    const err = await callError(prepareClient, 'PreparePayment', { merchant_uid: '', amount: '-1' });
    assert.deepEqual(badRequestFields(err).sort(), ['amount', 'merchant_uid']);
  });

  for (const amount of ['0', '01', '1e3', ' 1', '+1', '1.2345', '1234567890123456']) {
    test(`amount ${JSON.stringify(amount)} is INVALID_ARGUMENT naming amount`, async () => {
      const err = await callError(prepareClient, 'PreparePayment', { merchant_uid: newUid('bad'), amount });
      assert.deepEqual(badRequestFields(err), ['amount']);
    });
  }

  test('GetPreparedPayment of an unknown merchant_uid is NOT_FOUND with the upstream ErrorInfo', async () => {
    const err = await callError(prepareClient, 'GetPreparedPayment', { merchant_uid: newUid('none') });
    const info = errorInfo(err, grpc.status.NOT_FOUND, 'NOT_FOUND');
    assert.equal(info.metadata.http_status, '404');
    assert.ok('upstream_code' in info.metadata, JSON.stringify(info.metadata));
    assert.match(info.metadata.upstream_message, HANGUL);
    assert.equal(info.metadata.upstream_message, NOT_FOUND_MESSAGE);
  });

  test('UpdatePreparedPayment of an unknown merchant_uid is NOT_FOUND', async () => {
    const err = await callError(prepareClient, 'UpdatePreparedPayment', { merchant_uid: newUid('none'), amount: '1000' });
    const info = errorInfo(err, grpc.status.NOT_FOUND, 'NOT_FOUND');
    assert.equal(info.metadata.http_status, '404');
  });
});

// ------------------------------------------------------------------ PaymentLinkService

describe('PaymentLinkService', () => {
  test('CreatePaymentLink then DisablePaymentLink', async () => {
    const req = linkRequest(newUid('link'));
    const resp = await unary(linkClient, 'CreatePaymentLink', req);
    assert.match(resp.url, /^https?:\/\/\S+$/);
    assert.match(resp.link_id, /^[A-Za-z0-9_-]{1,64}$/);
    assert.equal(resp.url.replace(/\/+$/, '').split('/').pop(), resp.link_id);
    assert.equal(resp.expire_at.seconds, req.expire_at.seconds);

    const disabled = await unary(linkClient, 'DisablePaymentLink', { link_id: resp.link_id });
    assert.deepEqual(disabled, {});
  });

  test('CreatePaymentLink with only the required fields (user_code from the server default)', async () => {
    const resp = await unary(linkClient, 'CreatePaymentLink', {
      title: 'Minimal',
      amount: '1000',
      merchant_uid: newUid('min'),
      name: 'Goods',
      currency: 'KRW',
      buyer: { tel: '01000000000' },
      expire_at: futureTs(600),
      pay_methods: [{ pg: 'html5_inicis', pay_method: 'card', label: 'Card' }],
    });
    assert.ok(resp.link_id);
    await unary(linkClient, 'DisablePaymentLink', { link_id: resp.link_id });
  });

  test('an invalid CreatePaymentLink has BadRequest violations', async () => {
    const err = await callError(linkClient, 'CreatePaymentLink', linkRequest(newUid('badlink'), { title: '', amount: '12.5' }));
    assert.deepEqual(badRequestFields(err).sort(), ['amount', 'title']);
  });

  test('DisablePaymentLink with an invalid link_id is INVALID_ARGUMENT naming link_id', async () => {
    const err = await callError(linkClient, 'DisablePaymentLink', { link_id: '../x' });
    assert.deepEqual(badRequestFields(err), ['link_id']);
  });

  test('DisablePaymentLink of an unknown link is NOT_FOUND', async () => {
    const err = await callError(linkClient, 'DisablePaymentLink', { link_id: `nosuchlink${RUN_ID}` });
    const info = errorInfo(err, grpc.status.NOT_FOUND, 'NOT_FOUND');
    assert.equal(info.metadata.http_status, '404');
  });
});

// ------------------------------------------------------------------ PaymentVerificationService

/** Stands in for the buyer: POST /__sandbox/payments; resolves to the imp_uid. */
async function sandboxPay(payment) {
  const answer = await fetch(`${SANDBOX_URL}/__sandbox/payments`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(payment),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const body = await answer.json();
  assert.equal(answer.status, 200, JSON.stringify(body));
  return body.imp_uid;
}

describe('PaymentVerificationService', () => {
  test('a paid order verifies', async () => {
    const uid = newUid('paid');
    await unary(prepareClient, 'PreparePayment', { merchant_uid: uid, amount: '19.99', currency: 'USD' });
    const impUid = await sandboxPay({ merchant_uid: uid, amount: 19.99, currency: 'USD' });

    const resp = await unary(verificationClient, 'VerifyPayment', { imp_uid: impUid, merchant_uid: uid });
    assert.equal(resp.verdict, 'VERDICT_VERIFIED', JSON.stringify(resp));
    assert.equal(resp.payment.imp_uid, impUid);
    assert.equal(resp.payment.amount, '19.99');
    assert.equal(resp.payment.status, 'PAYMENT_STATUS_PAID');
    assert.deepEqual(resp.prepared_payment, { merchant_uid: uid, amount: '19.99', currency: 'USD' });
    assert.ok(resp.detail);
  });

  test('a tampered amount is VERDICT_AMOUNT_MISMATCH', async () => {
    const uid = newUid('tampered');
    await unary(prepareClient, 'PreparePayment', { merchant_uid: uid, amount: '10000', currency: 'KRW' });
    const impUid = await sandboxPay({ merchant_uid: uid, amount: 100, currency: 'KRW' });

    const resp = await unary(verificationClient, 'VerifyPayment', { imp_uid: impUid, merchant_uid: uid });
    assert.equal(resp.verdict, 'VERDICT_AMOUNT_MISMATCH', JSON.stringify(resp));
    assert.equal(resp.payment.amount, '100');
    assert.equal(resp.prepared_payment.amount, '10000');
  });

  test('GetPayment of an unknown imp_uid is NOT_FOUND with the upstream ErrorInfo', async () => {
    const err = await callError(verificationClient, 'GetPayment', { imp_uid: `imp_none_${RUN_ID}` });
    const info = errorInfo(err, grpc.status.NOT_FOUND, 'NOT_FOUND');
    assert.equal(info.metadata.http_status, '404');
    assert.match(info.metadata.upstream_message, HANGUL);
  });

  test('VerifyPayment with an invalid imp_uid is INVALID_ARGUMENT naming imp_uid', async () => {
    const err = await callError(verificationClient, 'VerifyPayment', { imp_uid: '../x' });
    assert.deepEqual(badRequestFields(err), ['imp_uid']);
  });
});
