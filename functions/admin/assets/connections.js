// /admin/connections: OAuth connections with their status, expiry and last refresh, and the
// event timeline of one (DESIGN §6.4). The API never sends tokens; neither does this page.
'use strict';

(function () {
  const { h, $, show, api, query, busy, loading, showError, clearMessage, time, badge } = KL;
  const PAGE_SIZE = 50;
  let cursor = null;
  let eventsCursor = null;
  let currentId = null;

  function expiry(c, compact) {
    // A revoked connection's tokens are gone: its last expiry means nothing any more.
    if (c.status === 'revoked') return h('span', { class: 'muted' }, 'no token');
    if (!c.expires_at) return h('span', { class: 'muted' }, 'never expires');
    const past = new Date(c.expires_at).getTime() <= Date.now();
    return h('span', { class: `expiry${past ? ' expired' : ''}` },
      h('span', {}, past ? `expired ${KL.relative(c.expires_at)}` : `expires ${KL.relative(c.expires_at)}`), ' ',
      h('small', { class: 'muted' }, time(c.expires_at, { compact })));
  }

  function connectionRow(c) {
    return h('tr', { dataset: { id: c.connection_id }, class: c.connection_id === currentId ? 'selected' : null },
      h('td', { 'data-label': 'Connection' }, h('code', {}, c.connection_id)),
      h('td', { 'data-label': 'Status' }, badge(c.status)),
      h('td', { 'data-label': 'Token' }, expiry(c, true)),
      h('td', { 'data-label': 'Last refresh' }, time(c.last_refreshed_at, { empty: 'never', compact: true })),
      h('td', { 'data-label': 'Failures', class: 'num' }, String(c.consecutive_failures)),
      h('td', { class: 'row-actions' }, h('button', {
        type: 'button', class: 'secondary small',
        'aria-label': `Timeline of ${c.connection_id}`,
        onclick: () => openTimeline(c.connection_id),
      }, 'Timeline')));
  }

  function render(items, append) {
    const list = $('#connections');
    let tbody = $('tbody', list);
    if (!append || !tbody) {
      list.replaceChildren();
      if (items.length === 0) {
        list.append(h('p', { class: 'empty' }, 'No connections match. A connection appears once its first authorization succeeds.'));
        return;
      }
      tbody = h('tbody');
      list.append(h('table', { class: 'stack' },
        h('caption', { class: 'visually-hidden' }, 'OAuth connections'),
        h('thead', {}, h('tr', {},
          ['Connection', 'Status', 'Token', 'Last refresh', 'Failures'].map((t) => h('th', { scope: 'col' }, t)),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
        tbody));
    }
    tbody.append(...items.map(connectionRow));
  }

  async function load(append) {
    const error = $('#list-error');
    clearMessage(error);
    const status = $('#c-status').value;
    const clientId = $('#c-client').value.trim();
    if (!append) KL.setUrlParams({ status, client_id: clientId, id: currentId });
    const button = append ? $('#more-connections') : $('#filter-button');
    await busy(button, 'Loading…', () => loading($('#connections'), async () => {
      try {
        const page = await api('GET', `/v1/connections${query({ status, client_id: clientId, limit: PAGE_SIZE, cursor: append ? cursor : null })}`);
        render(page.items, append);
        cursor = page.next_cursor;
        show($('#more-connections'), Boolean(cursor));
      } catch (e) {
        showError(error, e);
      }
    }));
  }

  // ---- the timeline --------------------------------------------------------------------

  const EVENT_NAMES = {
    ConnectionAuthorized: 'Authorized',
    AuthorizationFailed: 'Authorization failed',
    TokenRefreshed: 'Token refreshed',
    TokenRefreshFailed: 'Token refresh failed',
    ReauthorizationRequired: 'Re-authorization required',
    ConnectionRevoked: 'Revoked',
  };
  const EVENT_TONES = {
    AuthorizationFailed: 'bad',
    TokenRefreshFailed: 'warn',
    ReauthorizationRequired: 'bad',
    ConnectionRevoked: 'muted',
  };

  function value(k, v) {
    if (v === null || v === undefined) return h('span', { class: 'muted' }, '—');
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.join(' ') || h('span', { class: 'muted' }, '—');
    if (typeof v === 'object') return h('code', {}, JSON.stringify(v));
    if (/_at$/.test(k) && typeof v === 'string') return time(v);
    return String(v);
  }

  function isEmptyObject(v) {
    return v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0;
  }

  function dataList(data) {
    const entries = Object.entries(data || {}).filter(([k, v]) => k !== 'type' && !isEmptyObject(v));
    if (entries.length === 0) return null;
    return h('dl', { class: 'event-data' }, entries.map(([k, v]) => [
      h('dt', {}, k.replace(/_/g, ' ')),
      h('dd', {}, value(k, v)),
    ]));
  }

  function eventItem(e) {
    return h('li', { class: `event ${EVENT_TONES[e.type] || 'good'}` },
      h('div', { class: 'event-head' },
        h('strong', {}, EVENT_NAMES[e.type] || e.type),
        ' ', h('span', { class: 'muted' }, `#${e.version}`),
        ' ', time(e.recorded_at)),
      dataList(e.data));
  }

  function summary(c) {
    const facts = [
      ['Status', badge(c.status)],
      ['OAuth client', h('code', {}, c.client_id)],
      ['Token', expiry(c, false)],
      ['Last refresh', time(c.last_refreshed_at, { empty: 'never' })],
      ['Failures in a row', String(c.consecutive_failures)],
      ['Last error', c.last_error || h('span', { class: 'muted' }, '—')],
      ['Scopes', (c.scopes || []).length ? c.scopes.join(' ') : h('span', { class: 'muted' }, '—')],
      ['Connected', time(c.created_at)],
      ['Last change', time(c.updated_at)],
    ];
    return h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
  }

  async function openTimeline(id) {
    currentId = id;
    for (const row of document.querySelectorAll('#connections tbody tr')) {
      row.classList.toggle('selected', row.dataset.id === id);
    }
    const panel = $('#timeline');
    const error = $('#timeline-error');
    clearMessage(error);
    show(panel, true);
    $('#timeline-title').textContent = id;
    show($('#more-events'), false);
    KL.setUrlParams({ status: $('#c-status').value, client_id: $('#c-client').value.trim(), id });
    await loading(panel, async () => {
      $('#timeline-body').replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
      try {
        const path = `/v1/connections/${encodeURIComponent(id)}`;
        const [connection, events] = await Promise.all([
          api('GET', path),
          api('GET', `${path}/events${query({ limit: PAGE_SIZE })}`),
        ]);
        eventsCursor = events.next_cursor;
        $('#timeline-body').replaceChildren(
          summary(connection),
          h('h3', {}, 'Timeline (oldest first)'),
          events.items.length
            ? h('ol', { class: 'timeline', id: 'events' }, events.items.map(eventItem))
            : h('p', { class: 'empty' }, 'No events.'));
        show($('#more-events'), Boolean(eventsCursor));
      } catch (e) {
        $('#timeline-body').replaceChildren();
        showError(error, e);
      }
    });
    panel.focus();
  }

  async function moreEvents() {
    const error = $('#timeline-error');
    clearMessage(error);
    await busy($('#more-events'), 'Loading…', async () => {
      try {
        const page = await api('GET', `/v1/connections/${encodeURIComponent(currentId)}/events${query({ limit: PAGE_SIZE, cursor: eventsCursor })}`);
        $('#events').append(...page.items.map(eventItem));
        eventsCursor = page.next_cursor;
        show($('#more-events'), Boolean(eventsCursor));
      } catch (e) {
        showError(error, e);
      }
    });
  }

  KL.start(() => {
    $('#tz').textContent = KL.TIME_ZONE;
    const params = new URL(window.location.href).searchParams;
    $('#c-status').value = params.get('status') || '';
    $('#c-client').value = params.get('client_id') || '';
    $('#filter-form').addEventListener('submit', (event) => { event.preventDefault(); load(false); });
    $('#more-connections').addEventListener('click', () => load(true));
    $('#more-events').addEventListener('click', moreEvents);
    load(false);
    if (params.get('id')) openTimeline(params.get('id'));
  });
})();
