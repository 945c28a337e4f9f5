// Human agents end to end: the real civicgate binary (two instances on one
// real redis-server), the fake Bot API, agents through the REST API under
// /api/v1/agent/ and the /agent/ws socket (tests/e2e/lib/wsclient.js).
// What the issue asks: a Telegram citizen asks for a person → queued with a
// position → an agent claims → the citizen's messages reach the agent, not
// the bot → the agent's reply reaches Telegram → resolve → satisfaction
// question → the bot answers again; a case created on one instance claimed
// through the other; two agents claiming at once: exactly one wins;
// unauthenticated API and socket refused.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const h = require('./lib/harness');
const wsc = require('./lib/wsclient');

const TOKEN = '123456:TEST-token_agents';
const SECRET = 'e2e-secret_AGENTS1';
const PASSWORDS = { alice: 'alice-pw-1', bob: 'bob-pw-2', sam: 'sam-pw-3' };

let redis, tg, gwA, gwB;

function hashPassword(pw) {
  const r = spawnSync(h.BIN, ['hash-password'], { input: `${pw}\n`, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const hash = r.stdout.trim();
  assert.match(hash, /^\$argon2id\$/);
  assert.ok(!hash.includes(pw));
  return hash;
}

function agentsConfig() {
  return {
    users: [
      { name: 'alice', display_name: 'Alice Martín', role: 'agent', password_hash: hashPassword(PASSWORDS.alice) },
      { name: 'bob', display_name: 'Bob', role: 'agent', password_hash: hashPassword(PASSWORDS.bob) },
      { name: 'sam', display_name: 'Sam', role: 'supervisor', password_hash: hashPassword(PASSWORDS.sam) },
    ],
    no_agent_timeout_s: 0,
  };
}

async function api(gw, method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${gw.base}/api/v1${path}`, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = { raw: text }; }
  return { status: res.status, body: json };
}

async function login(gw, name) {
  const r = await api(gw, 'POST', '/agent/login', { body: { name, password: PASSWORDS[name] } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.match(r.body.token, /^[0-9a-f]{64}$/);
  assert.equal(r.body.agent.name, name);
  return r.body.token;
}

function sends(calls, chatId) {
  return calls.filter((c) => c.method === 'sendMessage' && String(c.body.chat_id) === String(chatId));
}

async function waitSend(chatId, pred, what) {
  return h.waitFor(what, async () => {
    const s = sends(await tg.calls(), chatId);
    const i = s.findIndex(pred);
    return i >= 0 ? { msg: s[i], index: i, all: s } : null;
  }, { timeout: 15000 });
}

function hook(gw, body) {
  return h.postWebhook(gw, 'telegram', body, { 'x-telegram-bot-api-secret-token': SECRET });
}

async function caseOf(gw, token, chatId) {
  return h.waitFor(`case of ${chatId} in the queue`, async () => {
    const q = await api(gw, 'GET', '/agent/queue', { token });
    return q.status === 200 && q.body.cases.find((c) => c.user === String(chatId));
  });
}

function agentSocket(gw) {
  return wsc.connect({ port: gw.port, path: '/agent/ws', protocol: 'civicgate-agent', origin: gw.base });
}

let chat = 7770000 + Math.floor(Math.random() * 1000);
const newChat = () => ++chat;

test.before(async () => {
  redis = await h.startRedis();
  tg = await h.startFakeTelegram(TOKEN);
  const telegram = { bot_token: TOKEN, webhook_secret: SECRET, api_base: tg.base };
  const agents = agentsConfig();
  gwA = await h.startGateway({ redisUrl: redis.url, telegram, extra: { agents } });
  gwB = await h.startGateway({ redisUrl: redis.url, telegram, extra: { agents } });
  await gwA.ready();
  await gwB.ready();
});

test.after(async () => {
  const ra = gwA && await gwA.stop();
  const rb = gwB && await gwB.stop();
  if (tg) await tg.stop();
  if (redis) await redis.stop();
  if (ra) assert.equal(ra.code, 0, `gateway A exit code (logs:\n${gwA.logs.slice(-3000)})`);
  if (rb) assert.equal(rb.code, 0, `gateway B exit code (logs:\n${gwB.logs.slice(-3000)})`);
});

test('the agents API refuses requests without a valid token, and wrong passwords', async () => {
  for (const [method, path] of [['GET', '/agent/me'], ['GET', '/agent/queue'], ['GET', '/agent/cases'],
    ['POST', '/agent/cases/c_1_abcd/claim'], ['GET', '/agent/agents'], ['GET', '/agent/canned']]) {
    const none = await api(gwA, method, path);
    assert.equal(none.status, 401, `${method} ${path} without a token`);
    assert.equal(typeof none.body.error, 'string');
    const bad = await api(gwA, method, path, { token: 'f'.repeat(64) });
    assert.equal(bad.status, 401, `${method} ${path} with an unknown token`);
  }
  const wrong = await api(gwA, 'POST', '/agent/login', { body: { name: 'alice', password: 'nope' } });
  const unknown = await api(gwA, 'POST', '/agent/login', { body: { name: 'mallory', password: 'nope' } });
  assert.equal(wrong.status, 401);
  assert.equal(unknown.status, 401);
  assert.equal(wrong.body.error, unknown.body.error, 'the same answer for a wrong name and a wrong password');
  // a logged-out token stops working
  const t = await login(gwA, 'bob');
  assert.equal((await api(gwA, 'GET', '/agent/me', { token: t })).status, 200);
  assert.equal((await api(gwA, 'POST', '/agent/logout', { token: t })).status, 204);
  assert.equal((await api(gwA, 'GET', '/agent/me', { token: t })).status, 401);
});

test('repeated failed logins are locked out with 429', async () => {
  const name = 'sam';
  let last;
  for (let i = 0; i < 6; i++) last = await api(gwB, 'POST', '/agent/login', { body: { name, password: `bad-${i}` } });
  assert.equal(last.status, 429, JSON.stringify(last.body));
  // even the right password is refused while locked
  const right = await api(gwB, 'POST', '/agent/login', { body: { name, password: PASSWORDS.sam } });
  assert.equal(right.status, 429);
  await redis.cli('DEL', 'cg:agent:fail:name:sam', 'cg:agent:fail:peer:127.0.0.1');
});

test('the agents socket refuses a bad origin, a missing subprotocol, no auth and a bad token', async () => {
  await assert.rejects(wsc.connect({ port: gwA.port, path: '/agent/ws', protocol: 'civicgate-agent', origin: 'https://evil.example' }),
    (e) => e.status === 403);
  await assert.rejects(wsc.connect({ port: gwA.port, path: '/agent/ws', origin: gwA.base }), (e) => e.status === 400);

  const bad = await agentSocket(gwA);
  bad.send({ type: 'auth', token: 'a'.repeat(64) });
  const err = await bad.next((f) => f.type === 'error');
  assert.equal(err.error, 'unauthorized');
  assert.equal((await bad.closed).code, 4401);

  const early = await agentSocket(gwA);
  early.send({ type: 'call', req: 1, method: 'GET', path: '/api/v1/agent/queue' });
  assert.equal((await early.next((f) => f.type === 'error')).error, 'unauthorized');
  assert.equal((await early.closed).code, 4401);
});

test('logging out closes the sockets on that token, on every instance', async () => {
  const t = await login(gwA, 'bob');
  const ws = await agentSocket(gwB);
  ws.send({ type: 'auth', token: t });
  await ws.next((f) => f.type === 'hello');
  assert.equal((await api(gwA, 'POST', '/agent/logout', { token: t })).status, 204);
  assert.equal((await ws.next((f) => f.type === 'error')).error, 'unauthorized');
  assert.equal((await ws.closed).code, 4401);
});

test('a Telegram citizen is handed to an agent and back to the bot, with a satisfaction question', async (t) => {
  const id = newChat();
  const alice = await login(gwA, 'alice');
  const ws = await agentSocket(gwA);
  // closed even when an assertion fails: an open socket keeps alice "seen",
  // and the grace test below needs her gone
  t.after(() => ws.close());
  ws.send({ type: 'auth', token: alice });
  const hello = await ws.next((f) => f.type === 'hello');
  assert.equal(hello.agent.name, 'alice');
  assert.equal(hello.agent.display_name, 'Alice Martín');

  // asks for a person: the bot says so, then the position in the queue
  assert.equal((await hook(gwA, h.tgText(id, 'i want to talk to a person', { first: 'Ana' }))).status, 200);
  const pos = await waitSend(id, (m) => /number 1 in the queue/.test(m.body.text), 'position notice');
  assert.ok(pos.index >= 1, 'the hand-off answer comes first');

  const c = await caseOf(gwA, alice, id);
  assert.equal(c.channel, 'telegram');
  assert.equal(c.status, 'queued');
  assert.equal(c.position, 1);
  assert.equal(c.name, 'Ana');
  assert.equal(c.reason, 'asked');
  assert.equal(c.question, 'i want to talk to a person');
  assert.equal(c.agent, null);
  assert.match(c.id, /^c_\d+_[0-9a-f]{8}$/);
  // the socket got the queue with it
  await ws.next((f) => f.type === 'queue' && f.cases.some((x) => x.id === c.id));

  // the daily figures before the claim (a supervisor may read them: analytics)
  const sam = await login(gwA, 'sam');
  const figures = async () => {
    const r = await api(gwA, 'GET', '/admin/stats?channel=telegram', { token: sam });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.totals;
  };
  const before = await figures();
  assert.equal((await api(gwA, 'GET', '/admin/stats', { token: alice })).status, 403, 'agents may not');

  const claim = await api(gwA, 'POST', `/agent/cases/${c.id}/claim`, { token: alice });
  assert.equal(claim.status, 200, JSON.stringify(claim.body));
  assert.equal(claim.body.case.status, 'assigned');
  assert.equal(claim.body.case.agent, 'alice');
  // claiming again is no new case for the figures
  assert.equal((await api(gwA, 'POST', `/agent/cases/${c.id}/claim`, { token: alice })).status, 200);
  const claimed = await h.waitFor('the claim in the daily figures', async () => {
    const t = await figures();
    return t.cases > before.cases ? t : null;
  });
  assert.equal(claimed.cases, before.cases + 1);
  assert.ok(claimed.median_wait_s >= 0);

  // the citizen writes: the agent gets it live, the bot stays silent
  assert.equal((await hook(gwA, h.tgText(id, 'my pension payment is late'))).status, 200);
  const entry = await ws.next((f) => f.type === 'entry' && f.case === c.id && f.entry.dir === 'in');
  assert.equal(entry.entry.text, 'my pension payment is late');

  const reply = await api(gwA, 'POST', `/agent/cases/${c.id}/reply`, { token: alice, body: { text: 'Hello Ana, I am checking your file.' } });
  assert.equal(reply.status, 202, JSON.stringify(reply.body));
  assert.equal(reply.body.entry.agent, 'alice');
  const got = await waitSend(id, (m) => m.body.text === 'Hello Ana, I am checking your file.', 'agent reply on Telegram');
  // replies are delivered in order: had the bot answered the citizen's
  // message, its answer would be right before the agent's reply
  assert.match(got.all[got.index - 1].body.text, /number 1 in the queue/);

  const note = await api(gwA, 'POST', `/agent/cases/${c.id}/notes`, { token: alice, body: { text: 'internal: file 123' } });
  assert.equal(note.status, 201);

  const view = await api(gwA, 'GET', `/agent/cases/${c.id}`, { token: alice });
  assert.equal(view.status, 200);
  const dirs = view.body.transcript.map((e) => `${e.dir}:${e.kind || ''}:${e.text}`);
  assert.ok(dirs.some((d) => d === 'in::i want to talk to a person'), dirs.join('\n'));
  assert.ok(dirs.some((d) => d.startsWith('note:escalated:')), 'escalation noted');
  assert.ok(dirs.some((d) => d.startsWith('note:claimed:')), 'claim noted');
  assert.ok(view.body.transcript.some((e) => e.dir === 'out' && e.agent === 'alice'), 'the agent reply, with its author');
  assert.ok(view.body.transcript.some((e) => e.dir === 'note' && e.agent === 'alice' && e.text === 'internal: file 123'));
  assert.ok(view.body.transcript.some((e) => e.dir === 'out' && !e.agent), 'the bot part too');
  const calls = sends(await tg.calls(), id);
  assert.ok(!calls.some((m) => m.body.text.includes('internal: file 123')), 'notes never reach the citizen');

  const res = await api(gwA, 'POST', `/agent/cases/${c.id}/resolve`, { token: alice });
  assert.equal(res.status, 200);
  assert.equal(res.body.case.status, 'resolved');
  const q = await waitSend(id, (m) => /How satisfied/.test(m.body.text), 'satisfaction question');
  const kb = q.msg.body.reply_markup.inline_keyboard.flat();
  assert.deepEqual(kb.map((b) => b.callback_data), ['csat:1', 'csat:2', 'csat:3', 'csat:4', 'csat:5']);

  assert.equal((await hook(gwA, h.tgCallback(id, 'csat:4'))).status, 200);
  await waitSend(id, (m) => /Thank you for your answer/.test(m.body.text), 'thanks for the rating');
  const after = await h.waitFor('csat stored', async () => {
    const v = await api(gwA, 'GET', `/agent/cases/${c.id}`, { token: alice });
    return v.body.case.csat === 4 ? v : null;
  });
  assert.equal(after.body.case.status, 'resolved');
  // the rating is in the day's satisfaction figures, once (the analytics
  // batch is written within 100 ms of the commit: docs/redis.md, Analytics)
  const rated = await h.waitFor('the rating in the daily figures', async () => {
    const t = await figures();
    return t.csat_n > before.csat_n ? t : null;
  });
  assert.equal(rated.csat_n, before.csat_n + 1);
  const sum = (t) => (t.csat_avg || 0) * t.csat_n;
  assert.ok(Math.abs(sum(rated) - sum(before) - 4) < 0.01, JSON.stringify({ before, rated }));
  assert.equal(rated.cases, before.cases + 1);

  // the bot answers again
  assert.equal((await hook(gwA, h.tgText(id, 'how do i apply for medicaid'))).status, 200);
  await waitSend(id, (m) => /medicaid\.gov/.test(m.body.text), 'bot answer after the hand-off');

  // every action was audited, with no message text
  const audit = await redis.cli('XRANGE', 'cg:audit', '-', '+');
  for (const action of ['login', 'claim', 'reply', 'note', 'view', 'resolve']) {
    assert.ok(audit.includes(`"${action}"`), `audit has ${action}`);
  }
  assert.ok(!audit.includes('checking your file'), 'no message text in the audit log');
});

test('a case created on one instance is claimed through the other, with a token from the first', async () => {
  const id = newChat();
  const bob = await login(gwA, 'bob');             // token made by A
  const wsB = await agentSocket(gwB);              // socket on B
  wsB.send({ type: 'auth', token: bob });
  await wsB.next((f) => f.type === 'hello');
  assert.equal((await hook(gwA, h.tgText(id, 'talk to a person'))).status, 200);
  const c = await caseOf(gwB, bob, id);
  await wsB.next((f) => f.type === 'queue' && f.cases.some((x) => x.id === c.id));
  // claim as a socket call on B
  wsB.send({ type: 'call', req: 7, method: 'POST', path: `/api/v1/agent/cases/${c.id}/claim` });
  const r = await wsB.next((f) => f.type === 'result' && f.req === 7);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.case.agent, 'bob');
  // the citizen's next message, taken by whichever instance, reaches B's socket
  assert.equal((await hook(gwA, h.tgText(id, 'are you there?'))).status, 200);
  const e = await wsB.next((f) => f.type === 'entry' && f.case === c.id && f.entry.dir === 'in');
  assert.equal(e.entry.text, 'are you there?');
  // and B's reply reaches Telegram
  wsB.send({ type: 'call', req: 8, method: 'POST', path: `/api/v1/agent/cases/${c.id}/reply`, body: { text: 'Yes, Bob here.' } });
  assert.equal((await wsB.next((f) => f.type === 'result' && f.req === 8)).status, 202);
  await waitSend(id, (m) => m.body.text === 'Yes, Bob here.', 'reply through B');
  wsB.close();
});

test('a case whose citizen session has gone: claim, transfer and resolve do not make it again without a TTL', async () => {
  const id = newChat();
  const [alice, bob] = [await login(gwA, 'alice'), await login(gwB, 'bob')];
  assert.equal((await hook(gwA, h.tgText(id, 'talk to a person'))).status, 200);
  const c = await caseOf(gwA, alice, id);
  const sess = `cg:sess:{telegram:${id}}`;
  assert.equal(await redis.cli('EXISTS', sess), '(integer) 1');
  await redis.cli('DEL', sess);              // expired (or erased) while the case waited
  assert.equal((await api(gwA, 'POST', `/agent/cases/${c.id}/claim`, { token: alice })).status, 200);
  assert.equal(await redis.cli('EXISTS', sess), '(integer) 0', 'claim made the session again');
  const t = await api(gwA, 'POST', `/agent/cases/${c.id}/transfer`, { token: alice, body: { to: 'bob' } });
  assert.equal(t.status, 200, JSON.stringify(t.body));
  assert.equal(await redis.cli('EXISTS', sess), '(integer) 0', 'transfer made the session again');
  assert.equal((await api(gwB, 'POST', `/agent/cases/${c.id}/resolve`, { token: bob })).status, 200);
  assert.equal(await redis.cli('EXISTS', sess), '(integer) 0', 'resolve made the session again');
});

test('two agents claiming the same case at once: exactly one wins', async () => {
  const id = newChat();
  const [alice, bob] = [await login(gwA, 'alice'), await login(gwB, 'bob')];
  assert.equal((await hook(gwB, h.tgText(id, 'i need to talk to a representative'))).status, 200);
  const c = await caseOf(gwA, alice, id);
  const [ra, rb] = await Promise.all([
    api(gwA, 'POST', `/agent/cases/${c.id}/claim`, { token: alice }),
    api(gwB, 'POST', `/agent/cases/${c.id}/claim`, { token: bob }),
  ]);
  const statuses = [ra.status, rb.status].sort();
  assert.deepEqual(statuses, [200, 409], JSON.stringify([ra.body, rb.body]));
  const [win, lose, loserName] = ra.status === 200 ? [ra, rb, 'bob'] : [rb, ra, 'alice'];
  assert.equal(lose.body.error, 'already claimed');
  assert.equal(lose.body.agent, win.body.case.agent);
  assert.notEqual(win.body.case.agent, loserName);
  // the loser may not answer it
  const loserToken = loserName === 'alice' ? alice : bob;
  const r = await api(gwA, 'POST', `/agent/cases/${c.id}/reply`, { token: loserToken, body: { text: 'me too' } });
  assert.ok(r.status === 409 || r.status === 403, `loser reply: ${r.status}`);
});

test('roles: agents see queued and own cases; transfer; supervisors see everyone', async () => {
  const id = newChat();
  const [alice, bob] = [await login(gwA, 'alice'), await login(gwA, 'bob')];
  const sam = await login(gwA, 'sam');
  assert.equal((await hook(gwA, h.tgText(id, 'talk to a person'))).status, 200);
  const c = await caseOf(gwA, alice, id);
  assert.equal((await api(gwA, 'POST', `/agent/cases/${c.id}/claim`, { token: alice })).status, 200);
  // bob cannot read alice's case, nor transfer it
  assert.equal((await api(gwA, 'GET', `/agent/cases/${c.id}`, { token: bob })).status, 403);
  assert.equal((await api(gwA, 'POST', `/agent/cases/${c.id}/transfer`, { token: bob, body: { to: 'bob' } })).status, 409);
  assert.equal((await api(gwA, 'POST', `/agent/cases/${c.id}/transfer`, { token: alice, body: { to: 'nobody' } })).status, 404);
  const t = await api(gwA, 'POST', `/agent/cases/${c.id}/transfer`, { token: alice, body: { to: 'bob' } });
  assert.equal(t.status, 200);
  assert.equal(t.body.case.agent, 'bob');
  assert.equal((await api(gwA, 'GET', `/agent/cases/${c.id}`, { token: bob })).status, 200);
  assert.equal((await api(gwA, 'GET', `/agent/cases/${c.id}`, { token: alice })).status, 403);
  const mine = await api(gwA, 'GET', '/agent/cases?status=assigned&mine=1', { token: bob });
  assert.ok(mine.body.cases.some((x) => x.id === c.id));
  const alices = await api(gwA, 'GET', '/agent/cases?status=assigned', { token: alice });
  assert.ok(!alices.body.cases.some((x) => x.id === c.id), 'an agent does not list others\' cases');
  // back to the queue
  const back = await api(gwA, 'POST', `/agent/cases/${c.id}/transfer`, { token: bob, body: { to: null } });
  assert.equal(back.status, 200);
  assert.equal(back.body.case.status, 'queued');
  // supervisors: the agents list; agents may not
  assert.equal((await api(gwA, 'GET', '/agent/agents', { token: alice })).status, 403);
  const list = await api(gwA, 'GET', '/agent/agents', { token: sam });
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.agents.map((a) => a.name), ['alice', 'bob', 'sam']);
  assert.equal(list.body.agents.find((a) => a.name === 'alice').online, true);
  const all = await api(gwA, 'GET', '/agent/cases?status=all', { token: sam });
  assert.ok(all.body.cases.some((x) => x.id === c.id));
  // canned answers from the intent table, in the asked language
  const canned = await api(gwA, 'GET', '/agent/canned?lang=es&q=medicaid', { token: alice });
  assert.equal(canned.status, 200);
  assert.ok(canned.body.answers.length > 0 && canned.body.answers.length <= 50);
  assert.ok(canned.body.answers.every((a) => typeof a.intent === 'string' && typeof a.text === 'string'));
  assert.equal((await api(gwA, 'POST', `/agent/cases/${c.id}/resolve`, { token: sam })).status, 200);
  await waitSend(id, (m) => /How satisfied/.test(m.body.text), 'resolve notice');
  // the metrics (loopback may read them without a token)
  const metrics = await h.waitFor('agents gauges', async () => {
    const t = await (await fetch(`${gwA.base}/metrics`)).text();
    return /civicgate_agents_online \d/.test(t) && /civicgate_agents_queue_length \d/.test(t) ? t : null;
  }, { timeout: 15000 });
  const claimed = metrics.match(/civicgate_agent_cases_claimed_total\{channel="telegram"\} (\d+)/);
  assert.ok(claimed && Number(claimed[1]) >= 1, 'claims counted');
  const resolved = metrics.match(/civicgate_agent_cases_resolved_total\{channel="telegram"\} (\d+)/);
  assert.ok(resolved && Number(resolved[1]) >= 1, 'resolves counted');
  assert.match(metrics, /civicgate_agents_queue_longest_wait_seconds [\d.]+/);
});

test('a disconnected agent\'s cases go back to the queue after the grace period; the call-back offer', async () => {
  const agents = { ...agentsConfig(), disconnect_grace_s: 5, no_agent_timeout_s: 1 };
  const telegram = { bot_token: TOKEN, webhook_secret: SECRET, api_base: tg.base };
  const gwC = await h.startGateway({ redisUrl: redis.url, telegram, extra: { agents } });
  try {
    await gwC.ready();
    // the call-back offer: queued longer than no_agent_timeout_s
    const waiting = newChat();
    assert.equal((await hook(gwC, h.tgText(waiting, 'talk to a person'))).status, 200);
    const offer = await waitSend(waiting, (m) => /leave a message/.test(m.body.text), 'call-back offer');
    const kb = offer.msg.body.reply_markup.inline_keyboard.flat().map((b) => b.callback_data);
    assert.deepEqual(kb, ['cb', 'w']);
    assert.equal((await hook(gwC, h.tgCallback(waiting, 'cb'))).status, 200);
    await waitSend(waiting, (m) => /write your message and how we can reach you/.test(m.body.text), 'call-back answer');
    const sam = await login(gwC, 'sam');
    const wc = await h.waitFor('callback flag', async () => {
      const q = await api(gwC, 'GET', '/agent/queue', { token: sam });
      const c = q.body.cases.find((x) => x.user === String(waiting));
      return c && c.callback ? c : null;
    });
    assert.equal(wc.status, 'queued');
    // offered once only: exactly one offer however many sweeps ran
    assert.equal(sends(await tg.calls(), waiting).filter((m) => /leave a message/.test(m.body.text)).length, 1);
    assert.equal((await api(gwC, 'POST', `/agent/cases/${wc.id}/resolve`, { token: sam })).status, 200);

    // grace: alice claims, then is gone (no socket, no calls)
    const id = newChat();
    const alice = await login(gwC, 'alice');
    assert.equal((await hook(gwC, h.tgText(id, 'talk to a person'))).status, 200);
    const c = await caseOf(gwC, alice, id);
    assert.equal((await api(gwC, 'POST', `/agent/cases/${c.id}/claim`, { token: alice })).status, 200);
    const status = () => redis.cli('HGET', `cg:case:${c.id}`, 'status');
    assert.match(await status(), /assigned/);
    await h.waitFor('case returned to the queue', async () => /queued/.test(await status()), { timeout: 30000 });
    const view = await api(gwC, 'GET', `/agent/cases/${c.id}`, { token: sam });
    assert.equal(view.body.case.status, 'queued');
    assert.equal(view.body.case.agent, null);
    assert.ok(view.body.transcript.some((e) => e.kind === 'returned' && e.agent === 'alice'));
    assert.equal((await api(gwC, 'POST', `/agent/cases/${c.id}/resolve`, { token: sam })).status, 200);
    await waitSend(id, (m) => /How satisfied/.test(m.body.text), 'resolve notice');
  } finally {
    const r = await gwC.stop();
    assert.equal(r.code, 0, gwC.logs.slice(-3000));
  }
});

test('outside office hours the citizen is told when the office opens; the case stays queued', async () => {
  // open only on Sundays from 00:00 to 00:01 UTC: closed now (unless the
  // test runs in that minute, when the office is honestly open)
  const agents = { ...agentsConfig(), office_hours: { timezone: 'UTC', week: { sun: ['00:00-00:01'] } } };
  const telegram = { bot_token: TOKEN, webhook_secret: SECRET, api_base: tg.base };
  const gwD = await h.startGateway({ redisUrl: redis.url, telegram, extra: { agents } });
  try {
    await gwD.ready();
    const now = new Date();
    const open = now.getUTCDay() === 0 && now.getUTCHours() === 0 && now.getUTCMinutes() === 0;
    const id = newChat();
    assert.equal((await hook(gwD, h.tgText(id, 'talk to a person'))).status, 200);
    if (!open) {
      const m = await waitSend(id, (x) => /office is closed/.test(x.body.text), 'closed notice');
      const opens = m.msg.body.text.match(/opens on (\d{4}-\d{2}-\d{2}) 00:00/);
      assert.ok(opens, m.msg.body.text);
      assert.equal(new Date(`${opens[1]}T00:00:00Z`).getUTCDay(), 0, 'a Sunday');
      assert.ok(new Date(`${opens[1]}T00:00:00Z`) > now);
    }
    const sam = await login(gwD, 'sam');
    const c = await caseOf(gwD, sam, id);
    assert.equal(c.status, 'queued');
    assert.equal((await api(gwD, 'POST', `/agent/cases/${c.id}/resolve`, { token: sam })).status, 200);
    // delivered before the stop (a reply still held by the outbox at exit is another matter)
    await waitSend(id, (m) => /How satisfied/.test(m.body.text), 'resolve notice');
  } finally {
    const r = await gwD.stop();
    assert.equal(r.code, 0, gwD.logs.slice(-3000));
  }
});

test('after two messages the bot did not understand it offers a person; yes opens a case with that question', async () => {
  const id = newChat();
  const sam = await login(gwA, 'sam');
  assert.equal((await hook(gwA, h.tgText(id, 'zxqv plonk wibble'))).status, 200);
  await waitSend(id, () => true, 'first fallback');
  assert.equal((await hook(gwA, h.tgText(id, 'florp quazzle snirk'))).status, 200);
  const yesNo = (m) => {
    const kb = m.body.reply_markup && m.body.reply_markup.inline_keyboard;
    const data = kb ? kb.flat().map((b) => b.callback_data) : [];
    return data.includes('y') && data.includes('n');
  };
  const offer = await waitSend(id, yesNo, 'the offer of a person (yes / no)');
  assert.equal(offer.index, 1, 'offered at the second fallback');
  assert.match(offer.msg.body.text, /person/i);
  assert.equal((await hook(gwA, h.tgCallback(id, 'y'))).status, 200);
  const c = await caseOf(gwA, sam, id);
  assert.equal(c.reason, 'fallbacks');
  assert.equal(c.question, 'florp quazzle snirk');
  await waitSend(id, (m) => /in the queue/.test(m.body.text), 'position notice');
  assert.equal((await api(gwA, 'POST', `/agent/cases/${c.id}/resolve`, { token: sam })).status, 200);
  await waitSend(id, (m) => /How satisfied/.test(m.body.text), 'resolve notice');
});

test('Redis down: agents get 503 (not 401, their session is not lost); back: the same token works', async () => {
  const t = await login(gwA, 'bob');
  await redis.stop();
  const r = await api(gwA, 'GET', '/agent/me', { token: t });
  assert.equal(r.status, 503, JSON.stringify(r.body));
  const login2 = await api(gwA, 'POST', '/agent/login', { body: { name: 'bob', password: PASSWORDS.bob } });
  assert.equal(login2.status, 503);
  await redis.restart();
  await gwA.ready();
  await h.waitFor('the token works again', async () => (await api(gwA, 'GET', '/agent/me', { token: t })).status === 200);
});
