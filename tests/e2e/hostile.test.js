// Hostile input end to end (issue 7): the real binary under ASan, a real
// redis-server and the fake Bot API. Every case sends something a careless or
// malicious client sends (slow headers, oversized headers and bodies, too many
// connections, invalid UTF-8, deep nesting, huge numbers, empty bodies, wrong
// content types, HTTP/1.0, pipelined requests) and asserts that it is refused
// or answered correctly, that nothing is stored for it, and that the gateway
// keeps serving. The gateway's exit on SIGTERM (code 0, LeakSanitizer on)
// closes the file: a leak or a crash anywhere above fails it.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const h = require('./lib/harness');

const TOKEN = '123456:HOSTILE-token_e2e';
const SECRET = 'hostile-secret_XYZ789';
let stack, redis, tg, gw;
let chat = 7770000 + Math.floor(Math.random() * 1000);

test.before(async () => {
  stack = await h.startTelegramStack({ token: TOKEN, secret: SECRET, aof: false });
  ({ redis, tg, gw } = stack);
});

test.after(() => stack && stack.close());

// Raw bytes on a fresh connection; resolves with everything the server sent
// until it closed the connection or `idle` ms passed without data.
function raw(bytes, { idle = 1500 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(gw.port, '127.0.0.1', () => sock.write(bytes));
    let buf = Buffer.alloc(0);
    let timer;
    const done = (closed) => { clearTimeout(timer); sock.destroy(); resolve({ text: buf.toString('latin1'), closed }); };
    const arm = () => { clearTimeout(timer); timer = setTimeout(() => done(false), idle); };
    sock.on('data', (d) => { buf = Buffer.concat([buf, d]); arm(); });
    sock.on('end', () => done(true));
    sock.on('close', () => done(true));
    sock.on('error', (e) => (e.code === 'ECONNRESET' ? done(true) : reject(e)));
    arm();
  });
}

const statuses = (text) => [...text.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));

