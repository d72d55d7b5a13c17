// Self-check for idp.mjs, without Rust:
//   npm ci --prefix tests/peers/oidc && node tests/peers/oidc/selfcheck.mjs
//
// Starts a fake back-channel logout receiver on 127.0.0.1, starts idp.mjs
// pointed at it, logs "alice" in twice, checks both JWT access tokens, logs the
// first one out and checks the logout token the provider POSTed, then makes
// the receiver fail and checks that /_test/logout reports the error.
// Exits 0 on success, 1 with a message otherwise. Loopback only, bounded.

import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { fileURLToPath } from 'node:url';

const OVERALL_TIMEOUT_MS = 60000;
const FETCH_TIMEOUT_MS = 15000;
const RESOURCE = 'http://api.test/';
const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

let passed = 0;
let idp;
let idpStderr = '';
let idpStdout = '';

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

function verifyRs256(jwt, jwks) {
  const { header, parts } = decode(jwt);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  check(jwk !== undefined, `kid ${header.kid} is in the JWKS`);
  check(jwk.d === undefined && jwk.p === undefined, 'JWKS exposes public key material only');
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const ok = crypto.verify(
    'sha256',
    Buffer.from(`${parts[0]}.${parts[1]}`),
    key,
    Buffer.from(parts[2], 'base64url'),
  );
  check(ok, `RS256 signature verifies with the JWKS key ${header.kid}`);
}

// --- fake back-channel logout receiver --------------------------------------
const received = [];
let receiverStatus = 200;
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    received.push({
      method: req.method, url: req.url, headers: req.headers, body,
    });
    const token = new URLSearchParams(body).get('logout_token');
    if (token) {
      const { header, payload } = decode(token);
      console.log(`receiver: ${req.method} ${req.url} content-type=${req.headers['content-type']} -> ${receiverStatus}`);
      console.log(`receiver: logout_token header ${JSON.stringify(header)}`);
      console.log(`receiver: logout_token payload ${JSON.stringify(payload)}`);
    } else {
      console.log(`receiver: ${req.method} ${req.url} without logout_token: ${body.slice(0, 200)}`);
    }
    res.writeHead(receiverStatus, { 'content-length': '0' });
    res.end();
  });
});

async function post(url, body) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  const text = await response.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    throw new Error(`${url} answered ${response.status} non-JSON: ${text.slice(0, 300)}`);
  }
  return { status: response.status, json };
}

function startIdp(backchannelUri) {
  const script = fileURLToPath(new URL('./idp.mjs', import.meta.url));
  idp = spawn(process.execPath, [script], {
    env: { ...process.env, BACKCHANNEL_LOGOUT_URI: backchannelUri, RESOURCE },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  idp.stderr.setEncoding('utf8');
  idp.stderr.on('data', (d) => { idpStderr += d; });
  idp.stdout.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('idp.mjs did not announce itself within 15 s')), 15000);
    idp.stdout.on('data', (d) => {
      idpStdout += d;
      const nl = idpStdout.indexOf('\n');
      if (nl !== -1) {
        clearTimeout(timer);
        try {
          resolve(JSON.parse(idpStdout.slice(0, nl)));
        } catch (err) {
          reject(new Error(`idp.mjs first stdout line is not JSON: ${idpStdout.slice(0, nl)}`));
        }
      }
    });
    idp.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`idp.mjs exited early (code ${code}, signal ${signal})`));
    });
  });
}

function stopIdp() {
  return new Promise((resolve) => {
    if (!idp || idp.exitCode !== null || idp.signalCode !== null) {
      resolve({ code: idp?.exitCode, signal: idp?.signalCode });
      return;
    }
    const timer = setTimeout(() => {
      idp.kill('SIGKILL');
    }, 5000);
    idp.removeAllListeners('exit');
    idp.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
    idp.kill('SIGTERM');
  });
}

