// A national catalogue: 10,000 intent files next to the demo table (issue 8's
// "a national government's full catalogue"), through the real gateway:
// loaded at start and answered from; reloaded live while webhooks keep
// being answered (the table is read and trained on the thread pool, not on
// the loop); one broken file among the 10,000 refused with
// path:line:column while the old table keeps serving.
// A question about nothing in the table gets the fallback (the matcher's
// large-table model, used from 1,000 intents on, through the gateway).
// Real binary, real redis-server, fake Bot API. The files are generated
// here: 20 directories of 500, five English examples and a sourced answer
// each, words of their own ("w00030") so that each question has one intent.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./lib/harness');

const TOKEN = '779:catalogue-e2e-token';
const SECRET = 'catalogue-e2e-secret';
const ADMIN = 'catalogue-e2e-admin-token-0123456789-abcdefgh';
const sha256 = (s) => require('node:crypto').createHash('sha256').update(s).digest('hex');
const N = 10000;
const SERVICES = ['permit', 'licence', 'benefit', 'grant', 'registration', 'certificate', 'tax', 'passport',
  'clinic', 'school'];

let redis, tg, gw, dir;
let chat = 7700000 + Math.floor(Math.random() * 10000);

const word = (k) => `w${String(k).padStart(5, '0')}`;
const idOf = (i) => `gen-${String(i).padStart(5, '0')}`;
const fileOf = (i) => path.join(dir, 'catalogue', String(Math.floor(i / 500)).padStart(2, '0'), `${idOf(i)}.json`);
const question = (i) => `how do i get a ${SERVICES[i % 10]} for ${word(3 * i)}`;

function intent(i, answer) {
  const [a, b, c] = [word(3 * i), word(3 * i + 1), word(3 * i + 2)];
  const s = SERVICES[i % 10];
  return {
    id: idOf(i),
    title: { en: `${s} ${a}` },
    owner: 'Catalogue test office',
    source: `https://example.gov/${a}`,
    reviewed: '2026-11-26',
    review_by: '2027-11-26',
    examples: { en: [`how do i get a ${s} for ${a}`, `${a} ${b} ${s}`, `apply for ${a} ${c}`,
      `${b} ${c} ${s} question`, `where is the ${a} office`] },
    answer: { en: answer || `To get a ${s} for ${a}, apply at the ${b} office: https://example.gov/${a}` },
  };
}

const api = (method, p) => h.apiCall(gw, method, p, { token: ADMIN });
const send = (id, text) => h.tgSend(gw, SECRET, id, text);

const repliesTo = async (id) =>
  (await tg.calls()).filter((c) => c.method === 'sendMessage' && String(c.body.chat_id) === String(id));

async function ask(id, text) {
  await send(id, text);
  const r = await h.waitFor(`a reply to ${id}`, async () => {
    const all = await repliesTo(id);
    return all.length ? all : null;
  }, { timeout: 20000 });
  return r[0].body.text;
}

test.before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cg-catalogue-'));
  fs.cpSync(path.join(h.ROOT, 'intents'), dir, { recursive: true });
  for (let i = 0; i < N; i++) {
    fs.mkdirSync(path.dirname(fileOf(i)), { recursive: true });
    fs.writeFileSync(fileOf(i), JSON.stringify(intent(i), null, 2));
  }
  redis = await h.startRedis({ aof: false });
  tg = await h.startFakeTelegram(TOKEN);
  gw = await h.startGateway({
    redisUrl: redis.url, intentsDir: dir,
    telegram: { bot_token: TOKEN, webhook_secret: SECRET, api_base: tg.base, max_per_second: 0 },
    extra: { admin: { tokens: [{ name: 'ops-catalogue', sha256: sha256(ADMIN) }] } },
  });
  await gw.ready();
});

