// Building the page. Every piece of data goes in as text (textContent, text nodes,
// attribute values): API names, descriptions and logs are hostile input, and nothing
// here ever parses a string as HTML.

import { plainWords } from './api.js';

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

function applyProps(element, props) {
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') element.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'text') element.textContent = String(value);
    else if (key === 'on') for (const [name, fn] of Object.entries(value)) element.addEventListener(name, fn);
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key === 'style') Object.assign(element.style, value);
    else if (key.startsWith('on')) throw new Error(`use on: {} for ${key}`);
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, String(value));
  }
}

/** h('a', {href: '#/x', class: 'btn'}, 'text', child, [more]) */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  applyProps(element, props);
  append(element, children);
  return element;
}

/** The same for SVG elements. */
export function s(tag, props = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  applyProps(element, props);
  append(element, children);
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

/** Replace the children of `element` (null, undefined and false are left out). */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

// ---- formatting ---------------------------------------------------------------------

const numberFormat = new Intl.NumberFormat();

export function fmtNumber(value) {
  return value === null || value === undefined ? '—' : numberFormat.format(value);
}

export function fmtDate(value) {
  if (!value) return '—';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function fmtTime(value) {
  const date = value instanceof Date ? value : new Date(value);
  return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

export function fmtMs(value) {
  if (value === null || value === undefined) return '—';
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  return `${value >= 100 ? Math.round(value) : value.toFixed(1)} ms`;
}

export function fmtBytes(value) {
  if (value === null || value === undefined) return '—';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? n : n.toFixed(1)} ${units[unit]}`;
}

export function fmtPercent(ratio) {
  if (ratio === null || ratio === undefined) return '—';
  return `${(ratio * 100).toFixed(ratio < 0.1 ? 1 : 0)} %`;
}

function fractionDigits(currency) {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions()
      .maximumFractionDigits;
  } catch {
    return 2;
  }
}

/** Integer minor units to a plain decimal string ("1234.50"), by string arithmetic. */
export function majorText(minor, currency) {
  const digits = fractionDigits(currency || 'USD');
  const text = String(Math.abs(minor)).padStart(digits + 1, '0');
  const major = digits ? `${text.slice(0, -digits)}.${text.slice(-digits)}` : text;
  return minor < 0 ? `-${major}` : major;
}

/** Integer minor units (cents) to money text: no float arithmetic on the amount itself. */
export function fmtMoney(minor, currency) {
  if (minor === null || minor === undefined) return '—';
  const code = currency || 'USD';
  const digits = fractionDigits(code);
  const negative = minor < 0;
  const major = majorText(Math.abs(minor), code);
  try {
    return new Intl.NumberFormat(undefined, {
      style: 'currency',
      currency: code,
      minimumFractionDigits: digits,
    }).format(`${negative ? '-' : ''}${major}`);
  } catch {
    return `${negative ? '-' : ''}${major} ${code}`;
  }
}

/** "12.50" in major units to integer minor units, or null when it is not a price. */
export function parseMoney(text, currency) {
  const digits = fractionDigits(currency || 'USD');
  const match = /^\s*(\d{1,15})(?:[.,](\d*))?\s*$/.exec(text);
  if (!match) return null;
  const fraction = (match[2] || '').padEnd(digits, '0');
  if (fraction.length > digits) return null;
  return Number(match[1]) * 10 ** digits + Number(fraction || '0');
}

export function price(plan) {
  if (plan.is_free || !plan.price_per_1000_minor) return 'Free';
  return `${fmtMoney(plan.price_per_1000_minor, plan.currency)} per 1,000 calls`;
}

export function planLimits(plan) {
  const parts = [];
  if (plan.included_calls_per_month) parts.push(`${fmtNumber(plan.included_calls_per_month)} calls/month included`);
  if (plan.rate_per_second) parts.push(`${fmtNumber(plan.rate_per_second)}/s (burst ${fmtNumber(plan.burst || plan.rate_per_second)})`);
  if (plan.daily_quota) parts.push(`${fmtNumber(plan.daily_quota)}/day`);
  if (plan.monthly_quota) parts.push(`${fmtNumber(plan.monthly_quota)}/month`);
  return parts.length ? parts.join(' · ') : 'No limits';
}

// ---- status badges: the word itself, colour only as a second cue ---------------------

const BADGE_KIND = {
  running: 'ok',
  active: 'ok',
  final: 'ok',
  public: 'info',
  private: 'idle',
  queued: 'busy',
  building: 'busy',
  starting: 'busy',
  stopping: 'busy',
  draft: 'busy',
  stopped: 'idle',
  superseded: 'idle',
  'not deployed': 'idle',
  cancelled: 'idle',
  revoked: 'idle',
  archived: 'idle',
  failed: 'bad',
  'crash-looping': 'bad',
  suspended: 'bad',
};

export function badge(status, label) {
  const text = status || 'unknown';
  const kind = BADGE_KIND[text] || 'idle';
  return h('span', { class: `badge badge-${kind}`, dataset: { status: text } }, label || text);
}

// ---- messages -------------------------------------------------------------------------

/** An error or success box; errors are announced (role=alert). */
export function notice(kind, message) {
  const role = kind === 'error' ? 'alert' : 'status';
  return h('div', { class: `notice notice-${kind}`, role }, message);
}

/** Put an error (ApiError or anything) in plain words into `slot`. */
export function showError(slot, error) {
  if (error && error.name === 'AbortError') return;
  clear(slot).append(notice('error', plainWords(error)));
}

export function toast(message) {
  const region = document.getElementById('toasts');
  const item = h('div', { class: 'toast' }, message);
  region.append(item);
  setTimeout(() => item.remove(), 5000);
}

export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, text);
}

export function empty(text) {
  return h('p', { class: 'empty' }, text);
}

/**
 * Run `work` with the button disabled and showing `busyText`: the person sees that
 * something is happening, and cannot send it twice.
 */
export async function busy(button, busyText, work) {
  const original = button.textContent;
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  button.textContent = busyText;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
    button.textContent = original;
  }
}

// ---- forms ----------------------------------------------------------------------------

let fieldCounter = 0;

/**
 * A labelled form field with a slot for its error message.
 * opts: {label, name, type, value, required, hint, options (for select), ...attributes}
 */
export function field(opts) {
  const { label, name, type = 'text', value, hint, options, id: given, ...attrs } = opts;
  fieldCounter += 1;
  const id = given || `f-${name}-${fieldCounter}`;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  let control;
  if (type === 'select') {
    control = h('select', { id, name, ...attrs }, (options || []).map(([v, text]) => h('option', { value: v }, text)));
    if (value !== undefined && value !== null) control.value = String(value);
  } else if (type === 'textarea') {
    control = h('textarea', { id, name, rows: 3, ...attrs });
    control.value = value ?? '';
  } else {
    control = h('input', { id, name, type, ...attrs });
    if (value !== undefined && value !== null) control.value = String(value);
  }
  control.setAttribute('aria-describedby', [hintId, errorId].filter(Boolean).join(' '));
  control.dataset.label = label;
  return h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label),
    control,
    hint ? h('p', { class: 'hint', id: hintId }, hint) : null,
    h('p', { class: 'field-error', id: errorId }),
  );
}

function problemOf(control) {
  const label = control.dataset.label || control.name;
  const v = control.validity;
  if (v.valueMissing) return `${label} is required.`;
  if (v.typeMismatch && control.type === 'email') return 'Enter an email address, like name@example.com.';
  if (v.typeMismatch) return `${label} is not valid.`;
  if (v.tooShort) return `${label} must be at least ${control.minLength} characters.`;
  if (v.tooLong) return `${label} must be at most ${control.maxLength} characters.`;
  if (v.rangeUnderflow) return `${label} must be at least ${control.min}.`;
  if (v.rangeOverflow) return `${label} must be at most ${control.max}.`;
  if (v.stepMismatch) return `${label} must be a whole number.`;
  if (v.badInput) return `${label} must be a number.`;
  if (v.patternMismatch) return control.dataset.patternHint || `${label} has the wrong format.`;
  if (v.customError) return control.validationMessage;
  return null;
}

/** Show our own message beside each invalid field; focus the first. True when valid. */
export function validate(form) {
  let first = null;
  for (const control of form.querySelectorAll('input, select, textarea')) {
    const slot = control.id ? form.querySelector(`#${CSS.escape(control.id)}-error`) : null;
    const problem = control.willValidate ? problemOf(control) : null;
    if (slot) slot.textContent = problem || '';
    if (problem) {
      control.setAttribute('aria-invalid', 'true');
      first = first || control;
    } else {
      control.removeAttribute('aria-invalid');
    }
  }
  if (first) first.focus();
  return first === null;
}

/**
 * A form that validates on submit (with our messages, not the browser's bubbles),
 * shows API errors in plain words above its button, and disables the button while
 * `onSubmit(values, form)` runs.
 */
export function form({ fields, submit, busyText, onSubmit, extra, label }) {
  const status = h('div', { class: 'form-status' });
  const button = h('button', { type: 'submit', class: 'btn btn-primary' }, submit);
  const element = h('form', { novalidate: true, 'aria-label': label || submit }, fields, extra || null, status, h('div', { class: 'actions' }, button));
  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear(status);
    if (!validate(element)) return;
    const values = Object.fromEntries(new FormData(element).entries());
    try {
      await busy(button, busyText || 'Working…', () => onSubmit(values, element));
    } catch (error) {
      showError(status, error);
    }
  });
  element.addEventListener('input', (event) => {
    const control = event.target;
    if (control.getAttribute && control.getAttribute('aria-invalid') === 'true' && !problemOf(control)) {
      control.removeAttribute('aria-invalid');
      const slot = element.querySelector(`#${CSS.escape(control.id)}-error`);
      if (slot) slot.textContent = '';
    }
  });
  element.status = status;
  return element;
}

