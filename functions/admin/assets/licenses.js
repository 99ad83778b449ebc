// /admin/licenses: find, issue and manage licenses through the admin API (DESIGN §6.6).
'use strict';

(function () {
  const { h, $, show, api, query, busy, loading, showError, clearMessage, showStatus, time, badge } = KL;
  const PAGE_SIZE = 25;
  let cursor = null;
  let current = null; // the license shown in the detail panel (without its key)

  // ---- finding -------------------------------------------------------------------------

  function statusOf(license) {
    return license.status === 'active' && license.expired ? 'expired' : license.status;
  }

  function licenseRow(license) {
    const open = h('button', {
      type: 'button', class: 'secondary small',
      'aria-label': `Open license of ${license.email}`,
      onclick: () => openLicense(license.id),
    }, 'Open');
    return h('tr', { dataset: { id: license.id } },
      h('td', { 'data-label': 'Email' }, license.email),
      h('td', { 'data-label': 'Status' }, badge(statusOf(license))),
      h('td', { 'data-label': 'Installations' }, `${license.installations_used} of ${license.max_installations}`),
      h('td', { 'data-label': 'Expires' }, time(license.expires_at, { empty: 'never', dateOnly: true })),
      h('td', { 'data-label': 'Issued' }, time(license.created_at, { dateOnly: true })),
      h('td', { class: 'row-actions' }, open));
  }

  function renderResults(items, append, emptyText) {
    const results = $('#results');
    let tbody = $('tbody', results);
    if (!append || !tbody) {
      results.replaceChildren();
      if (items.length === 0) {
        results.append(h('p', { class: 'empty' }, emptyText));
        return;
      }
      tbody = h('tbody');
      results.append(h('table', { class: 'stack' },
        h('caption', { class: 'visually-hidden' }, 'Licenses found'),
        h('thead', {}, h('tr', {},
          ['Email', 'Status', 'Installations', 'Expires', 'Issued'].map((t) => h('th', { scope: 'col' }, t)),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
        tbody));
    }
    tbody.append(...items.map(licenseRow));
  }

  async function search(append) {
    const q = $('#q').value.trim();
    const status = $('#status-filter').value;
    const error = $('#search-error');
    const more = $('#more-licenses');
    clearMessage(error);
    const button = append ? more : $('#search-button');
    await busy(button, append ? 'Loading…' : 'Searching…', () => loading($('#results'), async () => {
      try {
        if (q && !q.includes('@')) {
          // Anything but an email is taken for a key, which travels in a body, never a URL.
          let items = [];
          try {
            items = [await api('POST', '/v1/licenses/lookup', { license_key: q })];
          } catch (e) {
            if (e.status !== 404) throw e;
          }
          items = items.filter((l) => !status || l.status === status);
          renderResults(items, false, 'No license has this key.');
          cursor = null;
        } else {
          const page = await api('GET', `/v1/licenses${query({ email: q, status, limit: PAGE_SIZE, cursor: append ? cursor : null })}`);
          renderResults(page.items, append, q ? `No license for ${q}.` : 'No licenses yet. Issue the first one below.');
          cursor = page.next_cursor;
        }
        show(more, Boolean(cursor));
      } catch (e) {
        showError(error, e);
      }
    }));
  }

  // ---- one license ---------------------------------------------------------------------

  function field(label, ...value) {
    return [h('dt', {}, label), h('dd', {}, ...value)];
  }

  function keyField(license) {
    const value = h('code', { class: 'key masked', id: 'license-key' }, '•••••-•••••-•••••-•••••');
    const reveal = h('button', { type: 'button', class: 'secondary small', id: 'reveal-key' }, 'Reveal key');
    const holder = h('span', { class: 'key-tools' }, reveal);
    let shown = false;
    const hide = () => {
      value.textContent = '•••••-•••••-•••••-•••••';
      value.classList.add('masked');
      holder.querySelector('.copy')?.remove();
      shown = false;
    };
    reveal.addEventListener('click', async () => {
      const error = $('#detail-error');
      clearMessage(error);
      if (shown) hide();
      else {
        await busy(reveal, 'Revealing…', async () => {
          try {
            // Only GET /v1/licenses/{id} carries the key: fetched on demand, never kept.
            const full = await api('GET', `/v1/licenses/${encodeURIComponent(license.id)}`);
            value.textContent = full.license_key;
            value.classList.remove('masked');
            holder.append(KL.copyButton(() => value.textContent, 'Copy license key'));
            shown = true;
          } catch (e) {
            showError(error, e);
          }
        });
      }
      reveal.textContent = shown ? 'Hide key' : 'Reveal key';
    });
    return [h('dt', {}, 'Key'), h('dd', {}, value, holder)];
  }

  function installationsTable(license) {
    const items = license.installations || [];
    if (items.length === 0) return h('p', { class: 'empty' }, 'No active installations.');
    return h('div', { class: 'results' }, h('table', { class: 'stack' },
      h('caption', { class: 'visually-hidden' }, 'Active installations'),
      h('thead', {}, h('tr', {},
        ['Installation', 'Name', 'Activated', 'Last seen'].map((t) => h('th', { scope: 'col' }, t)),
        h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
      h('tbody', {}, items.map((i) => h('tr', {},
        h('td', { 'data-label': 'Installation' }, h('code', {}, i.installation_id)),
        h('td', { 'data-label': 'Name' }, i.name || h('span', { class: 'muted' }, '—')),
        h('td', { 'data-label': 'Activated' }, time(i.activated_at, { compact: true })),
        h('td', { 'data-label': 'Last seen' }, KL.ago(i.last_seen_at, 'never')),
        h('td', { class: 'row-actions' }, h('button', {
          type: 'button', class: 'danger small',
          'aria-label': `Remove installation ${i.installation_id}`,
          onclick: (event) => removeInstallation(license, i.installation_id, event.currentTarget),
        }, 'Remove')))))));
  }

  function dateInputToIso(value) {
    if (!value) return null;
    const [y, m, d] = value.split('-').map(Number);
    return new Date(y, m - 1, d, 23, 59, 59).toISOString();
  }

  function isoToDateInput(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  }

  function extendForm(license) {
    const input = h('input', { id: 'extend-date', type: 'date', value: isoToDateInput(license.expires_at) });
    const submit = h('button', { type: 'submit', id: 'extend-button' }, 'Set expiry');
    const plusYear = h('button', { type: 'button', class: 'secondary', id: 'extend-year' }, '+1 year');
    const never = h('button', { type: 'button', class: 'secondary', id: 'extend-never' }, 'Never expires');
    plusYear.addEventListener('click', () => {
      const base = license.expires_at && new Date(license.expires_at) > new Date() ? new Date(license.expires_at) : new Date();
      base.setFullYear(base.getFullYear() + 1);
      input.value = isoToDateInput(base.toISOString());
      input.focus();
    });
    never.addEventListener('click', () => change(license, { expires_at: null }, never, 'Saving…', 'The license never expires now.'));
    const form = h('form', { class: 'row-form', novalidate: true, 'aria-label': 'Extend license' },
      h('div', { class: 'field' }, h('label', { for: 'extend-date' }, 'Expires on (end of day, your time)'), input),
      h('div', { class: 'field buttons' }, submit, plusYear, never));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!input.value) {
        showError($('#detail-error'), new KL.ApiError(0, 'form', 'Pick a date first, or choose "Never expires".'));
        input.focus();
        return;
      }
      const iso = dateInputToIso(input.value);
      change(license, { expires_at: iso }, submit, 'Saving…', `The license now expires ${new Date(iso).toLocaleString()}.`);
    });
    return form;
  }

  // ---- entitlements (DESIGN §6.6a) ------------------------------------------------------

  function entitlementChips(list) {
    if (!list || list.length === 0) return h('span', { class: 'muted' }, 'none');
    return h('span', { class: 'chips' }, list.map((e) => h('code', { class: 'chip' }, e)));
  }

  /** "pro, export" or "pro export" → ["pro", "export"]. */
  function parseEntitlements(text) {
    return [...new Set(text.split(/[\s,]+/).map((e) => e.trim()).filter(Boolean))];
  }

  function entitlementsForm(license) {
    const input = h('input', {
      id: 'entitlements-input', type: 'text', autocomplete: 'off', spellcheck: 'false',
      value: (license.entitlements || []).join(', '), 'aria-describedby': 'entitlements-hint',
    });
    const submit = h('button', { type: 'submit', id: 'entitlements-button', class: 'secondary' }, 'Save entitlements');
    const form = h('form', { class: 'row-form', novalidate: true, 'aria-label': 'Entitlements' },
      h('div', { class: 'field grow' }, h('label', { for: 'entitlements-input' }, 'Entitlements'), input,
        h('p', { id: 'entitlements-hint', class: 'hint' }, 'Names separated by commas, e.g. pro, export. Products ask for the ones they need.')),
      h('div', { class: 'field' }, submit));
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const list = parseEntitlements(input.value);
      change(license, { entitlements: list }, submit, 'Saving…', list.length ? `Entitlements now: ${list.join(', ')}.` : 'The license has no entitlements now.');
    });
    return form;
  }

  function renderDetail(license) {
    current = license;
    const status = statusOf(license);
    const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'License actions' });
    if (license.status === 'active') {
      actions.append(h('button', {
        type: 'button', id: 'suspend-button', class: 'warning',
        onclick: (e) => change(license, { status: 'suspended' }, e.currentTarget, 'Suspending…', 'License suspended: its checks now answer SUSPENDED.'),
      }, 'Suspend'));
    } else if (license.status === 'suspended') {
      actions.append(h('button', {
        type: 'button', id: 'reinstate-button',
        onclick: (e) => change(license, { status: 'active' }, e.currentTarget, 'Reinstating…', 'License reinstated.'),
      }, 'Reinstate'));
    }
    if (license.status !== 'revoked') {
      actions.append(h('button', {
        type: 'button', id: 'revoke-button', class: 'danger',
        onclick: (e) => revoke(license, e.currentTarget),
      }, 'Revoke…'));
    }
    $('#detail-title').textContent = license.email;
    $('#detail-body').replaceChildren(
      h('dl', { class: 'facts' },
        field('Status', h('span', { id: 'license-status' }, badge(status)),
          license.expired && license.status !== 'active' ? [' ', badge('expired')] : null),
        field('License id', h('code', {}, license.id)),
        keyField(license),
        field('Installations', `${license.installations_used} of ${license.max_installations}`),
        field('Entitlements', h('span', { id: 'entitlements' }, entitlementChips(license.entitlements))),
        field('Frees a slot after', license.max_inactive_days ? `${license.max_inactive_days} days inactive` : h('span', { class: 'muted' }, 'never')),
        field('Expires', time(license.expires_at, { empty: 'never' }), license.expires_at ? ` (${KL.relative(license.expires_at)})` : null),
        field('Issued', time(license.created_at)),
        field('Last changed', time(license.updated_at))),
      actions,
      license.status === 'revoked' ? h('p', { class: 'muted' }, 'Revoked for good: a revoked license cannot be changed.') : extendForm(license),
      license.status !== 'revoked' ? entitlementsForm(license) : null,
      h('h3', {}, 'Installations'),
      installationsTable(license));
    show($('#detail'), true);
  }

  async function openLicense(id, message) {
    const panel = $('#detail');
    clearMessage($('#detail-error'));
    if (message) showStatus($('#detail-status'), message);
    else clearMessage($('#detail-status'));
    show(panel, true);
    await loading(panel, async () => {
      try {
        // The answer carries the key; it is dropped here and fetched again only on "Reveal".
        const license = await api('GET', `/v1/licenses/${encodeURIComponent(id)}`);
        delete license.license_key;
        renderDetail(license);
        KL.setUrlParams({ id });
      } catch (e) {
        $('#detail-body').replaceChildren();
        showError($('#detail-error'), e);
      }
    });
    panel.focus();
  }

  function updateRow(license) {
    const row = document.querySelector(`#results tr[data-id="${CSS.escape(license.id)}"]`);
    if (row) row.replaceWith(licenseRow(license));
  }

  async function change(license, patch, button, label, done) {
    clearMessage($('#detail-error'));
    clearMessage($('#detail-status'));
    await busy(button, label, async () => {
      try {
        const updated = await api('PATCH', `/v1/licenses/${encodeURIComponent(license.id)}`, patch);
        updateRow(updated);
        await openLicense(license.id, done);
      } catch (e) {
        showError($('#detail-error'), e);
      }
    });
  }

  async function revoke(license, button) {
    const ok = await KL.confirmAction({
      title: 'Revoke this license?',
      message: `The license of ${license.email} stops working on every installation, for good. Revoking cannot be undone; suspend it instead if it may come back.`,
      confirmLabel: 'Revoke license',
      danger: true,
    });
    if (!ok) return;
    clearMessage($('#detail-error'));
    await busy(button, 'Revoking…', async () => {
      try {
        await api('DELETE', `/v1/licenses/${encodeURIComponent(license.id)}`);
        await openLicense(license.id, 'License revoked.');
        if (current) updateRow(current);
      } catch (e) {
        showError($('#detail-error'), e);
      }
    });
  }

  async function removeInstallation(license, installationId, button) {
    const ok = await KL.confirmAction({
      title: 'Remove this installation?',
      message: `Installation ${installationId} loses its slot; it must activate again to run.`,
      confirmLabel: 'Remove installation',
      danger: true,
    });
    if (!ok) return;
    clearMessage($('#detail-error'));
    await busy(button, 'Removing…', async () => {
      try {
        await api('DELETE', `/v1/licenses/${encodeURIComponent(license.id)}/installations/${encodeURIComponent(installationId)}`);
        await openLicense(license.id, `Installation ${installationId} removed.`);
        if (current) updateRow(current);
      } catch (e) {
        showError($('#detail-error'), e);
      }
    });
  }

  // ---- issuing -------------------------------------------------------------------------

  async function issue(event) {
    event.preventDefault();
    const form = event.target;
    const error = $('#issue-error');
    const issued = $('#issued');
    clearMessage(error);
    show(issued, false);
    const email = $('#issue-email').value.trim();
    if (!email) {
      showError(error, new KL.ApiError(0, 'form', 'Enter the customer\'s email.'));
      $('#issue-email').focus();
      return;
    }
    const body = {
      email,
      max_installations: Number($('#issue-max').value || 1),
      expires_at: dateInputToIso($('#issue-expires').value),
      max_inactive_days: $('#issue-inactive').value ? Number($('#issue-inactive').value) : null,
    };
    const entitlements = parseEntitlements($('#issue-entitlements').value);
    if (entitlements.length) body.entitlements = entitlements;
    await busy($('#issue-button'), 'Issuing…', async () => {
      try {
        const license = await api('POST', '/v1/licenses', body);
        const key = h('code', { class: 'key', id: 'new-key' }, license.license_key);
        issued.replaceChildren(
          h('p', {}, h('strong', {}, `License issued to ${license.email}.`),
            ' Copy the key now and send it to the customer; this is the only time it is shown here (“Reveal key” shows it again when needed).'),
          h('p', { class: 'key-line' }, key, KL.copyButton(() => key.textContent, 'Copy the new license key')));
        show(issued, true);
        form.reset();
        await openLicense(license.id, 'License issued.');
      } catch (e) {
        showError(error, e);
      }
    });
  }

  KL.start(() => {
    $('#tz').textContent = KL.TIME_ZONE;
    $('#search-form').addEventListener('submit', (event) => { event.preventDefault(); search(false); });
    $('#more-licenses').addEventListener('click', () => search(true));
    $('#issue-form').addEventListener('submit', issue);
    const id = new URL(window.location.href).searchParams.get('id');
    search(false);
    if (id) openLicense(id);
  });
})();
