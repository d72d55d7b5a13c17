// Test peer: a real `oidc-provider` (v9) OpenID Provider on 127.0.0.1 that
// issues JWT access tokens for one resource and sends OIDC Back-Channel Logout
// tokens to the proxy under test.
//
//   BACKCHANNEL_LOGOUT_URI=http://127.0.0.1:4567/oidc/backchannel-logout \
//   RESOURCE=http://api.test/ node tests/peers/oidc/idp.mjs
//
// Prints exactly one JSON line on stdout once listening:
//   {"issuer":"http://127.0.0.1:PORT","jwks_uri":"http://127.0.0.1:PORT/jwks","client_id":"app"}
// Everything else (oidc-provider notices included) goes to stderr.
//
// Control endpoints (not part of the provider):
//   POST /_test/login  {"account":"alice"}
//     -> {"access_token","id_token","sid","login","sub","expires_in","token_type"}
//   POST /_test/logout {"login":"<handle>"}
//     -> {"ok":true,"backchannel":"success","status":200,"sid","logout_token"}
//      | {"ok":false,"backchannel":"error","message","status"?,"sid","logout_token"?}
//   GET  /_test/cb     the client's redirect_uri (the login flow never follows it)
//
// Only 127.0.0.1 is ever contacted: the harness's own HTTP calls go to this
// server, and the provider's outgoing fetch (the back-channel POST) refuses any
// host other than a 127.0.0.0/8 literal.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

// oidc-provider prints its NOTICEs with console.info (stdout). stdout is
// reserved for the single JSON line, so route console.log/info to stderr
// before the provider is loaded.
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);

const { default: Provider, errors } = await import('oidc-provider');

const FETCH_TIMEOUT_MS = 5000;
const BACKCHANNEL_WAIT_MS = 10000;
const MAX_BODY_BYTES = 64 * 1024;
const CLIENT_ID = 'app';
const CLIENT_SECRET = crypto.randomBytes(32).toString('base64url');

function fail(message) {
  console.error(`idp.mjs: ${message}`);
  process.exit(2);
}

function isLoopbackHost(hostname) {
  return /^127(\.\d{1,3}){3}$/.test(hostname);
}

function requireEnvUrl(name) {
  const raw = process.env[name];
  if (!raw) fail(`${name} is required`);
  let url;
  try {
    url = new URL(raw);
  } catch {
    fail(`${name} is not an absolute URL: ${raw}`);
  }
  if (url.hash) fail(`${name} must not have a fragment`);
  return url;
}

const backchannelLogoutUri = requireEnvUrl('BACKCHANNEL_LOGOUT_URI');
if (backchannelLogoutUri.protocol !== 'http:' || !isLoopbackHost(backchannelLogoutUri.hostname)) {
  fail(`BACKCHANNEL_LOGOUT_URI must be http://127.x.x.x:PORT/...: ${backchannelLogoutUri.href}`);
}
const resourceUrl = requireEnvUrl('RESOURCE');
// Keep the value exactly as given: it is the `resource` parameter and the
// access token's `aud`. It is only an identifier; nothing ever connects to it.
const RESOURCE = process.env.RESOURCE;
void resourceUrl;

// ---------------------------------------------------------------------------
// Signing key: a fresh RSA 2048 key per run.
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = {
  ...privateKey.export({ format: 'jwk' }),
  kid: `idp-${crypto.randomBytes(8).toString('hex')}`,
  alg: 'RS256',
  use: 'sig',
};

// ---------------------------------------------------------------------------
// Back-channel bookkeeping: what the provider's own fetch sent and got back,
// keyed by the logout token's `sid`, plus waiters for the provider's
// backchannel.success / backchannel.error events.
const sentLogoutTokens = new Map(); // sid -> { logout_token, status?, error? }
const backchannelWaiters = new Map(); // sid -> resolve(result)

function decodeJwtPart(jwt, index) {
  return JSON.parse(Buffer.from(jwt.split('.')[index], 'base64url').toString('utf8'));
}