// ---- tables that become cards on a phone ------------------------------------------------

/** columns: [{label, render(row) → node|text, class?}] */
export function table(columns, rows, caption) {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'data' },
      caption ? h('caption', { class: 'visually-hidden' }, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
      h(
        'tbody',
        {},
        rows.map((row) =>
          h('tr', {}, columns.map((c) => h('td', { 'data-label': c.label, class: c.class || null }, c.render(row)))),
        ),
      ),
    ),
  );
}

// ---- copying --------------------------------------------------------------------------

export function copyButton(getText, label = 'Copy') {
  const button = h('button', { type: 'button', class: 'btn btn-small' }, label);
  button.addEventListener('click', async () => {
    const text = getText();
    let ok = false;
    try {
      await navigator.clipboard.writeText(text);
      ok = true;
    } catch {
      ok = false;
    }
    button.textContent = ok ? 'Copied' : 'Select and copy it by hand';
    toast(ok ? 'Copied to the clipboard.' : 'The browser did not allow copying: select the text and copy it.');
    setTimeout(() => {
      button.textContent = label;
    }, 2500);
  });
  return button;
}

/** A read-only value (an API key, a URL) with a copy button beside it. */
export function copyable(value, label) {
  fieldCounter += 1;
  const id = `copy-${fieldCounter}`;
  const input = h('input', { id, type: 'text', readonly: true, class: 'mono', spellcheck: 'false' });
  input.value = value;
  input.addEventListener('focus', () => input.select());
  return h(
    'div',
    { class: 'field copyable' },
    h('label', { for: id }, label),
    h('div', { class: 'copy-row' }, input, copyButton(() => input.value, `Copy ${label.toLowerCase()}`)),
  );
}

