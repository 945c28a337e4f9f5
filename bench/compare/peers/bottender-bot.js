// bottender-bot.js: the Bottender 1.5 peer of bench/compare (run by run.sh
// from bench/peers/, where npm ci installed the pinned packages).
//
// Bottender's TelegramBot with its RedisSessionStore (ioredis), answering
// from the shared keyword table (keywords.js), its Bot API client pointed at
// API_ROOT (the harness's fake API) with the connector's `origin` option.
// The HTTP side does what Bottender's own server (dist/server/Server.js) does
// for a channel: read the JSON body, call bot.createRequestHandler(), answer
// 200. Bottender 1.5 (2021) predates Telegram's secret_token (Bot API 6.1,
// 2022) and has no check for it, so this server compares
// X-Telegram-Bot-Api-Secret-Token itself (crypto.timingSafeEqual) and answers
// 401 otherwise, as the other systems do. As in Bottender's server (sync:
// false), the webhook is answered once the session is read, and the handler
// and the session write finish after that.
//
// Environment: PORT, API_ROOT, REDIS_PORT, SECRET, TOKEN, KEYWORDS, WORKERS
// (default 1: one process; more: node:cluster workers). Listens
// on 127.0.0.1 only; bodies over 1 MB are refused.
'use strict';
const cluster = require('cluster');
const workers = Math.min(Math.max(Number(process.env.WORKERS) || 1, 1), 16);
if (workers > 1 && cluster.isPrimary) {
  // WORKERS > 1: node:cluster, one process per worker sharing the port, as
  // one would run a Node bot on a machine with several cores.
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code) => { if (code) console.error('%s: worker %d exited %d', 'bottender-bot', w.process.pid, code); });
  return;
}
const http = require('http');
const crypto = require('crypto');
const { TelegramBot, RedisSessionStore } = require('bottender');
const { match, fallback } = require('./keywords');

const bot = new TelegramBot({
  accessToken: process.env.TOKEN,
  origin: process.env.API_ROOT,
  sessionStore: new RedisSessionStore({ host: '127.0.0.1', port: Number(process.env.REDIS_PORT) }),
});
bot.onEvent(async (context) => {
  if (!context.event.isText) return;
  const hit = match(context.event.text);
  context.setState({ count: (context.state.count || 0) + 1, last: hit ? hit.id : 'fallback' });
  await context.sendText(hit ? hit.reply : fallback);
});
bot.onError(async (context, { error }) => console.error('bottender-bot:', error.message));
const handle = bot.createRequestHandler();

const secret = Buffer.from(process.env.SECRET);
function secretOk(v) {
  const b = Buffer.from(String(v || ''));
  return b.length === secret.length && crypto.timingSafeEqual(b, secret);
}

http.createServer((req, res) => {
  if (req.method !== 'POST' || req.url !== '/webhooks/telegram') { res.statusCode = 404; res.end(); return; }
  if (!secretOk(req.headers['x-telegram-bot-api-secret-token'])) { res.statusCode = 401; res.end(); return; }
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > 1 << 20) { res.statusCode = 413; res.end(); req.destroy(); return; }
    chunks.push(c);
  });
  req.on('end', async () => {
    if (res.writableEnded) return;
    let body;
    try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { res.statusCode = 400; res.end(); return; }
    try {
      await handle(body, { method: req.method, path: req.url, headers: req.headers, query: {}, rawBody: '', body });
      res.statusCode = 200;
      res.end();
    } catch (err) {
      console.error('bottender-bot:', err.message);
      res.statusCode = 500;
      res.end();
    }
  });
}).listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.error(`bottender-bot: listening on 127.0.0.1:${process.env.PORT}`);
});
