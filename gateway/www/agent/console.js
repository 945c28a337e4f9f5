/*
 * console.js: the agent console's state and behaviour (issue 5). Plain
 * ES2020, no build step; DOM in index.html, rendering helpers in views.js,
 * network in api.js. The contract with the gateway is docs/openapi.yaml
 * (REST under /api/v1/agent/...) and the /agent/ws frames described there.
 *
 * Life of a session, in order:
 *   boot()       a token in sessionStorage ("civicgate.agent.token")? check it
 *                with GET /agent/me, else show the sign-in form
 *   signIn()     POST /agent/login → token kept in sessionStorage only (gone
 *                when the tab closes), then start()
 *   start()      opens the socket (api.js); every "hello" (first connection
 *                and each reconnection) runs refresh(): the agent's cases, the
 *                agents (supervisors), the open case's transcript again
 *   onFrame()    queue / case / entry / agents frames update the state and
 *                re-render the lists, the open case and the supervisor view
 *   actions      claim, reply, note, transfer, resolve go over REST; their
 *                answers and the socket's frames are merged (entries are
 *                de-duplicated), so either may arrive first
 *   stop()       on sign-out or on any 401 / socket close 4401: back to the
 *                sign-in form with the reason
 *
 * State is one object (S) and the DOM is re-rendered from it; the lists and
 * the open case are rendered separately so that typing is never disturbed.
 * Screen readers hear queue changes and messages on other cases through one
 * polite live region (#announcer); the open transcript is a role="log".
 *
 * The supervisors' dashboard is another engineer's file (dashboard.js,
 * dashboard.css): when window.CivicgateDashboard exists its
 * mount(element, {token, fetchJson}) is called the first time the Dashboard
 * tab opens; when it does not, the tab says the dashboard is not installed.
 *
 * Extending: a new server frame is a case in onFrame(); a new action a
 * button in index.html, a function here and, if it deserves one, a key in
 * onKey() and in the shortcuts dialog.
 */