function webhookRequest(body, { contentType = 'application/json', secret = SECRET, length } = {}) {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const head = 'POST /webhooks/telegram HTTP/1.1\r\nHost: 127.0.0.1\r\n'
    + (contentType ? `Content-Type: ${contentType}\r\n` : '')
    + `Content-Length: ${length === undefined ? b.length : length}\r\n`
    + `X-Telegram-Bot-Api-Secret-Token: ${secret}\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), b]);
}

async function serving() {
  const r = await fetch(gw.base + '/healthz');
  assert.equal(r.status, 200, 'the gateway still answers');
}

async function answered(text) {
  const id = ++chat;
  const r = await h.postWebhook(gw, 'telegram', h.tgText(id, text), { 'x-telegram-bot-api-secret-token': SECRET });
  assert.equal(r.status, 200);
  return h.waitFor(`the answer to chat ${id}`, async () => {
    const calls = await tg.calls();
    return calls.find((c) => c.method === 'sendMessage' && String(c.body.chat_id) === String(id));
  }, { timeout: 15000 });
}

// Bodies that must be refused with 400 and leave Redis as it was.
const badBodies = [
  ['invalid UTF-8 in a string', Buffer.concat([Buffer.from('{"update_id":5,"message":{"message_id":1,"chat":{"id":1,"type":"private"},"from":{"id":1,"is_bot":false,"first_name":"A"},"date":1,"text":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}}')])],
  ['an overlong UTF-8 encoding', Buffer.concat([Buffer.from('{"update_id":6,"message":{"message_id":1,"chat":{"id":1,"type":"private"},"from":{"id":1,"is_bot":false,"first_name":"A"},"date":1,"text":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}}')])],
  ['deeply nested arrays', Buffer.from('['.repeat(100000) + ']'.repeat(100000))],
  ['deeply nested objects', Buffer.from('{"a":'.repeat(20000) + '1' + '}'.repeat(20000))],
  ['an update_id too large for any integer', Buffer.from('{"update_id":1e400,"message":{"message_id":1,"chat":{"id":1,"type":"private"},"date":1,"text":"hi"}}')],
  ['a chat id of 40 digits', Buffer.from('{"update_id":7,"message":{"message_id":1,"chat":{"id":1234567890123456789012345678901234567890,"type":"private"},"from":{"id":1,"is_bot":false,"first_name":"A"},"date":1,"text":"hi"}}')],
  ['a JSON string instead of an update', Buffer.from('"hello"')],
  ['an empty object', Buffer.from('{}')],
  ['truncated JSON', Buffer.from('{"update_id": 9, "message": {"text": "hi"')],
  ['NUL bytes', Buffer.from('{"update_id":10,\u0000"message":{}}')],
];

for (const [name, body] of badBodies) {
  test(`webhook with ${name}: refused with a reason, nothing stored`, async () => {
    const before = await redis.cli('dbsize');
    const r = await raw(webhookRequest(body));
    const st = statuses(r.text);
    assert.ok(st.length >= 1, `an HTTP answer (got ${JSON.stringify(r.text.slice(0, 200))})`);
    assert.ok(st[0] === 400 || st[0] === 200, `400, or 200 for an update that needs no answer (got ${st[0]})`);
    if (st[0] === 400) assert.match(r.text, /\{"error":"[^"]+"\}/, 'a reason in the body');
    assert.equal(await redis.cli('dbsize'), before, 'nothing stored');
    await serving();
  });
}

test('an empty body (Content-Length: 0) is refused with 400', async () => {
  const r = await raw(webhookRequest(''));
  assert.equal(statuses(r.text)[0], 400);
  await serving();
});

test('a webhook without Content-Length (chunked) is refused with 411', async () => {
  const body = JSON.stringify(h.tgText(++chat, 'hello'));
  const req = 'POST /webhooks/telegram HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n'
    + `X-Telegram-Bot-Api-Secret-Token: ${SECRET}\r\nTransfer-Encoding: chunked\r\n\r\n`
    + `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
  const r = await raw(req);
  assert.equal(statuses(r.text)[0], 411);
  await serving();
});

test('a wrong content type is refused with 415 and nothing is stored', async () => {
  const before = await redis.cli('dbsize');
  for (const ct of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    const r = await raw(webhookRequest(JSON.stringify(h.tgText(++chat, 'hello')), { contentType: ct }));
    assert.equal(statuses(r.text)[0], 415, ct);
  }
  assert.equal(await redis.cli('dbsize'), before);
  await answered('medicaid');   // application/json; charset=utf-8 style still works (fetch sends the plain one)
});

