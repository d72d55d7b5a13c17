// Self-check for server.mjs, without Rust:
//   npm ci --prefix tests/peers/statuslist && node tests/peers/statuslist/selfcheck.mjs
//
// 1. The reference library @sd-jwt/jwt-status-list against the draft's
//    published vectors (draft-vectors.json, copied from the draft text):
//    its encoder must reproduce each `lst` byte for byte and its decoder must
//    give back every status.
// 2. server.mjs: creates a 1-bit list of 16 and a 2-bit list of 12 entries,
//    fetches each, verifies the RS256 signature against
//    tests/fixtures/keys/rsa.pub with node:crypto, decodes `lst` with the
//    library (getListFromStatusListJWT and StatusList.decompressStatusList)
//    and independently (node:zlib inflate + LSB-first unpacking), and checks
//    every index; then the negative-test knobs, the fetch log, 404/400/413,
//    the ISS setting and a clean SIGTERM exit.
// Exits 0 on success, 1 with a message otherwise. Loopback only, bounded.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { StatusList, getListFromStatusListJWT } from '@sd-jwt/jwt-status-list';

const OVERALL_TIMEOUT_MS = 60000;
const FETCH_TIMEOUT_MS = 15000;
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const KEYS_DIR = here('../../fixtures/keys/');
const PUB_GOOD = crypto.createPublicKey(readFileSync(`${KEYS_DIR}rsa.pub`, 'utf8'));
const PUB_OTHER = crypto.createPublicKey(readFileSync(`${KEYS_DIR}rsa-other.pub`, 'utf8'));
const VECTORS = JSON.parse(readFileSync(here('./draft-vectors.json'), 'utf8')).vectors;

let passed = 0;
const servers = [];

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  passed += 1;
}

function decode(jwt) {
  const parts = jwt.split('.');
  check(parts.length === 3, `JWS compact serialization has 3 parts: ${jwt.slice(0, 40)}...`);
  const [header, payload] = parts.slice(0, 2)
    .map((p) => JSON.parse(Buffer.from(p, 'base64url').toString('utf8')));
  return { header, payload, parts };
}

function verifiesWith(jwt, publicKey) {
  const [h, p, s] = jwt.split('.');
  return crypto.verify('sha256', Buffer.from(`${h}.${p}`, 'ascii'), publicKey, Buffer.from(s, 'base64url'));
}

// Independent of the library: strict ZLIB (RFC 1950) inflate, then bits packed
// from the least significant bit of each byte.
function independentStatus(lst, bits, index) {
  const bytes = inflateSync(Buffer.from(lst, 'base64url'));
  const perByte = 8 / bits;
  const byte = bytes[Math.floor(index / perByte)];
  return (byte >> ((index % perByte) * bits)) & (2 ** bits - 1);
}

function fullList(vector) {
  const arr = new Array(vector.size).fill(0);
  for (const [i, v] of Object.entries(vector.statuses)) arr[Number(i)] = v;
  return arr;
}

