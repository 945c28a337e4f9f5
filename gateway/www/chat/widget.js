/*
 * civicgate web-chat widget. Plain JavaScript, no build step, no dependencies.
 *
 * Embed on any page served by the gateway (or proxied to it):
 *
 *   <script src="/chat/widget.js" data-title="Ask the benefits service" data-lang="en" defer></script>
 *
 * Attributes (all optional): data-title (panel title), data-lang (language
 * sent in hello; default <html lang>), data-open="true" (open at load),
 * data-ws (WebSocket path on the same host, default /chat/ws), data-intro (the
 * greeting shown in an empty conversation), data-css
 * ("none" to skip loading widget.css when the page styles the widget itself).
 *
 * What it does, in order: loads widget.css next to this script, builds a
 * launcher button and a chat panel (DOM built with createElement only: no
 * innerHTML anywhere, citizen and bot text is set with textContent and only
 * https/http links become anchors), and on first open connects to
 * ws(s)://<this host>/chat/ws with the subprotocol "civicgate-webchat".
 * It sends {"type":"hello","token":<localStorage "civicgate.token" or "">,
 * "lang"} and keeps the token from the welcome frame, so a reload or a
 * reconnect resumes the same conversation (history is re-rendered from
 * welcome). Messages typed while offline wait in a queue and go after the
 * next welcome. Reconnects back off 1 s, 2 s, 4 s ... 30 s with jitter.
 * The protocol is documented in docs/webchat.md.
 *
 * A page can drive it through window.CivicgateChat.open() / close() / toggle(),
 * or mark any element with data-civicgate-open to make it open the chat.
 */
