#!/usr/bin/env node
/*
 * fake-graph.js: a stand-in for Meta's Graph API (https://graph.facebook.com)
 * as the WhatsApp Cloud API and Messenger Send API use it, for end-to-end
 * tests and benchmarks. Node 20, no dependencies, listens on 127.0.0.1 only.
 *
 * As a program:  node tests/e2e/fake-graph.js [port] [--wa-token T] [--page-token T]
 *   port 0 (default) picks a free port; the first stdout line is {"port":N}.
 *   Tokens default to $FAKE_WA_TOKEN / $FAKE_PAGE_TOKEN or "wa-test-token" /
 *   "page-test-token"; the phone number id to $FAKE_WA_PHONE_ID or any digits.
 * As a module:   const g = await require('./fake-graph.js').start({waToken, pageToken, phoneNumberId, port, templates})
 *   → {port, url, calls, reset(), fail(rule), closeWindow(to), block(to), close()}
 *   and require('./fake-graph.js').sign(body, appSecret) → "sha256=<hex>", the
 *   X-Hub-Signature-256 value Meta would put on a webhook carrying body.
 *
 * Graph behaviour (error bodies as Meta sends them: {"error":{"message","type",
 * "code","error_subcode"?,"error_data"?,"fbtrace_id"}}):
 *   POST /<version>/<phone_number_id>/messages   (WhatsApp)
 *     Authorization: Bearer <wa token> else 401 code 190
 *     messaging_product "whatsapp", to of digits, type text (text.body 1-4096
 *     characters) or interactive: button (1-3 reply buttons, unique ids ≤ 256,
 *     titles 1-20 characters) or list (button 1-20, 1-10 rows in all, titles
 *     1-24), body.text 1-1024 → else 400 code 100 "(#100) Invalid parameter"
 *     with error_data.details; recipient with a closed 24-hour window → 400
 *     code 131047. Success: {"messaging_product":"whatsapp","contacts":[{
 *     "input","wa_id"}],"messages":[{"id":"wamid.FAKE<N>"}]}
 *     type template: template.name (and, when opts.templates lists the
 *     approved names, one of them, else 404 code 132001) and
 *     template.language.code → accepted even with a closed window.
 *     Read receipt {"messaging_product":"whatsapp","status":"read",
 *     "message_id":"wamid..."} → {"success":true} (recorded with kind "read").
 *   POST /<version>/me/messages                  (Messenger)
 *     Authorization: Bearer <page token> else 400 code 190
 *     recipient.id of digits; messaging_type RESPONSE / UPDATE, or
 *     MESSAGE_TAG with a tag; message.text 1-2000 characters or a button
 *     template (text 1-640, 1-3 buttons web_url / postback, titles 1-20);
 *     quick_replies ≤ 13 (content_type text, title 1-20, payload 1-1000) →
 *     else 400 code 100; blocked recipient → 400 code 551; closed window
 *     (unless tag HUMAN_AGENT) → 400 code 10 subcode 2018278.
 *     Success: {"recipient_id","message_id":"m_FAKE<N>"}
 *   anything else → 400 code 100 "Unsupported post request".
 *
 * Control API (no token):
 *   GET  /_calls[?since=K]  [{seq, ts, platform, kind ("message"|"template"|"read"), to, status,
 *                           id (the message id returned, when accepted), body, error?}]
 *   GET  /_stats            {"count":N,"by_platform":{...},"by_status":{...}}
 *   POST /_reset            forget calls, rules, windows and blocks
 *   POST /_fail             {"platform":"whatsapp"|"messenger"|"*", "status":429|500|...,
 *                           "code":130429, "subcode":..., "message":"...", "count":1,
 *                           "delay_ms":0, "drop":false, "to":optional filter,
 *                           "kind":optional filter ("message"|"template"|"read"),
 *                           "retry_after":seconds (a Retry-After header)}
 *   POST /_window           {"to":"<wa_id or psid>", "closed":true|false}
 *   POST /_block            {"to":"<psid>", "blocked":true|false}
 * Memory: at most maxCalls (default 200000) calls are kept; bodies over 1 MiB → 413.
 */
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');

const MAX_BODY = 1 << 20;

function sign(body, secret) {
  return 'sha256=' + crypto.createHmac('sha256', secret).update(body).digest('hex');
}

/* Characters as Meta counts them (UTF-16 units: the stricter reading). */
const chars = (s) => (typeof s === 'string' ? s.length : -1);

