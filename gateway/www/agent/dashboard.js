/*
 * dashboard.js: the supervisors' and admins' dashboard inside the agents'
 * console (gateway/www/agent/), drawn by the page itself: SVG charts, no
 * library, no CDN, nothing inline (the page's CSP allows only 'self' scripts
 * and styles; colours and sizes come from dashboard.css classes).
 *
 * API: window.CivicgateDashboard.mount(element, {token, fetchJson}) draws
 * into element and returns {refresh(), destroy()}.
 *   fetchJson(path) → Promise of the parsed JSON answer (the console's, with
 *   its authentication); without it the dashboard fetches with
 *   "Authorization: Bearer <token>".
 * Data: GET /api/v1/admin/stats (days, totals) for the period and channel
 * chosen in the form, /api/v1/admin/unmatched (groups) for the period and
 * language; the CSV export downloads /api/v1/admin/stats?format=csv.
 *
 * Accessibility: every chart is an <svg role="img"> with a <title> and a
 * <desc> summing it up, followed by the same figures as a <table> (in a
 * <details>), so a screen reader or a printout has every number.
 *
 * Extending: a chart is one call in render() to barChart()/lineChart() with
 * its series; a figure in the tiles a row in tiles[].
 */
(function () {
  'use strict';

  var SVGNS = 'http://www.w3.org/2000/svg';
  var CHANNELS = ['telegram', 'whatsapp', 'messenger', 'webchat'];
  var uid = 0;

  function h(tag, attrs, children) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'className') e.className = attrs[k];
      else e.setAttribute(k, attrs[k]);
    }
    (children || []).forEach(function (c) { if (c) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return e;
  }

  function s(tag, attrs, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs || {}) e.setAttribute(k, String(attrs[k]));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function isoDay(d) { return d.toISOString().slice(0, 10); }
  function fmt(v, unit) {
    if (v === null || v === undefined || Number.isNaN(v)) return '–';
    if (unit === '%') return (Math.round(v * 1000) / 10) + ' %';
    if (unit === 's') return v < 120 ? Math.round(v) + ' s' : (Math.round(v / 6) / 10) + ' min';
    return String(Math.round(v * 100) / 100);
  }

  /* A figure: the SVG chart, then the same numbers as a table. */
  function figure(title, desc, svg, head, rows) {
    var id = 'cg-dash-' + (++uid);
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-labelledby', id + '-t ' + id + '-d');
    svg.insertBefore(s('desc', { id: id + '-d' }, desc), svg.firstChild);
    svg.insertBefore(s('title', { id: id + '-t' }, title), svg.firstChild);
    var table = h('table', { className: 'cg-dash-table' }, [
      h('caption', { text: title }),
      h('thead', {}, [h('tr', {}, head.map(function (c) { return h('th', { scope: 'col', text: c }); }))]),
      h('tbody', {}, rows.map(function (r) {
        return h('tr', {}, r.map(function (c, i) { return h(i ? 'td' : 'th', i ? { text: c } : { scope: 'row', text: c }); }));
      })),
    ]);
    return h('figure', { className: 'cg-dash-figure', 'data-chart': title }, [
      h('figcaption', { text: title }),
      svg,
      h('details', {}, [h('summary', { text: 'Table' }), table]),
    ]);
  }

  var W = 640, H = 220, L = 44, R = 12, T = 12, B = 36;

  function axes(svg, max, unit, labels) {
    var g = s('g', { 'class': 'cg-dash-axis' });
    for (var i = 0; i <= 4; i++) {
      var y = T + (H - T - B) * (1 - i / 4);
      g.appendChild(s('line', { x1: L, x2: W - R, y1: y, y2: y, 'class': 'cg-dash-grid' }));
      g.appendChild(s('text', { x: L - 6, y: y + 4, 'text-anchor': 'end', 'class': 'cg-dash-tick' }, fmt(max * i / 4, unit)));
    }
    var step = Math.max(1, Math.ceil(labels.length / 8));
    labels.forEach(function (lab, i) {
      if (i % step) return;
      var x = L + (W - L - R) * (i + 0.5) / labels.length;
      g.appendChild(s('text', { x: x, y: H - B + 16, 'text-anchor': 'middle', 'class': 'cg-dash-tick' }, lab.slice(5)));
    });
    svg.appendChild(g);
  }

  function legend(svg, names) {
    names.forEach(function (n, i) {
      var x = L + i * 130;
      svg.appendChild(s('rect', { x: x, y: H - 12, width: 10, height: 10, 'class': 'cg-dash-s' + i }));
      svg.appendChild(s('text', { x: x + 14, y: H - 3, 'class': 'cg-dash-tick' }, n));
    });
  }

  /* Stacked bars: labels (x), series [{name, values[]}]. */
  function barChart(title, unit, labels, series) {
    var svg = s('svg', { viewBox: '0 0 ' + W + ' ' + (H + 16), 'class': 'cg-dash-chart' });
    var totals = labels.map(function (_, i) { return series.reduce(function (a, se) { return a + (se.values[i] || 0); }, 0); });
    var max = Math.max(1, Math.max.apply(null, totals.concat([0])));
    axes(svg, max, unit, labels);
    var bw = (W - L - R) / Math.max(1, labels.length);
    labels.forEach(function (lab, i) {
      var y0 = H - B;
      series.forEach(function (se, k) {
        var v = se.values[i] || 0;
        if (!v) return;
        var hgt = (H - T - B) * v / max;
        y0 -= hgt;
        var r = s('rect', { x: L + i * bw + bw * 0.15, y: y0, width: bw * 0.7, height: hgt, 'class': 'cg-dash-bar cg-dash-s' + k });
        r.appendChild(s('title', {}, lab + ' ' + se.name + ': ' + fmt(v, unit)));
        svg.appendChild(r);
      });
    });
    legend(svg, series.map(function (se) { return se.name; }));
    var desc = series.map(function (se) {
      return se.name + ' ' + fmt(se.values.reduce(function (a, b) { return a + (b || 0); }, 0), unit);
    }).join(', ') + ' over ' + labels.length + ' days.';
    return figure(title, desc, svg, ['Day'].concat(series.map(function (se) { return se.name; })),
      labels.map(function (lab, i) { return [lab].concat(series.map(function (se) { return fmt(se.values[i] || 0, unit); })); }));
  }

  /* Lines: null values leave a gap. */
  function lineChart(title, unit, labels, series, maxHint) {
    var svg = s('svg', { viewBox: '0 0 ' + W + ' ' + (H + 16), 'class': 'cg-dash-chart' });
    var all = [];
    series.forEach(function (se) { se.values.forEach(function (v) { if (v !== null && v !== undefined) all.push(v); }); });
    var max = Math.max(maxHint || 0, Math.max.apply(null, all.concat([0])) || 1);
    axes(svg, max, unit, labels);
    series.forEach(function (se, k) {
      var d = '', pen = false;
      se.values.forEach(function (v, i) {
        if (v === null || v === undefined) { pen = false; return; }
        var x = L + (W - L - R) * (i + 0.5) / labels.length, y = H - B - (H - T - B) * v / max;
        d += (pen ? 'L' : 'M') + x.toFixed(1) + ' ' + y.toFixed(1);
        pen = true;
        var c = s('circle', { cx: x, cy: y, r: 3, 'class': 'cg-dash-dot cg-dash-s' + k });
        c.appendChild(s('title', {}, labels[i] + ' ' + se.name + ': ' + fmt(v, unit)));
        svg.appendChild(c);
      });
      if (d) svg.insertBefore(s('path', { d: d, 'class': 'cg-dash-line cg-dash-s' + k }), svg.firstChild.nextSibling);
    });
    legend(svg, series.map(function (se) { return se.name; }));
    var desc = series.map(function (se) {
      var v = se.values.filter(function (x) { return x !== null && x !== undefined; });
      return se.name + ': ' + (v.length ? 'from ' + fmt(Math.min.apply(null, v), unit) + ' to ' + fmt(Math.max.apply(null, v), unit) : 'no data');
    }).join('; ') + '.';
    return figure(title, desc, svg, ['Day'].concat(series.map(function (se) { return se.name; })),
      labels.map(function (lab, i) { return [lab].concat(series.map(function (se) { return fmt(se.values[i], unit); })); }));
  }

  /* Horizontal bars: [{label, value}]. */
  function hbarChart(title, items) {
    var rowH = 22, hh = Math.max(1, items.length) * rowH + 8, lw = 220;
    var svg = s('svg', { viewBox: '0 0 ' + W + ' ' + hh, 'class': 'cg-dash-chart' });
    var max = Math.max(1, Math.max.apply(null, items.map(function (x) { return x.value; }).concat([0])));
    items.forEach(function (it, i) {
      var y = 4 + i * rowH, w = (W - lw - 60) * it.value / max;
      svg.appendChild(s('text', { x: lw - 6, y: y + 15, 'text-anchor': 'end', 'class': 'cg-dash-tick' }, it.label));
      var r = s('rect', { x: lw, y: y + 3, width: Math.max(1, w), height: rowH - 6, 'class': 'cg-dash-bar cg-dash-s0' });
      r.appendChild(s('title', {}, it.label + ': ' + it.value));
      svg.appendChild(r);
      svg.appendChild(s('text', { x: lw + w + 6, y: y + 15, 'class': 'cg-dash-tick' }, String(it.value)));
    });
    var desc = items.length ? items.slice(0, 3).map(function (x) { return x.label + ' ' + x.value; }).join(', ') + (items.length > 3 ? ', …' : '') : 'No answers in the period.';
    return figure(title, desc, svg, ['Intent', 'Answers'], items.map(function (x) { return [x.label, String(x.value)]; }));
  }

  function unmatchedTable(data) {
    var groups = (data && data.groups) || [];
    var wrap = h('section', { className: 'cg-dash-unmatched', 'aria-labelledby': 'cg-dash-unm-h' }, [
      h('h3', { id: 'cg-dash-unm-h', text: 'What citizens asked that the bot could not answer' }),
      h('p', { className: 'cg-dash-note', text: 'Near-identical questions counted as one group; only groups asked by at least ' +
        ((data && data.min_count) || 3) + ' different citizens are shown' +
        (data && data.hidden_groups ? ' (' + data.hidden_groups + ' smaller groups hidden).' : '.') }),
    ]);
    if (!groups.length) {
      wrap.appendChild(h('p', { className: 'cg-dash-empty', text: 'No group reaches the minimum in this period.' }));
      return wrap;
    }
    var body = h('tbody', {}, groups.map(function (g) {
      var near = h('ul', { className: 'cg-dash-nearest' }, (g.nearest || []).map(function (n) {
        return h('li', {}, [h('code', { text: n.id }), ' ' + n.title + ' (' + Math.round(n.score * 100) + ' %)']);
      }));
      var kinds = Object.keys(g.kinds || {}).filter(function (k) { return g.kinds[k]; })
        .map(function (k) { return k + ' ' + g.kinds[k]; }).join(', ');
      return h('tr', { className: 'cg-dash-group' }, [
        h('th', { scope: 'row', className: 'cg-dash-example', text: g.example }),
        h('td', { text: g.lang }),
        h('td', { className: 'cg-dash-count', text: String(g.count) }),
        h('td', { text: String(g.citizens) }),
        h('td', { text: kinds }),
        h('td', {}, [near]),
      ]);
    }));
    wrap.appendChild(h('table', { className: 'cg-dash-table cg-dash-groups' }, [
      h('thead', {}, [h('tr', {}, ['Example', 'Language', 'Asked', 'Citizens', 'Bot said', 'Nearest intents']
        .map(function (c) { return h('th', { scope: 'col', text: c }); }))]),
      body,
    ]));
    return wrap;
  }

  function mount(root, opts) {
    opts = opts || {};
    var token = opts.token || '';
    var fetchJson = opts.fetchJson || function (path) {
      return fetch(path, { headers: token ? { Authorization: 'Bearer ' + token } : {} }).then(function (r) {
        if (!r.ok) throw new Error(path + ': HTTP ' + r.status);
        return r.json();
      });
    };
    var today = new Date();
    var from = h('input', { type: 'date', name: 'from', value: isoDay(new Date(today.getTime() - 29 * 86400000)) });
    var to = h('input', { type: 'date', name: 'to', value: isoDay(today) });
    var channel = h('select', { name: 'channel' }, [h('option', { value: '', text: 'All channels' })]
      .concat(CHANNELS.map(function (c) { return h('option', { value: c, text: c }); })));
    var lang = h('select', { name: 'lang' }, [h('option', { value: '', text: 'All languages' })]);
    var go = h('button', { type: 'submit', text: 'Show' });
    var csv = h('button', { type: 'button', className: 'cg-dash-csv', text: 'Download CSV' });
    var form = h('form', { className: 'cg-dash-form' }, [
      h('label', {}, ['From ', from]), h('label', {}, ['To ', to]), h('label', {}, ['Channel ', channel]),
      h('label', {}, ['Questions in ', lang]), go, csv,
    ]);
    var status = h('p', { className: 'cg-dash-status', role: 'status', 'aria-live': 'polite' });
    var out = h('div', { className: 'cg-dash-body' });
    var box = h('section', { className: 'cg-dash', 'aria-label': 'Dashboard' }, [form, status, out]);
    root.appendChild(box);
    var alive = true, seq = 0;

    function query(extra) {
      var q = 'from=' + encodeURIComponent(from.value) + '&to=' + encodeURIComponent(to.value);
      if (channel.value) q += '&channel=' + encodeURIComponent(channel.value);
      return q + (extra || '');
    }

    function render(stats, unm) {
      out.textContent = '';
      var days = stats.days || [];
      var labels = days.map(function (d) { return d.day; });
      var t = stats.totals || {};
      var tiles = [
        ['Conversations', fmt(t.conversations)], ['Messages', fmt(t.messages)], ['Answered', fmt(t.answered)],
        ['Fallback rate', fmt(t.fallback_rate, '%')], ['Hand-off rate', fmt(t.handoff_rate, '%')],
        ['Median agent wait', fmt(t.median_wait_s, 's')], ['CSAT', t.csat_avg === null || t.csat_avg === undefined ? '–' : fmt(t.csat_avg) + ' / 5'],
      ];
      out.appendChild(h('dl', { className: 'cg-dash-tiles' }, tiles.map(function (x) {
        return h('div', { className: 'cg-dash-tile' }, [h('dt', { text: x[0] }), h('dd', { text: x[1] })]);
      })));
      var chans = stats.channels || CHANNELS;
      var perChan = chans.map(function (c) {
        return { name: c, values: labels.map(function (day) {
          var r = (stats.rows || []).find(function (x) { return x.day === day && x.channel === c; });
          return r ? r.messages : 0;
        }) };
      });
      out.appendChild(barChart('Messages per day', '', labels, perChan));
      out.appendChild(lineChart('Fallback and hand-off rate per day', '%', labels, [
        { name: 'fallback rate', values: days.map(function (d) { return d.bot_turns ? d.fallback_rate : null; }) },
        { name: 'hand-off rate', values: days.map(function (d) { return d.conversations ? d.handoff_rate : null; }) },
      ], 0.1));
      out.appendChild(lineChart('Median agent wait per day', 's', labels, [
        { name: 'median wait', values: days.map(function (d) { return d.median_wait_s; }) },
      ], 60));
      out.appendChild(lineChart('Citizen satisfaction (CSAT, 1-5) per day', '', labels, [
        { name: 'CSAT average', values: days.map(function (d) { return d.csat_avg; }) },
      ], 5));
      var answers = Object.keys(t.answers || {}).map(function (k) { return { label: k, value: t.answers[k] }; })
        .sort(function (a, b) { return b.value - a.value || (a.label < b.label ? -1 : 1); }).slice(0, 15);
      out.appendChild(hbarChart('Answers per intent (top 15)', answers));
      out.appendChild(unmatchedTable(unm));
    }

    function refresh() {
      var mine = ++seq;
      status.textContent = 'Loading…';
      return Promise.all([
        fetchJson('/api/v1/admin/stats?' + query()),
        fetchJson('/api/v1/admin/unmatched?from=' + encodeURIComponent(from.value) + '&to=' + encodeURIComponent(to.value)
          + (lang.value ? '&lang=' + encodeURIComponent(lang.value) : '')),
      ]).then(function (res) {
        if (!alive || mine !== seq) return;
        if (lang.options.length === 1) {   /* the table's languages, once known */
          (res[1].languages || []).forEach(function (l) { lang.appendChild(h('option', { value: l, text: l })); });
        }
        render(res[0], res[1]);
        status.textContent = 'Figures from ' + res[0].from + ' to ' + res[0].to + ' (UTC days).';
        box.setAttribute('data-loaded', String(mine));
      }).catch(function (e) {
        if (!alive || mine !== seq) return;
        status.textContent = 'Could not load the figures: ' + (e && e.message ? e.message : e);
        box.setAttribute('data-error', '1');
      });
    }

    form.addEventListener('submit', function (ev) { ev.preventDefault(); refresh(); });
    csv.addEventListener('click', function () {
      fetch('/api/v1/admin/stats?' + query('&format=csv'), { headers: token ? { Authorization: 'Bearer ' + token } : {} })
        .then(function (r) { if (!r.ok) throw new Error('HTTP ' + r.status); return r.blob(); })
        .then(function (b) {
          var a = h('a', { href: URL.createObjectURL(b), download: 'civicgate-stats-' + from.value + '-' + to.value + '.csv' });
          document.body.appendChild(a);
          a.click();
          setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
        })
        .catch(function (e) { status.textContent = 'CSV export failed: ' + e.message; });
    });
    refresh();
    return {
      refresh: refresh,
      destroy: function () { alive = false; box.remove(); },
    };
  }

  window.CivicgateDashboard = { mount: mount };
}());
