// /admin/requests: the request log (DESIGN §6.7), newest first, filtered, page by page; a row
// opens its request and response bodies as stored (already redacted and cut by the service).
// Above it, a chart of GET /v1/requests/stats for the same service, endpoint and time range
// (chart.js); clicking a bar narrows the time range to that bucket.
'use strict';

(function () {
  const { h, $, show, api, query, busy, loading, showError, clearMessage, time } = KL;
  const PAGE_SIZE = 50;
  const FIELDS = ['service', 'endpoint', 'method', 'status_class'];
  let cursor = null;
  let loaded = 0;
  let lastStats = null; // {stats, from, to} as last drawn, for redrawing on resize
  const rangeHistory = []; // earlier [from, to] inputs, for "Back"
  const RANGE = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });

  function filters() {
    const f = {};
    for (const name of FIELDS) f[name] = $(`#filter-form [name=${name}]`).value.trim();
    f.from = KL.localInputToIso($('#f-from').value);
    f.to = KL.localInputToIso($('#f-to').value);
    return f;
  }

  function statusClass(code) {
    return `status status-${String(code).charAt(0)}xx`;
  }

  function bodyBlock(title, text, truncated) {
    return h('div', { class: 'body-block' },
      h('h4', {}, title, truncated ? h('span', { class: 'badge badge-truncated' }, 'truncated') : null),
      text === null || text === undefined || text === ''
        ? h('p', { class: 'muted' }, 'No body.')
        : h('pre', { tabindex: '0', 'aria-label': title }, KL.pretty(text)));
  }

  async function toggle(record, button, detailRow) {
    const open = button.getAttribute('aria-expanded') === 'true';
    if (open) {
      button.setAttribute('aria-expanded', 'false');
      button.textContent = 'Bodies';
      show(detailRow, false);
      return;
    }
    const cell = detailRow.firstChild;
    show(detailRow, true);
    if (!detailRow.dataset.loaded) {
      await busy(button, 'Loading…', () => loading(cell, async () => {
        cell.replaceChildren(h('p', { class: 'muted' }, 'Loading bodies…'));
        try {
          const full = await api('GET', `/v1/requests/${encodeURIComponent(record.id)}`);
          cell.replaceChildren(
            h('dl', { class: 'facts inline' },
              h('dt', {}, 'Record id'), h('dd', {}, h('code', {}, full.id)),
              h('dt', {}, 'Request id'), h('dd', {}, full.request_id ? h('code', {}, full.request_id) : h('span', { class: 'muted' }, '—')),
              h('dt', {}, 'Received'), h('dd', {}, time(full.received_at))),
            h('div', { class: 'bodies' },
              bodyBlock('Request body', full.request_body, full.request_body_truncated),
              bodyBlock('Response body', full.response_body, full.response_body_truncated)));
          detailRow.dataset.loaded = 'true';
        } catch (e) {
          const box = h('p', { class: 'error', role: 'alert' });
          cell.replaceChildren(box);
          showError(box, e);
        }
      }));
    }
    button.setAttribute('aria-expanded', 'true');
    button.textContent = 'Hide bodies';
  }

  function rows(record) {
    const detailId = `bodies-${record.id}`;
    const button = h('button', {
      type: 'button', class: 'secondary small', 'aria-expanded': 'false', 'aria-controls': detailId,
      'aria-label': `Bodies of ${record.method} ${record.endpoint} at ${new Date(record.timestamp).toLocaleString()}`,
    }, 'Bodies');
    const detail = h('tr', { class: 'detail', id: detailId, hidden: true },
      h('td', { colspan: '8' }));
    button.addEventListener('click', () => toggle(record, button, detail));
    const row = h('tr', { dataset: { id: record.id } },
      h('td', { 'data-label': 'Time' }, time(record.timestamp)),
      h('td', { 'data-label': 'Service' }, record.service),
      h('td', { 'data-label': 'Method' }, h('span', { class: 'method' }, record.method)),
      h('td', { 'data-label': 'Endpoint', class: 'endpoint' }, record.endpoint),
      h('td', { 'data-label': 'Status' }, h('span', { class: statusClass(record.status_code) }, String(record.status_code))),
      h('td', { 'data-label': 'Duration', class: 'num' }, record.duration_ms === null || record.duration_ms === undefined ? '—' : `${record.duration_ms} ms`),
      h('td', { 'data-label': 'User' }, record.user_identifier || h('span', { class: 'muted' }, '—')),
      h('td', { class: 'row-actions' }, button));
    return [row, detail];
  }

  function render(items, append) {
    const log = $('#log');
    let tbody = $('tbody', log);
    if (!append || !tbody) {
      log.replaceChildren();
      loaded = 0;
      if (items.length === 0) {
        log.append(h('p', { class: 'empty' }, 'No requests match these filters.'));
        $('#log-count').textContent = '';
        return;
      }
      tbody = h('tbody');
      log.append(h('table', { class: 'stack requests' },
        h('caption', { class: 'visually-hidden' }, 'Request log, newest first'),
        h('thead', {}, h('tr', {},
          ['Time', 'Service', 'Method', 'Endpoint', 'Status', 'Duration', 'User'].map((t) => h('th', { scope: 'col' }, t)),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Bodies')))),
        tbody));
    }
    tbody.append(...items.flatMap(rows));
    loaded += items.length;
    $('#log-count').textContent = `(${loaded} shown)`;
  }

  async function load(append) {
    const f = filters();
    const error = $('#log-error');
    clearMessage(error);
    if (f.from && f.to && f.from >= f.to) {
      showError(error, new KL.ApiError(0, 'form', '"From" must be before "To".'));
      return;
    }
    if (!append) {
      KL.setUrlParams(f);
      loadChart(f);
    }
    const button = append ? $('#more-requests') : $('#apply-filters');
    await busy(button, append ? 'Loading…' : 'Loading…', () => loading($('#log'), async () => {
      try {
        const page = await api('GET', `/v1/requests${query({ ...f, limit: PAGE_SIZE, cursor: append ? cursor : null })}`);
        render(page.items, append);
        cursor = page.next_cursor;
        show($('#more-requests'), Boolean(cursor));
      } catch (e) {
        showError(error, e);
      }
    }));
  }

  // ---- the chart -----------------------------------------------------------------------

  function redraw() {
    if (!lastStats) return;
    const box = $('#chart');
    const { stats, from, to } = lastStats;
    if (stats.items.length === 0) {
      box.replaceChildren(h('p', { class: 'empty' }, 'No requests in this range.'));
      return;
    }
    KLChart.draw(box, stats, from, to, box.clientWidth || 600, narrow);
  }

  async function loadChart(f) {
    const error = $('#chart-error');
    clearMessage(error);
    const to = f.to ? new Date(f.to) : new Date();
    const from = f.from ? new Date(f.from) : new Date(to.getTime() - 86_400_000);
    $('#chart-range').textContent = `(${RANGE.format(from)} – ${RANGE.format(to)})`;
    await loading($('#chart'), async () => {
      try {
        const stats = await api('GET', `/v1/requests/stats${query({ service: f.service, endpoint: f.endpoint, from: from.toISOString(), to: to.toISOString() })}`);
        lastStats = { stats, from, to };
        const total = stats.items.reduce((n, i) => n + i.count, 0);
        const c4 = stats.items.reduce((n, i) => n + i.client_errors, 0);
        const c5 = stats.items.reduce((n, i) => n + i.server_errors, 0);
        const pct = (n) => (total ? `${((100 * n) / total).toFixed(1)} %` : '—');
        $('#chart-totals').replaceChildren(
          h('span', {}, h('strong', {}, String(total)), ' requests'),
          h('span', {}, h('strong', {}, String(c4)), ` 4xx (${pct(c4)})`),
          h('span', {}, h('strong', {}, String(c5)), ` 5xx (${pct(c5)})`),
          h('span', { class: 'muted' }, `one bar per ${stats.bucket}`));
        redraw();
        $('#chart-table').replaceChildren(stats.items.length ? KLChart.table(stats) : '');
      } catch (e) {
        lastStats = null;
        $('#chart').replaceChildren();
        $('#chart-table').replaceChildren();
        $('#chart-totals').replaceChildren();
        showError(error, e);
      }
    });
  }

  function narrow(start, end) {
    rangeHistory.push([$('#f-from').value, $('#f-to').value]);
    show($('#chart-back'), true);
    $('#f-from').value = KL.isoToLocalInput(start.toISOString());
    $('#f-to').value = KL.isoToLocalInput(end.toISOString());
    load(false);
  }

  function back() {
    const previous = rangeHistory.pop();
    if (!previous) return;
    [$('#f-from').value, $('#f-to').value] = previous;
    show($('#chart-back'), rangeHistory.length > 0);
    load(false);
  }

  function fromUrl() {
    const params = new URL(window.location.href).searchParams;
    for (const name of FIELDS) {
      if (params.has(name)) $(`#filter-form [name=${name}]`).value = params.get(name);
    }
    $('#f-from').value = KL.isoToLocalInput(params.get('from'));
    $('#f-to').value = KL.isoToLocalInput(params.get('to'));
  }

  KL.start(() => {
    $('#tz').textContent = KL.TIME_ZONE;
    fromUrl();
    $('#filter-form').addEventListener('submit', (event) => { event.preventDefault(); load(false); });
    $('#reset-filters').addEventListener('click', () => { $('#filter-form').reset(); load(false); });
    $('#more-requests').addEventListener('click', () => load(true));
    $('#chart-back').addEventListener('click', back);
    let width = 0;
    new ResizeObserver(() => {
      const w = $('#chart').clientWidth;
      if (Math.abs(w - width) > 8) { width = w; redraw(); }
    }).observe($('#chart'));
    load(false);
  });
})();