async function request(url, { method = 'GET', body, headers = {} } = {}) {
  const response = await fetch(url, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    body: body === undefined ? undefined : (typeof body === 'string' ? body : JSON.stringify(body)),
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  const text = await response.text();
  return { status: response.status, contentType: response.headers.get('content-type'), text };
}

async function postList(base, name, spec) {
  const r = await request(`${base}/_test/lists/${name}`, { method: 'POST', body: spec });
  check(r.status === 200, `POST /_test/lists/${name} -> 200 (got ${r.status} ${r.text})`);
  const json = JSON.parse(r.text);
  check(json.uri === `${base}/lists/${name}` && Object.keys(json).length === 1,
    `POST answers exactly {"uri":"${base}/lists/${name}"} (got ${r.text})`);
  return json.uri;
}

async function getToken(uri, accept = 'application/statuslist+jwt') {
  const r = await request(uri, { headers: { accept } });
  check(r.status === 200, `GET ${uri} -> 200 (got ${r.status} ${r.text})`);
  check(r.contentType === 'application/statuslist+jwt', `Content-Type application/statuslist+jwt (got ${r.contentType})`);
  return r.text;
}

function startServer(extraEnv = {}) {
  const script = here('./server.mjs');
  const child = spawn(process.execPath, [script], {
    env: {
      ...process.env,
      KEY_FILE: `${KEYS_DIR}rsa.key`,
      OTHER_KEY_FILE: `${KEYS_DIR}rsa-other.key`,
      ISS: '',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const srv = { child, stdout: '', stderr: '' };
  servers.push(srv);
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { srv.stderr += d; });
  child.stdout.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('server.mjs did not announce itself within 15 s')), 15000);
    let announced = false;
    child.stdout.on('data', (d) => {
      srv.stdout += d;
      const nl = srv.stdout.indexOf('\n');
      if (!announced && nl !== -1) {
        announced = true;
        clearTimeout(timer);
        try {
          srv.base = JSON.parse(srv.stdout.slice(0, nl)).base;
          resolve(srv);
        } catch {
          reject(new Error(`server.mjs first stdout line is not JSON: ${srv.stdout.slice(0, nl)}`));
        }
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`server.mjs exited early (code ${code}, signal ${signal})`));
    });
  });
}

function stopServer(srv) {
  const { child } = srv;
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.removeAllListeners('exit');
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
    child.kill('SIGTERM');
  });
}

// ---------------------------------------------------------------------------
function checkLibraryAgainstDraft() {
  for (const v of VECTORS) {
    const expected = fullList(v);
    const list = new StatusList(expected.slice(), v.bits);
    const lst = list.compressStatusList();
    check(lst === v.lst, `library encodes the draft's ${v.name} byte for byte (got ${lst.slice(0, 40)}...)`);
    const raw = Buffer.from(v.lst, 'base64url');
    check(raw[0] === 0x78 && (raw[0] * 256 + raw[1]) % 31 === 0,
      `${v.name}: lst is a ZLIB (RFC 1950) stream, CMF/FLG ${raw.subarray(0, 2).toString('hex')}`);
    if (v.zlib_hex) check(raw.toString('hex') === v.zlib_hex, `${v.name}: lst bytes = draft's compressed hex ${v.zlib_hex}`);
    if (v.bytes_hex) {
      check(Buffer.from(list.encodeStatusList()).toString('hex') === v.bytes_hex,
        `${v.name}: library's uncompressed byte array = draft's ${v.bytes_hex}`);
      check(inflateSync(raw).toString('hex') === v.bytes_hex, `${v.name}: zlib inflate of lst = ${v.bytes_hex}`);
    }
    const decoded = StatusList.decompressStatusList(v.lst, v.bits);
    check(decoded.statusList.length === v.size, `${v.name}: library decodes ${v.size} entries (got ${decoded.statusList.length})`);
    let bad = -1;
    for (let i = 0; i < v.size; i += 1) {
      if (decoded.getStatus(i) !== expected[i]) { bad = i; break; }
    }
    check(bad === -1, `${v.name}: library decodes every index (first mismatch at ${bad})`);
    for (const [i, value] of Object.entries(v.statuses)) {
      check(independentStatus(v.lst, v.bits, Number(i)) === value, `${v.name}: independent LSB-first decode of [${i}] = ${value}`);
    }
  }
  console.log(`library vs draft vectors: ${VECTORS.map((v) => v.name).join(', ')} all equal byte for byte`);
}

