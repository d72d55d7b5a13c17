// Drives the real npm package express-jwt-blacklist 1.1.0 against a real
// Redis or memcached, for the proxy's `revocation.compat: express-jwt-blacklist`
// tests. One command per process; prints exactly one JSON line on stdout.
//
//   node blacklist.mjs revoke    <redis|memcached> <host:port> <keyPrefix> <tokenId> <indexBy> <payload-json> [lifetime]
//   node blacklist.mjs purge     <redis|memcached> <host:port> <keyPrefix> <tokenId> <indexBy> <payload-json> [lifetime]
//   node blacklist.mjs isRevoked <redis|memcached> <host:port> <keyPrefix> <tokenId> <indexBy> <payload-json>
//
// keyPrefix, tokenId, indexBy: "-" (or "") leaves the option out, so the
// library default applies (keyPrefix "jwt-blacklist:", tokenId "sub",
// indexBy "iat"). lifetime: optional seconds, passed as the library's
// optional `lifetime` argument. BLACKLIST_STRICT=true sets `strict: true`.
//
// Output:
//   revoke/purge  {"ok":true,"key":"<keyPrefix+id>","now":<unix s before the call>}
//   isRevoked     {"revoked":true|false}
//   any error     {"ok":false,"error":"<message>"}  (exit status 1; usage: 64)
//
// The store gets its client through the documented `store.client` option,
// built exactly as lib/store/{redis,memcached}.js would build it from
// host/port/options and with the very client packages the library depends on
// (redis 2.x, memcached 2.x, resolved from express-jwt-blacklist's own
// directory). That lets this script QUIT/end the connection after the
// library's callback, so the process exits promptly and the EXPIRE that the
// Redis store sends after HMSET (without waiting) is processed first.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const blacklist = require('express-jwt-blacklist');
// The client libraries as express-jwt-blacklist itself resolves them.
const libRequire = createRequire(require.resolve('express-jwt-blacklist'));

const USAGE = 'usage: node blacklist.mjs <revoke|purge|isRevoked> <redis|memcached> <host:port> '
  + '<keyPrefix|-> <tokenId|-> <indexBy|-> <payload-json> [lifetime]';
const TIMEOUT_MS = 10000;

function out(obj, code = 0) {
  process.stdout.write(`${JSON.stringify(obj)}\n`, () => process.exit(code));
}

function usage(msg) {
  out({ ok: false, error: `${msg}; ${USAGE}` }, 64);
}

function opt(v) {
  return v === undefined || v === '' || v === '-' ? undefined : v;
}

function splitHostPort(s) {
  const i = s.lastIndexOf(':');
  if (i <= 0) return null;
  const host = s.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const port = Number(s.slice(i + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return null;
  return { host, port };
}

async function main() {
  const [cmd, storeType, hostPort, keyPrefix, tokenId, indexBy, payloadJson, lifetimeArg] = process.argv.slice(2);
  if (!['revoke', 'purge', 'isRevoked'].includes(cmd)) return usage(`unknown command ${cmd}`);
  if (!['redis', 'memcached'].includes(storeType)) return usage(`unknown store ${storeType}`);
  const hp = splitHostPort(hostPort || '');
  if (!hp) return usage(`bad host:port ${hostPort}`);
  let payload;
  try {
    payload = JSON.parse(payloadJson);
  } catch (e) {
    return usage(`bad payload JSON: ${e.message}`);
  }
  let lifetime;
  if (lifetimeArg !== undefined && lifetimeArg !== '' && lifetimeArg !== '-') {
    lifetime = Number(lifetimeArg);
    if (!Number.isFinite(lifetime)) return usage(`bad lifetime ${lifetimeArg}`);
  }

  // The same construction as lib/store/redis.js / lib/store/memcached.js.
  let client;
  let close;
  if (storeType === 'redis') {
    const redis = libRequire('redis');
    client = redis.createClient(hp.port, hp.host, {});
    close = () => new Promise((resolve) => {
      client.quit(() => resolve());
      setTimeout(resolve, 2000).unref();
    });
  } else {
    const Memcached = libRequire('memcached');
    client = new Memcached(`${hp.host}:${hp.port}`, {});
    close = () => { client.end(); return Promise.resolve(); };
  }

  const options = {
    store: {
      type: storeType,
      host: hp.host,
      port: hp.port,
      client,
    },
  };
  if (opt(keyPrefix) !== undefined) options.store.keyPrefix = keyPrefix;
  if (opt(tokenId) !== undefined) options.tokenId = tokenId;
  if (opt(indexBy) !== undefined) options.indexBy = indexBy;
  if (process.env.BLACKLIST_STRICT === 'true') options.strict = true;
  blacklist.configure(options);

  const timer = setTimeout(() => out({ ok: false, error: 'timeout' }, 1), TIMEOUT_MS);
  timer.unref();

  const effectivePrefix = opt(keyPrefix) ?? 'jwt-blacklist:';
  const effectiveTokenId = opt(tokenId) ?? 'sub';

  if (cmd === 'isRevoked') {
    blacklist.isRevoked({}, payload, (err, revoked) => {
      close().then(() => (err ? out({ ok: false, error: err.message }, 1) : out({ revoked })));
    });
    return undefined;
  }

  const now = Math.floor(Date.now() / 1000);
  // A plain function: the memcached client rejects an AsyncFunction callback
  // ('Argument "callback" is not a valid Function.').
  const done = function done(err) {
    close().then(() => (err
      ? out({ ok: false, error: err.message || String(err) }, 1)
      : out({ ok: true, key: effectivePrefix + payload[effectiveTokenId], now })));
  };
  if (lifetime !== undefined) blacklist[cmd](payload, lifetime, done);
  else blacklist[cmd](payload, done);
  return undefined;
}

main().catch((e) => out({ ok: false, error: e.message }, 1));
