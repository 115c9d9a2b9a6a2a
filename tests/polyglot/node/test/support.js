// What the Node tests share: the facade's services loaded from proto/ at run
// time by @grpc/proto-loader (every .proto of portone/facade/v1, so a new
// service needs no edit here), unary calls with a deadline, and the rich
// error details (google.rpc.Status in grpc-status-details-bin) decoded with
// protobufjs from the google/rpc .proto files in ../protos.
'use strict';

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const PROTO_DIR = process.env.FACADE_PROTO_DIR || path.join(REPO_ROOT, 'proto');
const LOCAL_PROTOS = path.join(__dirname, '..', 'protos');
const FACADE_PROTOS = 'portone/facade/v1';

const TIMEOUT_MS = 10_000;
const DOMAIN = 'portone-facade';
const RUN_ID = crypto.randomBytes(5).toString('hex');
let uidCounter = 0;

/** The value of a variable that scripts/polyglot-test.sh sets. */
function requiredEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/polyglot-test.sh`);
  return value;
}

/** A fresh merchant_uid (<= 40 chars), unique per run. */
function newUid(tag) {
  const uid = `js-${tag}-${RUN_ID}-${uidCounter++}`;
  assert.ok(uid.length <= 40, uid);
  return uid;
}

const facadeProtos = fs
  .readdirSync(path.join(PROTO_DIR, FACADE_PROTOS))
  .filter((name) => name.endsWith('.proto'))
  .sort()
  .map((name) => `${FACADE_PROTOS}/${name}`);
assert.ok(facadeProtos.length > 0, `no .proto files under ${PROTO_DIR}/${FACADE_PROTOS}`);

const packageDefinition = protoLoader.loadSync([...facadeProtos, 'grpc/health/v1/health.proto'], {
  keepCase: true, // field names as in the .proto: merchant_uid, expire_at, ...
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR, LOCAL_PROTOS], // google/protobuf/* are bundled with proto-loader
});
const loaded = grpc.loadPackageDefinition(packageDefinition);

// google.rpc.Status and its detail types, to decode grpc-status-details-bin.
const rpcRoot = new protobuf.Root().loadSync(
  [path.join(LOCAL_PROTOS, 'google/rpc/status.proto'), path.join(LOCAL_PROTOS, 'google/rpc/error_details.proto')],
  { keepCase: true },
);
const Status = rpcRoot.lookupType('google.rpc.Status');
const BadRequest = rpcRoot.lookupType('google.rpc.BadRequest');
const ErrorInfo = rpcRoot.lookupType('google.rpc.ErrorInfo');

/** Promise around a unary call with a deadline. */
function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + TIMEOUT_MS }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

/** Calls and expects a failure; returns the grpc-js ServiceError. */
async function callError(client, method, request) {
  try {
    const response = await unary(client, method, request);
    assert.fail(`${method} succeeded but should have failed: ${JSON.stringify(response)}`);
  } catch (err) {
    if (err instanceof assert.AssertionError) throw err;
    assert.equal(typeof err.code, 'number', `not a gRPC error: ${err}`);
    return err;
  }
}

/** Decodes google.rpc.Status from the trailer; fails when there is none. */
function richStatus(err) {
  const raw = err.metadata.get('grpc-status-details-bin');
  assert.equal(raw.length, 1, `${grpc.status[err.code]} "${err.details}" carries no grpc-status-details-bin`);
  const status = Status.toObject(Status.decode(raw[0]), { defaults: true });
  assert.equal(status.code, err.code);
  assert.equal(status.message, err.details);
  return status;
}

/** The one detail of the given protobufjs type among status.details. */
function oneDetail(status, type) {
  const url = `type.googleapis.com/${type.fullName.replace(/^\./, '')}`;
  const found = status.details.filter((any) => any.type_url === url);
  assert.equal(found.length, 1, `expected one ${url}, got ${status.details.map((a) => a.type_url)}`);
  return type.toObject(type.decode(found[0].value), { defaults: true });
}

/** The fields named by the BadRequest of an INVALID_ARGUMENT. */
function badRequestFields(err) {
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT, `${grpc.status[err.code]}: ${err.details}`);
  assert.ok(err.details, 'status message must be human readable, not empty');
  const br = oneDetail(richStatus(err), BadRequest);
  for (const v of br.field_violations) assert.ok(v.description, `violation of ${v.field} has no description`);
  return br.field_violations.map((v) => v.field);
}

/** The ErrorInfo of an error with `code` and `reason`, in our domain. */
function errorInfo(err, code, reason) {
  assert.equal(err.code, code, `${grpc.status[err.code]}: ${err.details}`);
  assert.ok(err.details, 'status message must be human readable, not empty');
  const info = oneDetail(richStatus(err), ErrorInfo);
  assert.equal(info.reason, reason);
  assert.equal(info.domain, DOMAIN);
  return info;
}

module.exports = {
  RUN_ID,
  TIMEOUT_MS,
  badRequestFields,
  callError,
  errorInfo,
  loaded,
  newUid,
  requiredEnv,
  unary,
  v1: loaded.portone.facade.v1,
};
