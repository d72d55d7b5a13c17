// Test peer: serves IETF Token Status Lists (draft-ietf-oauth-status-list) on
// 127.0.0.1. The `status_list` claim ({"bits","lst"}) is built by the
// reference npm library @sd-jwt/jwt-status-list (StatusList +
// createHeaderAndPayload); the Status List Token is signed RS256 with
// node:crypto.
//
//   KEY_FILE=tests/fixtures/keys/rsa.key \
//   OTHER_KEY_FILE=tests/fixtures/keys/rsa-other.key \
//   [ISS=https://issuer.example] node tests/peers/statuslist/server.mjs
//
// KEY_FILE (required) and OTHER_KEY_FILE (optional, needed for
// "sign_with":"other") are PEM RSA private keys, PKCS#8 or PKCS#1.
// ISS defaults to this server's own origin.
//
// Prints exactly one JSON line on stdout once listening:
//   {"base":"http://127.0.0.1:PORT"}
// Everything else goes to stderr.
//
// Endpoints:
//   POST /_test/lists/<name>
//        {"bits":1|2|4|8, "size":N, "statuses":{"<idx>":<value>,...},
//         "ttl":<int seconds>|null, "exp_in":<int seconds, default 600>|null,
//         "typ":"statuslist+jwt"|<override>|null, "sub":<override>|null,
//         "iss":<override>|null, "kid":<string>, "sign_with":"good"|"other",
//         "no_iat":true (drops iat, which the draft requires)}
//        creates or replaces list <name>; unlisted indexes are 0.
//        null omits the claim/header (ttl omitted by default; exp_in null
//        omits exp). Answers {"uri":"http://127.0.0.1:PORT/lists/<name>"}.
//   GET  /lists/<name>
//        a freshly signed Status List Token (iat = now), Content-Type
//        application/statuslist+jwt; 404 for an unknown name. Every GET is
//        recorded (also the 404 ones).
//   GET  /_test/fetches/<name>
//        {"count":N,"accept":"<Accept header of the last GET>"|null}
//
// Loopback only; request bodies are bounded; exits 0 on SIGTERM/SIGINT.

import * as crypto from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { StatusList, createHeaderAndPayload } from '@sd-jwt/jwt-status-list';

const MAX_BODY_BYTES = 1024 * 1024;
const MAX_SIZE = 1 << 22; // entries per list; the draft's own test vectors use 2^20
const MAX_NAMES = 10000;
const DEFAULT_EXP_IN = 600;
const STATUSLIST_TYP = 'statuslist+jwt';
const NAME_RE = /^(?!\.{1,2}$)[A-Za-z0-9._~-]{1,128}$/;

function fail(message) {
  console.error(`server.mjs: ${message}`);
  process.exit(2);
}

function loadRsaKey(envName, required) {
  const path = process.env[envName];
  if (!path) {
    if (required) fail(`${envName} is required (path of a PEM RSA private key)`);
    return null;
  }
  let pem;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (err) {
    fail(`${envName}: cannot read ${path}: ${err.message}`);
  }
  let key;
  try {
    // createPrivateKey reads both "BEGIN PRIVATE KEY" (PKCS#8) and
    // "BEGIN RSA PRIVATE KEY" (PKCS#1) PEM.
    key = crypto.createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    fail(`${envName}: ${path} is not a PEM private key: ${err.message}`);
  }
  if (key.asymmetricKeyType !== 'rsa') {
    fail(`${envName}: ${path} is a ${key.asymmetricKeyType} key, RS256 needs rsa`);
  }
  const format = pem.includes('BEGIN RSA PRIVATE KEY') ? 'PKCS#1' : 'PKCS#8';
  console.error(`server.mjs: ${envName}=${path} (${format}, RSA ${key.asymmetricKeyDetails.modulusLength} bits)`);
  return key;
}

const KEYS = {
  good: loadRsaKey('KEY_FILE', true),
  other: loadRsaKey('OTHER_KEY_FILE', false),
};

// name -> { bits, list: StatusList, ttl, expIn, typ, sub, iss, kid, signWith }
const lists = new Map();
// name -> { count, accept }
const fetches = new Map();
let origin; // http://127.0.0.1:PORT, set once listening

