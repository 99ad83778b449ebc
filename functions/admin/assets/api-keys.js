// /admin/api-keys: create API keys with a scope picker (the key is shown once), list and
// revoke them (DESIGN §6.8). The list never carries a key; neither does this page after
// the one answer that created it.
'use strict';

(function () {
  const { h, $, show, api, query, busy, loading, showError, clearMessage, showStatus, time } = KL;
  const PAGE_SIZE = 50;
  let cursor = null;

  // DESIGN §5: every scope, in one line each.
  const SCOPES = [
    ['admin', 'Everything, including API keys and OAuth clients: for operators, not services.'],
    ['tokens:read', 'Fetch a connection\'s access token (GET /v1/tokens/{id}), refreshed when due.'],
    ['tokens:refresh', 'Force a token refresh (POST /v1/tokens/{id}/refresh).'],
    ['connections:read', 'See connections, their status, tags and event history.'],
    ['connections:write', 'Start authorizations, create and revoke connections.'],
    ['licenses:read', 'Find licenses and see their installations.'],
    ['licenses:write', 'Issue, change, suspend and revoke licenses.'],
    ['requests:read', 'Browse the request log and its charts.'],
    ['requests:write', 'Send records to the request log.'],
  ];

  function scopePicker() {
    $('#scope-list').replaceChildren(...SCOPES.map(([scope, what]) => {
      const id = `scope-${scope.replace(':', '-')}`;
      return h('div', { class: 'scope' },
        h('input', { type: 'checkbox', id, name: 'scopes', value: scope, 'aria-describedby': `${id}-what` }),
        h('label', { for: id }, h('code', {}, scope)),
        h('p', { id: `${id}-what`, class: 'hint' }, what));
    }));
  }

  function keyRow(key) {
    const revoke = h('button', {
      type: 'button', class: 'danger small', 'aria-label': `Revoke key ${key.name}`,
      onclick: (event) => revokeKey(key, event.currentTarget),
    }, 'Revoke…');
    return h('tr', { dataset: { id: key.id } },
      h('td', { 'data-label': 'Name' }, h('strong', {}, key.name), h('br'), h('small', { class: 'muted' }, h('code', {}, key.id))),
      h('td', { 'data-label': 'Scopes' }, h('span', { class: 'chips' }, key.scopes.map((s) => h('code', { class: 'chip' }, s)))),
      h('td', { 'data-label': 'Created' }, time(key.created_at, { compact: true })),
      'last_used_at' in key ? h('td', { 'data-label': 'Last used' }, time(key.last_used_at, { compact: true, empty: 'never' })) : null,
      h('td', { class: 'row-actions' }, revoke));
  }

  function render(items, append) {
    const list = $('#keys');
    let tbody = $('tbody', list);
    const lastUsed = items.some((k) => 'last_used_at' in k);
    show($('#last-used-hint'), !lastUsed && items.length > 0);
    if (!append || !tbody) {
      list.replaceChildren();
      if (items.length === 0) {
        list.append(h('p', { class: 'empty' }, 'No API keys besides the configured admin key. Create one for each service.'));
        return;
      }
      tbody = h('tbody');
      const heads = ['Name', 'Scopes', 'Created'].concat(lastUsed ? ['Last used'] : []);
      list.append(h('table', { class: 'stack' },
        h('caption', { class: 'visually-hidden' }, 'API keys'),
        h('thead', {}, h('tr', {},
          heads.map((t) => h('th', { scope: 'col' }, t)),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
        tbody));
    }
    tbody.append(...items.map(keyRow));
  }

  async function load(append) {
    const error = $('#list-error');
    clearMessage(error);
    const button = append ? $('#more-keys') : null;
    const work = () => loading($('#keys'), async () => {
      try {
        const page = await api('GET', `/v1/api-keys${query({ limit: PAGE_SIZE, cursor: append ? cursor : null })}`);
        render(page.items, append);
        cursor = page.next_cursor;
        show($('#more-keys'), Boolean(cursor));
      } catch (e) {
        showError(error, e);
      }
    });
    await (button ? busy(button, 'Loading…', work) : work());
  }

  async function create(event) {
    event.preventDefault();
    const error = $('#create-error');
    const created = $('#created');
    clearMessage(error);
    show(created, false);
    const name = $('#key-name').value.trim();
    const scopes = [...document.querySelectorAll('#scope-list input:checked')].map((i) => i.value);
    if (!name) {
      showError(error, new KL.ApiError(0, 'form', 'Give the key a name first.'));
      $('#key-name').focus();
      return;
    }
    if (scopes.length === 0) {
      showError(error, new KL.ApiError(0, 'form', 'Pick at least one scope.'));
      $('#scope-list input').focus();
      return;
    }
    await busy($('#create-button'), 'Creating…', async () => {
      try {
        const key = await api('POST', '/v1/api-keys', { name, scopes });
        const value = h('code', { class: 'key', id: 'new-api-key' }, key.key);
        created.replaceChildren(
          h('p', {}, h('strong', {}, `Key "${key.name}" created with ${key.scopes.join(', ')}.`)),
          h('p', { class: 'warning-line' }, 'Copy it now: this is the only time it is shown. keyledger keeps only its hash and cannot show it again.'),
          h('p', { class: 'key-line' }, value, KL.copyButton(() => value.textContent, 'Copy the new API key')));
        show(created, true);
        event.target.reset();
        await load(false);
      } catch (e) {
        showError(error, e);
      }
    });
  }

  async function revokeKey(key, button) {
    const ok = await KL.confirmAction({
      title: `Revoke the key "${key.name}"?`,
      message: `Every service using it gets 401 Unauthorized from now on (scopes: ${key.scopes.join(', ')}). Revoking cannot be undone.`,
      confirmLabel: 'Revoke key',
      danger: true,
    });
    if (!ok) return;
    clearMessage($('#list-error'));
    await busy(button, 'Revoking…', async () => {
      try {
        await api('DELETE', `/v1/api-keys/${encodeURIComponent(key.id)}`);
        showStatus($('#list-status'), `Key "${key.name}" revoked.`);
        await load(false);
      } catch (e) {
        showError($('#list-error'), e);
      }
    });
  }

  KL.start(() => {
    $('#tz').textContent = KL.TIME_ZONE;
    scopePicker();
    $('#create-form').addEventListener('submit', create);
    $('#more-keys').addEventListener('click', () => load(true));
    load(false);
  });
})();