function checkListToken(jwt, { uri, base, vector, ttl, expIn = 600 }) {
  const { header, payload } = decode(jwt);
  check(JSON.stringify(header) === '{"alg":"RS256","typ":"statuslist+jwt"}', `header is exactly {"alg":"RS256","typ":"statuslist+jwt"} (got ${JSON.stringify(header)})`);
  check(verifiesWith(jwt, PUB_GOOD), 'RS256 signature verifies with rsa.pub');
  check(!verifiesWith(jwt, PUB_OTHER), 'signature does not verify with rsa-other.pub');
  const keys = ['sub', 'iat', 'exp', ...(ttl === undefined ? [] : ['ttl']), 'iss', 'status_list'];
  check(JSON.stringify(Object.keys(payload)) === JSON.stringify(keys), `payload claims ${keys} (got ${Object.keys(payload)})`);
  const now = Math.floor(Date.now() / 1000);
  check(payload.sub === uri, `sub = list URI ${uri} (got ${payload.sub})`);
  check(Math.abs(payload.iat - now) <= 5, `iat is now (got ${payload.iat}, now ${now})`);
  check(payload.exp === payload.iat + expIn, `exp = iat + ${expIn} (got ${payload.exp - payload.iat})`);
  if (ttl !== undefined) check(payload.ttl === ttl, `ttl = ${ttl} (got ${payload.ttl})`);
  check(payload.iss === base, `iss defaults to the server origin ${base} (got ${payload.iss})`);
  check(JSON.stringify(Object.keys(payload.status_list)) === '["bits","lst"]', `status_list is {bits,lst} (got ${JSON.stringify(payload.status_list)})`);
  check(payload.status_list.bits === vector.bits, `status_list.bits = ${vector.bits}`);
  check(payload.status_list.lst === vector.lst, `server's lst equals the draft's "${vector.lst}" (got "${payload.status_list.lst}")`);

  const expected = fullList(vector);
  const viaJwt = getListFromStatusListJWT(jwt);
  const viaLst = StatusList.decompressStatusList(payload.status_list.lst, payload.status_list.bits);
  for (let i = 0; i < vector.size; i += 1) {
    check(viaJwt.getStatus(i) === expected[i], `getListFromStatusListJWT [${i}] = ${expected[i]}`);
    check(viaLst.getStatus(i) === expected[i], `StatusList.decompressStatusList [${i}] = ${expected[i]}`);
    check(independentStatus(payload.status_list.lst, vector.bits, i) === expected[i], `independent decode [${i}] = ${expected[i]}`);
  }
  return { header, payload };
}

