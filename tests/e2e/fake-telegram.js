#!/usr/bin/env node
/*
 * fake-telegram.js: a stand-in for the Telegram Bot API (https://api.telegram.org)
 * for end-to-end tests and benchmarks. Node 20, no dependencies, listens on
 * 127.0.0.1 only.
 *
 * As a program:  node tests/e2e/fake-telegram.js [port] [--token T]
 *   port 0 (default) picks a free port; the first stdout line is {"port":N}.
 *   The token defaults to $FAKE_TELEGRAM_TOKEN or "123456:TEST-token".
 * As a module:   const fake = await require('./fake-telegram.js').start({token, port})
 *   → {port, url, calls, reset(), fail(rule), block(chatId, how), close()}
 *   calls is the live array of recorded calls (the same objects GET /_calls returns).
 *
 * Bot API behaviour (shapes as Telegram sends them):
 *   POST /bot<token>/sendMessage, /bot<token>/answerCallbackQuery, /bot<token>/getMe,
 *   bodies as JSON or application/x-www-form-urlencoded.
 *   wrong token            401 {"ok":false,"error_code":401,"description":"Unauthorized"}
 *   unknown method         404 {"ok":false,"error_code":404,"description":"Not Found"}
 *   sendMessage checks     chat_id present ("Bad Request: chat_id is empty"), known
 *                          ("Bad Request: chat not found" for 0, non-numeric ids and
 *                          chats marked with /_block), text non-empty ("Bad Request:
 *                          message text is empty"), parse_mode HTML well formed
 *                          ("Bad Request: can't parse entities: ..."), at most 4096
 *                          UTF-16 units after entity parsing ("Bad Request: message is
 *                          too long"), inline keyboard buttons with text and
 *                          callback_data of 1-64 bytes ("Bad Request: BUTTON_DATA_INVALID")
 *                          or an http(s)/tg url.
 *   answerCallbackQuery    callback_query_id required; ids starting "old" answer
 *                          "Bad Request: query is too old and response timeout expired
 *                          or query ID is invalid".
 *   success                {"ok":true,"result":{"message_id":N,"from":{bot},"chat":{...},
 *                          "date":unix,"text":plain}} / {"ok":true,"result":true}
 *
 * Control API (no token):
 *   GET  /_calls[?since=K]  recorded calls [{seq, ts (ms since epoch, fractional),
 *                           method, token_ok, status, body, error?}] (seq > K)
 *   GET  /_stats            {"count":N,"by_method":{...},"by_status":{...}}
 *   POST /_reset            forget calls, failure rules and blocked chats
 *   POST /_fail             {"method":"sendMessage"|"answerCallbackQuery"|"*",
 *                           "status":429|500|403|400|..., "retry_after":2,
 *                           "description":"...", "count":1, "delay_ms":0,
 *                           "drop":false, "chat_id":optional filter}
 *                           the next `count` matching calls fail so (status absent
 *                           with delay_ms: a slow success; drop: the connection is
 *                           destroyed without an answer). Rules queue in order.
 *   POST /_block            {"chat_id":N,"how":"blocked"|"deactivated"|"not_found"|"cant_initiate"}
 *                           (how "none" unblocks)
 * Memory: at most maxCalls (default 200000) calls are kept (oldest dropped;
 * seq keeps counting), bodies over 1 MiB are refused with 413.
 */
'use strict';
const http = require('node:http');
const { performance } = require('node:perf_hooks');

const MAX_BODY = 1 << 20;
const ALLOWED_TAGS = new Set(['b', 'strong', 'i', 'em', 'u', 'ins', 's', 'strike', 'del', 'a', 'code',
  'pre', 'span', 'tg-spoiler', 'tg-emoji', 'blockquote']);

function utf16Len(s) { return s.length; }

