// The agent console (/agent/) in a real browser: Debian's chromium driven by
// playwright-core, against the real gateway binary, a real redis-server and
// the fake Telegram Bot API (helpers in lib/console.js). In order:
//   the journey through the console (a Telegram citizen asks for a
//     person → the case appears live → claimed → the citizen's next message
//     appears live → the reply reaches the Bot API → note, canned answer →
//     resolve → the CSAT question → the rating shows);
//   the same actions with the keyboard only;
//   a supervisor seeing two agents, every case, assigning, the dashboard tab;
//   landmarks, control names and live regions;
//   unread marks, transfer back to the queue, drafts, the 4,096 limit;
//   the dashboard's mount contract;
//   a claim lost (409) and a reply refused (409) after the case moved;
//   a reload while Redis is down; the gateway restarting under the console;
//   unauthenticated access refused (API 401, socket 4401, revoked and
//     expired sessions, lockout), last because it locks the address out.
// Tests share one gateway and run in order. Screenshots of each step are kept
// under tests/e2e/artifacts/agent-console/ (git-ignored).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./lib/harness');
const C = require('./lib/console');

let stack, browser;
let chat = 7100000 + Math.floor(Math.random() * 100000);
const newChat = () => ++chat;

test.before(async () => {
  stack = await C.startStack();
  browser = await C.launch();
});

test.after(async () => {
  if (browser) await browser.close();
  if (stack) await stack.close();
});

// The console's case button for a citizen, in one of the lists.
const caseItem = (page, list, name) => page.locator(`#${list}-list .case-item`, { hasText: name });

// The CSAT question: the message after resolve that offers a 1-5 rating.
function isCsat(call) {
  const kb = call.body.reply_markup && call.body.reply_markup.inline_keyboard;
  const buttons = Array.isArray(kb) ? kb.flat() : [];
  const titles = buttons.map((b) => String(b.text));
  return ['1', '2', '3', '4', '5'].every((n) => titles.some((t) => t.includes(n)));
}

