// /admin/requests: the request log (DESIGN §6.7), newest first, filtered, page by page; a row
// opens its request and response bodies as stored (already redacted and cut by the service).
'use strict';

(function () {
  const { h, $, show, api, query, busy, loading, showError, clearMessage, time } = KL;
  const PAGE_SIZE = 50;
  const FIELDS = ['service', 'endpoint', 'method', 'status_class'];
  let cursor = null;
  let loaded = 0;

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
    if (!append) KL.setUrlParams(f);
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
    load(false);
  });
})();
