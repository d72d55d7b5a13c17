// Drives the real npm package jwt-redis 7.x (with the redis 4.x client it
// expects as a peer) against a real Redis, for the proxy's
// `revocation.compat: jwt-redis` tests. One command per process; prints
// exactly one JSON line on stdout.
//
//   node jwtredis.mjs sign    <host:port> <secret> <payload-json> [expiresIn]
//   node jwtredis.mjs destroy <host:port> <secret> <jti-or-token>
//   node jwtredis.mjs verify  <host:port> <secret> <token>
//
// JWTR_PREFIX=<prefix> passes jwt-redis's `prefix` option (default there:
// "jwt_label:"). expiresIn: optional, handed to jsonwebtoken's sign options
// as is (a number of seconds, or a string such as "1h"); HS256 as jsonwebtoken
// defaults. destroy takes a jti, or a compact JWT whose payload's jti is used
// (decoded without verification, as an application would before calling
// jwtr.destroy(jti)).
//
// Output:
//   sign     {"token":"<jwt>","jti":"<jti>","key":"<prefix+jti>","payload":{...decoded}}
//   destroy  {"destroyed":true|false,"jti":"<jti>","key":"<prefix+jti>"}  (DEL removed a key or not)
//   verify   {"valid":true,"payload":{...}} or {"valid":false,"reason":"<error class>","message":"..."}
//   error    {"ok":false,"error":"<message>"} (exit status 1; usage: 64)

import { createRequire } from 'node:module';
import { createClient } from 'redis';

const require = createRequire(import.meta.url);
const JWTR = require('jwt-redis').default;

const USAGE = 'usage: node jwtredis.mjs <sign|destroy|verify> <host:port> <secret> <payload-json|jti|token> [expiresIn]';
const TIMEOUT_MS = 10000;

function out(obj, code = 0) {
  process.stdout.write(`${JSON.stringify(obj)}\n`, () => process.exit(code));
}

function splitHostPort(s) {
  const i = s.lastIndexOf(':');
  if (i <= 0) return null;
  const host = s.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(s.slice(i + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return null;
  return { host, port };
}

function looksLikeJwt(s) {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(s);
}

async function main() {
  const [cmd, hostPort, secret, arg, expiresInArg] = process.argv.slice(2);
  if (!['sign', 'destroy', 'verify'].includes(cmd)) return out({ ok: false, error: `unknown command ${cmd}; ${USAGE}` }, 64);
  const hp = splitHostPort(hostPort || '');
  if (!hp) return out({ ok: false, error: `bad host:port ${hostPort}; ${USAGE}` }, 64);
  if (secret === undefined || arg === undefined) return out({ ok: false, error: USAGE }, 64);

  const timer = setTimeout(() => out({ ok: false, error: 'timeout' }, 1), TIMEOUT_MS);
  timer.unref();

  // As jwt-redis's README sets it up: a connected node-redis v4 client.
  const client = createClient({ socket: { host: hp.host, port: hp.port, reconnectStrategy: false } });
  client.on('error', () => {});
  await client.connect();
  const options = process.env.JWTR_PREFIX !== undefined ? { prefix: process.env.JWTR_PREFIX } : undefined;
  const jwtr = new JWTR(client, options);
  const prefix = options ? options.prefix : 'jwt_label:';

  let result;
  let code = 0;
  try {
    if (cmd === 'sign') {
      const payload = JSON.parse(arg);
      const signOptions = {};
      if (expiresInArg !== undefined && expiresInArg !== '' && expiresInArg !== '-') {
        signOptions.expiresIn = /^\d+$/.test(expiresInArg) ? Number(expiresInArg) : expiresInArg;
      }
      const token = await jwtr.sign(payload, secret, signOptions);
      const decoded = jwtr.decode(token);
      result = { token, jti: decoded.jti, key: prefix + decoded.jti, payload: decoded };
    } else if (cmd === 'destroy') {
      let jti = arg;
      if (looksLikeJwt(arg)) {
        const decoded = jwtr.decode(arg);
        if (!decoded || decoded.jti === undefined) throw new Error('token has no jti');
        jti = decoded.jti;
      }
      const destroyed = await jwtr.destroy(jti);
      result = { destroyed, jti, key: prefix + jti };
    } else {
      try {
        const payload = await jwtr.verify(arg, secret);
        result = { valid: true, payload };
      } catch (e) {
        result = { valid: false, reason: e.name || e.constructor.name, message: e.message || '' };
      }
    }
  } catch (e) {
    result = { ok: false, error: e.message };
    code = 1;
  }
  await client.quit().catch(() => {});
  return out(result, code);
}

main().catch((e) => out({ ok: false, error: e.message }, 1));