test('the journey: a Telegram citizen is handed off, claimed, answered and resolved in the console', async () => {
  const shots = new C.Shots('journey');
  const { context, page, errors } = await C.openConsole(browser, stack.gw);
  await page.getByRole('heading', { name: 'Sign in to the agent console' }).waitFor();
  await shots.take(page, 'sign-in');
  await C.signIn(page, 'alice');
  await assert.doesNotReject(page.getByText('Alice Martín').waitFor());
  await shots.take(page, 'inbox');

  // The citizen talks to the bot first, then asks for a person.
  const id = newChat();
  await stack.say(id, 'hola', { first: 'Ana', lang: 'es' });
  await stack.waitSent(id, 'the bot greets', () => true);
  await stack.say(id, 'quiero hablar con una persona', { first: 'Ana', lang: 'es' });

  // The case appears live in the queue: channel, language, question, position, waiting time.
  const queued = caseItem(page, 'queue', 'Ana');
  await queued.waitFor({ timeout: 15000 });
  const text = await queued.innerText();
  assert.match(text, /Telegram/);
  assert.match(text, /\bES\b/);
  assert.match(text, /quiero hablar con una persona/);
  assert.match(text, /#1\b/);
  const wait = queued.locator('.ci-wait');
  const w0 = await wait.innerText();
  assert.match(w0, /^\d+ (s|min)/);
  await h.waitFor('the waiting time to tick', async () => (await wait.innerText()) !== w0, { timeout: 5000 });
  await shots.take(page, 'case-in-queue');

  // Opening it shows the whole transcript, the bot's part too, before claiming.
  await queued.click();
  const tx = page.getByRole('log', { name: 'Transcript' });
  await tx.locator('.tx-citizen', { hasText: 'hola' }).first().waitFor();
  assert.ok(await tx.locator('.tx-bot').count() >= 1, 'the bot\'s replies are in the transcript');
  assert.match(await page.locator('#details').innerText(), /Telegram[\s\S]*Spanish/);
  assert.equal(await page.locator('#details-question').innerText(), 'quiero hablar con una persona');
  await shots.take(page, 'case-preview');

  // Claim: the case moves to "My cases" and the reply box opens.
  await page.getByRole('button', { name: 'Claim', exact: true }).click();
  await page.locator('#case-sub', { hasText: 'You hold this case' }).waitFor();
  await caseItem(page, 'mine', 'Ana').waitFor();
  assert.equal(await caseItem(page, 'queue', 'Ana').count(), 0);
  assert.equal(await page.locator('#case-title').innerText(), 'Ana');
  // System events have their own look: the hand-off and the claim.
  await tx.locator('.tx-system', { hasText: 'Handed off to a person' }).first().waitFor();
  await tx.locator('.tx-system', { hasText: 'Claimed by alice' }).waitFor();
  await shots.take(page, 'claimed');

  // The citizen's next message appears live.
  await stack.say(id, 'mi número de expediente es 4711', { first: 'Ana', lang: 'es' });
  await tx.locator('.tx-citizen', { hasText: 'mi número de expediente es 4711' }).waitFor({ timeout: 15000 });
  await shots.take(page, 'citizen-message-live');

  // The agent's reply (Enter sends) reaches the fake Telegram API.
  const box = page.getByRole('textbox', { name: 'Reply to the citizen' });
  const reply = 'Hola Ana, ahora mismo reviso el expediente 4711.';
  await box.fill(reply);
  assert.equal(await page.locator('#composer-count').innerText(), `${reply.length} / 4,096`);
  await box.press('Enter');
  await stack.waitSent(id, 'the agent\'s reply at the Bot API', (c) => c.body.text === reply);
  await tx.locator('.tx-agent', { hasText: reply }).waitFor();
  await h.waitFor('the reply box to empty once sent', async () => (await box.inputValue()) === '');
  await shots.take(page, 'replied');

  // An internal note: shown as such, never sent to the citizen.
  const note = 'Internal: claim 4711 was filed late, check with benefits team';
  await page.getByRole('radio', { name: 'Internal note' }).check();
  await page.getByRole('textbox', { name: 'Internal note (never sent to the citizen)' }).fill(note);
  await page.getByRole('button', { name: 'Add note', exact: true }).click();
  const noteEl = tx.locator('.tx-note', { hasText: note });
  await noteEl.waitFor();
  assert.match(await noteEl.innerText(), /Never sent to the citizen/i);
  await shots.take(page, 'note');

  // A canned answer from the intent table, in the citizen's language.
  await page.getByRole('radio', { name: 'Reply to citizen' }).check();
  await page.getByRole('button', { name: 'Canned answers', exact: true }).click();
  const search = page.getByRole('combobox', { name: 'Search the intent table' });
  const token = await page.evaluate(() => sessionStorage.getItem('civicgate.agent.token'));
  const canned = await C.api(stack.gw, token, 'GET', '/agent/canned?lang=es&q=medicaid');
  assert.equal(canned.status, 200);
  const first = canned.body.answers[0];
  assert.ok(first && first.text, 'the gateway has a canned answer about medicaid');
  await search.fill('medicaid');
  // The list shows the answers for "medicaid" (not those of the empty search before).
  await page.locator('#canned-status', { hasText: `${canned.body.answers.length} answer` }).waitFor({ timeout: 10000 });
  await h.waitFor('the medicaid answers', async () =>
    (await page.locator('#canned-list [aria-selected="true"] .canned-title').innerText()) === first.title);
  await shots.take(page, 'canned-answers');
  await search.press('Enter');
  assert.equal(await box.inputValue(), first.text);
  await box.press('Enter');
  await stack.waitSent(id, 'the canned answer at the Bot API', (c) => c.body.text === first.text);

  // Resolve, with a confirmation; the citizen gets the CSAT question.
  await page.getByRole('button', { name: 'Resolve', exact: true }).click();
  const dlg = page.getByRole('dialog', { name: 'Resolve this case?' });
  await dlg.waitFor();
  await shots.take(page, 'resolve-confirm');
  await dlg.getByRole('button', { name: 'Resolve', exact: true }).click();
  await page.locator('#case-sub .badge-status', { hasText: 'Resolved' }).waitFor();
  await stack.waitSent(id, 'the CSAT question', isCsat);
  assert.equal(await caseItem(page, 'mine', 'Ana').count(), 0);
  await page.getByText(/^Resolved by alice\. The bot answers this citizen again\./).waitFor();
  assert.equal(await page.locator('#composer').isVisible(), false);
  await shots.take(page, 'resolved');

  // The citizen taps 4: the rating shows on the case, live.
  await stack.press(id, 'csat:4', { lang: 'es' });
  await page.locator('#case-closed', { hasText: 'Satisfaction: 4 out of 5.' }).waitFor({ timeout: 15000 });
  assert.match(await page.locator('#details-case').innerText(), /Satisfaction\s+4 \/ 5/);
  await shots.take(page, 'rated');

  // Narrow screens: one column, nothing wider than the phone.
  await page.setViewportSize({ width: 390, height: 844 });
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth),
    'no horizontal scrolling at 390 px');
  await shots.take(page, 'phone');

  // The note never reached the citizen (it was written before the resolve
  // message, which has arrived, and a conversation's messages go in order).
  assert.ok(!(await stack.sent(id)).some((c) => String(c.body.text).includes('benefits team')));
  assert.deepEqual(errors, []);
  await context.close();
});