test.after(async () => {
  if (gw) await gw.stop();
  if (tg) await tg.stop();
  if (redis) await redis.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('10,000 intent files load at start: the catalogue and the demo table answer, anything else gets the fallback', async () => {
  const info = (await api('GET', '/api/v1/admin/intents')).json;
  assert.ok(info.intents >= N + 20, `${info.intents} intents loaded`);
  assert.equal(info.last_error, null);
  for (const i of [0, 10, 4321, N - 1]) {
    const a = await ask(++chat, question(i));
    assert.match(a, new RegExp(`apply at the ${word(3 * i + 1)} office`), `question ${i}: ${a}`);
    assert.match(a, new RegExp(`example\\.gov/${word(3 * i)}`));
  }
  assert.match(await ask(++chat, 'how do i apply for medicaid'), /medicaid\.gov/i);
  // from 1,000 intents on the matcher uses its large-table model: a question
  // about nothing in the table still gets the fallback, not a guess
  const fallback = JSON.parse(fs.readFileSync(path.join(dir, 'conversation', 'fallback.json'), 'utf8')).answer.en;
  for (const q of ['how tall is the eiffel tower', 'what is the weather on mars tomorrow']) {
    const a = await ask(++chat, q);
    assert.ok(a.includes(fallback), `${q}: ${a}`);
    assert.doesNotMatch(a, /example\.gov/);
  }
});

test('a reload of 10,000 files runs off the loop: webhooks are answered meanwhile, then the new answer serves', async (t) => {
  const v0 = (await api('GET', '/api/v1/admin/intents')).json.version;
  fs.writeFileSync(fileOf(10), JSON.stringify(intent(10, 'New answer for w00030, reloaded: https://example.gov/new'), null, 2));
  const reload = api('POST', '/api/v1/admin/intents/reload');
  let over = false;
  reload.then(() => { over = true; }, () => { over = true; });
  // while the new table is read and trained, the loop answers health checks
  // and webhooks (the reload's own answer comes only once it is done)
  let healthy = 0;
  const first = chat + 1;
  let sent = 0;
  await h.waitFor('the reload running', async () => (await api('GET', '/api/v1/admin/intents')).json.reloading || over);
  while (!over && sent < 2000) {
    const [hz] = await Promise.all([fetch(gw.base + '/healthz'), send(first + sent, question(4321))]);
    if (!over && hz.status === 200) healthy++;
    sent++;
  }
  const r = await reload;
  assert.equal(r.status, 200, r.text);
  assert.notEqual(r.json.version, v0);
  t.diagnostic(`during the reload: ${healthy} health checks and ${sent} webhooks answered`);
  assert.ok(healthy >= 1, 'no health check was answered while the reload ran');
  chat += sent;
  // every webhook sent during the reload is answered, from the table that
  // was serving (4321 did not change)
  for (let k = 0; k < sent; k++) {
    const got = await h.waitFor(`the reply to ${first + k}`, async () => {
      const all = await repliesTo(first + k);
      return all.length ? all : null;
    }, { timeout: 20000 });
    assert.equal(got.length, 1);
    assert.match(got[0].body.text, /apply at the w12964 office/);
  }
  assert.match(await ask(++chat, question(10)), /New answer for w00030, reloaded/);
});

test('one broken file among 10,000: the reload is refused with its path:line:column, the old table keeps serving', async () => {
  const v0 = (await api('GET', '/api/v1/admin/intents')).json.version;
  const bad = fileOf(7777);
  const good = fs.readFileSync(bad, 'utf8');
  fs.writeFileSync(bad, good.replace('"answer"', '"answr"'));
  try {
    const r = await api('POST', '/api/v1/admin/intents/reload');
    h.assertRefusedAt(r, { version: v0, file: bad, text: good, key: 'answer', typo: 'answr' });
    assert.match(await ask(++chat, question(7777)), /apply at the w23332 office/);
  } finally {
    fs.writeFileSync(bad, good);
  }
  const ok = await api('POST', '/api/v1/admin/intents/reload');
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.version, v0, 'the same files give the same version');
});