(function () {
  'use strict';
  if (window.CivicgateChat) return;   // loaded twice: keep the first

  var script = document.currentScript || (function () {
    var all = document.getElementsByTagName('script');
    for (var i = all.length - 1; i >= 0; i--) if (/widget\.js(\?|$)/.test(all[i].src)) return all[i];
    return null;
  })();
  var ds = (script && script.dataset) || {};
  var TOKEN_KEY = 'civicgate.token';
  var OPEN_KEY = 'civicgate.open';
  var MAX_TEXT = 2000;          // characters per message (frames are ≤ 8192 bytes)
  var RTL = { ar: 1, fa: 1, he: 1, ur: 1, ps: 1, dv: 1, yi: 1 };

  var lang = (ds.lang || document.documentElement.lang || navigator.language || 'en').toLowerCase();
  var baseLang = lang.split('-')[0];

  var STRINGS = {
    en: { intro: 'Ask a question in your own words. If I cannot help, I can pass you to an adviser.',
          open: 'Open chat', close: 'Close chat', send: 'Send', input: 'Type your question',
          log: 'Conversation', connecting: 'Connecting…', online: 'Online', reconnecting: 'Reconnecting…',
          offline: 'Offline: your messages will be sent when the connection is back',
          you: 'You', bot: 'Assistant', agent: 'Agent', typing: 'The assistant is typing',
          error: 'Something went wrong', newTab: '(opens in a new tab)', queued: 'waiting to send' },
    es: { intro: 'Haga su pregunta con sus propias palabras. Si no puedo ayudarle, le pasaré con un asesor.',
          open: 'Abrir chat', close: 'Cerrar chat', send: 'Enviar', input: 'Escriba su pregunta',
          log: 'Conversación', connecting: 'Conectando…', online: 'En línea', reconnecting: 'Reconectando…',
          offline: 'Sin conexión: sus mensajes se enviarán al volver la conexión',
          you: 'Usted', bot: 'Asistente', agent: 'Agente', typing: 'El asistente está escribiendo',
          error: 'Algo salió mal', newTab: '(se abre en una pestaña nueva)', queued: 'pendiente de envío' },
    fr: { intro: 'Posez votre question avec vos mots. Si je ne peux pas vous aider, je vous mets en relation avec un conseiller.',
          open: 'Ouvrir la discussion', close: 'Fermer la discussion', send: 'Envoyer', input: 'Posez votre question',
          log: 'Conversation', connecting: 'Connexion…', online: 'En ligne', reconnecting: 'Reconnexion…',
          offline: 'Hors ligne : vos messages partiront au retour de la connexion',
          you: 'Vous', bot: 'Assistant', agent: 'Conseiller', typing: "L'assistant écrit",
          error: 'Une erreur est survenue', newTab: '(ouvre un nouvel onglet)', queued: "en attente d'envoi" },
    ar: { intro: 'اكتب سؤالك بكلماتك. إذا لم أستطع مساعدتك، يمكنني تحويلك إلى موظف.',
          open: 'افتح المحادثة', close: 'أغلق المحادثة', send: 'إرسال', input: 'اكتب سؤالك',
          log: 'المحادثة', connecting: 'جارٍ الاتصال…', online: 'متصل', reconnecting: 'جارٍ إعادة الاتصال…',
          offline: 'غير متصل: سترسل رسائلك عند عودة الاتصال',
          you: 'أنت', bot: 'المساعد', agent: 'موظف', typing: 'المساعد يكتب',
          error: 'حدث خطأ', newTab: '(يفتح في علامة تبويب جديدة)', queued: 'بانتظار الإرسال' }
  };
  var T = STRINGS[baseLang] || STRINGS.en;

  function storageGet(store, key) { try { return window[store].getItem(key); } catch (e) { return null; } }
  function storageSet(store, key, v) { try { if (v === null) window[store].removeItem(key); else window[store].setItem(key, v); } catch (e) { /* private mode */ } }

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k) && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  /* ---- styles ---------------------------------------------------------- */
  if (ds.css !== 'none' && script && script.src && !document.querySelector('link[data-cgw-css]')) {
    var link = el('link', { rel: 'stylesheet', href: script.src.replace(/widget\.js(\?.*)?$/, 'widget.css'), 'data-cgw-css': '' });
    document.head.appendChild(link);
  }

  /* ---- DOM ------------------------------------------------------------- */
  function bubbleIcon() {   // a speech bubble drawn in SVG (no emoji font needed)
    var NS = 'http://www.w3.org/2000/svg';
    var svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '22');
    svg.setAttribute('height', '22');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    svg.setAttribute('class', 'cgw-launcher-icon');
    var path = document.createElementNS(NS, 'path');
    path.setAttribute('d', 'M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z');
    path.setAttribute('fill', 'currentColor');
    svg.appendChild(path);
    return svg;
  }

  var uid = 'cgw' + Math.random().toString(36).slice(2, 8);
  var title = ds.title || 'Chat with us';
  var root = el('div', { 'class': 'cgw-root', lang: lang, dir: RTL[baseLang] ? 'rtl' : 'ltr' });
  var launcher = el('button', { type: 'button', 'class': 'cgw-launcher', 'aria-expanded': 'false',
    'aria-controls': uid + '-panel' });
  launcher.appendChild(bubbleIcon());
  launcher.appendChild(el('span', { 'class': 'cgw-launcher-text' }, title));
  var panel = el('section', { 'class': 'cgw-panel', id: uid + '-panel', role: 'dialog',
    'aria-labelledby': uid + '-title', hidden: '' });
  var header = el('div', { 'class': 'cgw-header' });   // not <header>: that would be a second banner landmark
  var h = el('h2', { 'class': 'cgw-title', id: uid + '-title' }, title);
  var status = el('p', { 'class': 'cgw-status', role: 'status', 'data-state': 'idle' }, '');
  var closeBtn = el('button', { type: 'button', 'class': 'cgw-close', 'aria-label': T.close, title: T.close }, '\u00D7');
  var titles = el('div', { 'class': 'cgw-titles' });
  titles.appendChild(h);
  titles.appendChild(status);
  header.appendChild(titles);
  header.appendChild(closeBtn);
  var log = el('div', { 'class': 'cgw-log', role: 'log', 'aria-live': 'polite', 'aria-relevant': 'additions',
    'aria-label': T.log, tabindex: '0' });
  var typing = el('p', { 'class': 'cgw-typing', hidden: '' });
  typing.appendChild(el('span', { 'class': 'cgw-sr' }, T.typing));
  typing.appendChild(el('span', { 'class': 'cgw-dots', 'aria-hidden': 'true' }, '• • •'));
  var form = el('form', { 'class': 'cgw-form', autocomplete: 'off' });
  var label = el('label', { 'class': 'cgw-sr', 'for': uid + '-input' }, T.input);
  var input = el('textarea', { id: uid + '-input', 'class': 'cgw-input', rows: '1', maxlength: String(MAX_TEXT),
    placeholder: T.input, dir: 'auto', enterkeyhint: 'send' });
  var sendBtn = el('button', { type: 'submit', 'class': 'cgw-send' }, T.send);
  form.appendChild(label);
  form.appendChild(input);
  form.appendChild(sendBtn);
  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(launcher);

  /* The widget's own words follow the conversation's language: a citizen
   * writing in Spanish on an English page gets "Escriba su pregunta". */
  function followLang(l) {
    var b = typeof l === 'string' ? l.toLowerCase().split('-')[0] : '';
    if (!b || b === baseLang || !STRINGS[b]) return;
    baseLang = b;
    T = STRINGS[b];
    input.setAttribute('placeholder', T.input);
    label.textContent = T.input;
    sendBtn.textContent = T.send;
    closeBtn.setAttribute('aria-label', T.close);
    closeBtn.setAttribute('title', T.close);
    log.setAttribute('aria-label', T.log);
  }

  /* ---- rendering ------------------------------------------------------- */
  var URL_RE = /\bhttps?:\/\/[^\s<>"']+/g;

  /* Appends text to parent as text nodes, with http(s) URLs as anchors. */
  function appendLinkified(parent, text) {
    var last = 0, m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text)) !== null) {
      var raw = m[0];
      var trail = /[.,;:!?)\]}'"]+$/.exec(raw);   // sentence punctuation is not part of the link
      if (trail) raw = raw.slice(0, raw.length - trail[0].length);
      var href = null;
      try {
        var u = new URL(raw);
        if (u.protocol === 'https:' || u.protocol === 'http:') href = u.href;
      } catch (e) { href = null; }
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (href) {
        var a = el('a', { href: href, target: '_blank', rel: 'noopener noreferrer' }, raw);
        a.appendChild(el('span', { 'class': 'cgw-sr' }, ' ' + T.newTab));
        parent.appendChild(a);
      } else {
        parent.appendChild(document.createTextNode(raw));
      }
      last = m.index + raw.length;
      URL_RE.lastIndex = last;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function dirFor(l) { return l && RTL[String(l).toLowerCase().split('-')[0]] ? 'rtl' : null; }

  /* who: "user" | "bot" | "agent" | "system". Returns the message element. */
  function addMessage(who, text, opts) {
    opts = opts || {};
    var item = el('div', { 'class': 'cgw-msg cgw-' + who, lang: opts.lang || null, dir: dirFor(opts.lang) || 'auto' });
    if (who !== 'system') {
      item.appendChild(el('span', { 'class': 'cgw-sr' }, (who === 'user' ? T.you : who === 'agent' ? T.agent : T.bot) + ': '));
    }
    if (who === 'agent') item.appendChild(el('span', { 'class': 'cgw-who', 'aria-hidden': 'true' }, T.agent));
    var body = el('p', { 'class': 'cgw-text' });
    appendLinkified(body, String(text || ''));
    item.appendChild(body);
    if (opts.buttons && opts.buttons.length) item.appendChild(renderButtons(opts.buttons, opts.live));
    log.appendChild(item);
    scrollDown();
    return item;
  }

  function renderButtons(buttons, live) {
    var group = el('div', { 'class': 'cgw-buttons' });
    buttons.forEach(function (b) {
      if (!b || typeof b.title !== 'string' || !b.title) return;
      if (typeof b.payload === 'string' && b.payload) {
        var btn = el('button', { type: 'button', 'class': 'cgw-btn' }, b.title);
        if (!live) btn.disabled = true;
        btn.addEventListener('click', function () {
          sendFrame({ type: 'button', payload: b.payload }, b.title);
          var all = group.querySelectorAll('button');
          for (var i = 0; i < all.length; i++) all[i].disabled = true;
          btn.setAttribute('aria-pressed', 'true');
          input.focus();
        });
        group.appendChild(btn);
      } else if (typeof b.url === 'string') {
        var href = null;
        try { var u = new URL(b.url); if (u.protocol === 'https:' || u.protocol === 'http:') href = u.href; } catch (e) { href = null; }
        if (!href) return;
        var a = el('a', { 'class': 'cgw-btn cgw-link', href: href, target: '_blank', rel: 'noopener noreferrer' }, b.title);
        a.appendChild(el('span', { 'class': 'cgw-sr' }, ' ' + T.newTab));
        group.appendChild(a);
      }
    });
    return group;
  }

  function clearLog() { while (log.firstChild) log.removeChild(log.firstChild); }

  /* The greeting shown while the conversation is empty (data-intro overrides). */
  function showIntro() {
    var intro = ds.intro || T.intro;
    if (!intro || log.firstChild) return;
    var item = el('div', { 'class': 'cgw-msg cgw-bot cgw-intro' });
    item.appendChild(el('p', { 'class': 'cgw-text' }, intro));
    log.appendChild(item);
  }

  /* History entries come from the gateway's transcript; accept the usual shapes:
   * {"from"|"role"|"dir": "user"|"citizen"|"in"|"bot"|"agent"|"out", "text", "buttons", "lang"}. */
  function renderHistory(history) {
    clearLog();
    if (!Array.isArray(history) || !history.length) { showIntro(); return; }
    history.forEach(function (e, i) {
      if (!e || typeof e !== 'object') return;
      var who = String(e.from || e.role || e.dir || e.who || (e.type === 'reply' ? 'bot' : '')).toLowerCase();
      if (who === 'citizen' || who === 'in' || who === 'user') who = 'user';
      else if (who === 'agent' || e.agent === true) who = 'agent';
      else who = 'bot';
      var text = typeof e.text === 'string' ? e.text : (typeof e.payload === 'string' ? e.payload : '');
      if (!text && !(e.buttons && e.buttons.length)) return;
      addMessage(who, text, { lang: e.lang, buttons: e.buttons, live: i === history.length - 1 && who !== 'user' });
    });
  }

  /* ---- connection ------------------------------------------------------ */
  var ws = null, ready = false, attempt = 0, retryTimer = null, pingTimer = null, lastSeen = 0;
  var queue = [];                 // frames waiting for a welcome
  var counter = 0;
  var typingTimer = null;

  function setState(state) {
    status.setAttribute('data-state', state);
    root.setAttribute('data-state', state);
    status.textContent = T[state] || '';
    sendBtn.disabled = false;
  }

  function nextId() { counter += 1; return 'c' + Date.now().toString(36) + '-' + counter; }

  function showTyping(on) {
    if (typingTimer) { clearTimeout(typingTimer); typingTimer = null; }
    typing.hidden = !on;
    if (on) typingTimer = setTimeout(function () { typing.hidden = true; }, 15000);
  }

  function wsUrl() {
    var path = ds.ws && ds.ws.charAt(0) === '/' ? ds.ws : '/chat/ws';
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
  }

  function connect() {
    if (ws || !navigator.onLine && attempt > 0) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    setState(attempt ? 'reconnecting' : 'connecting');
    var sock;
    try {
      sock = new WebSocket(wsUrl(), 'civicgate-webchat');
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = function () {
      lastSeen = Date.now();
      sock.send(JSON.stringify({ type: 'hello', token: storageGet('localStorage', TOKEN_KEY) || '', lang: lang }));
    };
    sock.onmessage = function (ev) {
      lastSeen = Date.now();
      var f;
      try { f = JSON.parse(ev.data); } catch (e) { return; }
      if (!f || typeof f !== 'object') return;
      if (f.type === 'welcome') {
        if (typeof f.token === 'string' && /^[0-9a-f]{64}$/.test(f.token)) storageSet('localStorage', TOKEN_KEY, f.token);
        ready = true;
        attempt = 0;
        setState('online');
        renderHistory(f.history);
        var pending = queue;
        queue = [];
        pending.forEach(function (q) {
          addMessage('user', q.shown);
          sock.send(JSON.stringify(q.frame));
        });
        if (pending.length) showTyping(true);
      } else if (f.type === 'reply') {
        showTyping(false);
        followLang(f.lang);
        addMessage(f.agent ? 'agent' : 'bot', f.text, { lang: f.lang, buttons: f.buttons, live: true });
      } else if (f.type === 'error') {
        showTyping(false);
        if (typeof f.reason === 'string' && /^unavailable/.test(f.reason)) {
          // the gateway could not store a message: send the recent ones again with
          // the same ids (the gateway drops duplicates), once, after a pause
          resendRecent();
          return;
        }
        addMessage('system', T.error + (typeof f.reason === 'string' && f.reason ? ': ' + f.reason : ''));
        if (!ready && typeof f.reason === 'string' && /^token/.test(f.reason)) {
          storageSet('localStorage', TOKEN_KEY, null);   // a token the server refuses: start afresh
          sock.send(JSON.stringify({ type: 'hello', token: '', lang: lang }));
        }
      }
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      ready = false;
      showTyping(false);
      scheduleReconnect();
    };
    sock.onerror = function () { /* onclose follows */ };
  }

  function scheduleReconnect() {
    if (retryTimer) return;
    attempt += 1;
    setState(navigator.onLine === false ? 'offline' : 'reconnecting');
    var base = Math.min(30000, 1000 * Math.pow(2, Math.min(attempt - 1, 5)));
    var delay = base / 2 + Math.random() * base / 2;
    retryTimer = setTimeout(function () { retryTimer = null; connect(); }, delay);
  }

  function reconnectNow() {
    if (ws) return;
    clearTimeout(retryTimer);
    retryTimer = null;
    connect();
  }

  window.addEventListener('online', reconnectNow);
  window.addEventListener('offline', function () { if (!ws) setState('offline'); });
  document.addEventListener('visibilitychange', function () { if (!document.hidden && opened) reconnectNow(); });

  function startPings() {
    if (pingTimer) return;
    pingTimer = setInterval(function () {
      if (!ws || ws.readyState !== 1) return;
      if (Date.now() - lastSeen > 65000) { var s = ws; ws = null; s.close(); scheduleReconnect(); return; }
      ws.send('{"type":"ping"}');
    }, 25000);
  }

  var recent = [];                // frames sent in the last 30 s, for resendRecent
  var resendTimer = null;
  function resendRecent() {
    if (resendTimer) return;
    resendTimer = setTimeout(function () {
      resendTimer = null;
      var now = Date.now();
      recent = recent.filter(function (r) { return now - r.at < 30000 && !r.resent; });
      if (!ws || !ready || ws.readyState !== 1) return;
      recent.forEach(function (r) { r.resent = true; ws.send(JSON.stringify(r.frame)); });
    }, 2000);
  }

  /* frame: {type:"message"|"button", ...}; shown: what the citizen sees. */
  function sendFrame(frame, shown) {
    frame.id = nextId();
    if (ws && ready && ws.readyState === 1) {
      addMessage('user', shown);
      ws.send(JSON.stringify(frame));
      recent.push({ frame: frame, at: Date.now() });
      if (recent.length > 10) recent.shift();
      showTyping(true);
    } else {
      queue.push({ frame: frame, shown: shown });
      var item = addMessage('user', shown);
      item.classList.add('cgw-queued');
      item.appendChild(el('span', { 'class': 'cgw-note' }, T.queued));
      connect();
    }
  }

  /* ---- open / close / keyboard ----------------------------------------- */
  var opened = false;
  /* focus: move focus into the panel (user action); not when opened at load. */
  function open(focus) {
    if (opened) return;
    opened = true;
    panel.hidden = false;
    launcher.setAttribute('aria-expanded', 'true');
    root.classList.add('cgw-open');
    storageSet('sessionStorage', OPEN_KEY, '1');
    connect();
    startPings();
    scrollDown();
    if (focus !== false) input.focus();
  }
  function close() {
    if (!opened) return;
    opened = false;
    panel.hidden = true;
    launcher.setAttribute('aria-expanded', 'false');
    root.classList.remove('cgw-open');
    storageSet('sessionStorage', OPEN_KEY, null);
    launcher.focus();
  }

  launcher.addEventListener('click', function () { if (opened) close(); else open(true); });
  closeBtn.addEventListener('click', close);
  panel.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') { e.preventDefault(); close(); }
  });
  input.addEventListener('keydown', function (e) {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      if (form.requestSubmit) form.requestSubmit(); else submit(e);
    }
  });
  function submit(e) {
    if (e) e.preventDefault();
    var text = input.value.replace(/^\s+|\s+$/g, '');
    if (!text) return;
    if (text.length > MAX_TEXT) text = text.slice(0, MAX_TEXT);
    input.value = '';
    input.style.height = '';
    sendFrame({ type: 'message', text: text }, text);
    input.focus();
  }
  form.addEventListener('submit', submit);
  input.addEventListener('input', function () {   // grow with the text, up to the CSS max-height
    input.style.height = 'auto';
    input.style.height = input.scrollHeight + 'px';
  });

  /* Any element with data-civicgate-open opens the chat (no inline script needed). */
  document.addEventListener('click', function (e) {
    var t = e.target && e.target.closest ? e.target.closest('[data-civicgate-open]') : null;
    if (t) { e.preventDefault(); open(true); }
  });

  function mount() {
    document.body.appendChild(root);
    if (ds.open === 'true' || storageGet('sessionStorage', OPEN_KEY) === '1') open(false);
  }
  if (document.body) mount(); else document.addEventListener('DOMContentLoaded', mount);

  window.CivicgateChat = {
    open: function () { open(true); },
    close: close,
    toggle: function () { if (opened) close(); else open(true); }
  };
})();
