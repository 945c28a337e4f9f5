// harness.js: real parts for end-to-end tests.
//
// startRedis()    a real redis-server on a free loopback port, data in a temp dir
// startFakeTelegram()  tests/e2e/fake-telegram.js (the Bot API as documented,
//                 with failure injection through its /_fail control route)
// startGateway()  the real civicgate binary (CIVICGATE_BIN) with a config
//                 written for the test; waits for /readyz
// startTelegramStack()  the three above with the gateway's Telegram channel
//                 pointed at the fake Bot API, ready: say()/press() send signed
//                 updates, sent()/waitSent() read what reached the Bot API,
//                 close() stops all three and asserts the gateway exited 0
// launchChromium()  Debian's chromium through playwright-core (never a
//                 downloaded browser)
// apiCall()       one call of the gateway's JSON API, bearer token optional
// tgSend()        a signed Telegram text update that must be acknowledged
// Everything listens on 127.0.0.1 and is stopped by the returned stop().
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const ROOT = process.env.CIVICGATE_ROOT || path.resolve(__dirname, '../../..');
const BIN = process.env.CIVICGATE_BIN || path.join(ROOT, 'build/civicgate');

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, { timeout = 10000, interval = 50 } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(interval);
  }
  throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

function waitExit(child, timeout = 10000) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('process did not exit')), timeout);
    child.once('exit', (code, signal) => { clearTimeout(t); resolve({ code, signal }); });
  });
}

async function redisCli(port, ...args) {
  return new Promise((resolve, reject) => {
    const p = spawn('redis-cli', ['-p', String(port), '--no-raw', ...args]);
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.on('error', reject);
    p.on('exit', () => resolve(out.trim()));
  });
}

async function startRedis({ port, dir, aof = true } = {}) {
  port = port || await freePort();
  dir = dir || fs.mkdtempSync(path.join(os.tmpdir(), 'cg-redis-'));
  const args = ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '',
    '--appendonly', aof ? 'yes' : 'no', '--appendfsync', 'everysec', '--daemonize', 'no'];
  const proc = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitFor('redis', async () => (await redisCli(port, 'ping')) === 'PONG');
  const r = {
    port, dir, proc,
    url: `redis://127.0.0.1:${port}/0`,
    cli: (...a) => redisCli(port, ...a),
    async stop() {
      if (r.proc.exitCode === null && r.proc.signalCode === null) {
        r.proc.kill('SIGTERM');
        await waitExit(r.proc);
      }
    },
    async restart() {
      await r.stop();
      const again = await startRedis({ port, dir, aof });
      r.proc = again.proc;
    },
  };
  return r;
}