/** A code block (curl examples) with a copy button. */
export function codeBlock(text, label = 'Copy') {
  return h('div', { class: 'code-block' }, h('pre', {}, h('code', {}, text)), copyButton(() => text, label));
}

export function section(title, ...children) {
  return h('section', { class: 'card' }, h('h2', {}, title), children);
}

export function pageHeader(title, ...extra) {
  return h('div', { class: 'page-header' }, h('h1', { tabindex: '-1' }, title), extra);
}

/** Run `fn` every `ms` while this tab is visible and the page is open; returns stop(). */
export function every(ms, fn, signal) {
  let timer = null;
  const tick = async () => {
    timer = null;
    if (signal.aborted) return;
    if (document.visibilityState === 'visible') {
      try {
        await fn();
      } catch {
        // the page shows its own errors; keep ticking
      }
    }
    if (!signal.aborted) timer = setTimeout(tick, ms);
  };
  const onVisible = () => {
    if (document.visibilityState === 'visible' && timer !== null) {
      clearTimeout(timer);
      tick();
    }
  };
  document.addEventListener('visibilitychange', onVisible);
  timer = setTimeout(tick, ms);
  const stop = () => {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    document.removeEventListener('visibilitychange', onVisible);
  };
  signal.addEventListener('abort', stop);
  return stop;
}