(function () {
  'use strict';

  const V = window.CGViews;
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = 'civicgate.agent.token';
  const MAX_REPLY = 4096;

  const S = {
    token: null,
    me: null,
    sock: null,
    conn: 'connecting',
    reconnectAt: 0,
    everOnline: false,
    queue: [],                 // queued cases in queue order (socket "queue" frames)
    queueSeen: false,          // a queue frame arrived since the last hello
    cases: new Map(),          // id → assigned cases the agent can see (own; all for supervisors)
    agents: [],
    open: null,                // {id, case, transcript: [], keys: Set, loading, error}
    mode: 'reply',
    view: 'inbox',
    dashMounted: false,
    supCases: [],
    drafts: new Map(),         // case id → unsent text of a case not open now
    agentsAt: 0,               // when the agents list was last read (supervisor view)
  };

  let fetchJson = null;

  function storage(key, value) {
    try {
      if (value === undefined) return sessionStorage.getItem(key);
      if (value === null) sessionStorage.removeItem(key); else sessionStorage.setItem(key, value);
    } catch (e) { /* storage disabled: the session lasts as long as the page */ }
    return null;
  }

  /* ---- announcements, toasts, banner ------------------------------------ */

  let announceTimer = null;
  function announce(text) {
    const a = $('announcer');
    // Clear then set, so that the same sentence twice is read twice.
    a.textContent = '';
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => { a.textContent = text; }, 60);
  }

  function toast(text, kind) {
    const t = V.el('div', { class: 'toast' + (kind ? ' toast-' + kind : '') }, text);
    $('toasts').appendChild(t);
    setTimeout(() => t.remove(), 6000);
  }

  function caseAlert(text, kind) {
    const a = $('case-alert');
    if (!text) { a.hidden = true; a.textContent = ''; return; }
    a.className = 'alert alert-' + (kind || 'error');
    a.textContent = text;
    a.hidden = false;
  }

  /* ---- sign in / out ---------------------------------------------------- */

  function showLogin(message, isError) {
    $('boot').hidden = true;
    $('app').hidden = true;
    $('login-view').hidden = false;
    $('login-message').textContent = isError ? '' : (message || '');
    const err = $('login-error');
    err.hidden = !isError;
    err.textContent = isError ? message : '';
    document.title = 'Sign in – civicgate agent console';
    $('login-password').value = '';
    const name = $('login-name');
    (name.value ? $('login-password') : name).focus();
  }

  async function signIn(ev) {
    ev.preventDefault();
    const name = $('login-name').value.trim();
    const password = $('login-password').value;
    const err = $('login-error');
    if (!name || !password) {
      err.textContent = !name ? 'Enter your name.' : 'Enter your password.';
      err.hidden = false;
      (!name ? $('login-name') : $('login-password')).focus();
      return;
    }
    const btn = $('login-submit');
    btn.disabled = true;
    btn.textContent = 'Signing in…';
    err.hidden = true;
    try {
      const r = await fetchJson('/api/v1/agent/login', { method: 'POST', body: { name, password }, noAuthRedirect: true });
      if (!r || typeof r.token !== 'string') throw new window.CGApi.ApiError(500, r, 'The gateway gave no token');
      storage(TOKEN_KEY, r.token);
      S.token = r.token;
      start(r.agent);
    } catch (e) {
      const msg = e.status === 401 ? 'Wrong name or password.'
        : e.status === 429 ? 'Too many failed attempts. Wait a few minutes, then try again.'
          : e.message;
      showLogin(msg, true);
    } finally {
      btn.disabled = false;
      btn.textContent = 'Sign in';
    }
  }

  async function signOut() {
    const token = S.token;
    stop();
    storage(TOKEN_KEY, null);
    if (token) {
      try {
        await fetch('/api/v1/agent/logout', { method: 'POST', headers: { Authorization: 'Bearer ' + token }, credentials: 'omit' });
      } catch (e) { /* the token expires anyway */ }
    }
    showLogin('You have signed out.');
  }

  function onUnauthorized() {
    if (!S.token) return;
    stop();
    storage(TOKEN_KEY, null);
    showLogin('Your session has ended. Sign in again.', true);
  }

  /* ---- start / stop ----------------------------------------------------- */

  let ticker = null;

  function start(me) {
    S.me = me || S.me;
    S.queue = [];
    S.cases = new Map();
    S.agents = [];
    S.supCases = [];
    S.drafts = new Map();
    S.open = null;
    S.everOnline = false;
    S.dashMounted = false;
    $('boot').hidden = true;
    $('login-view').hidden = true;
    $('app').hidden = false;
    renderMe();
    renderLists();
    renderOpen();
    route();
    S.sock = window.CGApi.socket({ token: S.token, onFrame, onState: onConnState, onUnauthorized });
    clearInterval(ticker);
    ticker = setInterval(tick, 1000);
    $('main').focus();
  }

  function stop() {
    if (S.sock) S.sock.close();
    S.sock = null;
    S.token = null;
    clearInterval(ticker);
    ticker = null;
    for (const id of ['dlg-resolve', 'dlg-transfer', 'dlg-canned', 'dlg-help']) if ($(id).open) $(id).close();
    V.clear($('dashboard-root'));
    S.dashMounted = false;
    $('banner').hidden = true;
  }

  function isSup() { return !!(S.me && S.me.role === 'supervisor'); }

  function renderMe() {
    const me = S.me || {};
    $('me-name').textContent = me.display_name || me.name || '';
    $('me-role').textContent = me.role === 'supervisor' ? 'Supervisor' : 'Agent';
    $('me-avatar').textContent = V.initials(me.display_name || me.name);
    $('tab-supervisor').hidden = !isSup();
    $('tab-dashboard').hidden = !isSup();
    $('others-group').hidden = !isSup();
  }

  /* ---- connection ------------------------------------------------------- */

  function onConnState(state, info) {
    S.conn = state;
    S.reconnectAt = state === 'reconnecting' && info.delay ? Date.now() + info.delay : 0;
    const pill = $('conn');
    pill.setAttribute('data-state', state);
    renderConn();
    const banner = $('banner');
    if (state === 'online') {
      if (!banner.hidden) toast('Reconnected. The queue and your cases are up to date.', 'ok');
      banner.hidden = true;
    } else if ((state === 'reconnecting' || state === 'offline') && S.everOnline) {
      banner.hidden = false;
      $('banner-action').hidden = state === 'offline';
    }
  }

  /* The state is announced (role="status") when it changes; the countdown
   * beside it is aria-hidden, so that it is not read every second. */
  function renderConn() {
    const labels = { connecting: 'Connecting…', online: 'Live', offline: 'Offline', closed: 'Disconnected', reconnecting: 'Reconnecting…' };
    const text = labels[S.conn] || 'Reconnecting…';
    if ($('conn-text').textContent !== text) $('conn-text').textContent = text;
    let count = '';
    if (S.conn === 'reconnecting' && S.reconnectAt) {
      const s = Math.max(0, Math.ceil((S.reconnectAt - Date.now()) / 1000));
      if (s > 0) count = ' in ' + s + ' s';
    }
    if ($('conn-count').textContent !== count) $('conn-count').textContent = count;
    const b = S.conn === 'offline'
      ? 'You are offline. The console reconnects when the network is back; nothing is sent meanwhile.'
      : 'Connection to the gateway lost. Live updates are paused until the console reconnects.';
    if ($('banner-text').textContent !== b) $('banner-text').textContent = b;
  }

  function tick() {
    const now = Date.now();
    for (const span of document.querySelectorAll('[data-since]')) {
      const since = Number(span.getAttribute('data-since'));
      if (since) span.textContent = V.waited(now - since);
    }
    if (S.conn === 'reconnecting') renderConn();
    // Presence is pushed when an agent connects or leaves, but "online" on
    // the gateway means "seen in the last seconds": re-read it now and then
    // while the supervisor looks at it, so a lapse shows without a push.
    if (S.view === 'supervisor' && !document.hidden && now - S.agentsAt > 10000) loadAgents();
  }

  /* Everything the socket does not push on connection: run on every hello. */
  async function refresh() {
    S.queueSeen = false;
    const jobs = [];
    jobs.push(fetchJson('/api/v1/agent/cases', { query: { status: 'assigned' } }).then((r) => {
      const fresh = new Map();
      for (const c of (r && r.cases) || []) if (c.status === 'assigned') fresh.set(c.id, c);
      S.cases = fresh;
    }));
    jobs.push(fetchJson('/api/v1/agent/queue').then((r) => {
      if (!S.queueSeen && r && Array.isArray(r.cases)) setQueue(r.cases, true);
    }));
    if (isSup()) jobs.push(fetchJson('/api/v1/agent/agents').then((r) => { S.agents = (r && r.agents) || []; }));
    const results = await Promise.allSettled(jobs);
    const failed = results.find((x) => x.status === 'rejected');
    if (failed && failed.reason && failed.reason.status !== 401) toast('Could not load everything: ' + failed.reason.message, 'error');
    renderLists();
    renderSupervisor();
    if (S.open) loadCase(S.open.id, { keepComposer: true });
  }

  /* ---- frames ----------------------------------------------------------- */

  function onFrame(f) {
    switch (f.type) {
      case 'hello':
        if (f.agent) { S.me = Object.assign({}, S.me, f.agent); renderMe(); }
        S.everOnline = true;
        refresh();
        break;
      case 'queue':
        if (Array.isArray(f.cases)) setQueue(f.cases, false);
        break;
      case 'case':
        if (f.case && f.case.id) onCase(f.case);
        break;
      case 'entry':
        if (typeof f.case === 'string' && f.entry) onEntry(f.case, f.entry);
        break;
      case 'agents':
        if (Array.isArray(f.agents)) { S.agents = f.agents; renderSupervisor(); }
        break;
      case 'error':
        toast('The gateway refused a request: ' + (f.error || 'unknown error'), 'error');
        break;
      default:
        break;   // newer gateways may send more; ignore what we do not know
    }
  }

  function setQueue(cases, fromRest) {
    // The first queue of a connection is the state, not news: announce only
    // what arrives after it.
    const news = !fromRest && S.queueSeen;
    if (!fromRest) S.queueSeen = true;
    const before = new Set(S.queue.map((c) => c.id));
    S.queue = cases.filter((c) => c && c.id);
    for (const c of S.queue) S.cases.delete(c.id);
    if (news) {
      const added = S.queue.filter((c) => !before.has(c.id));
      if (added.length === 1) {
        const c = added[0];
        announce('New case in the queue: ' + V.who(c) + ' on ' + V.channelName(c.channel) + (c.question ? ', asking: ' + c.question : '') + '. ' + S.queue.length + ' waiting.');
      } else if (added.length > 1) {
        announce(added.length + ' new cases in the queue. ' + S.queue.length + ' waiting.');
      }
    }
    if (S.open && !S.open.loading) {
      const q = S.queue.find((c) => c.id === S.open.id);
      if (q) S.open.case = Object.assign({}, S.open.case, q);
      else if (S.open.case.status === 'queued' && !S.cases.has(S.open.id)) goneFromQueue(S.open);
    }
    renderLists();
    if (S.open) renderOpenHead();
    supervisorChanged();
  }

  /* The open case left the queue and no "case" frame told us where (an agent
   * sees only queued and own cases): ask; if we may no longer see it, say so. */
  async function goneFromQueue(o) {
    if (o.claiming || o.claimLost) return;   // claim() tells the story
    try {
      const r = await fetchJson('/api/v1/agent/cases/' + encodeURIComponent(o.id));
      if (S.open !== o || !r || !r.case || o.claiming || o.claimLost) return;
      onCase(r.case);
    } catch (e) {
      if (S.open !== o || e.status === 401 || o.claiming || o.claimLost) return;
      o.ver = (o.ver || 0) + 1;
      o.case = Object.assign({}, o.case, { status: 'assigned', agent: o.case.agent || 'another agent' });
      caseAlert('This case has left the queue: another agent took it.', 'info');
      renderOpenHead();
      renderComposer();
      $('composer').hidden = true;
    }
  }

  function onCase(c) {
    const prev = S.open && S.open.id === c.id ? S.open.case : (S.cases.get(c.id) || S.queue.find((q) => q.id === c.id));
    if (c.status === 'assigned' && (isSup() || (S.me && c.agent === S.me.name))) {
      const old = S.cases.get(c.id);
      S.cases.set(c.id, Object.assign({}, old || {}, c, { unread: c.unread !== undefined ? c.unread : (old && old.unread) || 0 }));
    } else {
      S.cases.delete(c.id);
    }
    if (c.status !== 'queued') S.queue = S.queue.filter((q) => q.id !== c.id);
    if (S.me && c.agent === S.me.name && c.status === 'assigned' && prev && prev.agent !== S.me.name) {
      if (prev.status === 'assigned') announce('A case was transferred to you: ' + V.who(c) + '.');
    }
    if (S.open && S.open.id === c.id) {
      const changed = !prev || prev.status !== c.status || prev.agent !== c.agent;
      S.open.ver = (S.open.ver || 0) + 1;
      S.open.case = Object.assign({}, S.open.case, c);
      renderOpenHead();
      renderComposer();
      if (changed && c.status === 'assigned' && S.me && c.agent !== S.me.name && !isSup() && !S.open.claimLost) {
        caseAlert('This case is now held by ' + c.agent + '.', 'info');
      }
    }
    renderLists();
    supervisorChanged();
  }

  function entryKey(e) {
    return [e.dir, e.ts, e.agent || '', e.kind || '', e.text || ''].join('\u0001');
  }

  function onEntry(id, e) {
    if (S.open && S.open.id === id && S.open.loading) {
      // Kept for loadCase() to merge: its answer may predate this entry.
      S.open.transcript.push(Object.assign({}, e, { _src: 'socket' }));
      return;
    }
    if (S.open && S.open.id === id) {
      appendEntry(e, 'socket');
      if (e.dir === 'in' && document.hidden) announce('New message from ' + V.who(S.open.case) + '.');
      return;
    }
    const c = S.cases.get(id);
    if (c && e.dir === 'in') {
      c.last_message_at = e.ts || Date.now();
      const mine = S.me && c.agent === S.me.name;   // supervisors see others' entries too: not theirs to read
      if (mine) c.unread = (c.unread || 0) + 1;
      renderLists();
      if (mine) announce('New message from ' + V.who(c) + ' (' + V.channelName(c.channel) + ').');
    }
  }

  /* ---- the case lists --------------------------------------------------- */

  function mineList() {
    const me = S.me && S.me.name;
    return [...S.cases.values()].filter((c) => c.agent === me && c.status === 'assigned')
      .sort((a, b) => (b.last_message_at || 0) - (a.last_message_at || 0));
  }
  function othersList() {
    const me = S.me && S.me.name;
    return [...S.cases.values()].filter((c) => c.agent !== me && c.status === 'assigned')
      .sort((a, b) => (a.created_at || 0) - (b.created_at || 0));
  }

  function renderList(ul, cases, opt) {
    const focused = document.activeElement && ul.contains(document.activeElement) ? document.activeElement.getAttribute('data-id') : null;
    V.clear(ul);
    const now = Date.now();
    for (const c of cases) {
      ul.appendChild(V.caseItem(c, { now, selected: S.open && S.open.id === c.id, showAgent: opt.showAgent }));
    }
    if (focused) {
      const b = ul.querySelector('[data-id="' + CSS.escape(focused) + '"]');
      if (b) b.focus();
    }
  }

  function renderLists() {
    const mine = mineList();
    renderList($('mine-list'), mine, {});
    $('mine-count').textContent = mine.length;
    $('mine-empty').hidden = mine.length > 0;
    renderList($('queue-list'), S.queue, {});
    $('queue-count').textContent = S.queue.length;
    $('queue-empty').hidden = S.queue.length > 0;
    if (isSup()) {
      const others = othersList();
      renderList($('others-list'), others, { showAgent: true });
      $('others-count').textContent = others.length;
    }
    const n = S.queue.length;
    document.title = (n ? '(' + n + ') ' : '') + 'Agent console – civicgate';
    if (isSup()) renderStats();
  }

  function listOrder() {
    return [...document.querySelectorAll('#queue-pane .case-item')].map((b) => b.getAttribute('data-id'));
  }

  /* ---- the open case ---------------------------------------------------- */

  function findCase(id) {
    return S.cases.get(id) || S.queue.find((c) => c.id === id) || S.supCases.find((c) => c.id === id) || null;
  }

  function openCase(id) {
    if (S.open && S.open.id === id && !S.open.error) return;
    const known = findCase(id);
    // Drafts stay with their case while the agent looks at another one.
    if (S.open) S.drafts.set(S.open.id, $('composer-text').value);
    S.open = { id, case: known || { id }, transcript: [], keys: new Set(), loading: true };
    $('composer-text').value = S.drafts.get(id) || '';
    S.drafts.delete(id);
    updateCount();
    caseAlert(null);
    const c = S.cases.get(id);
    if (c) c.unread = 0;
    renderLists();
    renderOpen();
    loadCase(id, {});
  }

  /* GET the case and its transcript. Answers can be overtaken: by a newer
   * load (dropped), by "case" frames or action answers that arrived while
   * the request was out (their status and holder win), and by live entries
   * (kept when the load does not have them yet). */
  async function loadCase(id, opt) {
    const o = S.open;
    if (!o || o.id !== id) return;
    const seq = o.loadSeq = (o.loadSeq || 0) + 1;
    const ver = o.ver || 0;
    try {
      const r = await fetchJson('/api/v1/agent/cases/' + encodeURIComponent(id));
      if (S.open !== o || seq !== o.loadSeq) return;
      o.case = (o.ver || 0) !== ver ? Object.assign({}, r.case, o.case) : Object.assign({}, o.case, r.case);
      const loaded = [];
      const keys = new Set();
      for (const e of r.transcript || []) {
        const k = entryKey(e);
        if (!keys.has(k)) { keys.add(k); loaded.push(Object.assign({}, e, { _src: 'load' })); }
      }
      for (const e of o.transcript) {
        if (e._src === 'load' || keys.has(entryKey(e))) continue;
        const twin = loaded.some((x) => x.dir === e.dir && x.agent === e.agent && x.text === e.text &&
          Math.abs((x.ts || 0) - (e.ts || 0)) < 10000);
        if (!twin) { keys.add(entryKey(e)); loaded.push(e); }
      }
      loaded.sort((a, b) => (a.ts || 0) - (b.ts || 0));
      o.transcript = loaded;
      o.keys = keys;
      o.loading = false;
      o.error = null;
      if (o.case.status === 'assigned' && (isSup() || (S.me && o.case.agent === S.me.name))) {
        const prev = S.cases.get(id);
        S.cases.set(id, Object.assign({}, prev || {}, o.case, { unread: 0 }));
      }
      renderOpen(opt);
      renderLists();
    } catch (e) {
      if (S.open !== o || seq !== o.loadSeq) return;
      o.loading = false;
      o.error = e.status === 404 ? 'This case no longer exists.' : e.status === 403 ? 'You may not see this case.' : 'Could not load the conversation: ' + e.message;
      renderOpen(opt);
    }
  }

  function canReply(c) { return !!(c && c.status === 'assigned' && S.me && c.agent === S.me.name); }
  function canManage(c) { return !!(c && c.status === 'assigned' && (canReply(c) || isSup())); }
  /* Supervisors may also assign a queued case to an agent. */
  function canTransfer(c) { return canManage(c) || !!(c && c.status === 'queued' && isSup()); }

  function renderOpen(opt) {
    const o = S.open;
    $('case-empty').hidden = !!o;
    $('case-loading').hidden = !(o && o.loading);
    $('case-view').hidden = !(o && !o.loading);
    $('details-empty').hidden = !!(o && !o.loading && !o.error);
    $('details').hidden = !(o && !o.loading && !o.error);
    if (!o || o.loading) return;
    renderOpenHead();
    const t = $('transcript');
    V.clear(t);
    if (o.error) {
      caseAlert(o.error);
      $('composer').hidden = true;
      $('case-closed').hidden = true;
      return;
    }
    lastDay = null;
    // A whole transcript at once is not news: keep the log quiet while it is
    // drawn, then let it announce what arrives live.
    t.setAttribute('aria-live', 'off');
    if (!o.transcript.length) t.appendChild(V.el('p', { class: 'empty-small' }, 'No messages yet.'));
    for (const e of o.transcript) t.appendChild(renderEntry(e));
    t.scrollTop = t.scrollHeight;
    requestAnimationFrame(() => t.setAttribute('aria-live', 'polite'));
    renderComposer(opt);
  }

  let lastDay = null;
  function renderEntry(e) {
    const frag = document.createDocumentFragment();
    const day = new Date(e.ts || 0).toDateString();
    if (day !== lastDay) {
      lastDay = day;
      frag.appendChild(V.el('div', { class: 'tx-day', role: 'separator' }, new Date(e.ts || 0).toLocaleDateString([], { weekday: 'long', day: 'numeric', month: 'long' })));
    }
    frag.appendChild(V.entry(e, S.open.case, { me: S.me && S.me.name }));
    return frag;
  }

  /* The agent's own reply or note arrives twice: in the REST answer and as a
   * socket "entry" (either first), and the two may not carry the same ts.
   * Each copy from one source absorbs one copy from the other: same dir,
   * agent and text, within 10 s. */
  function isEcho(o, e, source) {
    if (!S.me || e.agent !== S.me.name || e.kind) return false;
    const others = source === 'rest' ? ['socket', 'load'] : ['rest'];
    const twin = o.transcript.find((x) => others.includes(x._src) && !x._paired && x.dir === e.dir &&
      x.agent === e.agent && x.text === e.text && Math.abs((x.ts || 0) - (e.ts || 0)) < 10000);
    if (!twin) return false;
    twin._paired = true;
    return true;
  }

  function appendEntry(e, source) {
    const o = S.open;
    const k = entryKey(e);
    if (o.keys.has(k)) return;
    if (source && isEcho(o, e, source)) return;
    e = Object.assign({}, e, { _src: source || 'load' });
    o.keys.add(k);
    o.transcript.push(e);
    if (e.dir === 'in') o.case.last_message_at = e.ts;
    const t = $('transcript');
    const empty = t.querySelector('.empty-small');
    if (empty) empty.remove();
    const atBottom = t.scrollHeight - t.scrollTop - t.clientHeight < 80;
    t.appendChild(renderEntry(e));
    if (atBottom || e.agent === (S.me && S.me.name)) t.scrollTop = t.scrollHeight;
  }

  const REASONS = {
    asked: 'The citizen asked for a person',
    intent: 'An intent that hands off',
    flow: 'A flow step that hands off',
    fallbacks: 'The bot did not understand',
  };

  function renderOpenHead() {
    const o = S.open;
    if (!o) return;
    const c = o.case;
    $('case-title').textContent = V.who(c);
    const sub = $('case-sub');
    V.clear(sub);
    sub.appendChild(V.channelBadge(c.channel));
    sub.appendChild(V.langBadge(c.lang));
    sub.appendChild(V.statusBadge(c.status));
    if (c.status === 'assigned' && c.agent) sub.appendChild(V.el('span', { class: 'case-holder' }, canReply(c) ? 'You hold this case' : 'Held by ' + c.agent));
    if (c.status === 'queued' && c.position) sub.appendChild(V.el('span', { class: 'case-holder' }, 'Position ' + c.position + ' in the queue'));

    const claim = $('act-claim'), transfer = $('act-transfer'), resolve = $('act-resolve');
    claim.hidden = c.status !== 'queued';
    transfer.hidden = !canTransfer(c);
    transfer.textContent = c.status === 'queued' ? 'Assign' : 'Transfer';
    resolve.hidden = !canManage(c);

    const dlC = $('details-citizen');
    V.facts(dlC, [
      ['Name', c.name || 'Not given by the platform'],
      ['Channel', V.channelBadge(c.channel)],
      ['ID on ' + V.channelName(c.channel), V.el('code', null, String(c.user || '–'))],
      ['Language', V.langName(c.lang) + (c.lang ? ' (' + c.lang + ')' : '')],
    ]);
    const waiting = c.status === 'queued'
      ? V.el('span', { 'data-since': String(c.created_at || '') }, V.waited(Date.now() - (c.created_at || Date.now())))
      : null;
    V.facts($('details-case'), [
      ['Status', V.statusBadge(c.status)],
      ['Waiting', waiting],
      ['Position', c.status === 'queued' && c.position ? String(c.position) : null],
      ['Agent', c.agent || null],
      ['Reason', REASONS[c.reason] || c.reason || null],
      ['Call-back', c.callback ? 'The citizen left a message to be called back' : null],
      ['Priority', c.priority ? String(c.priority) : null],
      ['Queued', c.created_at ? V.when(c.created_at) : null],
      ['Last message', c.last_message_at ? V.when(c.last_message_at) : null],
      ['Satisfaction', c.csat ? c.csat + ' / 5' : (c.status === 'resolved' ? 'Not rated yet' : null)],
      ['Case', V.el('code', null, c.id)],
    ]);
    $('details-question').textContent = c.question || '–';
  }

  function renderComposer(opt) {
    const o = S.open;
    if (!o || !o.case) return;
    const c = o.case;
    const form = $('composer');
    form.hidden = c.status === 'resolved' || !!o.error || (c.status === 'assigned' && !canReply(c) && !isSup());
    const closed = $('case-closed');
    closed.hidden = c.status !== 'resolved';
    if (c.status === 'resolved') {
      closed.textContent = 'Resolved' + (c.agent ? ' by ' + c.agent : '') + '. The bot answers this citizen again. ' +
        (c.csat ? 'Satisfaction: ' + c.csat + ' out of 5.' : 'The citizen was asked to rate the help (1–5).');
    }
    const replyOk = canReply(c);
    $('mode-reply').disabled = !replyOk;
    if (!replyOk && S.mode === 'reply') {
      setMode('note', false);
      S.modeForced = true;              // not the agent's choice: undone when replying becomes possible
    } else if (replyOk && (S.modeForced || (!(opt && opt.keepComposer) && !$('composer-text').value))) {
      setMode('reply', false);
    } else {
      const forced = S.modeForced;
      setMode(S.mode, false);
      S.modeForced = forced;
    }
    const hint = $('composer-hint');
    hint.textContent = replyOk ? ''
      : c.status === 'queued' ? 'Claim this case to reply to the citizen. Notes are for agents only.'
        : 'Only the agent who holds this case can reply. Notes are for agents only.';
    hint.hidden = !hint.textContent;
  }

  function setMode(mode, focus) {
    S.mode = mode;
    S.modeForced = false;
    $('mode-reply').checked = mode === 'reply';
    $('mode-note').checked = mode === 'note';
    const form = $('composer');
    form.classList.toggle('is-note', mode === 'note');
    const ta = $('composer-text');
    $('composer-label').textContent = mode === 'note' ? 'Internal note (never sent to the citizen)' : 'Reply to the citizen';
    ta.placeholder = mode === 'note' ? 'Internal note: only agents see it, it is never sent to the citizen' : 'Write a reply to ' + V.who(S.open && S.open.case);
    $('composer-send').textContent = mode === 'note' ? 'Add note' : 'Send';
    $('canned-button').hidden = mode === 'note';
    updateCount();
    if (focus) ta.focus();
  }

  function charCount(s) { let n = 0; for (const _ of s) n++; return n; }   // code points, as the gateway counts

  function updateCount() {
    const text = $('composer-text').value;
    const n = charCount(text);
    const el = $('composer-count');
    const limit = S.mode === 'reply' ? MAX_REPLY : MAX_REPLY;
    el.textContent = n.toLocaleString('en') + ' / ' + limit.toLocaleString('en');
    el.classList.toggle('is-over', n > limit);
    el.setAttribute('aria-live', n > limit ? 'polite' : 'off');
    $('composer-send').disabled = !text.trim() || n > limit;
    if (n > limit) el.textContent += ': ' + (n - limit).toLocaleString('en') + ' too many';
  }

  /* ---- actions ---------------------------------------------------------- */

  /* After an action's answer: move the focus to el only if the agent has not
   * moved it elsewhere meanwhile (it is still where the action started, or
   * it fell to the body because that control went away). */
  function focusAfter(from, el) {
    const a = document.activeElement;
    if (!a || a === document.body || a === from || (from && !from.isConnected) || (a.hidden || a.offsetParent === null)) el.focus();
  }

  function busy(btn, on) { if (btn) { btn.disabled = on; btn.setAttribute('aria-busy', on ? 'true' : 'false'); } }

  async function claim() {
    const o = S.open;
    if (!o || o.case.status !== 'queued') return;
    const btn = $('act-claim');
    const from = document.activeElement;
    busy(btn, true);
    caseAlert(null);
    o.claiming = true;
    try {
      const r = await fetchJson('/api/v1/agent/cases/' + encodeURIComponent(o.id) + '/claim', { method: 'POST' });
      if (r && r.case) onCase(r.case);
      announce('You claimed the case of ' + V.who(o.case) + '.');
      if (S.open === o) {
        setMode('reply', false);
        focusAfter(from, $('composer-text'));
        loadCase(o.id, { keepComposer: true });   // the "claimed" event and anything said meanwhile
      }
    } catch (e) {
      if (e.status === 409) {
        o.claimLost = true;
        const who = e.body && e.body.agent ? e.body.agent : 'another agent';
        caseAlert('Already claimed by ' + who + '.');
        S.queue = S.queue.filter((q) => q.id !== o.id);
        o.ver = (o.ver || 0) + 1;
        o.case = Object.assign({}, o.case, { status: 'assigned', agent: e.body && e.body.agent ? e.body.agent : o.case.agent });
        renderLists();
        renderOpenHead();
        renderComposer();
        $('composer').hidden = true;
      } else if (e.status !== 401) {
        caseAlert('Could not claim the case: ' + e.message);
      }
    } finally {
      o.claiming = false;
      busy(btn, false);
    }
  }

  async function send(ev) {
    if (ev) ev.preventDefault();
    const o = S.open;
    const ta = $('composer-text');
    const text = ta.value.replace(/^\s+|\s+$/g, '');
    if (!o || !text) return;
    if (charCount(text) > MAX_REPLY) { updateCount(); return; }
    const mode = S.mode;
    if (mode === 'reply' && !canReply(o.case)) return;
    const btn = $('composer-send');
    const from = document.activeElement;
    busy(btn, true);
    caseAlert(null);
    // The box empties at once, as in any chat; the text comes back if the
    // gateway refuses it (in front of anything typed meanwhile).
    ta.value = '';
    ta.style.height = '';
    updateCount();
    const giveBack = () => {
      if (S.open === o) ta.value = ta.value ? text + '\n' + ta.value : text;
      else S.drafts.set(o.id, text + (S.drafts.get(o.id) ? '\n' + S.drafts.get(o.id) : ''));
    };
    try {
      const path = '/api/v1/agent/cases/' + encodeURIComponent(o.id) + (mode === 'note' ? '/notes' : '/reply');
      const r = await fetchJson(path, { method: 'POST', body: { text } });
      if (S.open === o && r && r.entry) appendEntry(r.entry, 'rest');
      announce(mode === 'note' ? 'Note added.' : 'Reply sent.');
    } catch (e) {
      giveBack();
      const say = (msg) => { if (S.open === o) caseAlert(msg); else toast(msg, 'error'); };
      if (e.status === 409) {
        say('You no longer hold the case of ' + V.who(o.case) + ', so the reply was not sent. Your text is back in the box.');
        if (S.open === o) loadCase(o.id, { keepComposer: true });
      } else if (e.status !== 401) {
        say((mode === 'note' ? 'The note was not saved: ' : 'The reply was not sent: ') + e.message + '. Your text is back in the box.');
      }
    } finally {
      busy(btn, false);
      updateCount();
      if (S.open === o) focusAfter(from, ta);
    }
  }

  function openResolve() {
    if (!S.open || !canManage(S.open.case)) return;
    $('dlg-resolve').returnValue = '';
    $('dlg-resolve').showModal();
    $('dlg-resolve-ok').focus();
  }

  async function resolve() {
    const o = S.open;
    const from = document.activeElement;
    busy($('act-resolve'), true);
    caseAlert(null);
    try {
      const r = await fetchJson('/api/v1/agent/cases/' + encodeURIComponent(o.id) + '/resolve', { method: 'POST' });
      if (r && r.case) onCase(r.case);
      else onCase(Object.assign({}, o.case, { status: 'resolved' }));
      toast('Case resolved. ' + V.who(o.case) + ' has been asked to rate the help.', 'ok');   // toasts are a live region
      if (S.open === o) focusAfter(from, $('case-title'));
    } catch (e) {
      if (e.status !== 401) caseAlert('Could not resolve the case: ' + e.message);
    } finally {
      busy($('act-resolve'), false);
    }
  }

  function openTransfer() {
    if (!S.open || !canTransfer(S.open.case)) return;
    const assign = S.open.case.status === 'queued';   // a supervisor assigning from the queue
    const dl = $('transfer-agents');
    V.clear(dl);
    const me = S.me && S.me.name;
    const agents = S.agents.filter((a) => a.name !== me && a.name !== S.open.case.agent)
      .sort((a, b) => (b.online ? 1 : 0) - (a.online ? 1 : 0) || a.name.localeCompare(b.name));
    for (const a of agents) {
      dl.appendChild(V.el('option', { value: a.name }, (a.display_name || a.name) + (a.online ? ' · online' : ' · offline') + ' · ' + (a.cases || 0) + ' cases'));
    }
    $('dlg-transfer-title').textContent = assign ? 'Assign this case to an agent' : 'Transfer this case';
    $('transfer-ok').textContent = assign ? 'Assign' : 'Transfer';
    $('transfer-queue').closest('.choice').hidden = assign;
    $('transfer-queue').checked = !assign;
    $('transfer-agent-radio').checked = assign;
    $('transfer-agent').value = '';
    $('transfer-agent').disabled = !assign;
    $('transfer-error').hidden = true;
    $('dlg-transfer').showModal();
    (assign ? $('transfer-agent') : $('transfer-queue')).focus();
  }

  async function submitTransfer(ev) {
    ev.preventDefault();
    const dlg = $('dlg-transfer');
    const toAgent = $('transfer-agent-radio').checked;
    const name = $('transfer-agent').value.trim();
    const err = $('transfer-error');
    if (toAgent && !name) {
      err.textContent = 'Enter the name of the agent.';
      err.hidden = false;
      $('transfer-agent').focus();
      return;
    }
    const o = S.open;
    const ok = $('transfer-ok');
    busy(ok, true);
    try {
      const r = await fetchJson('/api/v1/agent/cases/' + encodeURIComponent(o.id) + '/transfer', { method: 'POST', body: { to: toAgent ? name : null } });
      dlg.close('ok');
      if (r && r.case) onCase(r.case);
      toast(toAgent ? 'Case transferred to ' + name + '.' : 'Case returned to the queue.', 'ok');
      if (toAgent && !isSup()) {
        // No longer ours to see: close it and go back to the lists.
        S.open = null;
        $('composer-text').value = '';
        renderOpen();
        renderLists();
        $('main').focus();
      } else {
        $('act-transfer').hidden ? $('case-title').focus() : $('act-transfer').focus();
      }
    } catch (e) {
      if (e.status === 401) return;
      err.textContent = e.status === 404 ? 'There is no agent called “' + name + '”.' : 'Could not transfer: ' + e.message;
      err.hidden = false;
      (toAgent ? $('transfer-agent') : $('transfer-queue')).focus();
    } finally {
      busy(ok, false);
    }
  }

  /* ---- canned answers ------------------------------------------------- */

  const canned = { items: [], active: -1, seq: 0, timer: null, pending: false };

  function openCanned() {
    const o = S.open;
    if (!o || !canReply(o.case)) return;
    if (S.mode !== 'reply') setMode('reply', false);
    $('canned-lang').textContent = (o.case.lang || '').toUpperCase();
    $('canned-lang').title = V.langName(o.case.lang);
    $('canned-search').value = '';
    $('dlg-canned').showModal();
    $('canned-search').focus();
    loadCanned();
  }

  function loadCanned() {
    clearTimeout(canned.timer);
    canned.pending = true;          // Enter waits for the answers of what was typed
    canned.timer = setTimeout(async () => {
      const seq = ++canned.seq;
      const q = $('canned-search').value.trim();
      $('canned-status').textContent = 'Loading…';
      try {
        const r = await fetchJson('/api/v1/agent/canned', { query: { lang: S.open && S.open.case.lang, q } });
        if (seq !== canned.seq) return;
        canned.items = (r && r.answers) || [];
        canned.active = canned.items.length ? 0 : -1;
        $('canned-status').textContent = canned.items.length
          ? canned.items.length + (canned.items.length === 1 ? ' answer' : ' answers') + ' in ' + V.langName(S.open && S.open.case.lang)
          : 'No answer matches.';
      } catch (e) {
        if (seq !== canned.seq) return;
        canned.items = [];
        canned.active = -1;
        $('canned-status').textContent = 'Could not load the answers: ' + e.message;
      }
      canned.pending = false;
      renderCanned();
      if (canned.insertWhenLoaded) { canned.insertWhenLoaded = false; if (canned.active >= 0) insertCanned(canned.active); }
    }, 120);
  }

  function renderCanned() {
    const ul = $('canned-list');
    V.clear(ul);
    canned.items.forEach((a, i) => {
      const li = V.el('li', { id: 'canned-' + i, role: 'option', class: 'canned-item', 'aria-selected': i === canned.active ? 'true' : 'false' },
        V.el('span', { class: 'canned-title' }, a.title || a.intent),
        V.el('span', { class: 'canned-intent' }, a.intent || ''),
        V.el('span', { class: 'canned-text', dir: 'auto' }, (a.text || '').slice(0, 220) + ((a.text || '').length > 220 ? '…' : '')));
      li.addEventListener('mousedown', (e) => e.preventDefault());   // keep the focus in the search box
      li.addEventListener('click', () => insertCanned(i));
      ul.appendChild(li);
    });
    const s = $('canned-search');
    if (canned.active >= 0) {
      s.setAttribute('aria-activedescendant', 'canned-' + canned.active);
      const li = $('canned-' + canned.active);
      if (li) li.scrollIntoView({ block: 'nearest' });
    } else {
      s.removeAttribute('aria-activedescendant');
    }
  }

  function insertCanned(i) {
    const a = canned.items[i];
    if (!a || !$('dlg-canned').open) return;
    $('dlg-canned').close();
    const ta = $('composer-text');
    const start = ta.selectionStart || 0, end = ta.selectionEnd || 0;
    const before = ta.value.slice(0, start), after = ta.value.slice(end);
    const sep = before && !/\s$/.test(before) ? '\n' : '';
    ta.value = before + sep + (a.text || '') + after;
    const pos = (before + sep + (a.text || '')).length;
    ta.setSelectionRange(pos, pos);
    updateCount();
    autoGrow();
    ta.focus();
    announce('Inserted the answer “' + (a.title || a.intent) + '”. Review it, then press Enter to send.');
  }

  function onCannedKey(e) {
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (!canned.items.length) return;
      const d = e.key === 'ArrowDown' ? 1 : -1;
      canned.active = (canned.active + d + canned.items.length) % canned.items.length;
      renderCanned();
    } else if (e.key === 'Enter') {
      e.preventDefault();
      if (canned.pending) canned.insertWhenLoaded = true;   // the list on screen is for an older search
      else if (canned.active >= 0) insertCanned(canned.active);
    }
  }

  /* ---- views: inbox, supervisor, dashboard -------------------------------- */

  function route() {
    let v = (location.hash || '#inbox').slice(1);
    if (!['inbox', 'supervisor', 'dashboard'].includes(v) || (v !== 'inbox' && !isSup())) v = 'inbox';
    S.view = v;
    for (const name of ['inbox', 'supervisor', 'dashboard']) {
      $('view-' + name).hidden = name !== v;
      const tab = $('tab-' + name);
      if (name === v) tab.setAttribute('aria-current', 'page'); else tab.removeAttribute('aria-current');
    }
    if (v === 'supervisor') { loadSupCases(); loadAgents(); }
    if (v === 'dashboard') mountDashboard();
  }

  function go(view) {
    if (location.hash === '#' + view) route(); else location.hash = view;
  }

  function mountDashboard() {
    const root = $('dashboard-root');
    const missing = $('dashboard-missing');
    const D = window.CivicgateDashboard;
    if (!D || typeof D.mount !== 'function') {
      missing.hidden = false;
      return;
    }
    missing.hidden = true;
    if (S.dashMounted) return;
    S.dashMounted = true;
    try {
      D.mount(root, { token: S.token, fetchJson });
    } catch (e) {
      V.clear(root);
      root.appendChild(V.el('p', { class: 'alert alert-error', role: 'alert' }, 'The dashboard failed to start: ' + e.message));
    }
  }

  async function loadAgents() {
    if (!isSup()) return;
    S.agentsAt = Date.now();
    try {
      const r = await fetchJson('/api/v1/agent/agents');
      S.agents = (r && r.agents) || [];
      renderSupervisor();
    } catch (e) {
      if (e.status !== 401) toast('Could not load the agents: ' + e.message, 'error');
    }
  }

  let supTimer = null;
  function supervisorChanged() {
    if (S.view !== 'supervisor') return;
    clearTimeout(supTimer);
    supTimer = setTimeout(loadSupCases, 400);
  }

  async function loadSupCases() {
    if (!isSup()) return;
    const status = $('allcases-filter').value;
    try {
      const r = await fetchJson('/api/v1/agent/cases', { query: { status } });
      S.supCases = ((r && r.cases) || []).slice().sort((a, b) => (b.created_at || 0) - (a.created_at || 0));
      renderSupervisor();
    } catch (e) {
      if (e.status !== 401) toast('Could not load the cases: ' + e.message, 'error');
    }
  }

  function renderStats() {
    const now = Date.now();
    const oldest = S.queue.reduce((m, c) => Math.min(m, c.created_at || now), now);
    $('stat-waiting').textContent = String(S.queue.length);
    const longest = $('stat-longest');
    if (S.queue.length) {
      longest.setAttribute('data-since', String(oldest));
      longest.textContent = V.waited(now - oldest);
    } else {
      longest.removeAttribute('data-since');
      longest.textContent = '–';
    }
    $('stat-assigned').textContent = String(othersList().length + mineList().length);
    $('stat-online').textContent = S.agents.filter((a) => a.online).length + ' of ' + S.agents.length;
  }

  function renderSupervisor() {
    if (!isSup()) return;
    renderStats();
    const body = $('agents-body');
    V.clear(body);
    const agents = S.agents.slice().sort((a, b) => (b.online ? 1 : 0) - (a.online ? 1 : 0) || a.name.localeCompare(b.name));
    for (const a of agents) {
      body.appendChild(V.el('tr', { 'data-agent': a.name },
        V.el('td', null, V.el('span', { class: 'avatar avatar-small', 'aria-hidden': 'true' }, V.initials(a.display_name || a.name)),
          V.el('span', { class: 'agent-name' }, a.display_name || a.name), ' ', V.el('span', { class: 'muted' }, '@' + a.name)),
        V.el('td', null, a.role === 'supervisor' ? 'Supervisor' : 'Agent'),
        V.el('td', null, V.el('span', { class: 'presence ' + (a.online ? 'is-online' : 'is-offline') }, a.online ? 'Online' : 'Offline')),
        V.el('td', { class: 'num' }, String(a.cases || 0))));
    }
    $('agents-empty').hidden = agents.length > 0;
    $('agents-online').textContent = agents.filter((a) => a.online).length + ' online of ' + agents.length;

    const cb = $('allcases-body');
    V.clear(cb);
    const now = Date.now();
    for (const c of S.supCases) {
      const open = V.el('button', { type: 'button', class: 'linklike', 'data-open': c.id }, V.who(c));
      const age = c.status === 'queued'
        ? V.el('span', { 'data-since': String(c.created_at || '') }, V.waited(now - (c.created_at || now)))
        : V.el('span', null, V.when(c.created_at));
      cb.appendChild(V.el('tr', { 'data-case': c.id },
        V.el('td', null, open),
        V.el('td', null, V.channelBadge(c.channel), ' ', V.langBadge(c.lang)),
        V.el('td', null, V.statusBadge(c.status), c.csat ? V.el('span', { class: 'muted' }, ' ★ ' + c.csat) : null),
        V.el('td', null, c.agent || '–'),
        V.el('td', null, age),
        V.el('td', { class: 'q-cell', dir: 'auto' }, c.question || '')));
    }
    $('allcases-empty').hidden = S.supCases.length > 0;
  }

  /* ---- keyboard ----------------------------------------------------------- */

  let gPending = 0;
  function typingTarget(t) {
    return t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName));
  }

  /* WCAG 2.1.4: single-key shortcuts can be turned off (kept per browser). */
  const KEYS_KEY = 'civicgate.agent.keys';
  function keysOn() { try { return localStorage.getItem(KEYS_KEY) !== 'off'; } catch (e) { return true; } }

  function onKey(e) {
    if ($('app').hidden || e.ctrlKey || e.metaKey || e.altKey) return;
    if (!keysOn()) return;             // the Shortcuts button still opens the list
    if (document.querySelector('dialog[open]')) return;
    if (typingTarget(e.target)) return;
    const k = e.key;
    if (gPending && Date.now() - gPending < 1500) {
      gPending = 0;
      const dest = { i: 'inbox', s: 'supervisor', d: 'dashboard' }[k];
      if (dest) { e.preventDefault(); go(dest); }
      return;
    }
    gPending = 0;
    const o = S.open;
    switch (k) {
      case 'g': gPending = Date.now(); break;
      case '?': e.preventDefault(); $('dlg-help').showModal(); break;
      case 'j': case 'k': {
        e.preventDefault();
        if (S.view !== 'inbox') go('inbox');
        const ids = listOrder();
        if (!ids.length) return;
        const i = o ? ids.indexOf(o.id) : -1;
        const next = ids[i < 0 ? 0 : Math.max(0, Math.min(ids.length - 1, i + (k === 'j' ? 1 : -1)))];
        openCase(next);
        const b = document.querySelector('#queue-pane .case-item[data-id="' + CSS.escape(next) + '"]');
        if (b) b.focus();
        break;
      }
      case 'c': if (o && o.case.status === 'queued') { e.preventDefault(); claim(); } break;
      case 'r': if (o && canReply(o.case)) { e.preventDefault(); setMode('reply', true); } break;
      case 'n': if (o && !$('composer').hidden) { e.preventDefault(); setMode('note', true); } break;
      case '/': if (o && canReply(o.case)) { e.preventDefault(); openCanned(); } break;
      case 't': if (o && canTransfer(o.case)) { e.preventDefault(); openTransfer(); } break;
      case 'e': if (o && canManage(o.case)) { e.preventDefault(); openResolve(); } break;
      default: break;
    }
  }

  function autoGrow() {
    const ta = $('composer-text');
    ta.style.height = 'auto';
    ta.style.height = Math.min(ta.scrollHeight + 2, 320) + 'px';
  }

  /* ---- wiring ------------------------------------------------------------- */

  function wire() {
    $('login-form').addEventListener('submit', signIn);
    $('logout').addEventListener('click', signOut);
    $('help-button').addEventListener('click', () => $('dlg-help').showModal());
    $('boot-signin').addEventListener('click', () => {
      clearTimeout(resumeTimer);
      S.token = null;
      storage(TOKEN_KEY, null);
      showLogin('');
    });
    $('keys-on').checked = keysOn();
    $('keys-on').addEventListener('change', () => {
      try { localStorage.setItem(KEYS_KEY, $('keys-on').checked ? 'on' : 'off'); } catch (e) { /* storage disabled */ }
    });
    $('banner-action').textContent = 'Reconnect now';
    $('banner-action').addEventListener('click', () => { if (S.sock) S.sock.reconnectNow(); });
    window.addEventListener('hashchange', () => { if (!$('app').hidden) route(); });
    document.addEventListener('keydown', onKey);

    $('queue-pane').addEventListener('click', (e) => {
      const b = e.target.closest('.case-item');
      if (b) openCase(b.getAttribute('data-id'));
    });
    $('allcases-body').addEventListener('click', (e) => {
      const b = e.target.closest('[data-open]');
      if (!b) return;
      const id = b.getAttribute('data-open');
      go('inbox');
      S.open = null;
      openCase(id);
      $('case-title').focus();
    });
    $('allcases-filter').addEventListener('change', loadSupCases);
    $('allcases-refresh').addEventListener('click', () => { loadSupCases(); loadAgents(); });

    $('act-claim').addEventListener('click', claim);
    $('act-resolve').addEventListener('click', openResolve);
    $('act-transfer').addEventListener('click', openTransfer);
    $('dlg-resolve').addEventListener('close', () => {
      const ok = $('dlg-resolve').returnValue === 'ok';
      if (ok) resolve(); else $('act-resolve').focus();
    });
    $('transfer-form').addEventListener('submit', submitTransfer);
    $('transfer-cancel').addEventListener('click', () => $('dlg-transfer').close('cancel'));
    for (const r of document.querySelectorAll('input[name="transfer-to"]')) {
      r.addEventListener('change', () => {
        const toAgent = $('transfer-agent-radio').checked;
        $('transfer-agent').disabled = !toAgent;
        if (toAgent) $('transfer-agent').focus();
      });
    }
    $('dlg-transfer').addEventListener('close', () => {
      if ($('dlg-transfer').returnValue !== 'ok' && !$('act-transfer').hidden) $('act-transfer').focus();
    });

    $('composer').addEventListener('submit', send);
    const ta = $('composer-text');
    ta.addEventListener('input', () => { updateCount(); autoGrow(); });
    ta.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.ctrlKey && !e.altKey && !e.metaKey) {
        e.preventDefault();
        $('composer').requestSubmit();
      } else if (e.key === 'Escape') {
        e.preventDefault();
        $('transcript').focus();
      }
    });
    $('mode-reply').addEventListener('change', () => setMode('reply', false));
    $('mode-note').addEventListener('change', () => setMode('note', false));
    $('canned-button').addEventListener('click', openCanned);
    $('canned-search').addEventListener('input', loadCanned);
    $('canned-search').addEventListener('keydown', onCannedKey);
    $('canned-close').addEventListener('click', () => $('dlg-canned').close());
    $('dlg-canned').addEventListener('close', () => { canned.insertWhenLoaded = false; $('composer-text').focus(); });
    $('case-title').setAttribute('tabindex', '-1');
  }

  async function boot() {
    fetchJson = window.CGApi.rest(() => S.token, onUnauthorized);
    wire();
    const token = storage(TOKEN_KEY);
    if (!token) { showLogin(''); return; }
    S.token = token;
    resume(0);
  }

  /* A session kept in this tab: check it. Only a 401 ends it; a gateway that
   * cannot answer now (down, or 503 while Redis is unavailable) is asked
   * again after 2, 4, 8 ... 30 s, keeping the session. */
  let resumeTimer = null;
  async function resume(attempt) {
    if (!S.token) return;   // given up for a new sign-in
    try {
      const me = await fetchJson('/api/v1/agent/me', { noAuthRedirect: true });
      start(me);
    } catch (e) {
      if (e.status === 401) {
        S.token = null;
        storage(TOKEN_KEY, null);
        showLogin('Your session has ended. Sign in again.');
        return;
      }
      const delay = Math.min(30, 2 * Math.pow(2, attempt));
      $('boot-text').textContent = 'The gateway is not answering (' + e.message + '). Trying again in ' + delay + ' s…';
      $('boot').setAttribute('role', 'alert');
      $('boot-signin').hidden = false;
      resumeTimer = setTimeout(() => resume(attempt + 1), delay * 1000);
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot); else boot();
})();