function graphError(status, code, message, extra = {}) {
  const error = { message, type: extra.type || 'OAuthException', code };
  if (extra.subcode !== undefined) error.error_subcode = extra.subcode;
  if (extra.details) error.error_data = { messaging_product: 'whatsapp', details: extra.details };
  error.fbtrace_id = 'AFakeTrace' + crypto.randomBytes(6).toString('hex');
  return { status, body: { error } };
}
const invalid = (details) => graphError(400, 100, '(#100) Invalid parameter', { details });

function checkWhatsApp(b, templates) {
  if (!b || b.messaging_product !== 'whatsapp') return invalid('messaging_product must be whatsapp');
  if (b.status !== undefined) {
    if (b.status !== 'read' || typeof b.message_id !== 'string' || !/^wamid\./.test(b.message_id)) return invalid('Param message_id is invalid');
    return null;
  }
  if (typeof b.to !== 'string' || !/^[0-9]{1,20}$/.test(b.to)) return invalid('Param to is invalid');
  if (b.type === 'text') {
    const n = chars(b.text && b.text.body);
    if (n < 1 || n > 4096) return invalid("Param text['body'] must be between 1 and 4096 characters long.");
    return null;
  }
  if (b.type === 'template') {
    const t = b.template || {};
    if (typeof t.name !== 'string' || !t.language || typeof t.language.code !== 'string') return invalid('Param template is invalid');
    if (templates && !templates.includes(t.name))
      return graphError(404, 132001, '(#132001) Template name does not exist in the translation', { details: `template name (${t.name}) does not exist in ${t.language.code}` });
    return null;
  }
  if (b.type !== 'interactive' || !b.interactive) return invalid('Param type is invalid');
  const it = b.interactive;
  const bn = chars(it.body && it.body.text);
  if (bn < 1 || bn > 1024) return invalid("Param interactive['body']['text'] must be between 1 and 1024 characters long.");
  const a = it.action || {};
  if (it.type === 'button') {
    const btns = a.buttons;
    if (!Array.isArray(btns) || btns.length < 1 || btns.length > 3) return invalid('Param interactive[\'action\'][\'buttons\'] must have 1 to 3 buttons');
    const ids = new Set();
    for (const x of btns) {
      const r = x && x.reply;
      if (x.type !== 'reply' || !r) return invalid('Button type must be reply');
      const tn = chars(r.title);
      if (tn < 1 || tn > 20) return invalid('Button title length invalid. Should be non-empty and at most 20 characters.');
      if (typeof r.id !== 'string' || r.id.length < 1 || r.id.length > 256 || ids.has(r.id)) return invalid('Button id invalid or duplicated');
      ids.add(r.id);
    }
    return null;
  }
  if (it.type === 'list') {
    const bl = chars(a.button);
    if (bl < 1 || bl > 20) return invalid('List button text must be 1 to 20 characters');
    let rows = 0;
    for (const s of a.sections || []) {
      for (const r of (s && s.rows) || []) {
        rows++;
        const tn = chars(r.title);
        if (tn < 1 || tn > 24) return invalid('Row title must be 1 to 24 characters');
        if (typeof r.id !== 'string' || r.id.length < 1 || r.id.length > 200) return invalid('Row id must be 1 to 200 characters');
      }
    }
    if (rows < 1 || rows > 10) return invalid('A list has 1 to 10 rows');
    return null;
  }
  return invalid('Unsupported interactive type');
}