async function startFakeTelegram(token) {
  const proc = spawn(process.execPath, [path.join(__dirname, '..', 'fake-telegram.js'), '0', '--token', token],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        try { resolve(JSON.parse(buf.slice(0, nl)).port); } catch (e) { reject(e); }
      }
    });
    proc.on('exit', (c) => reject(new Error(`fake telegram exited ${c}`)));
  });
  const base = `http://127.0.0.1:${port}`;
  const ctl = async (method, p, body) => {
    const res = await fetch(base + p, {
      method, headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return res.json();
  };
  return {
    port, base, proc,
    calls: async () => {
      const c = await ctl('GET', '/_calls');
      return Array.isArray(c) ? c : c.calls;
    },
    reset: () => ctl('POST', '/_reset', {}),
    fail: (spec) => ctl('POST', '/_fail', spec),
    async stop() { proc.kill('SIGTERM'); await waitExit(proc).catch(() => {}); },
  };
}

async function startGateway({ redisUrl, telegram, channels = {}, port, intentsDir, extra = {}, env = {} } = {}) {
  port = port || await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-gw-'));
  const cfg = {
    listen: { address: '127.0.0.1', port },
    redis: { url: redisUrl },
    intents: { dir: intentsDir || path.join(ROOT, 'intents') },
    www: { dir: path.join(ROOT, 'gateway/www') },
    channels: {
      webchat: { enabled: true, allowed_origins: [`http://127.0.0.1:${port}`, `http://localhost:${port}`] },
    },
    ...extra,
  };
  if (telegram) cfg.channels.telegram = telegram;
  Object.assign(cfg.channels, channels);
  const cfgPath = path.join(dir, 'config.json');
  fs.writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  const gw = {
    port, cfgPath, base: `http://127.0.0.1:${port}`, logs: '',
    start() {
      gw.proc = spawn(BIN, ['serve', '--config', cfgPath], {
        cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', ...env },
      });
      gw.proc.stderr.on('data', (d) => { gw.logs += d; });
      return waitFor('gateway /healthz', async () => (await fetch(gw.base + '/healthz')).status === 200,
        { timeout: 20000 });
    },
    async ready() {
      return waitFor('gateway /readyz', async () => (await fetch(gw.base + '/readyz')).status === 200,
        { timeout: 20000 });
    },
    async stop(signal = 'SIGTERM') {
      if (!gw.proc || gw.proc.exitCode !== null || gw.proc.signalCode !== null) return null;
      gw.proc.kill(signal);
      return waitExit(gw.proc, 15000);
    },
    kill() { return gw.stop('SIGKILL'); },
  };
  await gw.start();
  return gw;
}

// Redis, the fake Bot API and the gateway with Telegram configured (token,
// secret; aof: Redis persisting; extra: more gateway configuration). A part
// that does not come up stops the ones started before it.
async function startTelegramStack({ token, secret, aof = true, extra = {} } = {}) {
  const redis = await startRedis({ aof });
  let tg, gw;
  try {
    tg = await startFakeTelegram(token);
    gw = await startGateway({
      redisUrl: redis.url,
      telegram: { bot_token: token, webhook_secret: secret, api_base: tg.base },
      extra,
    });
    await gw.ready();
  } catch (e) {
    if (gw) await gw.stop();
    if (tg) await tg.stop();
    await redis.stop();
    throw e;
  }
  const signed = { 'x-telegram-bot-api-secret-token': secret };
  const stack = {
    redis, tg, gw,
    // A Telegram citizen writes to the bot (a webhook as Telegram sends it).
    async say(chatId, text, opts = {}) {
      await tgSend(gw, secret, chatId, text, opts);
    },
    async press(chatId, data, opts = {}) {
      const r = await postWebhook(gw, 'telegram', tgCallback(chatId, data, opts), signed);
      if (r.status !== 200) throw new Error(`webhook answered ${r.status}: ${r.body}`);
    },
    // sendMessage calls the gateway made to chatId, oldest first.
    async sent(chatId) {
      return (await tg.calls()).filter((c) => c.method === 'sendMessage' && String(c.body.chat_id) === String(chatId));
    },
    async waitSent(chatId, what, pred, timeout = 15000) {
      return waitFor(what, async () => (await stack.sent(chatId)).find(pred) || null, { timeout });
    },
    // The gateway's exit result (null when it had already exited).
    async stop() {
      const r = await gw.stop();
      await tg.stop();
      await redis.stop();
      return r;
    },
    // For test.after: a crash or a leak (LeakSanitizer) on SIGTERM fails.
    async close() {
      const r = await stack.stop();
      if (r) assert.equal(r.code, 0, `gateway exit code on SIGTERM (logs:\n${gw.logs.slice(-3000)})`);
    },
  };
  return stack;
}

function launchChromium() {
  const { chromium } = require('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

// A Telegram update as the Bot API sends it to a webhook.
let nextUpdate = 100000 + Math.floor(Math.random() * 1000);
function tgText(chatId, text, { updateId, lang = 'en', first = 'Ana' } = {}) {
  const id = updateId || nextUpdate++;
  return {
    update_id: id,
    message: {
      message_id: id % 100000,
      from: { id: chatId, is_bot: false, first_name: first, language_code: lang },
      chat: { id: chatId, first_name: first, type: 'private' },
      date: Math.floor(Date.now() / 1000),
      text,
    },
  };
}

function tgCallback(chatId, data, { updateId, lang = 'en' } = {}) {
  const id = updateId || nextUpdate++;
  return {
    update_id: id,
    callback_query: {
      id: String(4000000000 + id),
      from: { id: chatId, is_bot: false, first_name: 'Ana', language_code: lang },
      message: {
        message_id: 77, date: Math.floor(Date.now() / 1000),
        chat: { id: chatId, type: 'private', first_name: 'Ana' },
        from: { id: 999, is_bot: true, first_name: 'civicgate' }, text: 'earlier reply',
      },
      chat_instance: '-1234567890',
      data,
    },
  };
}

async function postWebhook(gw, channel, body, headers = {}) {
  const res = await fetch(`${gw.base}/webhooks/${channel}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text };
}

// A signed Telegram text update from chat id; throws unless the gateway
// answered 200 (stored).
async function tgSend(gw, secret, id, text, opts = {}) {
  const r = await postWebhook(gw, 'telegram', tgText(id, text, opts), { 'x-telegram-bot-api-secret-token': secret });
  if (r.status !== 200) throw new Error(`webhook for ${id}: ${r.status} ${r.body}`);
  return r;
}

// One call of the JSON API: {status, json (null when the body is not JSON),
// text}. A POST without a body sends an empty one.
async function apiCall(gw, method, p, { token, body, headers = {} } = {}) {
  const hd = { ...headers };
  if (token) hd.authorization = `Bearer ${token}`;
  if (body !== undefined) hd['content-type'] = 'application/json';
  const res = await fetch(gw.base + p, {
    method, headers: hd, body: body === undefined ? (method === 'POST' ? '' : undefined) : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, text };
}

// A reload refused for a key renamed in file (text: the file as it was, key
// its old name, typo the new one): 422, "refused", the version still
// serving, and the diagnostic at the key's line and column (path:line:column)
// naming the typo. Returns the diagnostic.
function assertRefusedAt(r, { version, file, text, key, typo }) {
  assert.equal(r.status, 422, r.text);
  assert.equal(r.json.result, 'refused');
  assert.equal(r.json.version, version, 'the version still serving');
  const e = r.json.errors.find((x) => x.path === file);
  assert.ok(e, r.text);
  const lines = text.split('\n');
  const line = lines.findIndex((l) => l.includes(`"${key}"`)) + 1;
  assert.equal(e.line, line);
  assert.equal(e.column, lines[line - 1].indexOf(`"${key}"`) + 1);
  assert.match(e.message, new RegExp(typo));
  return e;
}

module.exports = {
  ROOT, BIN, freePort, sleep, waitFor, waitExit, startRedis, startFakeTelegram, startGateway,
  startTelegramStack, launchChromium, tgText, tgCallback, postWebhook, tgSend, apiCall, assertRefusedAt,
};
