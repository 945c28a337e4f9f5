// WhatsApp and Messenger end to end: the real binary, a real redis-server and
// the fake Graph API (tests/e2e/fake-graph.js). Webhooks are signed the way
// Meta signs them (X-Hub-Signature-256 over the raw bytes).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');
const fakeGraph = require('./fake-graph.js');

const WA = { token: 'wa-e2e-token', secret: 'wa-app-secret-e2e', verify: 'wa-verify-e2e', phone: '1065550001' };
const FB = { token: 'page-e2e-token', secret: 'fb-app-secret-e2e', verify: 'fb-verify-e2e' };
let redis, graph, gw;
let n = Math.floor(Math.random() * 100000);

test.before(async () => {
  redis = await h.startRedis({ aof: false });
  graph = await fakeGraph.start({ waToken: WA.token, pageToken: FB.token, phoneNumberId: WA.phone, port: 0 });
  const base = `http://127.0.0.1:${graph.port}`;
  gw = await h.startGateway({
    redisUrl: redis.url,
    channels: {
      whatsapp: { phone_number_id: WA.phone, access_token: WA.token, app_secret: WA.secret,
        verify_token: WA.verify, api_base: base, api_version: 'v21.0' },
      messenger: { page_access_token: FB.token, app_secret: FB.secret, verify_token: FB.verify,
        api_base: base, api_version: 'v21.0' },
    },
  });
  await gw.ready();
});

test.after(async () => {
  const r = gw && await gw.stop();
  if (graph) await graph.close();
  if (redis) await redis.stop();
  if (r) assert.equal(r.code, 0, gw.logs.slice(-2000));
});

function waText(from, text) {
  const id = `wamid.E2E${++n}`;
  return {
    object: 'whatsapp_business_account',
    entry: [{ id: '102290129340398', changes: [{ field: 'messages', value: {
      messaging_product: 'whatsapp',
      metadata: { display_phone_number: '15550783881', phone_number_id: WA.phone },
      contacts: [{ profile: { name: 'Ana Pérez' }, wa_id: from }],
      messages: [{ from, id, timestamp: String(Math.floor(Date.now() / 1000)), type: 'text', text: { body: text } }],
    } }] }],
  };
}

function fbText(psid, text) {
  return {
    object: 'page',
    entry: [{ id: '106917301234567', time: Date.now(), messaging: [{
      sender: { id: psid }, recipient: { id: '106917301234567' }, timestamp: Date.now(),
      message: { mid: `m_E2E${++n}`, text },
    }] }],
  };
}

async function post(channel, obj, secret, sig) {
  const body = JSON.stringify(obj);
  const headers = { 'content-type': 'application/json' };
  if (sig !== null) headers['x-hub-signature-256'] = sig || fakeGraph.sign(body, secret);
  return h.postWebhook(gw, channel, body, headers);
}

async function sentTo(to, count = 1) {
  return h.waitFor(`${count} message(s) to ${to}`, async () => {
    const c = graph.calls.filter((x) => String(x.to) === String(to) && x.status === 200);
    return c.length >= count ? c : null;
  }, { timeout: 15000 });
}

test('WhatsApp: the hub.challenge handshake answers only with the right token', async () => {
  const ok = await fetch(`${gw.base}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=${WA.verify}&hub.challenge=1158201444`);
  assert.equal(ok.status, 200);
  assert.equal(await ok.text(), '1158201444');
  const bad = await fetch(`${gw.base}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1158201444`);
  assert.equal(bad.status, 403);
});

test('WhatsApp: a signed question is answered on WhatsApp with the source', async () => {
  const wa = String(15550100000 + n);
  const r = await post('whatsapp', waText(wa, 'how do i apply for medicaid'), WA.secret);
  assert.equal(r.status, 200, r.body);
  const [m] = await sentTo(wa);
  assert.equal(m.body.messaging_product, 'whatsapp');
  const text = m.body.type === 'text' ? m.body.text.body : m.body.interactive.body.text;
  assert.match(text, /medicaid\.gov/);
});

test('WhatsApp: the menu comes as interactive buttons or a list', async () => {
  const wa = String(15550200000 + n);
  assert.equal((await post('whatsapp', waText(wa, 'menu'), WA.secret)).status, 200);
  const [m] = await sentTo(wa);
  assert.equal(m.body.type, 'interactive');
  assert.ok(['button', 'list'].includes(m.body.interactive.type));
});

test('WhatsApp and Messenger: a wrong or missing signature gets 401 and stores nothing', async () => {
  const before = await redis.cli('dbsize');
  const wa = String(15550300000 + n);
  assert.equal((await post('whatsapp', waText(wa, 'hello'), 'not-the-secret')).status, 401);
  assert.equal((await post('whatsapp', waText(wa, 'hello'), WA.secret, null)).status, 401);
  assert.equal((await post('messenger', fbText('2654321', 'hello'), 'not-the-secret')).status, 401);
  assert.equal(await redis.cli('dbsize'), before);
});

test('Messenger: a signed question is answered through the Send API', async () => {
  const psid = String(7000000000 + n);
  const r = await post('messenger', fbText(psid, 'necesito medicaid para mi familia'), FB.secret);
  assert.equal(r.status, 200, r.body);
  const [m] = await sentTo(psid);
  assert.equal(m.body.recipient.id, psid);
  assert.equal(m.body.messaging_type, 'RESPONSE');
  const text = m.body.message.text || (m.body.message.attachment && m.body.message.attachment.payload.text);
  assert.match(text, /[Mm]edicaid/);
});