async function main() {
  checkLibraryAgainstDraft();

  const srv = await startServer();
  const { base } = srv;
  check(/^http:\/\/127\.0\.0\.1:\d+$/.test(base), `announced base is http://127.0.0.1:PORT (got ${base})`);

  // The two required lists: the draft's own 1-bit/16 and 2-bit/12 examples.
  const [one, two] = VECTORS;
  const uriOne = await postList(base, 'one', { bits: 1, size: 16, statuses: one.statuses, ttl: 300 });
  const uriTwo = await postList(base, 'two', { bits: 2, size: 12, statuses: two.statuses, ttl: null, exp_in: 120 });
  const jwtOne = await getToken(uriOne, 'application/statuslist+jwt');
  const shown = checkListToken(jwtOne, { uri: uriOne, base, vector: one, ttl: 300 });
  console.log(`list one header  ${JSON.stringify(shown.header)}`);
  console.log(`list one payload ${JSON.stringify(shown.payload)}`);
  const jwtTwo = await getToken(uriTwo, 'application/statuslist+jwt, application/jwt;q=0.5');
  const shownTwo = checkListToken(jwtTwo, { uri: uriTwo, base, vector: two, ttl: undefined, expIn: 120 });
  console.log(`list two payload ${JSON.stringify(shownTwo.payload)}`);

  // Fetch log.
  let log = JSON.parse((await request(`${base}/_test/fetches/one`)).text);
  check(log.count === 1 && log.accept === 'application/statuslist+jwt', `fetches/one = {count:1, accept} (got ${JSON.stringify(log)})`);
  await request(uriOne); // fetch's default Accept is */*
  log = JSON.parse((await request(`${base}/_test/fetches/one`)).text);
  check(log.count === 2 && log.accept === '*/*', `fetches/one counts 2 and keeps the last Accept (got ${JSON.stringify(log)})`);
  log = JSON.parse((await request(`${base}/_test/fetches/two`)).text);
  check(log.count === 1 && log.accept === 'application/statuslist+jwt, application/jwt;q=0.5', `fetches/two (got ${JSON.stringify(log)})`);
  log = JSON.parse((await request(`${base}/_test/fetches/never`)).text);
  check(log.count === 0 && log.accept === null, `fetches of a never-fetched name = {count:0, accept:null} (got ${JSON.stringify(log)})`);

  // Unknown list: 404, still recorded.
  const missing = await request(`${base}/lists/missing`, { headers: { accept: 'application/statuslist+jwt' } });
  check(missing.status === 404, `unknown list -> 404 (got ${missing.status})`);
  log = JSON.parse((await request(`${base}/_test/fetches/missing`)).text);
  check(log.count === 1, `404 fetch recorded (got ${JSON.stringify(log)})`);

  // Replacing a list changes what is served.
  await postList(base, 'one', { bits: 1, size: 16, statuses: { 15: 1 } });
  const replaced = decode(await getToken(uriOne)).payload;
  const replacedList = StatusList.decompressStatusList(replaced.status_list.lst, 1);
  check(replacedList.statusList.every((s, i) => s === (i === 15 ? 1 : 0)), 'replaced list: only [15] = 1');
  check(!('ttl' in replaced), 'ttl omitted when not given');

  // Negative-test knobs.
  const otherUri = await postList(base, 'other', {
    bits: 4, size: 5, statuses: { 4: 15 }, sign_with: 'other', typ: 'jwt', sub: 'https://elsewhere.test/lists/x', exp_in: -60, ttl: 0,
  });
  const otherJwt = await getToken(otherUri);
  const other = decode(otherJwt);
  check(verifiesWith(otherJwt, PUB_OTHER) && !verifiesWith(otherJwt, PUB_GOOD), 'sign_with "other": verifies with rsa-other.pub only');
  check(other.header.typ === 'jwt', `typ override (got ${other.header.typ})`);
  check(other.payload.sub === 'https://elsewhere.test/lists/x', `sub override (got ${other.payload.sub})`);
  check(other.payload.exp === other.payload.iat - 60, 'negative exp_in gives an expired list');
  check(other.payload.ttl === 0, 'ttl 0 kept');
  check(getListFromStatusListJWT(otherJwt).getStatus(4) === 15, '4-bit list: [4] = 15');
  const bareUri = await postList(base, 'bare', { bits: 8, size: 3, statuses: { 1: 255 }, typ: null, sub: null, iss: null, exp_in: null, kid: 'k1' });
  const bare = decode(await getToken(bareUri));
  check(JSON.stringify(bare.header) === '{"alg":"RS256","kid":"k1"}', `typ null omits typ, kid added (got ${JSON.stringify(bare.header)})`);
  check(JSON.stringify(Object.keys(bare.payload)) === '["iat","status_list"]', `sub/iss/exp null omitted (got ${Object.keys(bare.payload)})`);

  // Every draft vector, served end to end (size 2^20 included).
  for (const v of VECTORS) {
    const uri = await postList(base, `vec${v.bits}-${v.size}`, { bits: v.bits, size: v.size, statuses: v.statuses });
    const jwt = await getToken(uri);
    check(verifiesWith(jwt, PUB_GOOD), `${v.name}: served token verifies`);
    check(decode(jwt).payload.status_list.lst === v.lst, `${v.name}: served lst equals the draft's byte for byte`);
  }

  // Bad requests.
  const bads = [
    [{ bits: 3, size: 8 }, 400, 'bits 3'],
    [{ bits: 1, size: 0 }, 400, 'size 0'],
    [{ bits: 1, size: 8, statuses: { 8: 1 } }, 400, 'index out of range'],
    [{ bits: 1, size: 8, statuses: { 0: 2 } }, 400, 'value 2 with bits 1 (the library itself would accept it)'],
    [{ bits: 2, size: 8, statuses: { '-1': 1 } }, 400, 'negative index'],
    [{ bits: 1, size: 8, sign_with: 'mallory' }, 400, 'unknown sign_with'],
    [{ bits: 1, size: 8, ttl: 'soon' }, 400, 'non-integer ttl'],
    ['{not json', 400, 'bad JSON'],
    [`{"bits":1,"size":8,"pad":"${'x'.repeat(1100 * 1024)}"}`, 413, 'body over 1 MiB'],
  ];
  for (const [body, status, what] of bads) {
    const r = await request(`${base}/_test/lists/bad`, { method: 'POST', body });
    check(r.status === status, `${what} -> ${status} (got ${r.status} ${r.text.slice(0, 120)})`);
  }
  check((await request(`${base}/lists/bad`)).status === 404, 'rejected list was not created');
  check((await request(`${base}/_test/lists/x`)).status === 405, 'GET on the control path -> 405');
  check((await request(`${base}/nothing`)).status === 404, 'unknown path -> 404');

  const { code, signal } = await stopServer(srv);
  check(code === 0, `server.mjs exits 0 on SIGTERM (got code ${code}, signal ${signal})`);
  check(srv.stdout.split('\n').filter(Boolean).length === 1, `server.mjs printed exactly one stdout line (got ${JSON.stringify(srv.stdout)})`);

  // ISS from the environment; OTHER_KEY_FILE optional; KEY_FILE as PKCS#1
  // (the fixture is PKCS#8, "BEGIN PRIVATE KEY").
  const pkcs1 = crypto.createPrivateKey(readFileSync(`${KEYS_DIR}rsa.key`, 'utf8'))
    .export({ type: 'pkcs1', format: 'pem' });
  check(pkcs1.startsWith('-----BEGIN RSA PRIVATE KEY-----'), 'PKCS#1 copy of rsa.key made');
  const tmp = mkdtempSync(join(tmpdir(), 'statuslist-selfcheck-'));
  const pkcs1File = join(tmp, 'rsa-pkcs1.key');
  writeFileSync(pkcs1File, pkcs1, { mode: 0o600 });
  let srv2;
  try {
    srv2 = await startServer({ ISS: 'https://issuer.test', OTHER_KEY_FILE: '', KEY_FILE: pkcs1File });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const uri2 = await postList(srv2.base, 'l', { bits: 1, size: 16, statuses: one.statuses });
  const jwt2 = await getToken(uri2);
  const p2 = decode(jwt2).payload;
  check(verifiesWith(jwt2, PUB_GOOD), 'PKCS#1 KEY_FILE: token verifies with rsa.pub');
  check(p2.iss === 'https://issuer.test', `ISS env sets iss (got ${p2.iss})`);
  const noOther = await request(`${srv2.base}/_test/lists/o`, { method: 'POST', body: { bits: 1, size: 8, sign_with: 'other' } });
  check(noOther.status === 400, `sign_with other without OTHER_KEY_FILE -> 400 (got ${noOther.status})`);
  const stop2 = await stopServer(srv2);
  check(stop2.code === 0, `second server exits 0 on SIGTERM (got ${JSON.stringify(stop2)})`);
}

const overall = setTimeout(() => {
  console.error(`selfcheck: timed out after ${OVERALL_TIMEOUT_MS} ms`);
  for (const s of servers) s.child.kill('SIGKILL');
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

try {
  await main();
  console.log(`selfcheck: ${passed} passed, 0 failed`);
  process.exitCode = 0;
} catch (err) {
  console.error(`selfcheck: FAILED: ${err.message}`);
  for (const s of servers) if (s.stderr) console.error(`--- server.mjs stderr ---\n${s.stderr}`);
  console.log(`selfcheck: ${passed} passed, 1 failed`);
  process.exitCode = 1;
} finally {
  for (const s of servers) await stopServer(s);
  clearTimeout(overall);
}