test('keyboard only: sign in, open, claim, reply, note, canned answer, transfer and resolve', async () => {
  const shots = new C.Shots('keyboard');
  const { context, page, errors } = await C.openConsole(browser, stack.gw);
  const kb = page.keyboard;
  const active = () => page.evaluate(() => {
    const a = document.activeElement;
    return { id: a.id, tag: a.tagName, data: a.getAttribute('data-id'), outline: getComputedStyle(a).outlineStyle };
  });

  // Sign in: the name field has the focus; Tab to the password; Enter submits.
  await page.locator('#login-name').waitFor();
  assert.equal((await active()).id, 'login-name');
  await kb.type('bob');
  await kb.press('Tab');
  assert.equal((await active()).id, 'login-password');
  await kb.type(C.AGENTS.bob.password);
  await kb.press('Enter');
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 15000 });

  const id1 = newChat();
  await stack.say(id1, 'talk to a person', { first: 'Luis' });
  await caseItem(page, 'queue', 'Luis').waitFor({ timeout: 15000 });

  // j opens the first case in the list and puts the focus on it, visibly.
  await kb.press('j');
  await page.locator('#case-title', { hasText: 'Luis' }).waitFor();
  const onItem = await active();
  assert.equal(onItem.tag, 'BUTTON');
  assert.ok(onItem.data, 'the focus is on the case in the list');
  assert.notEqual(onItem.outline, 'none', 'the focus ring is visible');
  await shots.take(page, 'j-opens');

  // c claims and puts the focus in the reply box; Esc leaves it, r comes back.
  await kb.press('c');
  await page.locator('#case-sub', { hasText: 'You hold this case' }).waitFor();
  await h.waitFor('the focus in the reply box', async () => (await active()).id === 'composer-text');
  await kb.press('Escape');
  assert.equal((await active()).id, 'transcript');
  await kb.press('r');
  assert.equal((await active()).id, 'composer-text');

  // Enter sends; Shift+Enter is a new line.
  await kb.type('Hola Luis,');
  await kb.press('Shift+Enter');
  await kb.type('le ayudo ahora.');
  await kb.press('Enter');
  await stack.waitSent(id1, 'the keyboard reply', (c) => c.body.text === 'Hola Luis,\nle ayudo ahora.');
  const emptied = (what) => h.waitFor(what, async () => (await page.locator('#composer-text').inputValue()) === '');
  await emptied('the box to empty after the reply');

  // Esc leaves the box; n writes a note.
  await kb.press('Escape');
  assert.notEqual((await active()).id, 'composer-text');
  await kb.press('n');
  assert.equal((await active()).id, 'composer-text');
  assert.ok(await page.locator('#composer.is-note').count() === 1, 'note mode is shown as such');
  await kb.type('Keyboard note');
  await kb.press('Enter');
  await page.locator('#transcript .tx-note', { hasText: 'Keyboard note' }).waitFor();
  await emptied('the box to empty after the note');

  // / opens the canned answers; arrows choose, Enter inserts, Enter sends.
  await kb.press('Escape');
  await kb.press('/');
  await page.getByRole('dialog', { name: /Canned answers/ }).waitFor();
  assert.equal((await active()).id, 'canned-search');
  await page.getByRole('option').nth(1).waitFor({ timeout: 10000 });
  await kb.press('ArrowDown');
  const chosen = await page.locator('#canned-list [aria-selected="true"] .canned-title').innerText();
  assert.equal(await page.locator('#canned-search').getAttribute('aria-activedescendant'), 'canned-1');
  await shots.take(page, 'canned-keyboard');
  await kb.press('Enter');
  assert.equal((await active()).id, 'composer-text');
  const inserted = await page.locator('#composer-text').inputValue();
  assert.ok(inserted.length > 0, `the answer "${chosen}" was inserted`);
  await kb.press('Enter');
  await stack.waitSent(id1, 'the canned answer', (c) => c.body.text === inserted);

  // e asks to resolve; the confirm button has the focus; Enter resolves.
  await kb.press('Escape');
  await kb.press('e');
  await page.getByRole('dialog', { name: 'Resolve this case?' }).waitFor();
  assert.equal((await active()).id, 'dlg-resolve-ok');
  await kb.press('Enter');
  await page.locator('#case-sub .badge-status', { hasText: 'Resolved' }).waitFor();
  await stack.waitSent(id1, 'the CSAT question', isCsat);

  // A second case: claimed, then transferred to alice with t.
  const id2 = newChat();
  await stack.say(id2, 'i need a human being', { first: 'Marta' });
  await caseItem(page, 'queue', 'Marta').waitFor({ timeout: 15000 });
  await page.locator('#main').focus();
  await kb.press('j');
  await page.locator('#case-title', { hasText: 'Marta' }).waitFor();
  await kb.press('c');
  await page.locator('#case-sub', { hasText: 'You hold this case' }).waitFor();
  await h.waitFor('the focus in the reply box', async () => (await active()).id === 'composer-text');
  await kb.press('Escape');
  await kb.press('t');
  await page.getByRole('dialog', { name: 'Transfer this case' }).waitFor();
  assert.equal((await active()).id, 'transfer-queue');
  await kb.press('ArrowDown');                 // "To another agent": the name field gets the focus
  assert.equal((await active()).id, 'transfer-agent');
  await kb.type('alice');
  await shots.take(page, 'transfer-keyboard');
  await kb.press('Enter');
  await page.getByRole('dialog', { name: 'Transfer this case' }).waitFor({ state: 'hidden' });
  await h.waitFor('Marta to leave bob\'s cases', async () => (await caseItem(page, 'mine', 'Marta').count()) === 0);
  const alice = await C.apiLogin(stack.gw, 'alice');
  const mine = await C.api(stack.gw, alice, 'GET', '/agent/cases?status=assigned&mine=1');
  assert.ok(mine.body.cases.some((c) => c.user === String(id2) && c.agent === 'alice'), 'alice holds the case');

  // ? lists the shortcuts; Esc closes the list.
  await kb.press('?');
  const help = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
  await help.waitFor();
  await shots.take(page, 'shortcuts');
  await kb.press('Escape');
  await help.waitFor({ state: 'hidden' });

  // Single-key shortcuts can be turned off (WCAG 2.1.4), from the same list.
  await page.getByRole('button', { name: 'Shortcuts', exact: true }).focus();
  await kb.press('Enter');
  await help.waitFor();
  const toggle = help.getByRole('checkbox', { name: /Use single-key shortcuts/ });
  await toggle.focus();
  await kb.press('Space');
  assert.equal(await toggle.isChecked(), false);
  await kb.press('Escape');
  await page.locator('#main').focus();
  await kb.press('?');
  assert.equal(await help.isVisible(), false, 'no shortcut while they are off');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a supervisor sees both agents online, their cases, and every case', async () => {
  const shots = new C.Shots('supervisor');
  const a = await C.openConsole(browser, stack.gw);
  await C.signIn(a.page, 'alice');
  const b = await C.openConsole(browser, stack.gw);
  await C.signIn(b.page, 'bob');
  // Agents have no supervisor tabs.
  assert.equal(await a.page.getByRole('link', { name: 'Agents & cases' }).count(), 0);
  assert.equal(await a.page.getByRole('link', { name: 'Dashboard' }).count(), 0);

  // A case held by bob.
  const id = newChat();
  await stack.say(id, 'real person please', { first: 'Rosa' });
  await caseItem(b.page, 'queue', 'Rosa').click({ timeout: 15000 });
  await b.page.getByRole('button', { name: 'Claim', exact: true }).click();
  await b.page.locator('#case-sub', { hasText: 'You hold this case' }).waitFor();

  const s = await C.openConsole(browser, stack.gw);
  await C.signIn(s.page, 'sue');
  // Cases held by others are listed in the supervisor's inbox.
  await caseItem(s.page, 'others', 'Rosa').waitFor({ timeout: 15000 });
  await s.page.getByRole('link', { name: 'Agents & cases' }).click();
  const agents = s.page.locator('#agents-body');
  for (const name of ['alice', 'bob']) {
    await agents.locator(`tr[data-agent="${name}"]`, { hasText: 'Online' }).waitFor({ timeout: 15000 });
  }
  // bob's count as the gateway has it (at least Rosa's case) is what the view shows.
  const sueToken = await s.page.evaluate(() => sessionStorage.getItem('civicgate.agent.token'));
  await h.waitFor('bob\'s case count', async () => {
    await s.page.getByRole('button', { name: 'Refresh', exact: true }).click();
    const list = await C.api(stack.gw, sueToken, 'GET', '/agent/agents');
    const bobCases = list.body.agents.find((x) => x.name === 'bob').cases;
    return bobCases >= 1 && (await agents.locator('tr[data-agent="bob"] td.num').innerText()) === String(bobCases);
  }, { timeout: 10000, interval: 500 });
  const row = s.page.locator('#allcases-body tr', { hasText: 'Rosa' });
  await row.waitFor({ timeout: 10000 });
  assert.match(await row.innerText(), /Assigned[\s\S]*bob/);
  await shots.take(s.page, 'agents-and-cases');

  // The supervisor assigns a queued case to alice, who sees it arrive.
  const id2 = newChat();
  await stack.say(id2, 'i need to talk to a representative', { first: 'Tomás' });
  await s.page.getByRole('link', { name: 'Inbox', exact: true }).click();
  await caseItem(s.page, 'queue', 'Tomás').click({ timeout: 15000 });
  await s.page.getByRole('button', { name: 'Assign', exact: true }).click();
  const assign = s.page.getByRole('dialog', { name: 'Assign this case to an agent' });
  await assign.getByLabel('Agent name').fill('alice');
  await assign.getByRole('button', { name: 'Assign', exact: true }).click();
  await s.page.locator('#case-sub', { hasText: 'Held by alice' }).waitFor();
  await caseItem(a.page, 'mine', 'Tomás').waitFor({ timeout: 15000 });
  await shots.take(s.page, 'assigned-to-alice');
  await s.page.getByRole('link', { name: 'Agents & cases' }).click();

  // bob signs out: the supervisor's view shows him offline (the gateway counts
  // an agent online for 15 s after last seen; the view re-reads every 10 s).
  await b.page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await b.page.getByRole('heading', { name: 'Sign in to the agent console' }).waitFor();
  await agents.locator('tr[data-agent="bob"]', { hasText: 'Offline' }).waitFor({ timeout: 40000 });
  assert.match(await agents.locator('tr[data-agent="alice"]').innerText(), /Online/);
  assert.equal(await s.page.locator('#stat-online').innerText(), '2 of 3');
  assert.ok(Number(await s.page.locator('#stat-assigned').innerText()) >= 1);
  await shots.take(s.page, 'bob-offline');

  // Opening a case from the table shows it in the inbox.
  await row.getByRole('button', { name: 'Rosa' }).click();
  await s.page.locator('#case-title', { hasText: 'Rosa' }).waitFor();
  await s.page.locator('#transcript .tx-citizen', { hasText: 'real person please' }).waitFor();

  // The Dashboard tab: the admin's dashboard when installed, else a clear message.
  await s.page.getByRole('link', { name: 'Dashboard' }).click();
  const installed = await s.page.evaluate(() => !!(window.CivicgateDashboard && window.CivicgateDashboard.mount));
  if (installed) {
    await h.waitFor('the dashboard to render', async () => (await s.page.locator('#dashboard-root > *').count()) > 0);
  } else {
    await s.page.getByText('The dashboard is not installed on this gateway.').waitFor();
  }
  await shots.take(s.page, 'dashboard');
  assert.deepEqual([...a.errors, ...b.errors, ...s.errors], []);
  for (const x of [a, b, s]) await x.context.close();
});