function checkMessenger(b) {
  const to = b && b.recipient && b.recipient.id;
  if (typeof to !== 'string' || !/^[0-9]{1,20}$/.test(to)) return graphError(400, 100, '(#100) No matching user found', { subcode: 2018001 });
  if (b.messaging_type === 'MESSAGE_TAG') {
    if (typeof b.tag !== 'string') return graphError(400, 100, '(#100) Tag is required for MESSAGE_TAG');
  } else if (b.messaging_type !== 'RESPONSE' && b.messaging_type !== 'UPDATE') {
    return graphError(400, 100, '(#100) Param messaging_type is invalid');
  }
  const m = b.message || {};
  if (m.attachment) {
    const p = m.attachment.payload || {};
    if (m.attachment.type !== 'template' || p.template_type !== 'button') return graphError(400, 100, '(#100) Unsupported attachment');
    const tn = chars(p.text);
    if (tn < 1 || tn > 640) return graphError(400, 100, '(#100) param text must be non-empty UTF-8 encoded text of at most 640 characters');
    if (!Array.isArray(p.buttons) || p.buttons.length < 1 || p.buttons.length > 3) return graphError(400, 105, '(#105) param buttons has too many elements');
    for (const x of p.buttons) {
      const bt = chars(x.title);
      if (bt < 1 || bt > 20) return graphError(400, 100, '(#100) Button title is too long');
      if (x.type === 'web_url') { if (!/^https?:\/\//.test(x.url || '')) return graphError(400, 100, '(#100) Invalid URL'); }
      else if (x.type !== 'postback' || !x.payload) return graphError(400, 100, '(#100) Invalid button');
    }
  } else {
    const n = chars(m.text);
    if (n < 1 || n > 2000) return graphError(400, 100, '(#100) Length of param message[text] must be less than or equal to 2000');
  }
  if (m.quick_replies !== undefined) {
    if (!Array.isArray(m.quick_replies) || m.quick_replies.length > 13) return graphError(400, 105, '(#105) param message[quick_replies] has too many elements');
    for (const q of m.quick_replies) {
      const qt = chars(q.title);
      if (q.content_type !== 'text' || qt < 1 || qt > 20 || !q.payload || q.payload.length > 1000)
        return graphError(400, 100, '(#100) Invalid quick reply');
    }
  }
  return null;
}

function create(opts = {}) {
  const waToken = opts.waToken || process.env.FAKE_WA_TOKEN || 'wa-test-token';
  const pageToken = opts.pageToken || process.env.FAKE_PAGE_TOKEN || 'page-test-token';
  const phoneId = opts.phoneNumberId || process.env.FAKE_WA_PHONE_ID || null;
  const maxCalls = opts.maxCalls || 200000;
  const state = { calls: [], seq: 0, next: 1, rules: [], closed: new Set(), blocked: new Set(), byPlatform: {}, byStatus: {} };

  function record(e) {
    e.seq = ++state.seq;
    e.ts = Date.now();
    state.calls.push(e);
    if (state.calls.length > maxCalls) state.calls.splice(0, state.calls.length - maxCalls);
    state.byPlatform[e.platform] = (state.byPlatform[e.platform] || 0) + 1;
    state.byStatus[e.status] = (state.byStatus[e.status] || 0) + 1;
  }
  function takeRule(platform, to, kind) {
    for (let k = 0; k < state.rules.length; k++) {
      const r = state.rules[k];
      if (r.platform !== '*' && r.platform !== platform) continue;
      if (r.to !== undefined && String(r.to) !== String(to)) continue;
      if (r.kind !== undefined && r.kind !== kind) continue;
      if (--r.count <= 0) state.rules.splice(k, 1);
      return r;
    }
    return null;
  }
  function handleSend(platform, auth, body) {
    const token = platform === 'whatsapp' ? waToken : pageToken;
    if (auth !== 'Bearer ' + token)
      return graphError(platform === 'whatsapp' ? 401 : 400, 190, 'Invalid OAuth access token - Cannot parse access token');
    const bad = platform === 'whatsapp' ? checkWhatsApp(body, opts.templates) : checkMessenger(body);
    if (bad) return bad;
    if (platform === 'whatsapp' && body.status === 'read') return { status: 200, body: { success: true } };
    const to = platform === 'whatsapp' ? body.to : body.recipient.id;
    if (platform === 'messenger' && state.blocked.has(to)) return graphError(400, 551, "(#551) This person isn't available right now.", { subcode: 1545041 });
    if (state.closed.has(to) && !(platform === 'whatsapp' && body.type === 'template')) {
      if (platform === 'whatsapp')
        return graphError(400, 131047, '(#131047) Re-engagement message', { details: 'Message failed to send because more than 24 hours have passed since the customer last replied to this number.' });
      if (body.tag !== 'HUMAN_AGENT') return graphError(400, 10, '(#10) This message is sent outside of allowed window.', { subcode: 2018278 });
    }
    const n = state.next++;
    if (platform === 'whatsapp')
      return { status: 200, body: { messaging_product: 'whatsapp', contacts: [{ input: to, wa_id: to }], messages: [{ id: `wamid.FAKE${n}` }] } };
    return { status: 200, body: { recipient_id: to, message_id: `m_FAKE${n}` } };
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => { size += c.length; if (size <= MAX_BODY) chunks.push(c); });
    req.on('end', () => {
      const send = (status, obj) => {
        const s = JSON.stringify(obj);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(s) });
        res.end(s);
      };
      if (size > MAX_BODY) return send(413, { error: { message: 'Request Entity Too Large', code: 1 } });
      const url = new URL(req.url, 'http://127.0.0.1');
      const raw = Buffer.concat(chunks).toString('utf8');
      let body = {};
      try { body = raw ? JSON.parse(raw) : {}; } catch { body = null; }
      if (url.pathname === '/_calls') {
        const since = Number(url.searchParams.get('since') || 0);
        return send(200, state.calls.filter((c) => c.seq > since));
      }
      if (url.pathname === '/_stats') return send(200, { count: state.seq, by_platform: state.byPlatform, by_status: state.byStatus });
      if (req.method === 'POST' && url.pathname === '/_reset') { api.reset(); return send(200, { ok: true }); }
      if (req.method === 'POST' && url.pathname === '/_fail') { api.fail(body || {}); return send(200, { ok: true }); }
      if (req.method === 'POST' && url.pathname === '/_window') { api.closeWindow(body.to, body.closed !== false); return send(200, { ok: true }); }
      if (req.method === 'POST' && url.pathname === '/_block') { api.block(body.to, body.blocked !== false); return send(200, { ok: true }); }
      let platform = null;
      const m = /^\/v[0-9.]+\/([0-9]+|me)\/messages$/.exec(url.pathname);
      if (req.method === 'POST' && m) platform = m[1] === 'me' ? 'messenger' : 'whatsapp';
      if (platform === 'whatsapp' && phoneId && m[1] !== phoneId) platform = null;
      const to = body && (platform === 'whatsapp' ? body.to : body.recipient && body.recipient.id);
      const kind = body && body.status === 'read' ? 'read' : body && body.type === 'template' ? 'template' : 'message';
      let out;
      if (!platform) out = graphError(400, 100, 'Unsupported post request. Please read the Graph API documentation');
      else if (body === null) out = graphError(400, 100, '(#100) Invalid JSON');
      const rule = platform && !out ? takeRule(platform, to, kind) : null;
      if (rule && rule.drop) { record({ platform, kind, to, status: 0, body, error: 'dropped' }); return req.socket.destroy(); }
      if (!out && rule && rule.status) {
        out = rule.code !== undefined
          ? graphError(rule.status, rule.code, rule.message || `(#${rule.code}) Fake failure`, { subcode: rule.subcode, type: rule.type })
          : { status: rule.status, body: rule.status >= 500 ? { error: { message: 'An unexpected error has occurred. Please retry your request later.', type: 'OAuthException', is_transient: true, code: 2 } } : {} };
      }
      if (!out) out = handleSend(platform, req.headers.authorization, body);
      const id = out.body.message_id || (out.body.messages && out.body.messages[0] && out.body.messages[0].id);
      record({ platform: platform || 'unknown', kind, to, status: out.status, id, body, error: out.body.error && out.body.error.message,
        code: out.body.error && out.body.error.code });
      if (rule && rule.retry_after !== undefined) res.setHeader('retry-after', String(rule.retry_after));
      const delay = rule && rule.delay_ms ? rule.delay_ms : 0;
      if (delay) setTimeout(() => send(out.status, out.body), delay); else send(out.status, out.body);
    });
  });

  const api = {
    server,
    calls: state.calls,
    reset() { state.calls.length = 0; state.rules.length = 0; state.closed.clear(); state.blocked.clear(); },
    fail(rule) { state.rules.push(Object.assign({ platform: '*', count: 1 }, rule)); },
    closeWindow(to, closed = true) { if (closed) state.closed.add(String(to)); else state.closed.delete(String(to)); },
    block(to, blocked = true) { if (blocked) state.blocked.add(String(to)); else state.blocked.delete(String(to)); },
    close() { return new Promise((r) => server.close(() => r())); },
  };
  return api;
}

async function start(opts = {}) {
  const g = create(opts);
  await new Promise((resolve) => g.server.listen(opts.port || 0, '127.0.0.1', resolve));
  g.port = g.server.address().port;
  g.url = `http://127.0.0.1:${g.port}`;
  return g;
}

module.exports = { start, create, sign };

if (require.main === module) {
  const args = process.argv.slice(2);
  const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
  const port = Number(args.find((a, i) => /^[0-9]+$/.test(a) && !/^--/.test(args[i - 1] || '')) || 0);
  start({ port, waToken: opt('--wa-token'), pageToken: opt('--page-token') }).then((g) => {
    process.stdout.write(JSON.stringify({ port: g.port }) + '\n');
  });
}