async function providerFetch(url, options) {
  const target = new URL(url);
  if (!isLoopbackHost(target.hostname)) {
    throw new Error(`test IdP refuses to contact non-loopback host ${target.hostname}`);
  }
  // oidc-provider installs an SSRF-protecting undici dispatcher that destroys
  // sockets to loopback/private addresses. This peer only ever talks to
  // 127.0.0.0/8 (checked above), so use the default dispatcher instead.
  const { dispatcher, ...rest } = options;
  void dispatcher;

  let sid;
  let logoutToken;
  if (options.body instanceof URLSearchParams && options.body.has('logout_token')) {
    logoutToken = options.body.get('logout_token');
    try {
      ({ sid } = decodeJwtPart(logoutToken, 1));
    } catch {
      sid = undefined;
    }
  }
  try {
    const response = await globalThis.fetch(target.href, rest);
    if (sid) sentLogoutTokens.set(sid, { logout_token: logoutToken, status: response.status });
    return response;
  } catch (err) {
    if (sid) sentLogoutTokens.set(sid, { logout_token: logoutToken, error: String(err?.cause?.message ?? err?.message ?? err) });
    throw err;
  }
}

function settleBackchannel(sid, result) {
  const resolve = backchannelWaiters.get(sid);
  if (resolve) {
    backchannelWaiters.delete(sid);
    resolve(result);
  }
}

// ---------------------------------------------------------------------------
// HTTP server first: the issuer needs the OS-chosen port.
let provider;
let providerCallback;
const logins = new Map(); // handle -> { jar, idToken, sid, account }

const server = http.createServer((req, res) => {
  const path = (req.url || '/').split('?')[0];
  if (path.startsWith('/_test/')) {
    handleTest(req, res, path).catch((err) => {
      console.error('idp.mjs: control endpoint failed:', err);
      sendJson(res, 500, { ok: false, error: String(err?.message ?? err) });
    });
    return;
  }
  if (!providerCallback) {
    res.writeHead(503).end();
    return;
  }
  providerCallback(req, res);
});
server.keepAliveTimeout = 1000;
server.headersTimeout = 5000;
server.requestTimeout = 30000;

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', () => {
    server.off('error', reject);
    resolve();
  });
});
const { port } = server.address();
const ISSUER = `http://127.0.0.1:${port}`;
const REDIRECT_URI = `${ISSUER}/_test/cb`;

provider = new Provider(ISSUER, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    scope: 'openid',
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
    backchannel_logout_uri: backchannelLogoutUri.href,
    backchannel_logout_session_required: true,
  }],
  jwks: { keys: [signingJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id };
      },
    };
  },
  features: {
    devInteractions: { enabled: true },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = `<!DOCTYPE html><html><head><title>Logout</title></head><body>${form}`
          + '<button type="submit" form="op.logoutForm" value="yes" name="logout">Yes</button>'
          + '</body></html>';
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = '<!DOCTYPE html><html><head><title>Signed out</title></head><body>signed out</body></html>';
      },
    },
    resourceIndicators: {
      enabled: true,
      async defaultResource(ctx, client, oneOf) {
        return oneOf ?? undefined;
      },
      async useGrantedResource() {
        return true;
      },
      async getResourceServerInfo(ctx, resourceIndicator) {
        if (resourceIndicator !== RESOURCE) {
          throw new errors.InvalidTarget();
        }
        return {
          scope: 'api:read',
          audience: RESOURCE,
          accessTokenTTL: 3600,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  // The provider session's per-client `sid` (the one the logout token will
  // carry) is stored on the AccessToken model when the client has
  // backchannel_logout_session_required; copy it into the JWT.
  async extraTokenClaims(ctx, token) {
    return token.sid ? { sid: token.sid } : undefined;
  },
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
  },
  fetch: providerFetch,
});

provider.on('backchannel.success', (ctx, client, accountId, sid) => {
  const sent = sentLogoutTokens.get(sid) ?? {};
  settleBackchannel(sid, {
    ok: true, backchannel: 'success', status: sent.status, sid, logout_token: sent.logout_token,
  });
});
provider.on('backchannel.error', (ctx, err, client, accountId, sid) => {
  const sent = sentLogoutTokens.get(sid) ?? {};
  const status = err?.response?.status ?? sent.status;
  const cause = err?.cause?.message ? ` (${err.cause.message})` : '';
  console.error(`idp.mjs: back-channel logout to ${client?.backchannelLogoutUri} failed: ${err?.message}${cause}`);
  settleBackchannel(sid, {
    ok: false,
    backchannel: 'error',
    message: `${err?.message ?? err}${cause}`,
    ...(status !== undefined ? { status } : {}),
    sid,
    ...(sent.logout_token ? { logout_token: sent.logout_token } : {}),
  });
});
provider.on('server_error', (ctx, err) => console.error('idp.mjs: provider server_error:', err));

providerCallback = provider.callback();

// ---------------------------------------------------------------------------
// A tiny per-login cookie jar (host is always this server).
class CookieJar {
  #cookies = new Map(); // `${name}\0${path}` -> { name, value, path }