test('landmarks, names and live regions for screen readers', async () => {
  const { context, page, errors } = await C.openConsole(browser, stack.gw);
  // The sign-in form: labelled fields, nothing unnamed.
  const unnamed = /^\s*- (button|link|textbox|combobox|radio|checkbox|listbox)( "")?(\s*\[[^\]]*\])?:?\s*$/m;
  const login = await page.locator('body').ariaSnapshot();
  assert.doesNotMatch(login, unnamed, login);
  await C.signIn(page, 'sue');
  const id = newChat();
  await stack.say(id, 'live agent', { first: 'Pilar' });
  await caseItem(page, 'queue', 'Pilar').click({ timeout: 15000 });
  await page.locator('#transcript .tx-citizen', { hasText: 'live agent' }).waitFor();

  await page.getByRole('banner').waitFor();
  await page.getByRole('navigation', { name: 'Console sections' }).waitFor();
  await page.getByRole('navigation', { name: 'Cases' }).waitFor();
  await page.getByRole('main').waitFor();
  await page.getByRole('complementary', { name: 'Details' }).waitFor();
  const log = page.getByRole('log', { name: 'Transcript' });
  await log.waitFor();
  assert.equal(await log.getAttribute('aria-live'), 'polite');
  assert.equal(await page.locator('#announcer').getAttribute('aria-live'), 'polite');
  assert.match(await page.getByRole('status').filter({ hasText: 'Live' }).innerText(), /Live/);
  // A case in the list is one sentence for a screen reader.
  const label = await caseItem(page, 'queue', 'Pilar').getAttribute('aria-label');
  assert.match(label, /^Pilar, on Telegram, English, position \d+, waiting since .+, asked: live agent$/);
  // Every control on the page has a name.
  const snap = await page.locator('body').ariaSnapshot();
  assert.doesNotMatch(snap, unnamed, snap);
  // A new hand-off is announced in the polite live region.
  await stack.say(newChat(), 'transfer me to a person', { first: 'Quique' });
  await page.locator('#announcer', { hasText: 'New case in the queue: Quique on Telegram' }).waitFor({ timeout: 15000 });
  assert.deepEqual(errors, []);
  await context.close();
});

