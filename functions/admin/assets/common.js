// Shared by every /admin page: the operator's key, API calls, progress, errors, DOM and time
// helpers. Plain script (no modules, no build step); pages use the global `KL`.
//
// Everything shown comes from the API and some of it from the outside world (request bodies,
// provider errors), so text only ever enters the page through textContent, never as HTML.
'use strict';

(function () {
  const STORAGE_KEY = 'keyledger.admin_key';
  const TIME_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  const DATE_TIME = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
  });
  const DATE = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: '2-digit' });
  const COMPACT = new Intl.DateTimeFormat(undefined, { month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit' });
  const RELATIVE = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

  // ---- DOM -----------------------------------------------------------------------------

  /** h('td', {class: 'x', onclick: f}, 'text', child) — builds an element; strings become text nodes. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  const $ = (selector, root) => (root || document).querySelector(selector);

  function show(el, visible) {
    el.hidden = !visible;
  }

  // ---- time ----------------------------------------------------------------------------

  /**
   * A <time> in the browser's time zone; the exact UTC instant in its title. Options:
   * `empty` (text when there is no time), `dateOnly`, `compact` (month, day, hour, minute:
   * for tables, whose page names the time zone once).
   */
  function time(iso, options) {
    const o = options || {};
    if (!iso) return h('span', { class: 'muted' }, o.empty || '—');
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return h('span', {}, iso);
    const text = (o.dateOnly ? DATE : o.compact ? COMPACT : DATE_TIME).format(d);
    return h('time', { datetime: iso, title: d.toISOString() }, text);
  }

  /** "in 42 minutes", "3 hours ago". */
  function relative(iso, now) {
    if (!iso) return '';
    const seconds = (new Date(iso).getTime() - (now || Date.now())) / 1000;
    const units = [['year', 31536000], ['month', 2592000], ['day', 86400], ['hour', 3600], ['minute', 60]];
    for (const [unit, size] of units) {
      if (Math.abs(seconds) >= size) return RELATIVE.format(Math.round(seconds / size), unit);
    }
    return RELATIVE.format(Math.round(seconds), 'second');
  }

  /** A <time> that reads "3 hours ago", with the exact local time in its title. */
  function ago(iso, empty) {
    if (!iso) return h('span', { class: 'muted' }, empty || '—');
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return h('span', {}, iso);
    return h('time', { class: 'relative-time', datetime: iso, title: DATE_TIME.format(d) }, relative(iso));
  }

  /** The value of a datetime-local input (browser time) as an RFC 3339 UTC instant. */
  function localInputToIso(value) {
    if (!value) return null;
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? null : d.toISOString();
  }

  /** An RFC 3339 instant as a datetime-local input value in the browser's time zone. */
  function isoToLocalInput(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return '';
    const pad = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
  }

  // ---- progress ------------------------------------------------------------------------

  let inFlight = 0;
  function progress(delta) {
    inFlight += delta;
    const bar = $('#progress');
    if (bar) show(bar, inFlight > 0);
    document.body.classList.toggle('busy', inFlight > 0);
  }

  /** Runs `work` with `button` disabled and relabelled (e.g. "Suspending…") until it ends. */
  async function busy(button, label, work) {
    const before = button.textContent;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    if (label) button.textContent = label;
    try {
      return await work();
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
      if (label) button.textContent = before;
    }
  }

  /** Marks `region` busy and shows a loading line in it while `work` runs. */
  async function loading(region, work) {
    region.setAttribute('aria-busy', 'true');
    try {
      return await work();
    } finally {
      region.removeAttribute('aria-busy');
    }
  }

  // ---- the key and the API -------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, detail, field) {
      super(detail);
      this.status = status;
      this.code = code;
      this.detail = detail;
      this.field = field;
    }

    /** One sentence for people, naming status and code so that an operator can report it. */
    describe() {
      if (this.status === 0) return this.detail;
      if (this.status === 401) return 'The API rejected the key (401 Unauthorized): it is wrong, or it was revoked.';
      if (this.status === 403) return `This key is not allowed to do that (403 Forbidden): ${this.detail}`;
      const field = this.field ? ` (field: ${this.field})` : '';
      return `${this.status} ${this.code}: ${this.detail}${field}`;
    }
  }

  const getKey = () => sessionStorage.getItem(STORAGE_KEY);
  const forgetKey = () => sessionStorage.removeItem(STORAGE_KEY);

  async function request(method, path, body, key) {
    const headers = { Accept: 'application/json' };
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    progress(+1);
    let response;
    let text;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error',
      });
      text = await response.text();
    } catch (e) {
      throw new ApiError(0, 'network_error', `Could not reach keyledger (${e.message}). Check the connection and try again.`);
    } finally {
      progress(-1);
    }
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) {
      const code = (data && data.code) || `http_${response.status}`;
      const detail = (data && data.detail) || response.statusText || 'the request failed';
      throw new ApiError(response.status, code, detail, data && data.field);
    }
    return data;
  }

  let onSignedIn = null;

  /** Calls the JSON API with the saved key; a 401 forgets the key and asks for it again. */
  async function api(method, path, body) {
    try {
      return await request(method, path, body, getKey());
    } catch (e) {
      if (e.status === 401) {
        forgetKey();
        askForKey('The saved key was rejected (401 Unauthorized): it is wrong or was revoked. Paste a valid admin API key.');
      }
      throw e;
    }
  }

  /** A query string from an object, leaving out empty values. */
  function query(params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== null && v !== undefined && v !== '') q.set(k, v);
    }
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  // ---- messages ------------------------------------------------------------------------

  /** Shows an error (an ApiError or any Error) in `box`, a role=alert element. */
  function showError(box, error) {
    box.textContent = error instanceof ApiError ? error.describe() : `Unexpected error: ${error.message || error}`;
    show(box, true);
    if (!(error instanceof ApiError)) console.warn(error);
  }

  function clearMessage(box) {
    box.textContent = '';
    show(box, false);
  }

  function showStatus(box, text) {
    box.textContent = text;
    show(box, true);
  }

  // ---- dialogs, clipboard, badges --------------------------------------------------------

  /** A modal confirmation; resolves true only when the operator confirms. */
  function confirmAction({ title, message, confirmLabel, danger }) {
    return new Promise((resolve) => {
      const titleId = `dialog-title-${Date.now()}`;
      const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
      const ok = h('button', { type: 'button', class: danger ? 'danger' : '' }, confirmLabel || 'Confirm');
      const dialog = h('dialog', { class: 'confirm', 'aria-labelledby': titleId },
        h('h2', { id: titleId }, title),
        h('p', {}, message),
        h('div', { class: 'actions' }, cancel, ok));
      let answer = false;
      cancel.addEventListener('click', () => dialog.close());
      ok.addEventListener('click', () => { answer = true; dialog.close(); });
      dialog.addEventListener('close', () => { dialog.remove(); resolve(answer); });
      document.body.append(dialog);
      dialog.showModal();
      cancel.focus();
    });
  }

  /**
   * A modal form. `fields`: [{name, label, type ('text' | 'password' | 'textarea' | 'select'),
   * hint, value, required, options: [[value, label]], autocomplete}]. `submit(values)` runs
   * on submit with the trimmed values; what it throws is shown in the dialog, which stays
   * open; what it returns closes the dialog and resolves the promise (null on Cancel).
   */
  function formDialog({ id, title, intro, fields, submitLabel, busyLabel, submit }) {
    return new Promise((resolve) => {
      const titleId = `${id}-title`;
      const error = h('p', { class: 'error', role: 'alert', hidden: true });
      const inputs = {};
      const rows = fields.map((f) => {
        const inputId = `${id}-${f.name}`;
        const hintId = f.hint ? `${inputId}-hint` : null;
        let input;
        if (f.type === 'textarea') {
          input = h('textarea', { id: inputId, name: f.name, rows: f.rows || 3, spellcheck: 'false', 'aria-describedby': hintId });
          input.value = f.value || '';
        } else if (f.type === 'select') {
          input = h('select', { id: inputId, name: f.name, 'aria-describedby': hintId },
            f.options.map(([v, l]) => h('option', { value: v, selected: v === f.value }, l)));
        } else {
          input = h('input', {
            id: inputId, name: f.name, type: f.type || 'text', autocomplete: f.autocomplete || 'off',
            spellcheck: 'false', required: f.required, 'aria-describedby': hintId, value: f.value,
          });
        }
        inputs[f.name] = input;
        return h('div', { class: 'field' }, h('label', { for: inputId }, f.label), input,
          f.hint ? h('p', { id: hintId, class: 'hint' }, f.hint) : null);
      });
      const cancel = h('button', { type: 'button', class: 'secondary' }, 'Cancel');
      const ok = h('button', { type: 'submit', id: `${id}-submit` }, submitLabel || 'Save');
      const form = h('form', { novalidate: true }, rows, error, h('div', { class: 'actions' }, cancel, ok));
      const dialog = h('dialog', { class: 'confirm form-dialog', id, 'aria-labelledby': titleId },
        h('h2', { id: titleId }, title), intro ? h('p', {}, intro) : null, form);
      let answer = null;
      cancel.addEventListener('click', () => dialog.close());
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        clearMessage(error);
        const values = {};
        for (const [name, input] of Object.entries(inputs)) values[name] = input.value.trim();
        const missing = fields.find((f) => f.required && !values[f.name]);
        if (missing) {
          showError(error, new ApiError(0, 'form', `${missing.label}: this field is required.`));
          inputs[missing.name].focus();
          return;
        }
        try {
          answer = await busy(ok, busyLabel || 'Saving…', () => submit(values));
          dialog.close();
        } catch (e) {
          showError(error, e);
        }
      });
      dialog.addEventListener('close', () => { dialog.remove(); resolve(answer); });
      document.body.append(dialog);
      dialog.showModal();
      (inputs[fields[0].name] || cancel).focus();
    });
  }

  /**
   * Tags typed one per line as `name: value` (or `name=value`) → an object; an ApiError
   * naming the line when one is not of that form.
   */
  function parseTags(text) {
    const tags = {};
    const lines = (text || '').split(/\n|,/).map((l) => l.trim()).filter(Boolean);
    for (const [i, line] of lines.entries()) {
      const m = /^([^:=\s]+)\s*[:=]\s*(.+)$/.exec(line);
      if (!m) throw new ApiError(0, 'form', `Tags: line ${i + 1} is not "name: value".`);
      tags[m[1]] = m[2].trim();
    }
    return tags;
  }

  /** A button that copies `getText()` and says so. */
  function copyButton(getText, label) {
    const button = h('button', { type: 'button', class: 'secondary small', 'aria-label': label || 'Copy' }, 'Copy');
    const said = h('span', { class: 'copied', role: 'status' });
    button.addEventListener('click', async () => {
      const text = getText();
      try {
        await navigator.clipboard.writeText(text);
        said.textContent = 'Copied';
      } catch (_) {
        said.textContent = 'Copy failed: select the text and copy it by hand';
      }
      setTimeout(() => { said.textContent = ''; }, 4000);
    });
    return h('span', { class: 'copy' }, button, said);
  }

  const LABELS = {
    active: 'Active',
    suspended: 'Suspended',
    revoked: 'Revoked',
    expired: 'Expired',
    refresh_failing: 'Refresh failing',
    reauthorization_required: 'Re-authorization required',
  };

  function badge(status) {
    return h('span', { class: `badge badge-${status}` }, LABELS[status] || status);
  }

  /** Pretty JSON when `text` is JSON, else the text itself. */
  function pretty(text) {
    if (text === null || text === undefined) return '';
    if (typeof text !== 'string') return JSON.stringify(text, null, 2);
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch (_) {
      return text;
    }
  }

  // ---- the sign-in form ----------------------------------------------------------------

  function askForKey(message) {
    const login = $('#login');
    const app = $('#app');
    if (!login) return;
    show(app, false);
    show(login, true);
    show($('#sign-out'), false);
    const error = $('#login-error');
    if (message) showError(error, new ApiError(0, 'login', message));
    else clearMessage(error);
    $('#api-key').focus();
  }

  function signedIn() {
    show($('#login'), false);
    show($('#app'), true);
    show($('#sign-out'), true);
    if (onSignedIn) onSignedIn();
  }

  /**
   * Starts a page: asks for the key when none is saved (checking it against the API), then
   * calls `ready` once. Every page's markup has #login, #login-form, #api-key, #login-error,
   * #app and #sign-out.
   */
  function start(ready) {
    let started = false;
    onSignedIn = () => {
      if (!started) {
        started = true;
        ready();
      }
    };
    $('#login-form').addEventListener('submit', async (event) => {
      event.preventDefault();
      const input = $('#api-key');
      const key = input.value.trim();
      const error = $('#login-error');
      clearMessage(error);
      if (!key) {
        showError(error, new ApiError(0, 'login', 'Paste an admin API key first.'));
        input.focus();
        return;
      }
      const button = $('button[type=submit]', event.target);
      try {
        // Any admin-only read proves the key; its answer is not used.
        await busy(button, 'Checking…', () => request('GET', '/v1/api-keys?limit=1', undefined, key));
      } catch (e) {
        if (e.status === 401) {
          showError(error, new ApiError(0, 'login', 'Wrong key: the API answered 401 Unauthorized. Check that you pasted the whole key (it starts with kl_).'));
        } else if (e.status === 403) {
          showError(error, new ApiError(0, 'login', 'This key is valid but is not an admin key (403 Forbidden). Use a key with the admin scope.'));
        } else {
          showError(error, e);
        }
        input.select();
        input.focus();
        return;
      }
      sessionStorage.setItem(STORAGE_KEY, key);
      input.value = '';
      signedIn();
    });
    $('#sign-out').addEventListener('click', () => {
      forgetKey();
      window.location.assign('/admin');
    });
    if (getKey()) signedIn();
    else askForKey();
  }

  /** Keeps the page's filters in its address, so that reload and links keep them. */
  function setUrlParams(params) {
    const url = new URL(window.location.href);
    url.search = query(params);
    window.history.replaceState(null, '', url);
  }

  window.KL = {
    h, $, show, time, relative, ago, localInputToIso, isoToLocalInput, TIME_ZONE,
    api, query, ApiError, busy, loading, showError, clearMessage, showStatus,
    confirmAction, formDialog, parseTags, copyButton, badge, pretty, start, setUrlParams,
  };
})();
