// Admin: the audit log, newest first.

import { api } from '../api.js';
import { empty, fill, fmtDate, h, loading, pageHeader, section, showError, table } from '../dom.js';
import { adminTabs } from './admin_nav.js';

function details(entry) {
  const pairs = Object.entries(entry.details || {}).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return pairs.length ? pairs.join(', ') : '—';
}

export async function render({ container, signal }) {
  document.title = 'Audit log · Admin · Veil';
  const slot = h('div', {}, loading());
  container.append(pageHeader('Administration'), adminTabs('/admin/audit'), section('Audit log', h('p', { class: 'muted' }, 'Every action taken with admin power.'), slot));
  let items;
  try {
    items = (await api.get('/admin/audit-log?limit=200', { signal })).items;
  } catch (error) {
    showError(slot, error);
    return;
  }
  fill(slot, 
    items.length
      ? table(
          [
            { label: 'When', render: (e) => fmtDate(e.created_at) },
            { label: 'Action', render: (e) => h('code', {}, e.action) },
            { label: 'Target', render: (e) => `${e.target_type} ${e.target_id}` },
            { label: 'Details', render: details },
            { label: 'Who', render: (e) => e.actor_email || e.actor_id },
            { label: 'Request', render: (e) => h('code', {}, e.request_id) },
          ],
          items,
          'Audit log',
        )
      : empty('No admin actions yet.'),
  );
}
