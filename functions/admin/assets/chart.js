// The console's one chart (DESIGN §6.10): requests per time bucket as stacked bars (2xx/3xx,
// 4xx, 5xx) with p50 and p95 duration lines, drawn as SVG by the page (no library, no CDN).
// Every bar has a <title> and an accessible name, can be focused and "clicked" with the
// keyboard, and the same numbers are offered as a table. Plain script; exposes `KLChart`.
'use strict';

(function () {
  const NS = 'http://www.w3.org/2000/svg';
  const BUCKET_MS = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
  const HEIGHT = 240;
  const PAD = { top: 14, right: 48, bottom: 28, left: 44 };

  function s(tag, attrs, ...children) {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  /** 1, 2, 5 × 10^n at or above `v`. */
  function niceCeil(v) {
    if (!(v > 0)) return 1;
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  const DAY = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
  const FULL = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

  function bucketLabel(start, bucket) {
    const end = new Date(start.getTime() + BUCKET_MS[bucket]);
    if (bucket === 'day') return DAY.format(start);
    return `${FULL.format(start)}–${TIME.format(end)}`;
  }

  function ms(v) {
    if (v === null || v === undefined) return '—';
    return v >= 1000 ? `${(v / 1000).toFixed(v >= 10_000 ? 0 : 1)} s` : `${Math.round(v)} ms`;
  }

  function describe(item, bucket) {
    const ok = item.count - item.client_errors - item.server_errors;
    return `${bucketLabel(new Date(item.start), bucket)}: ${item.count} requests (${ok} ok, ${item.client_errors} 4xx, `
      + `${item.server_errors} 5xx), p50 ${ms(item.p50_ms)}, p95 ${ms(item.p95_ms)}`;
  }

  /**
   * Draws `stats` ({bucket, items}) for [from, to) into `container`, `width` px wide;
   * `onPick(start, end)` is called when a bar is chosen.
   */
  function draw(container, stats, from, to, width, onPick) {
    const bucket = stats.bucket;
    const size = BUCKET_MS[bucket] || BUCKET_MS.hour;
    // The axis covers whole buckets, so that the first and last bars are not cut.
    const t0 = Math.floor(from.getTime() / size) * size;
    const t1 = Math.ceil(to.getTime() / size) * size;
    const W = Math.max(280, Math.floor(width));
    const plotW = W - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - t0) / (t1 - t0)) * plotW;
    const items = stats.items;
    const maxCount = niceCeil(Math.max(1, ...items.map((i) => i.count)));
    const maxMs = niceCeil(Math.max(1, ...items.flatMap((i) => [i.p95_ms || 0, i.p50_ms || 0])));
    const yc = (n) => PAD.top + plotH - (n / maxCount) * plotH;
    const ym = (v) => PAD.top + plotH - (v / maxMs) * plotH;
    const svg = s('svg', {
      class: 'chart', viewBox: `0 0 ${W} ${HEIGHT}`, width: W, height: HEIGHT, role: 'group',
      'aria-label': `Requests per ${bucket}, ${items.length} ${bucket}s with traffic`,
    });
    svg.append(s('title', {}, `Requests per ${bucket} with 4xx and 5xx stacked, p50 and p95 duration`));
    // Grid and axes.
    for (const f of [0, 0.5, 1]) {
      const y = PAD.top + plotH - f * plotH;
      svg.append(s('line', { class: f === 0 ? 'axis' : 'grid', x1: PAD.left, x2: W - PAD.right, y1: y, y2: y }));
      // Counts are whole: a half-way tick of an odd maximum gets no label.
      if (Number.isInteger(maxCount * f)) {
        svg.append(s('text', { class: 'tick', x: PAD.left - 6, y: y + 4, 'text-anchor': 'end' }, formatCount(maxCount * f)));
      }
      svg.append(s('text', { class: 'tick', x: W - PAD.right + 6, y: y + 4 }, ms(maxMs * f)));
    }
    const ticks = Math.max(2, Math.floor(plotW / 90));
    for (let k = 0; k <= ticks; k += 1) {
      const t = t0 + ((t1 - t0) * k) / ticks;
      const d = new Date(t);
      const label = bucket === 'day' || t1 - t0 > 2 * 86_400_000 ? DAY.format(d) : TIME.format(d);
      const anchor = k === 0 ? 'start' : k === ticks ? 'end' : 'middle';
      svg.append(s('text', { class: 'tick', x: x(t), y: HEIGHT - 8, 'text-anchor': anchor }, label));
    }
    // Bars.
    const bars = s('g', { class: 'bars' });
    for (const item of items) {
      const start = new Date(item.start).getTime();
      const left = x(start);
      const bw = Math.max(2, x(start + size) - left - (plotW / ((t1 - t0) / size) > 6 ? 1 : 0));
      const ok = item.count - item.client_errors - item.server_errors;
      const g = s('g', { class: 'bar', 'data-start': item.start });
      let y = PAD.top + plotH;
      for (const [n, cls] of [[ok, 'bar-ok'], [item.client_errors, 'bar-4xx'], [item.server_errors, 'bar-5xx']]) {
        if (n <= 0) continue;
        const hgt = (n / maxCount) * plotH;
        y -= hgt;
        g.append(s('rect', { class: cls, x: left, y, width: bw, height: Math.max(hgt, 0.5) }));
      }
      const label = describe(item, bucket);
      const hit = s('rect', {
        class: 'bar-hit', x: left - 1, y: PAD.top, width: bw + 2, height: plotH, tabindex: 0, role: 'button',
        'aria-label': `${label}. Narrow the time range to this ${bucket}`,
      }, s('title', {}, label));
      const pick = () => onPick(new Date(start), new Date(start + size));
      hit.addEventListener('click', pick);
      hit.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pick(); }
      });
      g.append(hit);
      bars.append(g);
    }
    svg.append(bars);
    // Duration lines, broken where a bucket has no duration.
    for (const [key, cls] of [['p50_ms', 'p50'], ['p95_ms', 'p95']]) {
      let points = [];
      const flush = () => {
        if (points.length > 1) svg.append(s('polyline', { class: `line-${cls}`, points: points.join(' '), 'aria-hidden': 'true' }));
        if (points.length === 1) {
          const [px, py] = points[0].split(',');
          svg.append(s('circle', { class: `dot-${cls}`, cx: px, cy: py, r: 3, 'aria-hidden': 'true' }));
        }
        points = [];
      };
      let last = null;
      for (const item of items) {
        const start = new Date(item.start).getTime();
        if (item[key] === null || item[key] === undefined || (last !== null && start - last > size)) flush();
        if (item[key] !== null && item[key] !== undefined) points.push(`${(x(start) + x(start + size)) / 2},${ym(item[key])}`);
        last = start;
      }
      flush();
    }
    container.replaceChildren(svg);
  }

  function formatCount(n) {
    if (n >= 1_000_000) return `${+(n / 1_000_000).toFixed(1)}M`;
    if (n >= 1000) return `${+(n / 1000).toFixed(1)}k`;
    return String(Math.round(n));
  }

  /** The same numbers as a table, inside a closed <details>. */
  function table(stats) {
    const { h } = KL;
    return h('details', { class: 'chart-table' },
      h('summary', {}, 'Show the chart as a table'),
      h('div', { class: 'results' }, h('table', {},
        h('caption', { class: 'visually-hidden' }, `Requests per ${stats.bucket}`),
        h('thead', {}, h('tr', {}, ['Interval', 'Requests', '4xx', '5xx', 'p50', 'p95'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, stats.items.map((i) => h('tr', {},
          h('td', {}, bucketLabel(new Date(i.start), stats.bucket)),
          h('td', { class: 'num' }, String(i.count)),
          h('td', { class: 'num' }, String(i.client_errors)),
          h('td', { class: 'num' }, String(i.server_errors)),
          h('td', { class: 'num' }, ms(i.p50_ms)),
          h('td', { class: 'num' }, ms(i.p95_ms))))))));
  }

  window.KLChart = { draw, table, BUCKET_MS, ms };
})();
