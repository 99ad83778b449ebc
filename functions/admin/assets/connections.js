// /admin/connections: an overview (connections per status, the ten that expire or fail
// soonest), the connections with their status, expiry and last refresh, and the event
// timeline of one (DESIGN §6.4, §6.10). The API never sends tokens; neither does this page.
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

  function tagList(tags) {
    const entries = Object.entries(tags || {});
    if (entries.length === 0) return null;
    return h('span', { class: 'chips tags' }, entries.map(([k, v]) => h('span', { class: 'chip' }, `${k}: ${v}`)));
  }

  function connectionRow(c) {
    return h('tr', { dataset: { id: c.connection_id }, class: c.connection_id === currentId ? 'selected' : null },
      h('td', { 'data-label': 'Connection', class: 'id-cell' }, h('code', { class: 'conn-id' }, c.connection_id),
        tagList(c.tags)),
      h('td', { 'data-label': 'Status' }, h('span', { class: 'status-cell' }, badge(c.status),
        c.consecutive_failures ? h('small', { class: 'muted failures' }, `${c.consecutive_failures} failure${c.consecutive_failures === 1 ? '' : 's'} in a row`) : null)),
      h('td', { 'data-label': 'Token' }, expiry(c, true)),
      h('td', { 'data-label': 'Last refresh' }, time(c.last_refreshed_at, { empty: 'never', compact: true })),
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
          ['Connection', 'Status', 'Token', 'Last refresh'].map((t) => h('th', { scope: 'col' }, t)),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
        tbody));
    }
    tbody.append(...items.map(connectionRow));
  }

  /** The tag filter as `tag.<name>` query parameters (DESIGN §6.14). */
  function tagFilter() {
    const tags = KL.parseTags($('#c-tag').value);
    return Object.fromEntries(Object.entries(tags).map(([k, v]) => [`tag.${k}`, v]));
  }

  function urlParams(id) {
    return { status: $('#c-status').value, client_id: $('#c-client').value.trim(), tag: $('#c-tag').value.trim(), id };
  }

  async function load(append) {
    const error = $('#list-error');
    clearMessage(error);
    const status = $('#c-status').value;
    const clientId = $('#c-client').value.trim();
    let tag = {};
    try {
      tag = tagFilter();
    } catch (e) {
      showError(error, e);
      return;
    }
    if (!append) KL.setUrlParams(urlParams(currentId));
    const button = append ? $('#more-connections') : $('#filter-button');
    await busy(button, 'Loading…', () => loading($('#connections'), async () => {
      try {
        const page = await api('GET', `/v1/connections${query({ status, client_id: clientId, ...tag, limit: PAGE_SIZE, cursor: append ? cursor : null })}`);
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
      c.tags && Object.keys(c.tags).length ? ['Tags', tagList(c.tags)] : null,
      c.provider_data && Object.keys(c.provider_data).length ? ['Provider data', h('code', { class: 'wrap' }, JSON.stringify(c.provider_data))] : null,
      ['Connected', time(c.created_at)],
      ['Last change', time(c.updated_at)],
    ];
    return h('dl', { class: 'facts' }, facts.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
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
    KL.setUrlParams(urlParams(id));
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

  // ---- the overview --------------------------------------------------------------------

  const OVERVIEW_PAGE = 500;
  const OVERVIEW_MAX_PAGES = 20; // counts the first 10,000 connections
  const STATUSES = ['active', 'refresh_failing', 'reauthorization_required', 'revoked'];
  const ATTENTION = { reauthorization_required: 0, refresh_failing: 1 };

  /** Failing ones first (re-authorization before refresh failing, most failures first), then
   * the active ones whose token expires soonest. */
  function soonest(all) {
    const failing = all.filter((c) => c.status in ATTENTION)
      .sort((a, b) => ATTENTION[a.status] - ATTENTION[b.status] || b.consecutive_failures - a.consecutive_failures
        || String(b.updated_at).localeCompare(String(a.updated_at)));
    const expiring = all.filter((c) => c.status === 'active' && c.expires_at)
      .sort((a, b) => new Date(a.expires_at) - new Date(b.expires_at));
    return failing.concat(expiring).slice(0, 10);
  }

  function why(c) {
    if (c.status === 'reauthorization_required') return 'the provider refused the refresh token: the account owner must connect again';
    if (c.status === 'refresh_failing') {
      return `${c.consecutive_failures} refresh${c.consecutive_failures === 1 ? '' : 'es'} failed in a row${c.last_error ? ` (${c.last_error})` : ''}; keyledger keeps retrying`;
    }
    const past = new Date(c.expires_at).getTime() <= Date.now();
    return `token ${past ? 'expired' : 'expires'} ${KL.relative(c.expires_at)}`;
  }

  function renderOverview(all, complete) {
    const counts = Object.fromEntries(STATUSES.map((st) => [st, 0]));
    for (const c of all) counts[c.status] = (counts[c.status] || 0) + 1;
    const total = all.length;
    $('#overview-total').textContent = `(${total}${complete ? '' : '+'} connection${total === 1 ? '' : 's'})`;
    const current = $('#c-status').value;
    $('#status-counts').replaceChildren(...STATUSES.map((st) => h('li', {},
      h('button', {
        type: 'button', class: `s-${st}`, 'aria-pressed': String(current === st), dataset: { status: st },
        'aria-label': `${counts[st]}${complete ? '' : '+'} ${KL.badge(st).textContent}: show them`,
        onclick: () => {
          $('#c-status').value = current === st ? '' : st;
          load(false).then(() => renderOverview(all, complete));
        },
      }, h('span', { class: 'count' }, `${counts[st]}${complete ? '' : '+'}`), h('span', { class: 'label' }, KL.badge(st).textContent)))));
    const bar = $('#status-bar');
    bar.replaceChildren(...STATUSES.filter((st) => counts[st]).map((st) => {
      const part = h('span', { class: `s-${st}`, title: `${KL.badge(st).textContent}: ${counts[st]}` });
      part.style.width = `${(100 * counts[st]) / total}%`;
      return part;
    }));
    bar.setAttribute('aria-label', `Share per status: ${STATUSES.map((st) => `${KL.badge(st).textContent} ${counts[st]}`).join(', ')}`);
    show(bar, total > 0);
    const top = soonest(all);
    $('#soonest').replaceChildren(top.length
      ? h('ol', { class: 'soonest', 'aria-labelledby': 'soonest-title' }, top.map((c) => h('li', { dataset: { id: c.connection_id } },
        h('button', {
          type: 'button', class: 'link-button conn-id', 'aria-label': `Open ${c.connection_id}`,
          onclick: () => openTimeline(c.connection_id),
        }, c.connection_id),
        badge(c.status), h('span', { class: 'why' }, why(c)))))
      : h('p', { class: 'empty' }, 'Nothing is failing and no token expires.'));
    const hint = $('#overview-hint');
    hint.textContent = complete ? '' : `Counted over the first ${total} connections only.`;
    show(hint, !complete);
  }

  async function loadOverview() {
    const error = $('#overview-error');
    clearMessage(error);
    await loading($('#overview'), async () => {
      try {
        const all = [];
        let next = null;
        let pages = 0;
        do {
          const page = await api('GET', `/v1/connections${query({ limit: OVERVIEW_PAGE, cursor: next })}`);
          all.push(...page.items);
          next = page.next_cursor;
          pages += 1;
        } while (next && pages < OVERVIEW_MAX_PAGES);
        renderOverview(all, !next);
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
    $('#c-tag').value = params.get('tag') || '';
    $('#filter-form').addEventListener('submit', (event) => { event.preventDefault(); load(false); });
    $('#more-connections').addEventListener('click', () => load(true));
    $('#more-events').addEventListener('click', moreEvents);
    loadOverview();
    load(false);
    if (params.get('id')) openTimeline(params.get('id'));
  });
})();