  store(response, requestPath) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = requestPath.replace(/\/[^/]*$/, '') || '/';
      let expired = value === '';
      for (const attr of attrs) {
        const [k, ...v] = attr.split('=');
        const key = k.trim().toLowerCase();
        const val = v.join('=').trim();
        if (key === 'path') path = val || '/';
        if (key === 'max-age' && Number(val) <= 0) expired = true;
        if (key === 'expires' && Date.parse(val) <= Date.now()) expired = true;
      }
      const id = `${name}\0${path}`;
      if (expired) this.#cookies.delete(id);
      else this.#cookies.set(id, { name, value, path });
    }
  }

  header(requestPath) {
    const matching = [...this.#cookies.values()].filter(({ path }) => (
      path === '/' || requestPath === path || requestPath.startsWith(path.endsWith('/') ? path : `${path}/`)
    ));
    matching.sort((a, b) => b.path.length - a.path.length);
    return matching.map(({ name, value }) => `${name}=${value}`).join('; ');
  }
}

async function browserFetch(jar, url, { method = 'GET', form, headers = {} } = {}) {
  const target = new URL(url, ISSUER);
  if (target.origin !== ISSUER) {
    throw new Error(`refusing to follow to ${target.origin}`);
  }
  const cookie = jar.header(target.pathname);
  const init = {
    method,
    redirect: 'manual',
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    headers: { ...headers, ...(cookie ? { cookie } : {}) },
  };
  if (form) {
    init.body = new URLSearchParams(form);
  }
  const response = await fetch(target.href, init);
  jar.store(response, target.pathname);
  const body = await response.text();
  return { response, body, url: target };
}

function formFrom(html) {
  const form = html.match(/<form\b[^>]*>([\s\S]*?)<\/form>/i);
  if (!form) return undefined;
  const action = form[0].match(/\baction="([^"]*)"/i)?.[1];
  const fields = {};
  for (const input of form[1].matchAll(/<input\b[^>]*>/gi)) {
    const name = input[0].match(/\bname="([^"]*)"/i)?.[1];
    const value = input[0].match(/\bvalue="([^"]*)"/i)?.[1] ?? '';
    if (name) fields[name] = value;
  }
  const unescape = (s) => s.replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&#x2F;/g, '/');
  return { action: action && unescape(action), fields };
}

// Runs one real authorization-code flow against this provider, like a
// browser (its own cookie jar) plus an RP (code exchange).
async function runLogin(account) {
  const jar = new CookieJar();
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const state = crypto.randomBytes(12).toString('base64url');
  const nonce = crypto.randomBytes(12).toString('base64url');

  const discovery = await (await fetch(`${ISSUER}/.well-known/openid-configuration`, {
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  })).json();

  const auth = new URL(discovery.authorization_endpoint);
  auth.search = new URLSearchParams({
    client_id: CLIENT_ID,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: REDIRECT_URI,
    resource: RESOURCE,
    state,
    nonce,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();

  let next = { url: auth.href };
  let code;
  for (let step = 0; step < 20 && !code; step += 1) {
    const { response, body, url } = await browserFetch(jar, next.url, next);
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location) {
      const to = new URL(location, url);
      if (to.href.startsWith(REDIRECT_URI)) {
        if (to.searchParams.get('error')) {
          throw new Error(`authorization error: ${to.searchParams.get('error')}: ${to.searchParams.get('error_description')}`);
        }
        if (to.searchParams.get('state') !== state) throw new Error('state mismatch');
        code = to.searchParams.get('code');
        break;
      }
      next = { url: to.href };
      continue;
    }
    if (response.status !== 200) {
      throw new Error(`unexpected ${response.status} from ${url.pathname}: ${body.slice(0, 300)}`);
    }
    const form = formFrom(body);
    if (!form?.action) throw new Error(`no form at ${url.pathname}: ${body.slice(0, 300)}`);
    const fields = { ...form.fields };
    if (fields.prompt === 'login') {
      fields.login = account;
      fields.password = 'any';
    } else if (fields.prompt !== 'consent') {
      throw new Error(`unexpected interaction form at ${url.pathname}: ${JSON.stringify(fields)}`);
    }
    next = { url: new URL(form.action, url).href, method: 'POST', form: fields };
  }
  if (!code) throw new Error('authorization flow did not reach the redirect_uri');

  const tokenResponse = await fetch(discovery.token_endpoint, {
    method: 'POST',
    redirect: 'manual',
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64')}`,
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code,
      redirect_uri: REDIRECT_URI,
      code_verifier: verifier,
      resource: RESOURCE,
    }),
  });
  const tokens = await tokenResponse.json();
  if (tokenResponse.status !== 200) {
    throw new Error(`token endpoint ${tokenResponse.status}: ${JSON.stringify(tokens)}`);
  }
  const idClaims = decodeJwtPart(tokens.id_token, 1);
  const atClaims = decodeJwtPart(tokens.access_token, 1);
  if (!idClaims.sid) throw new Error('id_token has no sid');
  if (atClaims.sid !== idClaims.sid) {
    throw new Error(`access token sid ${atClaims.sid} != id_token sid ${idClaims.sid}`);
  }
  if (idClaims.nonce !== nonce) throw new Error('nonce mismatch');

  const handle = crypto.randomBytes(16).toString('base64url');
  logins.set(handle, {
    jar, idToken: tokens.id_token, sid: idClaims.sid, account, endSession: discovery.end_session_endpoint,
  });
  return {
    access_token: tokens.access_token,
    id_token: tokens.id_token,
    sid: idClaims.sid,
    login: handle,
    sub: idClaims.sub,
    token_type: tokens.token_type,
    expires_in: tokens.expires_in,
  };
}