test('headers larger than the server keeps are refused, and the gateway goes on', async () => {
  const big = 'x'.repeat(20000);
  const r = await raw(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${big}\r\n\r\n`);
  const st = statuses(r.text);
  assert.ok(r.closed || st.length, 'answered or closed');
  if (st.length) assert.ok(st[0] >= 400 && st[0] < 500, `a 4xx (got ${st[0]})`);
  await serving();
});

test('a request line with a 10 kB path gets 414 or 4xx, never a crash', async () => {
  const r = await raw(`GET /${'a'.repeat(10000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  const st = statuses(r.text);
  assert.ok(r.closed || st.length);
  if (st.length) assert.ok(st[0] >= 400 && st[0] < 500, `a 4xx (got ${st[0]})`);
  await serving();
});

test('HTTP/1.0 requests are answered and the connection closed', async () => {
  const r = await raw('GET /healthz HTTP/1.0\r\n\r\n', { idle: 5000 });
  assert.equal(statuses(r.text)[0], 200);
  assert.match(r.text, /"status":"ok"/);
  assert.equal(r.closed, true, 'HTTP/1.0 without keep-alive: closed after the answer');
});

test('pipelined requests are answered in order; pipelining after a body is refused, never a spin', async () => {
  const r = await raw('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(2)
    + 'GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { idle: 3000 });
  assert.deepEqual(statuses(r.text), [200, 200, 404]);
  // A webhook followed by more bytes on the same connection: libwebsockets
  // 4.1 cannot serve that, so the gateway hangs up (the platform retries,
  // and a stored webhook is deduplicated); the process must stay idle.
  const cpu = () => {
    const f = require('node:fs').readFileSync(`/proc/${gw.proc.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);   // utime + stime, clock ticks
  };
  const body = JSON.stringify(h.tgText(++chat, 'medicaid'));
  const r2 = await raw('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' + webhookRequest(body).toString('latin1')
    + 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { idle: 3000 });
  const st = statuses(r2.text);
  assert.equal(st[0], 200);
  assert.ok(st.every((s) => s === 200), `each answer that came is a 200 (${st})`);
  const t0 = cpu();
  await h.sleep(2000);
  const used = cpu() - t0;
  assert.ok(used < 100, `the gateway is idle after the refused pipeline (${used} ticks in 2 s)`);
  await serving();
});

test('slow clients (slowloris) are cut off, and others are served meanwhile', async () => {
  const socks = [];
  for (let i = 0; i < 40; i++) {
    const s = net.connect(gw.port, '127.0.0.1');
    s.on('error', () => {});
    s.closedAt = 0;
    s.on('close', () => { s.closedAt = Date.now(); });
    s.write('POST /webhooks/telegram HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    socks.push(s);
  }
  // one more header line every second, never the end of the headers
  const drip = setInterval(() => socks.forEach((s, i) => !s.closedAt && s.write(`X-Drip-${i}: 1\r\n`)), 1000);
  try {
    await answered('medicaid');            // served while 40 clients hold connections
    await h.waitFor('the server closing every slow connection', async () => socks.every((s) => s.closedAt > 0),
      { timeout: 90000, interval: 500 });
  } finally {
    clearInterval(drip);
    socks.forEach((s) => s.destroy());
  }
  await serving();
});

// A raw connection to the gateway: what it received so far, and whether it
// closed.
async function rawConnection() {
  const c = { sock: net.connect(gw.port, '127.0.0.1'), buf: '', closed: false };
  c.sock.on('data', (d) => { c.buf += d.toString('latin1'); });
  c.sock.on('close', () => { c.closed = true; });
  c.sock.on('error', () => {});
  await new Promise((resolve) => c.sock.once('connect', resolve));
  c.healthz = async (what, n) => {
    c.sock.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await h.waitFor(what, async () => statuses(c.buf).length === n, { timeout: 5000, interval: 20 });
  };
  return c;
}

test('an idle keep-alive connection is kept for the next request (past lws\'s default 5 s)', async () => {
  const c = await rawConnection();
  try {
    await c.healthz('the first answer', 1);
    await h.sleep(7000);
    assert.equal(c.closed, false, 'the connection is still open after 7 s idle');
    await c.healthz('the second answer, on the same connection', 2);
    assert.deepEqual(statuses(c.buf), [200, 200]);
  } finally {
    c.sock.destroy();
  }
});

test('a new connection may wait before its first request (past lws\'s default 10 s)', async () => {
  // a client's connection pool may open connections before it has requests
  // for them; lws closed one that had sent nothing for 10 s
  const c = await rawConnection();
  try {
    await h.sleep(12000);
    assert.equal(c.closed, false, 'the connection is still open after 12 s without a request');
    await c.healthz('the answer', 1);
    assert.deepEqual(statuses(c.buf), [200]);
  } finally {
    c.sock.destroy();
  }
});

test('many idle connections at once: new requests are still answered', async () => {
  const socks = await Promise.all(Array.from({ length: 500 }, () => new Promise((resolve) => {
    const s = net.connect(gw.port, '127.0.0.1', () => resolve(s));
    s.on('error', () => resolve(s));
  })));
  try {
    await serving();
    await answered('snap benefits');
  } finally {
    socks.forEach((s) => s.destroy());
  }
});

test('pages carry the security headers; API answers are not cached', async () => {
  for (const p of ['/chat/', '/agent/']) {
    const r = await fetch(gw.base + p);
    if (r.status === 404) continue;        // a page that is not shipped yet
    assert.equal(r.status, 200, p);
    const csp = r.headers.get('content-security-policy') || '';
    assert.match(csp, /default-src 'self'/, p);
    assert.match(csp, /frame-ancestors/, p);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, p);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
    assert.ok(r.headers.get('x-frame-options') || /frame-ancestors/.test(csp), `${p}: frame options`);
    assert.equal(r.headers.get('referrer-policy'), 'no-referrer', p);
  }
  const api = await fetch(gw.base + '/api/v1/agent/queue');
  assert.ok(api.status === 401 || api.status === 404, `unauthenticated API call refused (got ${api.status})`);
  assert.equal(api.headers.get('cache-control'), 'no-store');
  assert.equal(api.headers.get('x-content-type-options'), 'nosniff');
});

test('the logs at the default level carry no secret and no citizen identifier', async () => {
  const id = 918273645;
  await answered('medicaid');
  const r = await h.postWebhook(gw, 'telegram', h.tgText(id, 'snap benefits'), { 'x-telegram-bot-api-secret-token': SECRET });
  assert.equal(r.status, 200);
  await h.waitFor('the answer', async () => (await tg.calls()).find((c) => String(c.body.chat_id) === String(id)));
  await h.postWebhook(gw, 'telegram', h.tgText(id, 'x'), { 'x-telegram-bot-api-secret-token': 'wrong-secret-value' });
  const logs = gw.logs;
  assert.ok(logs.length > 0, 'the gateway logged something');
  for (const secret of [TOKEN, SECRET, TOKEN.split(':')[1], 'wrong-secret-value']) {
    assert.ok(!logs.includes(secret), `a secret in the logs: ${secret}`);
  }
  assert.ok(!logs.includes(String(id)), 'the citizen id in clear in the logs');
  assert.ok(!logs.includes('snap benefits'), 'the citizen text in the logs');
});

test('TLS terminated by the gateway: HTTPS webhooks answered, plain HTTP refused, HSTS on pages', async () => {
  const { execFileSync } = require('node:child_process');
  const https = require('node:https');
  const os = require('node:os');
  const path = require('node:path');
  const dir = require('node:fs').mkdtempSync(path.join(os.tmpdir(), 'cg-tls-'));
  const cert = path.join(dir, 'cert.pem'), key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const ca = require('node:fs').readFileSync(cert);
  const port = await h.freePort();
  const req = (method, p, body, headers = {}) => new Promise((resolve, reject) => {
    const r = https.request({ host: '127.0.0.1', port, method, path: p, ca, headers }, (res) => {
      let b = '';
      res.on('data', (d) => { b += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: b }));
    });
    r.on('error', reject);
    if (body) r.write(body);
    r.end();
  });
  // the harness waits on plain HTTP: start this one by hand and poll over HTTPS
  const cfg = JSON.parse(require('node:fs').readFileSync(gw.cfgPath, 'utf8'));
  cfg.listen = { address: '127.0.0.1', port, tls_cert: cert, tls_key: key };
  const cfgPath = path.join(dir, 'config.json');
  require('node:fs').writeFileSync(cfgPath, JSON.stringify(cfg));
  const { spawn } = require('node:child_process');
  const proc = spawn(h.BIN, ['serve', '--config', cfgPath], { cwd: h.ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let logs = '';
  proc.stderr.on('data', (d) => { logs += d; });
  try {
    await h.waitFor('the TLS gateway', async () => (await req('GET', '/readyz')).status === 200, { timeout: 20000 });
    const id = ++chat;
    const body = JSON.stringify(h.tgText(id, 'medicaid'));
    const r = await req('POST', '/webhooks/telegram', body, { 'content-type': 'application/json',
      'content-length': Buffer.byteLength(body), 'x-telegram-bot-api-secret-token': SECRET });
    assert.equal(r.status, 200);
    await h.waitFor('the answer', async () => (await tg.calls()).find((c) => String(c.body.chat_id) === String(id)),
      { timeout: 15000 });
    const page = await req('GET', '/chat/');
    assert.equal(page.status, 200);
    assert.match(page.headers['strict-transport-security'] || '', /max-age=\d+/);
    const plain = await fetch(`http://127.0.0.1:${port}/healthz`).then((x) => x.status).catch(() => 'refused');
    assert.notEqual(plain, 200, 'plain HTTP is not served on the TLS port');
  } finally {
    proc.kill('SIGTERM');
    const ex = await h.waitExit(proc, 15000);
    assert.equal(ex.code, 0, logs.slice(-2000));
  }
});

// A raw WebSocket client (Node 20 has none built in): enough to send
// fragmented and oversized frames the way a hostile client would.
function wsConnect() {
  const crypto = require('node:crypto');
  return new Promise((resolve, reject) => {
    const sock = net.connect(gw.port, '127.0.0.1', () => {
      sock.write(`GET /chat/ws HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
        + `Sec-WebSocket-Key: ${crypto.randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n`
        + `Sec-WebSocket-Protocol: civicgate-webchat\r\nOrigin: http://127.0.0.1:${gw.port}\r\n\r\n`);
    });
    let buf = Buffer.alloc(0), open = false;
    const frames = [];
    let closeCode = null;
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!open) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!/^HTTP\/1\.1 101/.test(buf.toString('latin1', 0, end))) return reject(new Error(buf.toString('latin1', 0, end)));
        buf = buf.subarray(end + 4);
        open = true;
        resolve(api);
      }
      while (buf.length >= 2) {
        let len = buf[1] & 127, off = 2;
        if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
        if (buf.length < off + len) return;
        const op = buf[0] & 15, payload = buf.subarray(off, off + len);
        buf = buf.subarray(off + len);
        if (op === 8) closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        else if (op === 1) frames.push(JSON.parse(payload.toString('utf8')));
      }
    });
    sock.on('error', () => {});
    const frame = (fin, op, data) => {
      const payload = Buffer.from(data), mask = crypto.randomBytes(4);
      const head = payload.length < 126 ? Buffer.from([(fin ? 0x80 : 0) | op, 0x80 | payload.length])
        : Buffer.from([(fin ? 0x80 : 0) | op, 0x80 | 126, payload.length >> 8, payload.length & 255]);
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
      sock.write(Buffer.concat([head, mask, masked]));
    };
    const api = {
      frames, frame, close: () => sock.destroy(),
      get closeCode() { return closeCode; },
      send: (obj) => frame(true, 1, JSON.stringify(obj)),
    };
  });
}

test('web chat: a message sent in fragments is answered; an oversized fragmented frame closes with 1009', async () => {
  const ws = await wsConnect();
  try {
    ws.send({ type: 'hello', token: '', lang: 'en' });
    await h.waitFor('welcome', async () => ws.frames.find((f) => f.type === 'welcome'));
    const msg = JSON.stringify({ type: 'message', id: 'f1', text: 'medicaid' });
    ws.frame(false, 1, msg.slice(0, 10));
    ws.frame(false, 0, msg.slice(10, 25));
    ws.frame(true, 0, msg.slice(25));
    const reply = await h.waitFor('the reply', async () => ws.frames.find((f) => f.type === 'reply'), { timeout: 15000 });
    assert.match(reply.text, /Medicaid/i);
    // 3 × 4000 bytes in fragments: past the 8192-byte frame limit
    const big = 'x'.repeat(4000);
    ws.frame(false, 1, big);
    ws.frame(false, 0, big);
    ws.frame(true, 0, big);
    await h.waitFor('close 1009', async () => ws.closeCode === 1009, { timeout: 10000 });
  } finally {
    ws.close();
  }
  await serving();
});