test('a message on another of the agent\'s cases marks it unread and is announced', async () => {
  const shots = new C.Shots('unread');
  const { context, page, errors } = await C.openConsole(browser, stack.gw);
  await C.signIn(page, 'alice');
  const one = newChat(), two = newChat();
  await stack.say(one, 'speak with somebody', { first: 'Olga' });
  await stack.say(two, 'representative please', { first: 'Pablo' });
  for (const name of ['Olga', 'Pablo']) {
    await caseItem(page, 'queue', name).click({ timeout: 15000 });
    await page.locator('#case-title', { hasText: name }).waitFor();
    await page.getByRole('button', { name: 'Claim', exact: true }).click();
    await caseItem(page, 'mine', name).waitFor();
  }
  // Pablo's case is open, with a reply being written; Olga writes.
  const draft = 'Pablo, your appointment is';
  await page.getByRole('textbox', { name: 'Reply to the citizen' }).fill(draft);
  await stack.say(one, 'are you still there?', { first: 'Olga' });
  const olga = caseItem(page, 'mine', 'Olga');
  await olga.locator('.badge-unread', { hasText: '1 new' }).waitFor({ timeout: 15000 });
  await page.locator('#announcer', { hasText: 'New message from Olga (Telegram).' }).waitFor();
  assert.equal(await page.locator('#transcript .tx-citizen', { hasText: 'are you still there?' }).count(), 0);
  await shots.take(page, 'unread-badge');
  // Opening it clears the mark and shows the message.
  await olga.click();
  await page.locator('#transcript .tx-citizen', { hasText: 'are you still there?' }).waitFor();
  await h.waitFor('the unread mark to go', async () => (await olga.locator('.badge-unread').count()) === 0);

  // Olga goes back to the queue through the transfer dialog.
  await page.getByRole('button', { name: 'Transfer', exact: true }).click();
  const dlg = page.getByRole('dialog', { name: 'Transfer this case' });
  await dlg.getByRole('radio', { name: 'Back to the queue' }).check();
  await dlg.getByRole('button', { name: 'Transfer', exact: true }).click();
  await caseItem(page, 'queue', 'Olga').waitFor({ timeout: 15000 });
  assert.equal(await caseItem(page, 'mine', 'Olga').count(), 0);
  await page.getByRole('button', { name: 'Claim', exact: true }).waitFor();
  await shots.take(page, 'back-to-queue');

  // Pablo's unsent reply waited for him.
  await caseItem(page, 'mine', 'Pablo').click();
  await page.locator('#case-title', { hasText: 'Pablo' }).waitFor();
  assert.equal(await page.getByRole('textbox', { name: 'Reply to the citizen' }).inputValue(), draft);

  // Past 4,096 characters the counter says by how much and nothing can be sent.
  const box = page.getByRole('textbox', { name: 'Reply to the citizen' });
  await box.fill('é'.repeat(4100));
  assert.equal(await page.locator('#composer-count').innerText(), '4,100 / 4,096: 4 too many');
  assert.ok(await page.getByRole('button', { name: 'Send', exact: true }).isDisabled());
  await box.press('Enter');
  assert.equal((await box.inputValue()).length, 4100, 'the text stays in the box');
  await box.fill('é'.repeat(4096));
  assert.equal(await page.locator('#composer-count').innerText(), '4,096 / 4,096');
  assert.ok(await page.getByRole('button', { name: 'Send', exact: true }).isEnabled());
  await shots.take(page, 'limit');
  assert.deepEqual(errors, []);
  await context.close();
});