function checkAccessToken(login, announced, jwks, account) {
  const { header, payload } = decode(login.access_token);
  check(header.alg === 'RS256', `access token alg RS256 (got ${header.alg})`);
  check(header.typ === 'at+jwt', `access token typ at+jwt (got ${header.typ})`);
  verifyRs256(login.access_token, jwks);
  check(payload.aud === RESOURCE, `access token aud = ${RESOURCE} (got ${JSON.stringify(payload.aud)})`);
  check(payload.iss === announced.issuer, `access token iss = issuer (got ${payload.iss})`);
  check(payload.sub === account, `access token sub = ${account} (got ${payload.sub})`);
  check(typeof payload.sid === 'string' && payload.sid.length > 0, 'access token has a sid');
  check(payload.sid === login.sid, 'access token sid = /_test/login sid');
  check(typeof payload.jti === 'string' && payload.jti.length > 0, 'access token has a jti');
  check(Number.isInteger(payload.iat), 'access token has an integer iat');
  check(Number.isInteger(payload.exp) && payload.exp > payload.iat, 'access token has exp > iat');
  check(payload.client_id === announced.client_id, 'access token client_id = client_id');
  const id = decode(login.id_token).payload;
  check(id.sid === login.sid, 'id_token sid = /_test/login sid');
  check(id.aud === announced.client_id, 'id_token aud = client_id');
  return { header, payload };
}

function checkLogoutToken(token, announced, jwks, expectedSid, account) {
  const { header, payload } = decode(token);
  check(header.typ === 'logout+jwt', `logout token typ logout+jwt (got ${header.typ})`);
  check(header.alg === 'RS256', `logout token alg RS256 (got ${header.alg})`);
  verifyRs256(token, jwks);
  check(payload.iss === announced.issuer, `logout token iss = issuer (got ${payload.iss})`);
  check(payload.aud === announced.client_id, `logout token aud = client_id (got ${JSON.stringify(payload.aud)})`);
  check(payload.sid === expectedSid, `logout token sid = access token sid (got ${payload.sid}, want ${expectedSid})`);
  check(payload.sub === account, `logout token sub = ${account} (got ${payload.sub})`);
  check(
    payload.events && typeof payload.events === 'object'
      && JSON.stringify(payload.events[BACKCHANNEL_EVENT]) === '{}',
    `logout token events has ${BACKCHANNEL_EVENT}: {}`,
  );
  check(typeof payload.jti === 'string' && payload.jti.length > 0, 'logout token has a jti');
  check(Number.isInteger(payload.iat), 'logout token has an integer iat');
  check(payload.nonce === undefined, 'logout token has no nonce');
  return { header, payload };
}

