/*
 * api.js: the agent console's two links to the gateway, no DOM.
 *
 *   CGApi.rest(getToken, onUnauthorized) -> fetchJson(path, {method, body, query})
 *     REST under /api/v1/ (docs/openapi.yaml, "agents" routes). Sends the
 *     bearer token, JSON in and out. Resolves with the parsed body (null for
 *     204); rejects with a CGApi.ApiError {status, body, message}. Any 401
 *     also calls onUnauthorized() once per token (the console then shows the
 *     sign-in form). The same fetchJson is handed to the supervisors'
 *     dashboard (dashboard.js).
 *
 *   CGApi.socket({token, onFrame, onState, onUnauthorized}) -> {close(), reconnectNow()}
 *     The live link: ws(s)://<host>/agent/ws, subprotocol "civicgate-agent".
 *     The first frame is {"type":"auth","token"}; then the server pushes
 *     hello / queue / case / entry / agents frames, handed to onFrame(frame).
 *     When the socket drops it reconnects after 1, 2, 4, 8, 16, then every
 *     30 s (each delay shortened at random by up to half, so that a
 *     restarted gateway is not hit by every console at once), at once when
 *     the browser comes back online or the tab becomes visible, and
 *     authenticates again; the console refreshes its state on each "hello".
 *     A close with 4401 (bad or expired token) or an error frame
 *     "unauthorized" stops retrying and calls onUnauthorized().
 *     onState(state, info): "connecting" | "online" | "reconnecting" (info:
 *     {delay, attempt}) | "offline" | "closed".
 *     A ping is not part of the protocol: liveness is the TCP connection.
 *
 * Extending: a new server frame needs only a case in console.js's onFrame.
 */
(function () {
  'use strict';

  const API = '/api/v1';

  class ApiError extends Error {
    constructor(status, body, message) {
      super(message);
      this.name = 'ApiError';
      this.status = status;
      this.body = body;
    }
  }

  /* A readable reason for a failed request, from the contract's {"error"}. */
  function reasonOf(status, body) {
    if (body && typeof body.error === 'string' && body.error) return body.error;
    if (status === 0) return 'The gateway cannot be reached';
    return 'Request failed (HTTP ' + status + ')';
  }

  function rest(getToken, onUnauthorized) {
    let reported = null;   // the token whose 401 was already reported
    return async function fetchJson(path, opts) {
      opts = opts || {};
      let url = path.startsWith('/') ? path : API + '/' + path;
      if (opts.query) {
        const q = new URLSearchParams();
        for (const [k, v] of Object.entries(opts.query)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
        const s = q.toString();
        if (s) url += (url.includes('?') ? '&' : '?') + s;
      }
      const headers = { Accept: 'application/json' };
      const token = getToken();
      if (token) headers.Authorization = 'Bearer ' + token;
      let body;
      if (opts.body !== undefined) {
        headers['Content-Type'] = 'application/json';
        body = JSON.stringify(opts.body);
      }
      let res;
      try {
        res = await fetch(url, { method: opts.method || 'GET', headers, body, cache: 'no-store', credentials: 'omit' });
      } catch (e) {
        throw new ApiError(0, null, reasonOf(0, null));
      }
      let data = null;
      if (res.status !== 204) {
        const text = await res.text();
        if (text) {
          try { data = JSON.parse(text); } catch (e) { data = { error: text.slice(0, 200) }; }
        }
      }
      if (!res.ok) {
        if (res.status === 401 && token && reported !== token && onUnauthorized && !opts.noAuthRedirect) {
          reported = token;
          onUnauthorized();
        }
        throw new ApiError(res.status, data, reasonOf(res.status, data));
      }
      return data;
    };
  }

  function socket(o) {
    let ws = null;
    let attempt = 0;
    let timer = null;
    let stopped = false;

    function url() {
      return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/agent/ws';
    }

    function connect() {
      if (stopped || ws) return;
      clearTimeout(timer);
      timer = null;
      o.onState(attempt ? 'reconnecting' : 'connecting', { attempt, delay: 0 });
      let s;
      try {
        s = new WebSocket(url(), 'civicgate-agent');
      } catch (e) {
        retry();
        return;
      }
      ws = s;
      let authed = false;
      s.onopen = () => { s.send(JSON.stringify({ type: 'auth', token: o.token })); };
      s.onmessage = (ev) => {
        let f;
        try { f = JSON.parse(ev.data); } catch (e) { return; }
        if (!f || typeof f !== 'object' || typeof f.type !== 'string') return;
        if (f.type === 'error' && f.error === 'unauthorized') {
          giveUp();
          return;
        }
        if (f.type === 'hello') {
          authed = true;
          attempt = 0;
          o.onState('online', {});
        }
        if (authed || f.type === 'error') o.onFrame(f);
      };
      s.onclose = (ev) => {
        if (ws !== s) return;
        ws = null;
        if (ev.code === 4401) { giveUp(); return; }
        retry();
      };
      s.onerror = () => { /* onclose follows */ };
    }

    function giveUp() {
      if (stopped) return;
      stopped = true;
      const s = ws;
      ws = null;
      if (s) try { s.close(1000); } catch (e) { /* closing */ }
      o.onState('closed', {});
      o.onUnauthorized();
    }

    function retry() {
      if (stopped || timer) return;
      attempt += 1;
      if (navigator.onLine === false) { o.onState('offline', { attempt }); return; }   // 'online' event resumes
      const base = Math.min(30000, 1000 * Math.pow(2, Math.min(attempt - 1, 5)));
      const delay = Math.round(base / 2 + Math.random() * base / 2);
      o.onState('reconnecting', { attempt, delay });
      timer = setTimeout(() => { timer = null; connect(); }, delay);
    }

    function reconnectNow() {
      if (stopped || ws) return;
      clearTimeout(timer);
      timer = null;
      connect();
    }

    const onOnline = () => reconnectNow();
    const onOffline = () => { if (!ws && !stopped) o.onState('offline', { attempt }); };
    const onVisible = () => { if (!document.hidden) reconnectNow(); };
    window.addEventListener('online', onOnline);
    window.addEventListener('offline', onOffline);
    document.addEventListener('visibilitychange', onVisible);

    connect();
    return {
      reconnectNow,
      close() {
        stopped = true;
        clearTimeout(timer);
        window.removeEventListener('online', onOnline);
        window.removeEventListener('offline', onOffline);
        document.removeEventListener('visibilitychange', onVisible);
        const s = ws;
        ws = null;
        if (s) try { s.close(1000); } catch (e) { /* closing */ }
        o.onState('closed', {});
      },
    };
  }

  window.CGApi = { ApiError, rest, socket };
})();
