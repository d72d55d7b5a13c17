// Self-check for blacklist.mjs and jwtredis.mjs, without Rust:
//   npm ci --prefix tests/peers/compat && node tests/peers/compat/selfcheck.mjs
//
// Starts its own redis-server and memcached on free loopback ports (Debian
// packages redis-server, memcached), runs the two scripts as child processes
// as the Rust tests do, and checks the records they leave against what
// FORMATS.md describes: express-jwt-blacklist's Redis hash / memcached JSON
// item, its same-second purge rule, jwt-redis's "true" string per jti with an
// exp-based TTL, verify/destroy. Exits 0 on success, 1 with a message
// otherwise. Loopback only, bounded in time.

import { spawn, execFile } from 'node:child_process';
import { createServer, connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createClient } from 'redis';

const OVERALL_TIMEOUT_MS = 60000;
const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const children = [];
let passed = 0;

function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
  passed += 1;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port) {
  for (let i = 0; i < 100; i += 1) {
    const ok = await new Promise((resolve) => {
      const c = connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${port} never opened`);
}

function start(cmd, args) {
  const child = spawn(cmd, args, { stdio: 'ignore' });
  children.push(child);
  return child;
}

function run(script, args, env = {}) {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [here(script), ...args], {
      env: { ...process.env, ...env }, timeout: 20000,
    }, (err, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() || '';
      let json;
      try { json = JSON.parse(line); } catch { return reject(new Error(`${script} ${args[0]}: no JSON (${stderr})`)); }
      return resolve({ code: err ? err.code : 0, json });
    });
  });
}

function memcachedGet(port, key) {
  return new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1', () => c.write(`mg ${key} f t v\r\n`));
    let buf = '';
    c.on('data', (d) => {
      buf += d.toString('utf8');
      const m = /^VA (\d+) f(\d+) t(-?\d+)\r\n/.exec(buf);
      if (buf.startsWith('EN\r\n')) { c.destroy(); resolve(null); }
      else if (m && buf.length >= m[0].length + Number(m[1]) + 2) {
        c.destroy();
        resolve({ flags: Number(m[2]), ttl: Number(m[3]), value: buf.slice(m[0].length, m[0].length + Number(m[1])) });
      }
    });
    c.on('error', reject);
  });
}

const nowS = () => Math.floor(Date.now() / 1000);

async function blacklistChecks(store, hp, inspect) {
  const bl = (cmd, payload, extra = [], opts = ['-', '-', '-']) => run('blacklist.mjs', [cmd, store, hp, ...opts, JSON.stringify(payload), ...extra]);
  const t = nowS();
  const tok = { sub: `user-${store}`, iat: t - 30, exp: t + 870 };

  let r = await bl('isRevoked', tok);
  check(r.code === 0 && r.json.revoked === false, `${store}: no record → not revoked`);
  r = await bl('revoke', tok);
  check(r.code === 0 && r.json.ok && r.json.key === `jwt-blacklist:user-${store}`, `${store}: revoke ok, key jwt-blacklist:<sub>`);
  let rec = await inspect(r.json.key);
  check(rec.revoke === String(tok.iat) || JSON.stringify(rec.revoke) === JSON.stringify([tok.iat]), `${store}: revoke holds iat: ${JSON.stringify(rec)}`);
  check(rec.ttl > 890 && rec.ttl <= 900, `${store}: TTL is exp - iat (900): ${rec.ttl}`);
  check((await bl('isRevoked', tok)).json.revoked === true, `${store}: revoked token`);
  check((await bl('isRevoked', { ...tok, iat: tok.iat + 1 })).json.revoked === false, `${store}: other iat of the same sub not revoked`);

  const before = nowS();
  r = await bl('purge', { sub: 'purged', iat: before, exp: before + 600 });
  check(r.code === 0, `${store}: purge ok`);
  rec = await inspect('jwt-blacklist:purged');
  const purge = Number(rec.purge);
  check(purge === r.json.now - 1 || purge === r.json.now, `${store}: purge = call second - 1 (${purge} vs ${r.json.now})`);
  check((await bl('isRevoked', { sub: 'purged', iat: purge })).json.revoked === true, `${store}: iat == purge value → revoked`);
  check((await bl('isRevoked', { sub: 'purged', iat: purge + 1 })).json.revoked === false, `${store}: iat == purge second (purge value + 1) → not revoked`);

  r = await bl('revoke', { jti: 's-1', iat: t, exp: t + 60 }, [], ['app:', 'jti', '-']);
  check(r.json.key === 'app:s-1', `${store}: keyPrefix + tokenId claim`);
  r = await bl('revoke', { sub: 'idx', sid: 'sess-a', iat: t, exp: t + 60 }, [], ['-', '-', 'sid']);
  check((await bl('isRevoked', { sub: 'idx', sid: 'sess-a', iat: t + 99 }, [], ['-', '-', 'sid'])).json.revoked === true, `${store}: indexBy sid`);
  check((await bl('isRevoked', { sub: 'idx', sid: 'sess-b', iat: t }, [], ['-', '-', 'sid'])).json.revoked === false, `${store}: indexBy sid, other session`);
  r = await bl('isRevoked', { iat: t });
  check(r.code === 1 && /missing tokenId/.test(r.json.error), `${store}: missing sub is an error`);
}

async function main() {
  const redisPort = await freePort();
  const mcPort = await freePort();
  start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
  start('memcached', ['-p', String(mcPort), '-l', '127.0.0.1', '-U', '0', ...(process.getuid && process.getuid() === 0 ? ['-u', 'root'] : [])]);
  await waitForPort(redisPort);
  await waitForPort(mcPort);
  const redis = createClient({ socket: { host: '127.0.0.1', port: redisPort } });
  await redis.connect();
  const hp = `127.0.0.1:${redisPort}`;

  await blacklistChecks('redis', hp, async (key) => {
    check(await redis.type(key) === 'hash', `redis: ${key} is a hash`);
    return { ...(await redis.hGetAll(key)), ttl: await redis.ttl(key) };
  });
  await blacklistChecks('memcached', `127.0.0.1:${mcPort}`, async (key) => {
    const item = await memcachedGet(mcPort, key);
    check(item && item.flags === 2, `memcached: ${key} stored as JSON (flags 2): ${JSON.stringify(item)}`);
    return { ...JSON.parse(item.value), ttl: item.ttl };
  });

  // jwt-redis
  let r = await run('jwtredis.mjs', ['sign', hp, 's3cret', '{"sub":"alice"}', '600']);
  check(r.code === 0 && /^[A-Za-z0-9]{10}$/.test(r.json.jti), `jwt-redis: generated jti is 10 alphanumerics: ${r.json.jti}`);
  check(r.json.key === `jwt_label:${r.json.jti}`, 'jwt-redis: key jwt_label:<jti>');
  check(await redis.get(r.json.key) === 'true', 'jwt-redis: value "true"');
  const ttl = await redis.ttl(r.json.key);
  check(ttl >= 598 && ttl <= 600, `jwt-redis: TTL floor(exp - now): ${ttl}`);
  const { token, jti } = r.json;
  check((await run('jwtredis.mjs', ['verify', hp, 's3cret', token])).json.valid === true, 'jwt-redis: valid while the key exists');
  r = await run('jwtredis.mjs', ['destroy', hp, 's3cret', token]);
  check(r.json.destroyed === true && r.json.jti === jti, 'jwt-redis: destroy by token → DEL');
  check(await redis.exists(`jwt_label:${jti}`) === 0, 'jwt-redis: key gone');
  r = await run('jwtredis.mjs', ['verify', hp, 's3cret', token]);
  check(r.json.valid === false && r.json.reason === 'TokenDestroyedError', 'jwt-redis: destroyed');
  r = await run('jwtredis.mjs', ['sign', hp, 's3cret', '{"jti":"mine"}']);
  check(r.json.jti === 'mine' && await redis.ttl('jwt_label:mine') === -1, 'jwt-redis: own jti, no exp → no TTL');
  r = await run('jwtredis.mjs', ['sign', hp, 's3cret', '{"jti":"p"}', '60'], { JWTR_PREFIX: 'app:' });
  check(await redis.get('app:p') === 'true', 'jwt-redis: prefix option');

  await redis.quit();
  console.log(`compat selfcheck: ${passed} checks passed`);
}

const overall = setTimeout(() => { console.error('compat selfcheck: timeout'); cleanup(1); }, OVERALL_TIMEOUT_MS);
function cleanup(code) {
  clearTimeout(overall);
  const exited = children.filter((c) => c.exitCode === null && c.signalCode === null)
    .map((c) => new Promise((resolve) => { c.once('exit', resolve); c.kill('SIGTERM'); }));
  const limit = new Promise((resolve) => setTimeout(resolve, 3000));
  Promise.race([Promise.all(exited), limit]).then(() => process.exit(code));
}
main().then(() => cleanup(0), (e) => { console.error(`compat selfcheck: ${e.message}`); cleanup(1); });
