// What works without credentials (issue 7, docs/security.md): every route of
// the JSON API listed in docs/openapi.yaml is called by a stranger — no
// token, a made-up token, a malformed Authorization header — and must be
// refused (401), except the agents' login, which must not let anyone in
// without a valid password. Routes are read from the OpenAPI file, so a
// route added there is tested here without an edit; a route that exists in
// the gateway but not in the file is caught by the "unknown routes" case
// only if it answers 200 to a stranger, which is what matters.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./lib/harness');

let redis, gw;

test.before(async () => {
  redis = await h.startRedis({ aof: false });
  gw = await h.startGateway({ redisUrl: redis.url });
  await gw.ready();
});

test.after(async () => {
  const r = gw && await gw.stop();
  if (redis) await redis.stop();
  if (r) assert.equal(r.code, 0, gw.logs.slice(-2000));
});

// [method, path] from docs/openapi.yaml (paths relative to /api/v1)
function routes() {
  const y = fs.readFileSync(path.join(h.ROOT, 'docs/openapi.yaml'), 'utf8');
  const out = [];
  let cur = null;
  let inPaths = false;
  for (const line of y.split('\n')) {
    if (/^paths:/.test(line)) { inPaths = true; continue; }
    if (inPaths && /^\S/.test(line)) inPaths = false;
    if (!inPaths) continue;
    const p = /^ {2}(\/[^:]+):\s*$/.exec(line);
    if (p) { cur = p[1]; continue; }
    const m = /^ {4}(get|post|put|patch|delete):/.exec(line);
    if (m && cur) out.push([m[1].toUpperCase(), cur]);
  }
  return out;
}

const fill = (p) => p.replace(/\{channel\}/g, 'telegram').replace(/\{id\}/g, 'c_1795743555660_ab12')
  .replace(/\{[^}]+\}/g, 'x');

test('the OpenAPI file lists the agents\' and the admins\' routes', () => {
  const r = routes();
  assert.ok(r.length >= 15, `routes found: ${r.length}`);
  assert.ok(r.some(([, p]) => p.startsWith('/agent/')));
  assert.ok(r.some(([, p]) => p.startsWith('/admin/')));
});

for (const auth of [null, 'Bearer made-up-token-0123456789abcdef0123456789abcdef', 'Basic YWxpY2U6ZGVtbw==', 'Bearer ']) {
  test(`every API route refuses a stranger (Authorization: ${auth === null ? 'none' : JSON.stringify(auth.slice(0, 12))})`, async () => {
    const seen = [];
    for (const [method, p] of routes()) {
      const headers = { 'content-type': 'application/json' };
      if (auth !== null) headers.authorization = auth;
      const body = method === 'GET' || method === 'DELETE' ? undefined
        : p === '/agent/login' ? JSON.stringify({ name: 'alice', password: 'not-the-password' }) : '{}';
      const res = await fetch(`${gw.base}/api/v1${fill(p)}`, { method, headers, body });
      const text = await res.text();
      seen.push(`${method} ${p} → ${res.status}`);
      if (p === '/agent/login') {
        assert.notEqual(res.status, 200, `${method} ${p}: no session without a valid password`);
        assert.doesNotMatch(text, /"token"/);
      } else {
        assert.equal(res.status, 401, `${method} ${p} answered ${res.status}: ${text.slice(0, 200)}`);
        assert.match(text, /"error"/);
      }
      assert.equal(res.headers.get('cache-control'), 'no-store');
    }
    assert.ok(seen.length >= 15, seen.join('\n'));
  });
}

test('unknown routes and methods under /api/v1 are 404/405, never 200', async () => {
  for (const [method, p] of [['GET', '/api/v1/'], ['GET', '/api/v1/admin'], ['GET', '/api/v1/admin/citizens'],
    ['PUT', '/api/v1/agent/me'], ['GET', '/api/v1/agent/cases/x/claim'], ['POST', '/api/v1/admin/intents'],
    ['GET', '/api/v1/../metrics'], ['GET', '/api/v1/agent/cases/%2e%2e/claim']]) {
    const res = await fetch(gw.base + p, { method });
    assert.ok([401, 404, 405].includes(res.status), `${method} ${p} → ${res.status}`);
  }
});

test('metrics and the agents\' socket are not public', async () => {
  // /metrics from a loopback client without a token is allowed by design
  // (docs/configuration.md); with metrics.token set a token is required,
  // which lifecycle.test.js covers. The socket: hello without auth → 4401.
  const ws = require('./lib/wsclient.js');
  const c = await ws.connect({ port: gw.port, path: '/agent/ws', protocol: 'civicgate-agent', origin: gw.base });
  c.send({ type: 'auth', token: 'made-up' });
  const closed = await c.closed;
  assert.equal(closed.code, 4401);
});
