// The facade behind mutual TLS, called from Node (DESIGN.md §8).
//
// scripts/polyglot-test.sh starts a second facade with TLS_CERT_FILE,
// TLS_KEY_FILE, TLS_CLIENT_CA_FILE and AUTHZ_POLICY_FILE, with a CA and client
// certificates that scripts/dev-certs made for this run (FACADE_CERTS_DIR),
// and a policy that lets the checkout identity (client-1) call all of
// PaymentPrepareService and the billing identity (client-2) only
// GetPreparedPayment. These tests call it the way a Node service would:
// grpc.credentials.createSsl with its own certificate.
'use strict';

const { describe, test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const grpc = require('@grpc/grpc-js');

const { callError, errorInfo, loaded, newUid, requiredEnv, unary, v1 } = require('./support');

const TLS_ADDR = requiredEnv('FACADE_TLS_ADDR');
const CERTS = requiredEnv('FACADE_CERTS_DIR');
const BILLING_ID = requiredEnv('FACADE_BILLING_ID');

const read = (name) => fs.readFileSync(path.join(CERTS, name));

/** TLS credentials trusting the run's CA, with client-N's certificate or none. */
function tlsCredentials(client) {
  if (client === null) return grpc.credentials.createSsl(read('ca.crt'));
  return grpc.credentials.createSsl(read('ca.crt'), read(`${client}.key`), read(`${client}.crt`));
}

const clients = [];
function prepareAs(credentials) {
  const client = new v1.PaymentPrepareService(TLS_ADDR, credentials);
  clients.push(client);
  return client;
}

const checkout = prepareAs(tlsCredentials('client-1'));
const billing = prepareAs(tlsCredentials('client-2'));

describe('mutual TLS and the caller policy', () => {
  after(() => {
    for (const client of clients) client.close();
  });

  test('an allowed caller prepares and reads over mutual TLS', async () => {
    const uid = newUid('mtls');
    const prepared = await unary(checkout, 'PreparePayment', { merchant_uid: uid, amount: '15000', currency: 'KRW' });
    assert.equal(prepared.prepared_payment.amount, '15000');
    const got = await unary(checkout, 'GetPreparedPayment', { merchant_uid: uid });
    assert.equal(got.prepared_payment.merchant_uid, uid);
  });

  test('a caller allowed only reads may read', async () => {
    const uid = newUid('mtls-read');
    await unary(checkout, 'PreparePayment', { merchant_uid: uid, amount: '1000' });
    const got = await unary(billing, 'GetPreparedPayment', { merchant_uid: uid });
    assert.equal(got.prepared_payment.amount, '1000');
  });

  test('a call the policy does not allow is PERMISSION_DENIED / CALLER_NOT_ALLOWED naming caller and rpc', async () => {
    const err = await callError(billing, 'PreparePayment', { merchant_uid: newUid('mtls-deny'), amount: '1000' });
    const info = errorInfo(err, grpc.status.PERMISSION_DENIED, 'CALLER_NOT_ALLOWED');
    assert.equal(info.metadata.caller, BILLING_ID);
    assert.equal(info.metadata.rpc, 'portone.facade.v1.PaymentPrepareService/PreparePayment');
  });

  test('health is open to every authenticated caller', async () => {
    const health = new loaded.grpc.health.v1.Health(TLS_ADDR, tlsCredentials('client-2'));
    clients.push(health);
    const response = await unary(health, 'Check', { service: '' });
    assert.equal(response.status, 'SERVING');
  });

  test('a caller without a certificate is refused at the handshake', async () => {
    const anonymous = prepareAs(tlsCredentials(null));
    const err = await callError(anonymous, 'GetPreparedPayment', { merchant_uid: newUid('mtls-nocert') });
    // No RPC reaches the facade: grpc-js reports the failed connection as
    // UNAVAILABLE, never an answer of the facade's.
    assert.equal(err.code, grpc.status.UNAVAILABLE, `${grpc.status[err.code]}: ${err.details}`);
  });

  test('plaintext is refused on the TLS port', async () => {
    const plaintext = prepareAs(grpc.credentials.createInsecure());
    const err = await callError(plaintext, 'GetPreparedPayment', { merchant_uid: newUid('mtls-plain') });
    assert.equal(err.code, grpc.status.UNAVAILABLE, `${grpc.status[err.code]}: ${err.details}`);
  });
});
