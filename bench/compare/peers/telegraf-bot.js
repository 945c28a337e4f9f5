// telegraf-bot.js: the Telegraf 4 peer of bench/compare (run by run.sh from
// bench/peers/, where npm ci installed the pinned packages).
//
// Webhook mode on a plain node:http server (bot.webhookCallback with the
// secret token: Telegraf compares X-Telegram-Bot-Api-Secret-Token itself),
// session in Redis with the Telegraf organisation's adapter
// (@telegraf/session/redis, node-redis 4), the reply from the shared keyword
// table (keywords.js). Replies go to the Bot API at API_ROOT (the harness's
// fake one) as real HTTP calls: webhookReply is off (Telegraf's default puts
// the first call into the webhook's response, which a bot cannot use for a
// second message and which the fake API would not see). Telegraf answers the
// webhook after the handler (and the session write) have finished.
//
// Environment: PORT, API_ROOT, REDIS_URL, SECRET, TOKEN, KEYWORDS, WORKERS
// (default 1: one process; more: node:cluster workers). Listens on
// 127.0.0.1 only.
'use strict';
const cluster = require('cluster');
const workers = Math.min(Math.max(Number(process.env.WORKERS) || 1, 1), 16);
if (workers > 1 && cluster.isPrimary) {
  // WORKERS > 1: node:cluster, one process per worker sharing the port, as
  // one would run a Node bot on a machine with several cores.
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', (w, code) => { if (code) console.error('%s: worker %d exited %d', 'telegraf-bot', w.process.pid, code); });
  return;
}
const http = require('http');
const { Telegraf, session } = require('telegraf');
const { Redis } = require('@telegraf/session/redis');
const { match, fallback } = require('./keywords');

const bot = new Telegraf(process.env.TOKEN, {
  telegram: { apiRoot: process.env.API_ROOT, webhookReply: false },
});
// Telegraf asks getMe once before the first update; the fake API has no
// getMe, so the bot's identity is given here.
bot.botInfo = { id: 123, is_bot: true, first_name: 'bench', username: 'bench_bot',
  can_join_groups: false, can_read_all_group_messages: false, supports_inline_queries: false };

bot.use(session({ store: Redis({ url: process.env.REDIS_URL }), defaultSession: () => ({ count: 0 }) }));
bot.on('message', async (ctx) => {
  const text = ctx.message.text;
  const hit = match(text);
  ctx.session.count += 1;
  ctx.session.last = hit ? hit.id : 'fallback';
  await ctx.reply(hit ? hit.reply : fallback);
});
bot.catch((err) => console.error('telegraf-bot:', err.message));

const hook = bot.webhookCallback('/webhooks/telegram', { secretToken: process.env.SECRET });
http.createServer(hook).listen(Number(process.env.PORT), '127.0.0.1', () => {
  console.error(`telegraf-bot: listening on 127.0.0.1:${process.env.PORT}`);
});