// RP-initiated logout for one login, as that login's browser would do it.
async function runLogout(handle) {
  const login = logins.get(handle);
  if (!login) return { status: 404, body: { ok: false, error: 'unknown login handle' } };
  logins.delete(handle);

  const settled = new Promise((resolve) => {
    backchannelWaiters.set(login.sid, resolve);
  });
  let timer;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve({
      ok: false, backchannel: 'timeout', message: `no back-channel event for sid ${login.sid} within ${BACKCHANNEL_WAIT_MS} ms`, sid: login.sid,
    }), BACKCHANNEL_WAIT_MS);
  });

  try {
    const endSession = new URL(login.endSession);
    endSession.search = new URLSearchParams({ id_token_hint: login.idToken, client_id: CLIENT_ID }).toString();
    const page = await browserFetch(login.jar, endSession.href);
    if (page.response.status !== 200) {
      throw new Error(`end_session ${page.response.status}: ${page.body.slice(0, 300)}`);
    }
    const form = formFrom(page.body);
    if (!form?.action || !form.fields.xsrf) throw new Error(`no logout form: ${page.body.slice(0, 300)}`);
    const confirm = await browserFetch(login.jar, new URL(form.action, page.url).href, {
      method: 'POST',
      form: { ...form.fields, logout: 'yes' },
    });
    if (confirm.response.status !== 303) {
      throw new Error(`end_session confirm ${confirm.response.status}: ${confirm.body.slice(0, 300)}`);
    }
    const result = await Promise.race([settled, timeout]);
    return { status: 200, body: result };
  } finally {
    clearTimeout(timer);
    backchannelWaiters.delete(login.sid);
  }
}

// ---------------------------------------------------------------------------
function sendJson(res, status, body) {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new Error('request body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

async function handleTest(req, res, path) {
  if (path === '/_test/cb' && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    return;
  }
  if (req.method !== 'POST' || (path !== '/_test/login' && path !== '/_test/logout')) {
    sendJson(res, 404, { ok: false, error: 'not found' });
    return;
  }
  let input;
  try {
    input = await readJson(req);
  } catch (err) {
    sendJson(res, 400, { ok: false, error: `bad JSON body: ${err.message}` });
    return;
  }
  if (path === '/_test/login') {
    if (typeof input.account !== 'string' || !input.account) {
      sendJson(res, 400, { ok: false, error: 'body must be {"account":"<non-empty string>"}' });
      return;
    }
    sendJson(res, 200, await runLogin(input.account));
    return;
  }
  if (typeof input.login !== 'string' || !input.login) {
    sendJson(res, 400, { ok: false, error: 'body must be {"login":"<handle from /_test/login>"}' });
    return;
  }
  const { status, body } = await runLogout(input.login);
  sendJson(res, status, body);
}

// ---------------------------------------------------------------------------
// Announce: the jwks_uri is whatever the provider's discovery document says.
let jwksUri;
{
  const response = await fetch(`${ISSUER}/.well-known/openid-configuration`, {
    signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
  });
  if (response.status !== 200) fail(`discovery answered ${response.status}`);
  ({ jwks_uri: jwksUri } = await response.json());
}
process.stdout.write(`${JSON.stringify({ issuer: ISSUER, jwks_uri: jwksUri, client_id: CLIENT_ID })}\n`);

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`idp.mjs: ${signal}, shutting down`);
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