function b64urlJson(value) {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function signRs256(header, payload, key) {
  const signingInput = `${b64urlJson(header)}.${b64urlJson(payload)}`;
  const signature = crypto.sign('sha256', Buffer.from(signingInput, 'ascii'), key);
  return `${signingInput}.${signature.toString('base64url')}`;
}

function listUri(name) {
  return `${origin}/lists/${name}`;
}

function issueToken(name, entry) {
  const iat = Math.floor(Date.now() / 1000);
  const uri = listUri(name);
  // The library insists on a truthy sub and iat, forces typ, and appends
  // status_list = { bits, lst } (its own bit packing + zlib + base64url).
  const payload = { sub: uri, iat };
  if (entry.expIn !== null) payload.exp = iat + entry.expIn;
  if (entry.ttl !== null) payload.ttl = entry.ttl;
  payload.iss = entry.iss === undefined ? (process.env.ISS || origin) : entry.iss;
  if (payload.iss === null) delete payload.iss;
  const header = { alg: 'RS256', typ: STATUSLIST_TYP };
  const built = createHeaderAndPayload(entry.list, payload, header);
  // Negative-test overrides are applied after the library has run.
  if (entry.typ === null) delete built.header.typ;
  else if (entry.typ !== undefined) built.header.typ = entry.typ;
  if (entry.kid !== undefined) built.header.kid = entry.kid;
  if (entry.sub === null) delete built.payload.sub;
  else if (entry.sub !== undefined) built.payload.sub = entry.sub;
  if (entry.noIat) delete built.payload.iat;
  return signRs256(built.header, built.payload, KEYS[entry.signWith]);
}

class BadRequest extends Error {
  constructor(message, status = 400) {
    super(message);
    this.status = status;
  }
}

function optionalInt(input, field, fallback) {
  if (!(field in input)) return fallback;
  const v = input[field];
  if (v === null) return null;
  if (!Number.isSafeInteger(v)) throw new BadRequest(`"${field}" must be an integer number of seconds or null`);
  return v;
}

function optionalStringOrNull(input, field) {
  if (!(field in input)) return undefined;
  const v = input[field];
  if (v !== null && typeof v !== 'string') throw new BadRequest(`"${field}" must be a string or null`);
  return v;
}

function parseListSpec(input) {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new BadRequest('body must be a JSON object');
  }
  const { bits, size } = input;
  if (![1, 2, 4, 8].includes(bits)) throw new BadRequest('"bits" must be 1, 2, 4 or 8');
  if (!Number.isSafeInteger(size) || size < 1 || size > MAX_SIZE) {
    throw new BadRequest(`"size" must be an integer in 1..${MAX_SIZE}`);
  }
  const statuses = input.statuses ?? {};
  if (typeof statuses !== 'object' || Array.isArray(statuses)) {
    throw new BadRequest('"statuses" must be an object {"<idx>": <value>}');
  }
  const max = 2 ** bits - 1;
  // The library's own range check is off by one (it accepts 2^bits) and
  // setStatus() checks no value at all, so values are checked here.
  const list = new StatusList(new Array(size).fill(0), bits);
  for (const [key, value] of Object.entries(statuses)) {
    if (!/^(0|[1-9][0-9]*)$/.test(key) || Number(key) >= size) {
      throw new BadRequest(`status index ${JSON.stringify(key)} is not an integer in 0..${size - 1}`);
    }
    if (!Number.isInteger(value) || value < 0 || value > max) {
      throw new BadRequest(`status value at ${key} must be an integer in 0..${max} for bits=${bits}`);
    }
    list.setStatus(Number(key), value);
  }
  const signWith = input.sign_with ?? 'good';
  if (signWith !== 'good' && signWith !== 'other') throw new BadRequest('"sign_with" must be "good" or "other"');
  if (!KEYS[signWith]) throw new BadRequest('"sign_with":"other" needs OTHER_KEY_FILE in the server environment');
  const kid = input.kid;
  if (kid !== undefined && typeof kid !== 'string') throw new BadRequest('"kid" must be a string');
  return {
    bits,
    list,
    ttl: optionalInt(input, 'ttl', null),
    expIn: optionalInt(input, 'exp_in', DEFAULT_EXP_IN),
    typ: optionalStringOrNull(input, 'typ'),
    sub: optionalStringOrNull(input, 'sub'),
    noIat: input.no_iat === true,
    iss: optionalStringOrNull(input, 'iss'),
    kid,
    signWith,
  };
}