/* Telegram's HTML parse_mode: returns {text} (plain text) or {error}. */
function parseHtml(src) {
  const buf = Buffer.from(src, 'utf8');
  const stack = [];
  let out = '';
  let i = 0;
  const str = (a, b) => buf.toString('utf8', a, b);
  while (i < buf.length) {
    const c = buf[i];
    if (c === 0x3c) { // <
      const close = buf.indexOf(0x3e, i);
      if (close < 0) return { error: `Unsupported start tag "" at byte offset ${i}` };
      const inner = str(i + 1, close);
      if (inner.startsWith('/')) {
        const name = inner.slice(1).trim().toLowerCase();
        const top = stack.pop();
        if (top === undefined) return { error: `Unexpected end tag at byte offset ${i}` };
        if (name !== top) return { error: `Unmatched end tag at byte offset ${i}, expected "</${top}>", found "</${name}>"` };
      } else {
        const m = /^([a-z][a-z0-9-]*)(\s[^]*)?$/i.exec(inner);
        const name = m ? m[1].toLowerCase() : '';
        if (!m || !ALLOWED_TAGS.has(name)) return { error: `Unsupported start tag "${name || inner.split(/\s/)[0]}" at byte offset ${i}` };
        stack.push(name);
      }
      i = close + 1;
    } else if (c === 0x26) { // &
      const semi = buf.indexOf(0x3b, i);
      const ent = semi > i ? str(i + 1, semi) : '';
      const named = { lt: '<', gt: '>', amp: '&', quot: '"' };
      let ch;
      if (semi > i && semi - i <= 10) {
        if (named[ent] !== undefined) ch = named[ent];
        else if (/^#[0-9]{1,7}$/.test(ent)) ch = String.fromCodePoint(Math.min(+ent.slice(1), 0x10ffff));
        else if (/^#x[0-9a-f]{1,6}$/i.test(ent)) ch = String.fromCodePoint(Math.min(parseInt(ent.slice(2), 16), 0x10ffff));
      }
      if (ch === undefined) return { error: `Can't find end of the entity starting at byte offset ${i}` };
      out += ch;
      i = semi + 1;
    } else {
      let j = i;
      while (j < buf.length && buf[j] !== 0x3c && buf[j] !== 0x26) j++;
      out += str(i, j);
      i = j;
    }
  }
  if (stack.length) return { error: `Can't find end tag corresponding to start tag "${stack[stack.length - 1]}"` };
  return { text: out };
}

function apiError(code, description, extra) {
  const body = { ok: false, error_code: code, description };
  if (extra) body.parameters = extra;
  return { status: code, body };
}

const DEFAULT_DESC = {
  400: 'Bad Request: chat not found',
  401: 'Unauthorized',
  403: 'Forbidden: bot was blocked by the user',
  404: 'Not Found',
  409: 'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running',
  429: null,
  500: 'Internal Server Error',
  502: 'Bad Gateway',
};
const BLOCK_DESC = {
  blocked: [403, 'Forbidden: bot was blocked by the user'],
  deactivated: [403, 'Forbidden: user is deactivated'],
  cant_initiate: [403, "Forbidden: bot can't initiate conversation with a user"],
  not_found: [400, 'Bad Request: chat not found'],
};

function parseBody(raw, type) {
  if (!raw.length) return {};
  if (type && type.startsWith('application/x-www-form-urlencoded')) {
    const o = {};
    for (const [k, v] of new URLSearchParams(raw.toString('utf8'))) {
      if (k === 'reply_markup') { try { o[k] = JSON.parse(v); } catch { o[k] = v; } } else o[k] = v;
    }
    return o;
  }
  return JSON.parse(raw.toString('utf8'));
}

function create(opts = {}) {
  const token = opts.token || process.env.FAKE_TELEGRAM_TOKEN || '123456:TEST-token';
  const maxCalls = opts.maxCalls || 200000;
  const botId = Number(String(token).split(':')[0]) || 123456;
  const bot = { id: botId, is_bot: true, first_name: 'Fake Bot', username: 'FakeCivicBot' };
  const state = { calls: [], seq: 0, rules: [], blocked: new Map(), nextMessageId: 1, byMethod: {}, byStatus: {} };

  function record(entry) {
    entry.seq = ++state.seq;
    state.calls.push(entry);
    if (state.calls.length > maxCalls) state.calls.splice(0, state.calls.length - maxCalls);
    state.byMethod[entry.method] = (state.byMethod[entry.method] || 0) + 1;
    state.byStatus[entry.status] = (state.byStatus[entry.status] || 0) + 1;
  }

  function takeRule(method, body) {
    for (let k = 0; k < state.rules.length; k++) {
      const r = state.rules[k];
      if (r.method !== '*' && r.method !== method) continue;
      if (r.chat_id !== undefined && String(r.chat_id) !== String(body && body.chat_id)) continue;
      if (--r.count <= 0) state.rules.splice(k, 1);
      return r;
    }
    return null;
  }

  function sendMessage(b) {
    const cid = b.chat_id;
    if (cid === undefined || cid === null || cid === '') return apiError(400, 'Bad Request: chat_id is empty');
    const idStr = String(cid);
    if (!/^-?[0-9]{1,20}$/.test(idStr) && !/^@[A-Za-z0-9_]{5,}$/.test(idStr)) return apiError(400, 'Bad Request: chat not found');
    if (idStr === '0') return apiError(400, 'Bad Request: chat not found');
    const bl = state.blocked.get(idStr);
    if (bl) return apiError(bl[0], bl[1]);
    if (typeof b.text !== 'string' || b.text.trim() === '') return apiError(400, 'Bad Request: message text is empty');
    let plain = b.text;
    if (b.parse_mode !== undefined) {
      if (b.parse_mode !== 'HTML') return apiError(400, `Bad Request: unsupported parse_mode "${b.parse_mode}"`);
      const p = parseHtml(b.text);
      if (p.error) return apiError(400, "Bad Request: can't parse entities: " + p.error);
      plain = p.text;
      if (plain.trim() === '') return apiError(400, 'Bad Request: message text is empty');
    }
    if (utf16Len(plain) > 4096) return apiError(400, 'Bad Request: message is too long');
    if (b.reply_markup !== undefined) {
      const kb = b.reply_markup && b.reply_markup.inline_keyboard;
      if (!Array.isArray(kb)) return apiError(400, "Bad Request: can't parse reply keyboard markup JSON object");
      for (const row of kb) {
        if (!Array.isArray(row)) return apiError(400, 'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays');
        for (const btn of row) {
          if (!btn || typeof btn.text !== 'string' || btn.text === '') return apiError(400, 'Bad Request: text buttons are unallowed in the inline keyboard');
          if (btn.callback_data !== undefined) {
            const n = Buffer.byteLength(String(btn.callback_data));
            if (n < 1 || n > 64) return apiError(400, 'Bad Request: BUTTON_DATA_INVALID');
          } else if (btn.url !== undefined) {
            if (!/^(https?|tg):\/\/[^\s]+$/i.test(String(btn.url))) return apiError(400, `Bad Request: inline keyboard button URL '${btn.url}' is invalid: unsupported URL protocol`);
          } else {
            return apiError(400, 'Bad Request: text buttons are unallowed in the inline keyboard');
          }
        }
      }
    }
    const chat = /^-/.test(idStr) ? { id: Number(idStr), title: 'Group', type: 'supergroup' } : { id: Number(idStr), first_name: 'Citizen', type: 'private' };
    const result = { message_id: state.nextMessageId++, from: bot, chat, date: Math.floor(Date.now() / 1000), text: plain };
    if (b.reply_markup) result.reply_markup = b.reply_markup;
    return { status: 200, body: { ok: true, result } };
  }

  function answerCallbackQuery(b) {
    const id = b.callback_query_id;
    if (id === undefined || id === null || String(id) === '') return apiError(400, 'Bad Request: query is too old and response timeout expired or query ID is invalid');
    if (String(id).startsWith('old')) return apiError(400, 'Bad Request: query is too old and response timeout expired or query ID is invalid');
    return { status: 200, body: { ok: true, result: true } };
  }

  const methods = {
    sendmessage: sendMessage,
    answercallbackquery: answerCallbackQuery,
    getme: () => ({ status: 200, body: { ok: true, result: Object.assign({ can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false }, bot) } }),
  };

  function reply(res, status, obj) {
    const s = JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(s) });
    res.end(s);
  }

  function control(req, res, url, raw) {
    let b = {};
    try { b = raw.length ? JSON.parse(raw.toString('utf8')) : {}; } catch { return reply(res, 400, { error: 'body is not JSON' }); }
    const p = url.pathname;
    if (req.method === 'GET' && p === '/_calls') {
      const since = Number(url.searchParams.get('since') || 0);
      return reply(res, 200, since ? state.calls.filter((c) => c.seq > since) : state.calls);
    }
    if (req.method === 'GET' && p === '/_stats') return reply(res, 200, { count: state.seq, by_method: state.byMethod, by_status: state.byStatus });
    if (req.method === 'POST' && p === '/_reset') { api.reset(); return reply(res, 200, { ok: true }); }
    if (req.method === 'POST' && p === '/_fail') {
      try { api.fail(b); } catch (e) { return reply(res, 400, { error: e.message }); }
      return reply(res, 200, { ok: true, pending: state.rules.length });
    }
    if (req.method === 'POST' && p === '/_block') {
      try { api.block(b.chat_id, b.how || 'blocked'); } catch (e) { return reply(res, 400, { error: e.message }); }
      return reply(res, 200, { ok: true });
    }
    return reply(res, 404, { error: 'unknown control path' });
  }

  function handle(req, res, raw) {
    const ts = performance.timeOrigin + performance.now();
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname.startsWith('/_')) return control(req, res, url, raw);
    const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname);
    if (!m) return reply(res, 404, { ok: false, error_code: 404, description: 'Not Found' });
    const method = m[2];
    const entry = { ts, method, token_ok: m[1] === token, status: 0, body: null };
    let body;
    try {
      body = parseBody(raw, req.headers['content-type']);
      if (url.search) for (const [k, v] of url.searchParams) if (body[k] === undefined) body[k] = v;
    } catch {
      entry.status = 400;
      entry.error = 'body is not JSON';
      record(entry);
      return reply(res, 400, { ok: false, error_code: 400, description: "Bad Request: can't parse JSON" });
    }
    entry.body = body;
    let out;
    if (!entry.token_ok) out = apiError(401, 'Unauthorized');
    else if (!methods[method.toLowerCase()]) out = apiError(404, 'Not Found');
    const rule = out ? null : takeRule(method, body);
    const finish = () => {
      if (rule && rule.drop) {
        entry.status = 0;
        entry.error = 'dropped';
        record(entry);
        req.socket.destroy();
        return;
      }
      if (!out && rule && rule.status) {
        const st = rule.status;
        if (st === 429) {
          const ra = rule.retry_after !== undefined ? rule.retry_after : 1;
          out = apiError(429, rule.description || `Too Many Requests: retry after ${ra}`, { retry_after: ra });
        } else if (rule.raw !== undefined) {
          entry.status = st;
          record(entry);
          res.writeHead(st, { 'Content-Type': 'text/html', 'Content-Length': Buffer.byteLength(rule.raw) });
          return res.end(rule.raw);
        } else {
          out = apiError(st, rule.description || DEFAULT_DESC[st] || `Error ${st}`);
        }
      }
      if (!out) out = methods[method.toLowerCase()](body);
      entry.status = out.status;
      if (out.status !== 200) entry.error = out.body.description;
      else if (out.body.result && out.body.result.message_id) entry.message_id = out.body.result.message_id;
      record(entry);
      reply(res, out.status, out.body);
    };
    if (rule && rule.delay_ms > 0) setTimeout(finish, rule.delay_ms);
    else finish();
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    let refused = false;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        if (!refused) { refused = true; reply(res, 413, { ok: false, error_code: 413, description: 'Request Entity Too Large' }); }
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => { if (!refused) handle(req, res, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)); });
  });
  server.keepAliveTimeout = 65000;
  server.headersTimeout = 66000;

  const api = {
    server,
    port: 0,
    url: '',
    calls: state.calls,
    reset() {
      state.calls.length = 0;
      state.rules.length = 0;
      state.blocked.clear();
      state.byMethod = {};
      state.byStatus = {};
    },
    fail(rule) {
      if (!rule || typeof rule !== 'object') throw new Error('rule must be an object');
      const r = Object.assign({ method: '*', count: 1 }, rule);
      r.count = Math.max(1, Number(r.count) || 1);
      if (r.status !== undefined && !(Number.isInteger(r.status) && r.status >= 100 && r.status <= 599)) throw new Error('status must be an HTTP status');
      if (!r.status && !r.drop && !(r.delay_ms > 0)) throw new Error('a rule needs status, drop or delay_ms');
      state.rules.push(r);
    },
    block(chatId, how = 'blocked') {
      if (chatId === undefined) throw new Error('chat_id missing');
      if (how === 'none') { state.blocked.delete(String(chatId)); return; }
      const d = BLOCK_DESC[how];
      if (!d) throw new Error('how must be blocked, deactivated, cant_initiate, not_found or none');
      state.blocked.set(String(chatId), d);
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        if (server.closeAllConnections) server.closeAllConnections();
      });
    },
  };
  return api;
}

function start(opts = {}) {
  const api = create(opts);
  return new Promise((resolve, reject) => {
    api.server.once('error', reject);
    api.server.listen(opts.port || 0, '127.0.0.1', () => {
      api.port = api.server.address().port;
      api.url = `http://127.0.0.1:${api.port}`;
      resolve(api);
    });
  });
}

module.exports = { start, parseHtml };

if (require.main === module) {
  const args = process.argv.slice(2);
  let port = 0;
  let token;
  for (let k = 0; k < args.length; k++) {
    if (args[k] === '--token') token = args[++k];
    else if (/^[0-9]+$/.test(args[k])) port = Number(args[k]);
    else { process.stderr.write(`usage: fake-telegram.js [port] [--token T]\n`); process.exit(2); }
  }
  start({ port, token }).then((api) => {
    process.stdout.write(JSON.stringify({ port: api.port }) + '\n');
    const stop = () => api.close().then(() => process.exit(0));
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  }, (e) => { process.stderr.write(`fake-telegram: ${e.message}\n`); process.exit(1); });
}