async function main() {
  await new Promise((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const backchannelUri = `http://127.0.0.1:${receiver.address().port}/oidc/backchannel-logout`;
  const announced = await startIdp(backchannelUri);
  console.log(`idp: ${JSON.stringify(announced)}`);
  check(/^http:\/\/127\.0\.0\.1:\d+$/.test(announced.issuer), 'issuer is http://127.0.0.1:PORT');
  check(typeof announced.jwks_uri === 'string' && announced.jwks_uri.startsWith(`${announced.issuer}/`), 'jwks_uri is on the issuer');
  check(typeof announced.client_id === 'string' && announced.client_id.length > 0, 'client_id announced');

  const jwks = await (await fetch(announced.jwks_uri, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) })).json();
  check(Array.isArray(jwks.keys) && jwks.keys.length >= 1, 'JWKS has keys');

  const first = await post(`${announced.issuer}/_test/login`, { account: 'alice' });
  check(first.status === 200, `first login 200 (got ${first.status}: ${JSON.stringify(first.json)})`);
  const second = await post(`${announced.issuer}/_test/login`, { account: 'alice' });
  check(second.status === 200, `second login 200 (got ${second.status}: ${JSON.stringify(second.json)})`);

  const at1 = checkAccessToken(first.json, announced, jwks, 'alice');
  const at2 = checkAccessToken(second.json, announced, jwks, 'alice');
  console.log(`access token 1 header ${JSON.stringify(at1.header)}`);
  console.log(`access token 1 payload ${JSON.stringify(at1.payload)}`);
  console.log(`access token 2 payload ${JSON.stringify(at2.payload)}`);
  check(at1.payload.sid !== at2.payload.sid, 'two logins give two provider sessions (sids differ)');
  check(at1.payload.jti !== at2.payload.jti, 'jtis differ');
  check(first.json.login !== second.json.login, 'login handles differ');
  check(received.length === 0, 'no back-channel call before any logout');

  // Log out the first session: the provider itself POSTs to the receiver.
  const out1 = await post(`${announced.issuer}/_test/logout`, { login: first.json.login });
  console.log(`logout 1 -> ${JSON.stringify({ ...out1.json, logout_token: out1.json.logout_token && '...' })}`);
  check(out1.status === 200, `logout 200 (got ${out1.status})`);
  check(out1.json.ok === true && out1.json.backchannel === 'success', `logout reports back-channel success (got ${JSON.stringify(out1.json)})`);
  check(out1.json.status === 200, 'logout reports the receiver status 200');
  check(received.length === 1, `receiver got exactly one POST (got ${received.length})`);
  const [call] = received;
  check(call.method === 'POST', 'back-channel call is a POST');
  check(call.url === '/oidc/backchannel-logout', `back-channel call path (got ${call.url})`);
  check(/^application\/x-www-form-urlencoded\b/.test(call.headers['content-type'] ?? ''), `back-channel Content-Type form (got ${call.headers['content-type']})`);
  const form = new URLSearchParams(call.body);
  check([...form.keys()].join(',') === 'logout_token', `form body has only logout_token (got ${[...form.keys()]})`);
  const logoutToken = form.get('logout_token');
  check(out1.json.logout_token === logoutToken, '/_test/logout returns the logout token it sent');
  const lt = checkLogoutToken(logoutToken, announced, jwks, at1.payload.sid, 'alice');
  check(lt.payload.sid !== at2.payload.sid, 'logout token does not name the second session');

  const again = await post(`${announced.issuer}/_test/logout`, { login: first.json.login });
  check(again.status === 404 && again.json.ok === false, 'a used login handle is rejected');
  check(received.length === 1, 'no extra back-channel call');

  // Receiver failure is reported, with the status it answered.
  receiverStatus = 500;
  const out2 = await post(`${announced.issuer}/_test/logout`, { login: second.json.login });
  console.log(`logout 2 (receiver answers 500) -> ${JSON.stringify({ ...out2.json, logout_token: out2.json.logout_token && '...' })}`);
  check(out2.status === 200, `logout 200 (got ${out2.status})`);
  check(out2.json.ok === false && out2.json.backchannel === 'error', `logout reports back-channel error (got ${JSON.stringify(out2.json)})`);
  check(out2.json.status === 500, `error carries receiver status 500 (got ${out2.json.status})`);
  check(typeof out2.json.message === 'string' && out2.json.message.length > 0, 'error carries a message');
  check(received.length === 2, `receiver got the second POST (got ${received.length})`);
  checkLogoutToken(new URLSearchParams(received[1].body).get('logout_token'), announced, jwks, at2.payload.sid, 'alice');

  const { code, signal } = await stopIdp();
  check(code === 0, `idp.mjs exits 0 on SIGTERM (got code ${code}, signal ${signal})`);
  check(idpStdout.split('\n').filter(Boolean).length === 1, `idp.mjs printed exactly one stdout line (got ${JSON.stringify(idpStdout)})`);
}

const overall = setTimeout(() => {
  console.error(`selfcheck: timed out after ${OVERALL_TIMEOUT_MS} ms`);
  idp?.kill('SIGKILL');
  process.exit(1);
}, OVERALL_TIMEOUT_MS);

try {
  await main();
  console.log(`selfcheck: ${passed} passed, 0 failed`);
  process.exitCode = 0;
} catch (err) {
  console.error(`selfcheck: FAILED: ${err.message}`);
  if (idpStderr) console.error(`--- idp.mjs stderr ---\n${idpStderr}`);
  console.log(`selfcheck: ${passed} passed, 1 failed`);
  process.exitCode = 1;
  await stopIdp();
} finally {
  clearTimeout(overall);
  receiver.close();
  receiver.closeAllConnections();
}
