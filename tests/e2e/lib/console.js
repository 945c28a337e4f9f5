// console.js: helpers for the agent console's browser tests
// (tests/e2e/agent-console.browser.test.js).
//
// startStack()   harness.js's Telegram stack (redis-server, the fake Bot
//                API, the real gateway) with three agents configured (alice
//                and bob: agents, sue: supervisor; password hashes made with
//                libsodium's crypto_pwhash_str, the passwords are in AGENTS
//                below)
// launch()       harness.js's launchChromium()
// Shots          numbered screenshots under tests/e2e/artifacts/agent-console/
//                (git-ignored), kept as the run's artefacts
// signIn()       the console's sign-in form, by name and password
// apiLogin()     POST /api/v1/agent/login from node (for a second actor)
// Everything listens on 127.0.0.1.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const h = require('./harness');

const TG_TOKEN = '123456:TEST-console_e2e';
const TG_SECRET = 'console-e2e-secret_XYZ';
const ARTIFACTS = path.join(__dirname, '..', 'artifacts', 'agent-console');

// Hashes made once with crypto_pwhash_str (argon2id, interactive limits).
const AGENTS = {
  alice: { password: 'alice-password-1', display_name: 'Alice Martín', role: 'agent',
    hash: '$argon2id$v=19$m=65536,t=2,p=1$OxAxyu+/j52p6/7VpMxmKA$OqRXvRPoDvkjWjG4JHctyNJxTQPSyDcn1o1/hsZYqZY' },
  bob: { password: 'bob-password-2', display_name: 'Bob Jones', role: 'agent',
    hash: '$argon2id$v=19$m=65536,t=2,p=1$wmxt18xdVXoV5lRhzo4rGQ$Ndf4oXFm2VnglC1B4BsEk/IrH3hhAhT9M3r7+A2XNCA' },
  sue: { password: 'sue-password-3', display_name: 'Sue Park', role: 'supervisor',
    hash: '$argon2id$v=19$m=65536,t=2,p=1$zieaccL0zx7q1xAbs4D03g$qVkqtw5weOWUy2y/kxkfEefUl3E+Jv4b16TrH8cneZI' },
};

// The Telegram stack (harness.js) with the three agents configured.
function startStack() {
  const users = Object.entries(AGENTS).map(([name, a]) => ({
    name, display_name: a.display_name, role: a.role, password_hash: a.hash,
  }));
  return h.startTelegramStack({ token: TG_TOKEN, secret: TG_SECRET, extra: { agents: { users } } });
}

const launch = h.launchChromium;

class Shots {
  constructor(prefix) {
    this.prefix = prefix;
    this.n = 0;
    fs.mkdirSync(ARTIFACTS, { recursive: true });
  }
  // Saves a screenshot and returns its path; asserts it is a real image.
  async take(page, name) {
    this.n += 1;
    const file = path.join(ARTIFACTS, `${this.prefix}-${String(this.n).padStart(2, '0')}-${name}.png`);
    await page.screenshot({ path: file });
    if (fs.statSync(file).size < 2000) throw new Error(`screenshot ${file} is suspiciously small`);
    return file;
  }
}

// A console page with page errors and CSP violations collected (a test
// asserts there are none).
async function openConsole(browser, gw, { viewport = { width: 1440, height: 900 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // The gateway's CSP allows only 'self' scripts and styles, no inline ones:
  // anything the page does against it is an error too.
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  await page.goto(`${gw.base}/agent/`);
  return { context, page, errors };
}

async function signIn(page, name) {
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(AGENTS[name].password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.locator('#conn[data-state="online"]').waitFor({ timeout: 15000 });
}

async function apiLogin(gw, name) {
  const res = await fetch(`${gw.base}/api/v1/agent/login`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name, password: AGENTS[name].password }),
  });
  if (res.status !== 200) throw new Error(`login ${name}: ${res.status} ${await res.text()}`);
  return (await res.json()).token;
}

async function api(gw, token, method, p, body) {
  const res = await fetch(`${gw.base}/api/v1${p}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch (e) { json = null; }
  return { status: res.status, body: json, text };
}

module.exports = { AGENTS, ARTIFACTS, startStack, launch, Shots, openConsole, signIn, apiLogin, api };
