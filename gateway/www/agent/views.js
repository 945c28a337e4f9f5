/*
 * views.js: pure rendering for the agent console: data in, DOM nodes out.
 * No state, no network (console.js owns both).
 *
 *   CGViews.el(tag, attrs, ...children)   createElement with attributes;
 *                                          strings become text nodes
 *   CGViews.caseItem(c, {me, now, selected, showAgent})  one row of a case list
 *   CGViews.entry(e, c, {me})              one transcript entry
 *   CGViews.channelBadge(ch), langBadge(l), facts(dl, [[term, value]...])
 *   CGViews.waited(ms), clock(ts), when(ts), channelName(ch), langName(l), who(c)
 *
 * Safety: citizen, bot and agent text is only ever set as text
 * (textContent / text nodes); http(s) URLs become anchors opening a new tab
 * with rel="noopener noreferrer"; nothing is parsed as HTML. Transcript
 * entries are told apart by class and by a visually hidden "who" prefix for
 * screen readers: citizen (in), bot (out without agent), agent (out with
 * agent), internal note (note with agent, no kind), system event (kind).
 */
(function () {
  'use strict';

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (v === true) e.setAttribute(k, '');
        else e.setAttribute(k, String(v));
      }
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      e.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

  const CHANNELS = {
    telegram: { name: 'Telegram', short: 'TG' },
    whatsapp: { name: 'WhatsApp', short: 'WA' },
    messenger: { name: 'Messenger', short: 'FB' },
    webchat: { name: 'Web chat', short: 'WEB' },
  };
  function channelName(ch) { return (CHANNELS[ch] && CHANNELS[ch].name) || String(ch || 'unknown'); }

  /* A small coloured tag: an SVG glyph per channel plus its name. */
  const GLYPHS = {
    telegram: 'M21 4 3 11l5 2 2 6 3-4 5 4z M8 13l10-6-7 8',
    whatsapp: 'M12 3a9 9 0 0 0-7.8 13.5L3 21l4.6-1.2A9 9 0 1 0 12 3z M9 8c0 4 3 7 7 7l1-2-2-1-1 1c-1-.5-2-1.5-2.5-2.5l1-1-1-2z',
    messenger: 'M12 3C7 3 3 6.7 3 11.3c0 2.6 1.3 4.9 3.3 6.4V21l3-1.7c.9.3 1.8.4 2.7.4 5 0 9-3.7 9-8.4S17 3 12 3z M7 14l3.5-3.5 2.5 2 4-3.5-3.5 3.5-2.5-2z',
    webchat: 'M4 4h16v12H8l-4 4z M8 9h8 M8 12h5',
  };
  function glyph(ch) {
    const NS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '14');
    svg.setAttribute('height', '14');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const p = document.createElementNS(NS, 'path');
    p.setAttribute('d', GLYPHS[ch] || GLYPHS.webchat);
    svg.appendChild(p);
    return svg;
  }
  function channelBadge(ch) {
    const known = CHANNELS[ch] ? ch : 'other';
    return el('span', { class: 'chan chan-' + known }, glyph(ch), el('span', { class: 'chan-name' }, channelName(ch)));
  }

  let langNames = null;
  try { langNames = new Intl.DisplayNames(['en'], { type: 'language' }); } catch (e) { langNames = null; }
  function langName(l) {
    if (!l) return 'unknown language';
    try { return (langNames && langNames.of(l)) || l; } catch (e) { return l; }
  }
  function langBadge(l) {
    return el('span', { class: 'badge badge-lang', title: langName(l) },
      el('span', { 'aria-hidden': 'true' }, String(l || '?').toUpperCase()),
      el('span', { class: 'sr-only' }, langName(l)));
  }

  /* "45 s", "3 min", "1 h 05 min", "2 d 3 h": how long a citizen has waited. */
  function waited(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + String(s % 60).padStart(2, '0') + ' s';
    const h = Math.floor(m / 60);
    if (h < 24) return h + ' h ' + String(m % 60).padStart(2, '0') + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }
  function clock(ts) {
    return new Date(ts).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }
  function when(ts) {
    if (!ts) return '–';
    const d = new Date(ts);
    const today = new Date();
    if (d.toDateString() === today.toDateString()) return 'today ' + clock(ts);
    return d.toLocaleDateString([], { day: 'numeric', month: 'short' }) + ' ' + clock(ts);
  }

  function who(c) { return (c && (c.name || c.user)) || 'Citizen'; }
  function initials(s) {
    const parts = String(s || '?').trim().split(/\s+/);
    return ((parts[0] || '?')[0] + (parts.length > 1 ? parts[parts.length - 1][0] : '')).toUpperCase();
  }

  const STATUS = { queued: 'Queued', assigned: 'Assigned', resolved: 'Resolved' };
  function statusBadge(st) {
    return el('span', { class: 'badge badge-status st-' + (STATUS[st] ? st : 'other') }, STATUS[st] || String(st || '–'));
  }

  /* One row of a case list: a button carrying data-id. The waiting time is a
   * <span data-since> that console.js refreshes every second. */
  function caseItem(c, opt) {
    const since = c.status === 'queued' ? c.created_at : (c.last_message_at || c.created_at);
    const waitLabel = c.status === 'queued' ? 'waiting' : 'last message';
    const btn = el('button', {
      type: 'button', class: 'case-item' + (opt.selected ? ' is-selected' : '') + (c.unread ? ' has-unread' : ''),
      'data-id': c.id, 'aria-current': opt.selected ? 'true' : null,
    });
    const top = el('span', { class: 'ci-top' },
      el('span', { class: 'ci-name', dir: 'auto' }, who(c)),
      el('span', { class: 'ci-wait', 'data-since': String(since || ''), title: waitLabel }, waited(opt.now - (since || opt.now))));
    const meta = el('span', { class: 'ci-meta' }, channelBadge(c.channel), langBadge(c.lang));
    if (c.status === 'queued' && c.position) meta.appendChild(el('span', { class: 'badge badge-pos' }, '#' + c.position));
    if (c.callback) meta.appendChild(el('span', { class: 'badge badge-callback' }, 'Call-back'));
    if (c.priority > 0) meta.appendChild(el('span', { class: 'badge badge-prio' }, 'Priority ' + c.priority));
    if (opt.showAgent && c.agent) meta.appendChild(el('span', { class: 'badge' }, c.agent));
    if (c.unread) meta.appendChild(el('span', { class: 'badge badge-unread' }, c.unread + ' new'));
    btn.appendChild(top);
    btn.appendChild(meta);
    if (c.question) btn.appendChild(el('span', { class: 'ci-q', dir: 'auto' }, c.question));
    // One clear sentence for screen readers instead of the visual fragments.
    const parts = [who(c), 'on ' + channelName(c.channel), langName(c.lang)];
    if (c.status === 'queued') {
      if (c.position) parts.push('position ' + c.position);
      parts.push('waiting since ' + clock(c.created_at));
    }
    if (c.callback) parts.push('asked to be called back');
    if (c.unread) parts.push(c.unread + ' new messages');
    if (c.question) parts.push('asked: ' + c.question);
    btn.setAttribute('aria-label', parts.join(', '));
    return el('li', null, btn);
  }

  /* ---- transcript ---- */
  const URL_RE = /\bhttps?:\/\/[^\s<>"']+/g;
  function linkify(parent, text) {
    let last = 0, m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text)) !== null) {
      let raw = m[0];
      const trail = /[.,;:!?)\]}'"]+$/.exec(raw);
      if (trail) raw = raw.slice(0, raw.length - trail[0].length);
      let href = null;
      try {
        const u = new URL(raw);
        if (u.protocol === 'https:' || u.protocol === 'http:') href = u.href;
      } catch (e) { href = null; }
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      if (href) parent.appendChild(el('a', { href, target: '_blank', rel: 'noopener noreferrer' }, raw, el('span', { class: 'sr-only' }, ' (opens in a new tab)')));
      else parent.appendChild(document.createTextNode(raw));
      last = m.index + raw.length;
      URL_RE.lastIndex = last;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  const EVENTS = {
    escalated: 'Handed off to a person',
    claimed: 'Claimed',
    transferred: 'Transferred',
    resolved: 'Resolved',
    csat: 'Satisfaction rating',
    returned: 'Returned to the queue',
    callback: 'The citizen asked to be called back',
  };

  /* The kind of a transcript entry: "citizen" | "bot" | "agent" | "note" | "system". */
  function entryKind(e) {
    if (e.kind) return 'system';
    if (e.dir === 'in') return 'citizen';
    if (e.dir === 'note') return e.agent ? 'note' : 'system';
    return e.agent ? 'agent' : 'bot';
  }

  function entry(e, c, opt) {
    const kind = entryKind(e);
    const text = typeof e.text === 'string' ? e.text : '';
    if (kind === 'system') {
      // "claimed by bob" says it all; a bare "escalated" gets a readable label.
      const label = EVENTS[e.kind] || (e.kind ? String(e.kind) : 'Event');
      const plain = !text || text.toLowerCase() === String(e.kind || '').toLowerCase();
      const said = plain ? label : text.charAt(0).toUpperCase() + text.slice(1);
      const by = e.agent && !said.includes(e.agent) ? ' (' + e.agent + ')' : '';
      return el('div', { class: 'tx tx-system', 'data-kind': e.kind || 'note' },
        el('span', { class: 'tx-sys-text' }, said + by),
        el('time', { datetime: new Date(e.ts || 0).toISOString() }, ' · ' + clock(e.ts)));
    }
    const mine = opt && opt.me && e.agent === opt.me;
    const names = {
      citizen: who(c),
      bot: 'Bot',
      agent: mine ? 'You' : (e.agent || 'Agent'),
      note: 'Internal note by ' + (mine ? 'you' : e.agent),
    };
    const wrap = el('div', { class: 'tx tx-' + kind + (mine ? ' tx-mine' : ''), 'data-dir': e.dir });
    const head = el('div', { class: 'tx-head' },
      el('span', { class: 'tx-who' }, names[kind]),
      kind === 'bot' && e.intent ? el('span', { class: 'tx-intent', title: 'Intent' }, e.intent) : null,
      kind === 'note' ? el('span', { class: 'tx-private' }, 'Never sent to the citizen') : null,
      el('time', { class: 'tx-time', datetime: new Date(e.ts || 0).toISOString(), title: when(e.ts) }, clock(e.ts)));
    const body = el('p', { class: 'tx-text', dir: 'auto', lang: kind === 'citizen' || kind === 'bot' ? (c && c.lang) || null : null });
    linkify(body, text);
    wrap.appendChild(head);
    wrap.appendChild(body);
    if (Array.isArray(e.buttons) && e.buttons.length) {
      const list = el('ul', { class: 'tx-buttons', 'aria-label': 'Buttons offered' });
      for (const b of e.buttons) if (b && b.title) list.appendChild(el('li', null, String(b.title)));
      wrap.appendChild(list);
    }
    if (e.pending) wrap.appendChild(el('span', { class: 'tx-pending' }, 'Sending…'));
    return wrap;
  }

  function facts(dl, rows) {
    clear(dl);
    for (const [term, value] of rows) {
      if (value === null || value === undefined || value === '') continue;
      dl.appendChild(el('dt', null, term));
      dl.appendChild(el('dd', null, value));
    }
  }

  window.CGViews = {
    el, clear, channelName, channelBadge, langName, langBadge, statusBadge, waited, clock, when,
    who, initials, caseItem, entry, entryKind, facts,
  };
})();