test('the Dashboard tab mounts window.CivicgateDashboard with the token and a working fetchJson', async () => {
  const shots = new C.Shots('dashboard');
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // A stand-in for the admin's dashboard.js, served from the gateway's origin
  // (the CSP allows only 'self' scripts): it records how it was mounted and
  // renders what fetchJson brings back from the real API.
  await page.route('**/agent/dashboard.js', (route) => route.fulfill({
    contentType: 'text/javascript; charset=utf-8',
    body: `window.CivicgateDashboard = { mount(el, o) {
      window.__mounted = (window.__mounted || 0) + 1;
      window.__dashToken = o.token;
      o.fetchJson('/api/v1/agent/me').then((me) => {
        const p = document.createElement('p'); p.id = 'dash-me'; p.textContent = 'Signed in as ' + me.name; el.appendChild(p);
      });
      o.fetchJson('/api/v1/agent/no-such-route').catch((e) => {
        const p = document.createElement('p'); p.id = 'dash-err'; p.textContent = 'error ' + e.status; el.appendChild(p);
      });
    } };`,
  }));
  await page.goto(`${stack.gw.base}/agent/`);
  await C.signIn(page, 'sue');
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  await page.locator('#dash-me', { hasText: 'Signed in as sue' }).waitFor();
  await page.locator('#dash-err', { hasText: 'error 404' }).waitFor();
  const token = await page.evaluate(() => sessionStorage.getItem('civicgate.agent.token'));
  assert.equal(await page.evaluate(() => window.__dashToken), token);
  // Mounted once, however often the tab is opened.
  await page.getByRole('link', { name: 'Inbox', exact: true }).click();
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  await page.locator('#dash-me').waitFor();
  assert.equal(await page.evaluate(() => window.__mounted), 1);
  await shots.take(page, 'mounted');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a claim lost to another agent says who has it', async () => {
  const shots = new C.Shots('claim-409');
  const { context, page, errors } = await C.openConsole(browser, stack.gw);
  await C.signIn(page, 'alice');
  const id = newChat();
  await stack.say(id, 'can i talk to someone', { first: 'Iker' });
  await caseItem(page, 'queue', 'Iker').click({ timeout: 15000 });
  await page.locator('#case-title', { hasText: 'Iker' }).waitFor();
  const caseId = await page.locator('#queue-list .case-item', { hasText: 'Iker' }).getAttribute('data-id');

  // Hold alice's claim in the browser until bob has claimed through the API:
  // both clicked "at once", bob's arrived first.
  let release;
  const held = new Promise((r) => { release = r; });
  await page.route('**/api/v1/agent/cases/*/claim', async (route) => { await held; await route.continue(); });
  await page.getByRole('button', { name: 'Claim', exact: true }).click();
  const bob = await C.apiLogin(stack.gw, 'bob');
  const r = await C.api(stack.gw, bob, 'POST', `/agent/cases/${encodeURIComponent(caseId)}/claim`);
  assert.equal(r.status, 200, r.text);
  release();
  await page.getByRole('alert').filter({ hasText: 'Already claimed by bob' }).waitFor({ timeout: 10000 });
  await shots.take(page, 'already-claimed');
  assert.equal(await caseItem(page, 'queue', 'Iker').count(), 0);
  assert.equal(await caseItem(page, 'mine', 'Iker').count(), 0);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a reply refused because the case was taken away keeps its text and says why', async () => {
  const shots = new C.Shots('reply-409');
  const { context, page, errors } = await C.openConsole(browser, stack.gw);
  await C.signIn(page, 'alice');
  const id = newChat();
  await stack.say(id, 'i need to talk to a representative', { first: 'Vera' });
  await caseItem(page, 'queue', 'Vera').click({ timeout: 15000 });
  await page.getByRole('button', { name: 'Claim', exact: true }).click();
  await page.locator('#case-sub', { hasText: 'You hold this case' }).waitFor();
  const caseId = await caseItem(page, 'mine', 'Vera').getAttribute('data-id');

  // The reply leaves the browser; before it arrives a supervisor sends the
  // case back to the queue.
  let release;
  const held = new Promise((r) => { release = r; });
  await page.route('**/api/v1/agent/cases/*/reply', async (route) => { await held; await route.continue(); });
  const box = page.getByRole('textbox', { name: 'Reply to the citizen' });
  const text = 'Vera, I will call you tomorrow morning.';
  await box.fill(text);
  await box.press('Enter');
  assert.equal(await box.inputValue(), '', 'the box empties at once');
  const sue = await C.apiLogin(stack.gw, 'sue');
  const r = await C.api(stack.gw, sue, 'POST', `/agent/cases/${encodeURIComponent(caseId)}/transfer`, { to: null });
  assert.equal(r.status, 200, r.text);
  release();
  await page.getByRole('alert').filter({ hasText: 'You no longer hold the case of Vera, so the reply was not sent.' }).waitFor({ timeout: 15000 });
  await h.waitFor('the text back in the box', async () => (await page.locator('#composer-text').inputValue()) === text);
  await caseItem(page, 'queue', 'Vera').waitFor({ timeout: 15000 });
  await shots.take(page, 'text-kept');
  assert.ok(!(await stack.sent(id)).some((c) => c.body.text === text), 'nothing reached the citizen');
  assert.deepEqual(errors, []);
  await context.close();
});

