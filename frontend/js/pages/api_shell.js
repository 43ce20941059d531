// What every page of one API shares: its name, status, address, and the tabs.

import { api } from '../api.js';
import { badge, h, pageHeader, showError } from '../dom.js';

const TABS = [
  ['', 'Overview'],
  ['/logs', 'Runtime logs'],
  ['/versions', 'Versions'],
  ['/stats', 'Stats'],
  ['/plans', 'Plans'],
  ['/settings', 'Settings'],
];

export function apiPath(id, rest = '') {
  return `/apis/${encodeURIComponent(id)}${rest}`;
}

/**
 * Load the API and draw its header and tabs into `container`. Returns {item, body,
 * statusSlot} or null when it could not be loaded (the error is shown).
 */
export async function apiShell({ container, params, signal }, tab, title) {
  const heading = pageHeader('API');
  container.append(heading);
  let item;
  try {
    item = await api.get(apiPath(params.id), { signal });
  } catch (error) {
    const slot = h('div');
    container.append(slot);
    showError(slot, error);
    return null;
  }
  document.title = `${title} · ${item.name} · Veil`;
  const h1 = heading.querySelector('h1');
  h1.textContent = item.name;
  const statusSlot = h('span', { class: 'status-slot' });
  h1.after(statusSlot);
  heading.append(
    h(
      'p',
      { class: 'meta' },
      h('span', { id: 'api-visibility' }, badge(item.visibility)),
      ' ',
      item.suspended ? badge('suspended') : null,
      ' Address: ',
      h('code', {}, item.url),
    ),
  );
  if (item.suspended) {
    const reason = item.suspension_reason || '';
    heading.append(h('div', { class: 'notice notice-warning', role: 'status' }, `An administrator suspended this API${reason ? `: ${reason}` : '.'} It does not serve calls until it is unsuspended.`));
  }
  container.append(
    h(
      'nav',
      { 'aria-label': 'API sections' },
      h(
        'ul',
        { class: 'tabs' },
        TABS.map(([suffix, label]) =>
          h('li', {}, h('a', { href: `#${apiPath(item.id, suffix)}`, 'aria-current': suffix === tab ? 'page' : null }, label)),
        ),
      ),
    ),
  );
  const body = h('div', { class: 'tab-body' });
  container.append(body);
  return { item, body, statusSlot };
}

/** The status word for the badge: 'not_deployed' reads as 'not deployed'. */
export function statusWord(status) {
  if (!status) return 'unknown';
  return status.status === 'not_deployed' ? 'not deployed' : status.status;
}
