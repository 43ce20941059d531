// A developer's APIs, with their status, and the form that creates one.

import { api } from '../api.js';
import { badge, empty, field, fill, form, h, loading, pageHeader, section, showError, table } from '../dom.js';
import { navigate } from '../router.js';

export function statusOf(apiItem, status) {
  if (apiItem.suspended) return 'suspended';
  if (!status) return 'unknown';
  return status.status === 'not_deployed' ? 'not deployed' : status.status;
}

export async function render({ container, signal }) {
  document.title = 'My APIs · Veil';
  const listSlot = h('div', {}, loading());
  container.append(
    pageHeader('My APIs', h('a', { class: 'btn btn-primary', href: '#create-api', id: 'jump-create', on: { click: jumpToCreate } }, 'New API')),
    section('Your APIs', listSlot),
    createSection(),
  );

  let items;
  try {
    items = (await api.get('/apis', { signal })).items;
  } catch (error) {
    showError(listSlot, error);
    return;
  }
  if (!items.length) {
    fill(listSlot, empty('You have no APIs yet. Create one below, then upload its code.'));
    return;
  }
  const statuses = await Promise.all(
    items.map((item) => api.get(`/apis/${encodeURIComponent(item.id)}/status`, { signal }).catch(() => null)),
  );
  const rows = items.map((item, i) => ({ item, status: statuses[i] }));
  fill(listSlot, 
    table(
      [
        { label: 'Name', render: (r) => h('a', { href: `#/apis/${encodeURIComponent(r.item.id)}` }, r.item.name) },
        { label: 'Status', render: (r) => badge(statusOf(r.item, r.status)) },
        { label: 'Version', render: (r) => (r.status && r.status.version ? `v${r.status.version}` : '—') },
        { label: 'Visibility', render: (r) => badge(r.item.visibility) },
        { label: 'URL', render: (r) => h('code', {}, r.item.url) },
      ],
      rows,
      'Your APIs',
    ),
  );
}

function jumpToCreate(event) {
  event.preventDefault(); // the hash is the route
  const input = document.getElementById('new-api-name');
  if (input) input.focus();
}

function createSection() {
  return h(
    'section',
    { class: 'card', id: 'create-api', 'aria-labelledby': 'create-api-title' },
    h('h2', { id: 'create-api-title' }, 'Create an API'),
    form({
      label: 'Create an API',
      submit: 'Create API',
      busyText: 'Creating…',
      fields: [
        field({ label: 'Name', name: 'name', id: 'new-api-name', required: true, maxlength: 100, hint: 'Shown in the marketplace; the URL slug is made from it.' }),
        field({ label: 'Description (optional)', name: 'description', type: 'textarea', maxlength: 2000 }),
        field({
          label: 'Visibility',
          name: 'visibility',
          type: 'select',
          options: [
            ['private', 'Private: only you can call it'],
            ['public', 'Public: listed in the marketplace'],
          ],
        }),
      ],
      onSubmit: async (values) => {
        const created = await api.post('/apis', {
          name: values.name.trim(),
          description: values.description || '',
          visibility: values.visibility,
        });
        navigate(`/apis/${encodeURIComponent(created.id)}`);
      },
    }),
  );
}
