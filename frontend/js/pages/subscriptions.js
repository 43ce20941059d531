// A consumer's subscriptions.

import { api } from '../api.js';
import { badge, empty, fill, fmtDate, h, loading, pageHeader, price, section, showError, table } from '../dom.js';

export async function render({ container, signal }) {
  document.title = 'Subscriptions · Veil';
  const slot = h('div', {}, loading());
  container.append(pageHeader('My subscriptions', h('a', { class: 'btn', href: '#/marketplace' }, 'Find APIs')), section('Subscriptions', slot));
  let items;
  try {
    items = (await api.get('/subscriptions', { signal })).items;
  } catch (error) {
    showError(slot, error);
    return;
  }
  fill(slot, 
    items.length
      ? table(
          [
            { label: 'API', render: (x) => h('a', { href: `#/subscriptions/${encodeURIComponent(x.id)}` }, x.api_name) },
            { label: 'Plan', render: (x) => `${x.plan.name} · ${price(x.plan)}` },
            { label: 'Status', render: (x) => badge(x.status) },
            { label: 'Since', render: (x) => fmtDate(x.created_at) },
            { label: 'Address', render: (x) => h('code', {}, x.url) },
          ],
          items,
          'Subscriptions',
        )
      : empty('No subscriptions yet. Find an API in the marketplace and subscribe to a plan.'),
  );
}