test('a reload while Redis is down keeps the session and resumes when it is back', async () => {
  const shots = new C.Shots('redis-down');
  const { context, page, errors } = await C.openConsole(browser, stack.gw);
  await C.signIn(page, 'alice');
  await stack.redis.stop();
  try {
    await page.reload();
    await page.getByText(/The gateway is not answering/).waitFor({ timeout: 15000 });
    assert.equal(await page.locator('#login-view').isVisible(), false, 'not sent to the sign-in form');
    await shots.take(page, 'waiting-for-gateway');
  } finally {
    await stack.redis.restart();   // whatever happened, the next tests get their Redis back
  }
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 60000 });
  assert.equal(await page.locator('#me-name').innerText(), 'Alice Martín');
  await shots.take(page, 'resumed');
  assert.deepEqual(errors, []);
  await context.close();
});

test('when the gateway restarts the console reconnects, signs in again on the socket and is live', async () => {
  const shots = new C.Shots('reconnect');
  const { context, page, errors } = await C.openConsole(browser, stack.gw);
  await C.signIn(page, 'alice');
  const stopped = await stack.gw.stop();
  assert.equal(stopped.code, 0, 'a clean stop with an agent connected');
  await page.locator('#conn[data-state="reconnecting"]').waitFor({ timeout: 15000 });
  await page.getByRole('alert').filter({ hasText: 'Connection to the gateway lost' }).waitFor();
  await shots.take(page, 'reconnecting');
  await stack.gw.start();
  await stack.gw.ready();
  // Back on its own (backoff: 1, 2, 4, 8 ... s), without a new sign-in.
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 40000 });
  await page.getByRole('alert').filter({ hasText: 'Connection to the gateway lost' }).waitFor({ state: 'hidden' });
  assert.equal(await page.locator('#login-view').isVisible(), false);
  const id = newChat();
  await stack.say(id, 'operator', { first: 'Nora' });
  await caseItem(page, 'queue', 'Nora').waitFor({ timeout: 15000 });
  await shots.take(page, 'reconnected-live');
  assert.deepEqual(errors, []);
  await context.close();
});