function sendJson(res, status, body, extraHeaders = {}) {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...extraHeaders,
  });
  res.end(text);
}

async function readJson(req) {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
    throw new BadRequest(`request body over ${MAX_BODY_BYTES} bytes`, 413);
  }
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new BadRequest(`request body over ${MAX_BODY_BYTES} bytes`, 413);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return text ? JSON.parse(text) : {};
  } catch (err) {
    throw new BadRequest(`bad JSON body: ${err.message}`);
  }
}

function recordFetch(name, req) {
  let rec = fetches.get(name);
  if (!rec) {
    if (fetches.size >= MAX_NAMES) return;
    rec = { count: 0, accept: null };
    fetches.set(name, rec);
  }
  rec.count += 1;
  rec.accept = req.headers.accept ?? null;
}

function routeName(path, prefix) {
  if (!path.startsWith(prefix)) return undefined;
  let name;
  try {
    name = decodeURIComponent(path.slice(prefix.length));
  } catch {
    return null;
  }
  return NAME_RE.test(name) ? name : null;
}

async function handle(req, res) {
  const path = new URL(req.url, 'http://127.0.0.1').pathname;

  let name = routeName(path, '/lists/');
  if (name !== undefined) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      sendJson(res, 405, { error: 'method not allowed' }, { allow: 'GET, HEAD' });
      return;
    }
    if (name !== null) recordFetch(name, req);
    const entry = name === null ? undefined : lists.get(name);
    if (!entry) {
      sendJson(res, 404, { error: `no status list ${JSON.stringify(name)}` });
      return;
    }
    const jwt = issueToken(name, entry);
    res.writeHead(200, {
      'content-type': 'application/statuslist+jwt',
      'content-length': Buffer.byteLength(jwt),
    });
    res.end(req.method === 'HEAD' ? undefined : jwt);
    return;
  }

  name = routeName(path, '/_test/lists/');
  if (name !== undefined) {
    if (req.method !== 'POST') {
      sendJson(res, 405, { error: 'method not allowed' }, { allow: 'POST' });
      return;
    }
    if (name === null) {
      sendJson(res, 400, { error: `list name must match ${NAME_RE}` });
      return;
    }
    const entry = parseListSpec(await readJson(req));
    if (!lists.has(name) && lists.size >= MAX_NAMES) throw new BadRequest('too many lists');
    lists.set(name, entry);
    console.error(`server.mjs: list ${name}: bits=${entry.bits} size=${entry.list.statusList.length} sign_with=${entry.signWith}`);
    sendJson(res, 200, { uri: listUri(name) });
    return;
  }

  name = routeName(path, '/_test/fetches/');
  if (name !== undefined) {
    if (req.method !== 'GET') {
      sendJson(res, 405, { error: 'method not allowed' }, { allow: 'GET' });
      return;
    }
    const rec = (name !== null && fetches.get(name)) || { count: 0, accept: null };
    sendJson(res, 200, { count: rec.count, accept: rec.accept });
    return;
  }

  sendJson(res, 404, { error: 'not found' });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    if (err instanceof BadRequest) {
      // 413: the rest of the body is not read, so the connection is closed.
      sendJson(res, err.status, { error: err.message }, err.status === 413 ? { connection: 'close' } : {});
      return;
    }
    console.error(`server.mjs: ${req.method} ${req.url}: ${err.stack || err}`);
    sendJson(res, 500, { error: String(err.message || err) });
  });
});
server.requestTimeout = 30000;
server.headersTimeout = 10000;

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
origin = `http://127.0.0.1:${server.address().port}`;
console.error(`server.mjs: listening on ${origin}, iss=${process.env.ISS || origin}`);
process.stdout.write(`${JSON.stringify({ base: origin })}\n`);

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`server.mjs: ${signal}, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
