// /admin/clients: OAuth clients (DESIGN §6.1, §6.14). Register one from a provider preset
// (GET /v1/providers; hidden when this server has none) or by hand, edit it, rotate its
// secret (sent once, never shown back), delete it, and start a connection through it:
// "Connect an account" (authorization code, opens the provider) or "Create connection"
// (client credentials, no browser).
'use strict';

(function () {
  const { h, $, show, api, query, busy, loading, showError, clearMessage, showStatus, time } = KL;
  const PAGE_SIZE = 50;
  const CALLBACK = `${window.location.origin}/oauth/callback`;
  let cursor = null;
  let presets = []; // GET /v1/providers items; empty when the route is not there
  let mode = 'preset'; // 'preset' | 'manual' | 'edit'
  let editing = null; // the client being edited

  // ---- the list ------------------------------------------------------------------------

  const grantsOf = (c) => (Array.isArray(c.grants) && c.grants.length ? c.grants : ['authorization_code']);

  function clientRow(c) {
    const grants = grantsOf(c);
    const actions = [];
    if (grants.includes('authorization_code')) {
      actions.push(h('button', { type: 'button', class: 'small', 'aria-label': `Connect an account through ${c.name}`, onclick: () => connect(c) }, 'Connect an account'));
    }
    if (grants.includes('client_credentials')) {
      actions.push(h('button', { type: 'button', class: 'small', 'aria-label': `Create a connection through ${c.name}`, onclick: () => createConnection(c) }, 'Create connection'));
    }
    actions.push(
      h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit ${c.name}`, onclick: () => edit(c) }, 'Edit'),
      h('button', { type: 'button', class: 'warning small', 'aria-label': `Rotate the secret of ${c.name}`, onclick: () => rotate(c) }, 'Rotate secret'),
      h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${c.name}`, onclick: (e) => remove(c, e.currentTarget) }, 'Delete…'));
    let host = '';
    try { host = new URL(c.authorize_url).host; } catch (_) { host = c.authorize_url; }
    return h('tr', { dataset: { id: c.id } },
      h('td', { 'data-label': 'Client' }, h('strong', {}, c.name),
        c.preset ? [' ', h('span', { class: 'chip' }, c.preset)] : null,
        h('br'), h('small', { class: 'muted' }, host)),
      h('td', { 'data-label': 'Provider client id' }, h('code', { class: 'wrap' }, c.client_id)),
      h('td', { 'data-label': 'Grants' }, h('span', { class: 'chips' }, grants.map((g) => h('span', { class: 'chip' }, g.replace('_', ' '))))),
      h('td', { 'data-label': 'Changed' }, time(c.updated_at, { compact: true })),
      h('td', { class: 'row-actions' }, h('div', { class: 'button-row' }, actions)));
  }

  function render(items, append) {
    const list = $('#clients');
    let tbody = $('tbody', list);
    if (!append || !tbody) {
      list.replaceChildren();
      if (items.length === 0) {
        list.append(h('p', { class: 'empty' }, 'No OAuth clients yet. Register your first provider on the right.'));
        return;
      }
      tbody = h('tbody');
      list.append(h('table', { class: 'stack clients' },
        h('caption', { class: 'visually-hidden' }, 'OAuth clients'),
        h('thead', {}, h('tr', {},
          ['Client', 'Provider client id', 'Grants', 'Changed'].map((t) => h('th', { scope: 'col' }, t)),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
        tbody));
    }
    tbody.append(...items.map(clientRow));
  }

  async function load(append) {
    const error = $('#list-error');
    clearMessage(error);
    const work = () => loading($('#clients'), async () => {
      try {
        const page = await api('GET', `/v1/clients${query({ limit: PAGE_SIZE, cursor: append ? cursor : null })}`);
        render(page.items, append);
        cursor = page.next_cursor;
        show($('#more-clients'), Boolean(cursor));
      } catch (e) {
        showError(error, e);
      }
    });
    await (append ? busy($('#more-clients'), 'Loading…', work) : work());
  }

  // ---- presets -------------------------------------------------------------------------

  async function loadPresets() {
    try {
      const answer = await api('GET', '/v1/providers');
      presets = (answer && answer.items) || [];
    } catch (e) {
      // An older server without presets: registering by hand still works.
      if (e.status !== 404) showError($('#form-error'), e);
      presets = [];
    }
    const select = $('#cf-preset');
    select.replaceChildren(...presets.map((p) => h('option', { value: p.id }, p.name)));
    show($('#presets-missing'), presets.length === 0);
    show($('#mode-preset'), presets.length > 0);
    setMode(presets.length ? 'preset' : 'manual');
  }

  function currentPreset() {
    return presets.find((p) => p.id === $('#cf-preset').value) || null;
  }

  function renderParams() {
    const preset = currentPreset();
    const box = $('#cf-params');
    const docs = $('#cf-preset-docs');
    box.replaceChildren();
    docs.replaceChildren();
    if (!preset) return;
    if (preset.docs) {
      docs.append('Where to create the client: ', h('a', { href: preset.docs, target: '_blank', rel: 'noopener noreferrer' }, `${preset.name} documentation`), '. ');
    }
    docs.append(`Grants: ${(preset.grants || []).join(', ') || 'authorization_code'}.`);
    for (const [name, p] of Object.entries(preset.params || {})) {
      const id = `cf-param-${name}`;
      const input = p.allowed && p.allowed.length
        ? h('select', { id, name, dataset: { param: name } }, p.allowed.map((v) => h('option', { value: v, selected: v === p.default }, v)))
        : h('input', { id, name, type: 'text', autocomplete: 'off', spellcheck: 'false', dataset: { param: name }, value: p.default || '', required: !p.default });
      box.append(h('div', { class: 'field' }, h('label', { for: id }, `${name.replace(/_/g, ' ')}${p.default ? '' : ' (required)'}`), input));
    }
    if (!$('#cf-name').dataset.touched) $('#cf-name').value = preset.id;
  }

  // ---- the form ------------------------------------------------------------------------

  function setMode(next) {
    mode = next;
    const form = $('#client-form');
    form.classList.toggle('mode-preset', mode === 'preset');
    form.classList.toggle('mode-manual', mode !== 'preset');
    $('#mode-preset').setAttribute('aria-pressed', String(mode === 'preset'));
    $('#mode-manual').setAttribute('aria-pressed', String(mode === 'manual'));
    show($('#mode'), mode !== 'edit' && presets.length > 0);
    show($('#cf-secret-field'), mode !== 'edit');
    show($('#cancel-edit'), mode === 'edit');
    $('#save-client').textContent = mode === 'edit' ? 'Save changes' : 'Register client';
    $('#cf-scopes-hint').textContent = mode === 'preset'
      ? 'Separated by spaces. Empty: the preset\'s default scopes.'
      : 'Separated by spaces.';
    if (mode === 'preset') renderParams();
  }

  function resetForm() {
    editing = null;
    $('#client-form').reset();
    delete $('#cf-name').dataset.touched;
    $('#cf-redirect').value = CALLBACK;
    $('#editor-title').textContent = 'Register a client';
    clearMessage($('#form-error'));
    setMode(presets.length ? 'preset' : 'manual');
  }

  function tagsText(object) {
    return Object.entries(object || {}).map(([k, v]) => `${k}: ${v}`).join('\n');
  }

  function edit(c) {
    editing = c;
    resetForm();
    editing = c;
    $('#editor-title').textContent = `Edit ${c.name}`;
    $('#cf-name').value = c.name;
    $('#cf-client-id').value = c.client_id;
    $('#cf-redirect').value = c.redirect_uri;
    $('#cf-scopes').value = (c.scopes || []).join(' ');
    $('#cf-authorize').value = c.authorize_url;
    $('#cf-token').value = c.token_url;
    $('#cf-revoke').value = c.revoke_url || '';
    $('#cf-auth-method').value = c.auth_method;
    $('#cf-pkce').checked = Boolean(c.pkce);
    $('#cf-extra').value = tagsText(c.extra_authorize_params);
    setMode('edit');
    $('#editor').focus();
    $('#cf-name').focus();
  }

  function formBody() {
    const value = (id) => $(id).value.trim();
    const scopes = value('#cf-scopes').split(/\s+/).filter(Boolean);
    if (mode === 'preset') {
      const preset = currentPreset();
      const params = {};
      for (const input of document.querySelectorAll('#cf-params [data-param]')) {
        if (input.value.trim()) params[input.dataset.param] = input.value.trim();
      }
      const body = {
        preset: preset.id, preset_params: params, name: value('#cf-name'), client_id: value('#cf-client-id'),
        client_secret: $('#cf-secret').value, redirect_uri: value('#cf-redirect'),
      };
      if (scopes.length) body.scopes = scopes;
      return body;
    }
    let extra;
    try {
      extra = KL.parseTags($('#cf-extra').value);
    } catch (e) {
      throw new KL.ApiError(0, 'form', e.message.replace(/^Tags/, 'Extra authorize parameters'));
    }
    const body = {
      name: value('#cf-name'), client_id: value('#cf-client-id'), redirect_uri: value('#cf-redirect'), scopes,
      authorize_url: value('#cf-authorize'), token_url: value('#cf-token'), revoke_url: value('#cf-revoke') || null,
      auth_method: $('#cf-auth-method').value, pkce: $('#cf-pkce').checked, extra_authorize_params: extra,
    };
    if (mode !== 'edit') body.client_secret = $('#cf-secret').value;
    return body;
  }

  function missingField() {
    const required = [['#cf-name', 'Name'], ['#cf-client-id', 'Client id'], ['#cf-redirect', 'Redirect URI']];
    if (mode !== 'edit') required.push(['#cf-secret', 'Client secret']);
    if (mode !== 'preset') required.push(['#cf-authorize', 'Authorization URL'], ['#cf-token', 'Token URL']);
    if (mode === 'preset') {
      for (const input of document.querySelectorAll('#cf-params [data-param]')) {
        if (input.required) required.push([`#${input.id}`, input.labels[0].textContent]);
      }
    }
    return required.find(([id]) => !$(id).value.trim());
  }

  async function save(event) {
    event.preventDefault();
    const error = $('#form-error');
    clearMessage(error);
    clearMessage($('#list-status'));
    const missing = missingField();
    if (missing) {
      showError(error, new KL.ApiError(0, 'form', `${missing[1]}: this field is required.`));
      $(missing[0]).focus();
      return;
    }
    let saved = null;
    await busy($('#save-client'), mode === 'edit' ? 'Saving…' : 'Registering…', async () => {
      try {
        const body = formBody();
        const client = editing
          ? await api('PATCH', `/v1/clients/${encodeURIComponent(editing.id)}`, body)
          : await api('POST', '/v1/clients', body);
        saved = editing ? `Client "${client.name}" saved.` : `Client "${client.name}" registered.`;
      } catch (e) {
        showError(error, e);
      }
    });
    // After `busy` has given the button its label back, so that the reset form names its own.
    if (saved) {
      showStatus($('#list-status'), saved);
      resetForm();
      await load(false);
    }
  }

  // ---- actions -------------------------------------------------------------------------

  async function rotate(c) {
    const done = await KL.formDialog({
      id: 'rotate-dialog',
      title: `Rotate the secret of ${c.name}`,
      intro: 'Paste the new secret from the provider. It replaces the old one at once and is never shown again.',
      fields: [{ name: 'secret', label: 'New client secret', type: 'password', required: true, autocomplete: 'new-password' }],
      submitLabel: 'Rotate secret',
      busyLabel: 'Rotating…',
      submit: async (v) => {
        await api('PATCH', `/v1/clients/${encodeURIComponent(c.id)}`, { client_secret: v.secret });
        return true;
      },
    });
    if (done) {
      showStatus($('#list-status'), `The secret of "${c.name}" was replaced. The new one is stored encrypted and is not shown.`);
      await load(false);
    }
  }

  async function remove(c, button) {
    const ok = await KL.confirmAction({
      title: `Delete ${c.name}?`,
      message: 'Nobody can authorize through it any more. A client that connections still use cannot be deleted: revoke them first.',
      confirmLabel: 'Delete client',
      danger: true,
    });
    if (!ok) return;
    const error = $('#list-error');
    clearMessage(error);
    clearMessage($('#list-status'));
    await busy(button, 'Deleting…', async () => {
      try {
        await api('DELETE', `/v1/clients/${encodeURIComponent(c.id)}`);
        showStatus($('#list-status'), `Client "${c.name}" deleted.`);
        await load(false);
      } catch (e) {
        if (e.code === 'client_in_use') {
          error.replaceChildren(
            `"${c.name}" is still in use (409 client_in_use): ${e.detail}. Open `,
            h('a', { href: `/admin/connections${query({ client_id: c.id })}` }, 'its connections'),
            ', revoke each one, then delete the client.');
          show(error, true);
        } else {
          showError(error, e);
        }
      }
    });
  }

  const TAGS_FIELD = {
    name: 'tags', label: 'Tags (optional)', type: 'textarea', rows: 2,
    hint: 'Up to 10, one "name: value" per line, e.g. organization_id: acme.',
  };
  const CONNECTION_ID_HINT = 'Your name for it, e.g. branch-42: 1–128 of A–Z a–z 0–9 . _ : -';

  function withTags(body, text) {
    const tags = KL.parseTags(text);
    if (Object.keys(tags).length) body.tags = tags;
    return body;
  }

  async function connect(c) {
    const started = await KL.formDialog({
      id: 'connect-dialog',
      title: `Connect an account through ${c.name}`,
      intro: 'keyledger opens the provider in a new tab; the account owner signs in and consents there, and the provider sends them back to this deployment\'s callback.',
      fields: [{ name: 'connection_id', label: 'Connection id', required: true, hint: CONNECTION_ID_HINT }, TAGS_FIELD],
      submitLabel: 'Open the provider',
      busyLabel: 'Starting…',
      submit: (v) => api('POST', '/v1/connections/authorize', withTags({ client_id: c.id, connection_id: v.connection_id }, v.tags))
        .then((answer) => ({ ...answer, connection_id: v.connection_id })),
    });
    if (!started) return;
    window.open(started.authorize_url, '_blank', 'noopener,noreferrer');
    const box = $('#list-status');
    box.replaceChildren(
      `The provider's page for "${started.connection_id}" opened in a new tab (valid until ${new Date(started.expires_at).toLocaleTimeString()}). If it did not, `,
      h('a', { href: started.authorize_url, target: '_blank', rel: 'noopener noreferrer', id: 'authorize-link' }, 'open it here'),
      '. The connection appears on the ',
      h('a', { href: `/admin/connections${query({ id: started.connection_id })}` }, 'Connections page'),
      ' once the account owner consents.');
    show(box, true);
  }

  async function createConnection(c) {
    const created = await KL.formDialog({
      id: 'cc-dialog',
      title: `Create a connection through ${c.name}`,
      intro: 'keyledger obtains a token from the provider now with the client credentials grant, and renews it before it expires.',
      fields: [
        { name: 'connection_id', label: 'Connection id', required: true, hint: CONNECTION_ID_HINT },
        { name: 'scopes', label: 'Scopes (optional)', hint: 'Separated by spaces; empty: the client\'s scopes.' },
        TAGS_FIELD,
      ],
      submitLabel: 'Create connection',
      busyLabel: 'Creating…',
      submit: (v) => {
        const body = withTags({ client_id: c.id, connection_id: v.connection_id, grant: 'client_credentials' }, v.tags);
        const scopes = v.scopes.split(/\s+/).filter(Boolean);
        if (scopes.length) body.scopes = scopes;
        return api('POST', '/v1/connections', body);
      },
    });
    if (!created) return;
    const box = $('#list-status');
    box.replaceChildren(`Connection "${created.connection_id}" created (${created.status}). See it on the `,
      h('a', { href: `/admin/connections${query({ id: created.connection_id })}` }, 'Connections page'), '.');
    show(box, true);
  }

  KL.start(() => {
    $('#cf-redirect').value = CALLBACK;
    $('#cf-redirect-copy').append(KL.copyButton(() => $('#cf-redirect').value, 'Copy the redirect URI'));
    $('#cf-name').addEventListener('input', (e) => { e.target.dataset.touched = 'true'; });
    $('#cf-preset').addEventListener('change', renderParams);
    $('#mode-preset').addEventListener('click', () => setMode('preset'));
    $('#mode-manual').addEventListener('click', () => setMode('manual'));
    $('#cancel-edit').addEventListener('click', resetForm);
    $('#client-form').addEventListener('submit', save);
    $('#more-clients').addEventListener('click', () => load(true));
    load(false);
    loadPresets();
  });
})();