test('unauthenticated access is refused: API 401, WebSocket closed, console back to sign-in', async () => {
  const shots = new C.Shots('unauth');
  // REST without a token or with a made-up one.
  for (const [method, p] of [['GET', '/agent/queue'], ['GET', '/agent/cases'], ['GET', '/agent/me'],
    ['GET', '/agent/agents'], ['GET', '/agent/canned?lang=en'], ['POST', '/agent/cases/c_1/claim']]) {
    for (const token of [null, 'not-a-real-token']) {
      const r = await C.api(stack.gw, token, method, p);
      assert.equal(r.status, 401, `${method} ${p} with ${token ? 'a bad' : 'no'} token: ${r.text}`);
      assert.equal(typeof (r.body && r.body.error), 'string');
    }
  }
  // Wrong password: refused, the form says so.
  const { context, page, errors } = await C.openConsole(browser, stack.gw);
  await page.getByLabel('Name', { exact: true }).fill('alice');
  await page.getByLabel('Password', { exact: true }).fill('wrong password');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: 'Wrong name or password.' }).waitFor();
  await shots.take(page, 'wrong-password');

  // The socket, from the console's own origin: a bad token is answered with an
  // error and the close code 4401; a first frame that is not auth is closed.
  const ws = await page.evaluate(async () => {
    const run = (first) => new Promise((resolve) => {
      const frames = [];
      const s = new WebSocket(`ws://${location.host}/agent/ws`, 'civicgate-agent');
      s.onopen = () => s.send(JSON.stringify(first));
      s.onmessage = (e) => frames.push(JSON.parse(e.data));
      s.onclose = (e) => resolve({ code: e.code, frames });
    });
    return {
      bad: await run({ type: 'auth', token: 'not-a-real-token' }),
      noAuth: await run({ type: 'call', req: 1, method: 'GET', path: '/api/v1/agent/queue' }),
    };
  });
  assert.equal(ws.bad.code, 4401);
  assert.ok(ws.bad.frames.some((f) => f.type === 'error' && f.error === 'unauthorized'));
  assert.ok(!ws.bad.frames.some((f) => f.type === 'hello' || f.type === 'queue'));
  assert.ok(!ws.noAuth.frames.some((f) => f.type === 'result' || f.type === 'queue'), JSON.stringify(ws.noAuth));

  // Signed out elsewhere (the same token) while the console is open: the
  // gateway closes the socket and the console is back at the sign-in form
  // at once, saying why.
  await C.signIn(page, 'alice');
  const live = await page.evaluate(() => sessionStorage.getItem('civicgate.agent.token'));
  assert.equal((await C.api(stack.gw, live, 'POST', '/agent/logout')).status, 204);
  await page.getByRole('alert').filter({ hasText: 'Your session has ended. Sign in again.' }).waitFor({ timeout: 15000 });
  assert.equal(await page.locator('#app').isVisible(), false);
  await shots.take(page, 'signed-out-elsewhere');

  // A session that expires (its key gone from Redis, as at its TTL): the next
  // call gets 401 and the console goes back to the sign-in form.
  await C.signIn(page, 'alice');
  const expiring = await page.evaluate(() => sessionStorage.getItem('civicgate.agent.token'));
  const sha = require('node:crypto').createHash('sha256').update(expiring).digest('hex');
  assert.equal(await stack.redis.cli('DEL', `cg:agent:token:${sha}`), '(integer) 1');
  const id = newChat();
  await stack.say(id, 'let me talk to staff', { first: 'Ramón' });
  await page.locator('#queue-list .case-item', { hasText: 'Ramón' }).click({ timeout: 15000 });
  await page.getByRole('alert').filter({ hasText: 'Your session has ended. Sign in again.' }).waitFor();
  assert.equal(await page.locator('#app').isVisible(), false);
  await shots.take(page, 'session-expired');

  // A token that was signed out no longer opens anything, and a console
  // holding it goes back to the sign-in form.
  await C.signIn(page, 'alice');
  const token = await page.evaluate(() => sessionStorage.getItem('civicgate.agent.token'));
  assert.equal((await C.api(stack.gw, token, 'GET', '/agent/me')).status, 200);
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByText('You have signed out.').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('civicgate.agent.token')), null);
  assert.equal((await C.api(stack.gw, token, 'GET', '/agent/me')).status, 401);
  await page.evaluate((t) => sessionStorage.setItem('civicgate.agent.token', t), token);
  await page.reload();
  await page.getByRole('heading', { name: 'Sign in to the agent console' }).waitFor();
  assert.equal(await page.locator('#app').isVisible(), false);
  await shots.take(page, 'revoked-token');

  // Last, because it locks this address out of signing in for a while: after
  // too many wrong passwords the form says to wait (the gateway answers 429).
  let said = '';
  for (let i = 0; i < 10 && !/Too many/.test(said); i++) {
    await page.getByLabel('Name', { exact: true }).fill('bob');
    await page.getByLabel('Password', { exact: true }).fill(`wrong ${i}`);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.locator('#login-submit:not([disabled])', { hasText: 'Sign in' }).waitFor();
    said = await page.locator('#login-error').innerText();
    assert.match(said, /Wrong name or password\.|Too many failed attempts/);
  }
  assert.match(said, /Too many failed attempts\. Wait a few minutes, then try again\./);
  await shots.take(page, 'locked-out');
  assert.deepEqual(errors, []);
  await context.close();
});
