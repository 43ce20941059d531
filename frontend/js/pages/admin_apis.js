// Admin: every API (private ones too), searchable; suspend or unsuspend one.

import { api, query as qs } from '../api.js';
import { badge, busy, clear, empty, field, fill, fmtDate, form, h, loading, pageHeader, section, showError, table, toast } from '../dom.js';
import { navigate } from '../router.js';
import { adminTabs } from './admin_nav.js';

export async function render({ container, signal, query }) {
  document.title = 'APIs · Admin · Veil';
  const q = query.get('q') || '';
  const cursor = query.get('cursor') || '';
  const search = field({ label: 'Search name, slug or owner', name: 'q', type: 'search', value: q, maxlength: 100, id: 'api-search' });
  const searchForm = h('form', { class: 'search-form', role: 'search' }, search, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Search'));
  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    navigate(`/admin/apis${qs({ q: searchForm.querySelector('input').value.trim() })}`);
  });
  const slot = h('div', {}, loading());
  const message = h('div');
  const suspendSlot = h('div');
  container.append(pageHeader('Administration'), adminTabs('/admin/apis'), section('APIs', searchForm, message, suspendSlot, slot));

  function askSuspend(item) {
    fill(
      suspendSlot,
      h(
        'div',
        { class: 'card' },
        h('h3', {}, `Suspend ${item.slug}`),
        h('p', { class: 'muted' }, 'Its container stops, it leaves the marketplace, its calls are refused and its owner cannot deploy it.'),
        form({
          label: 'Suspend API',
          submit: 'Suspend API',
          busyText: 'Suspending…',
          fields: [field({ label: 'Reason (shown to the owner)', name: 'reason', maxlength: 500 })],
          onSubmit: async (values) => {
            await api.post(`/admin/apis/${encodeURIComponent(item.id)}/suspend`, values.reason ? { reason: values.reason } : {});
            toast(`${item.slug} suspended.`);
            clear(suspendSlot);
            await load();
          },
        }),
      ),
    );
    suspendSlot.querySelector('input').focus();
  }

  function action(item) {
    if (!item.suspended) {
      const button = h('button', { type: 'button', class: 'btn btn-small btn-danger' }, 'Suspend…');
      button.setAttribute('aria-label', `Suspend ${item.slug}`);
      button.addEventListener('click', () => askSuspend(item));
      return button;
    }
    const button = h('button', { type: 'button', class: 'btn btn-small' }, 'Unsuspend');
    button.setAttribute('aria-label', `Unsuspend ${item.slug}`);
    button.addEventListener('click', () =>
      busy(button, 'Unsuspending…', async () => {
        clear(message);
        try {
          await api.post(`/admin/apis/${encodeURIComponent(item.id)}/unsuspend`, {});
          toast(`${item.slug} unsuspended: its owner can start it again.`);
          await load();
        } catch (error) {
          showError(message, error);
        }
      }),
    );
    return button;
  }

  function state(item) {
    if (!item.suspended) return badge(item.active_deployment_id ? 'running' : 'stopped', item.active_deployment_id ? 'serving' : 'not serving');
    const why = item.suspension_cause === 'owner' ? 'with its owner' : item.suspension_reason || '';
    return h('span', {}, badge('suspended'), why ? ` ${why}` : '');
  }

  async function load() {
    let page;
    try {
      page = await api.get(`/admin/apis${qs({ q, cursor, limit: 50 })}`, { signal });
    } catch (error) {
      showError(slot, error);
      return;
    }
    const next = page.next_cursor ? h('a', { class: 'btn', href: `#/admin/apis${qs({ q, cursor: page.next_cursor })}` }, 'Next page') : null;
    fill(
      slot,
      page.items.length
        ? table(
            [
              { label: 'API', render: (a) => h('span', {}, a.name, ' ', h('code', {}, a.slug)) },
              { label: 'Owner', render: (a) => a.owner_email },
              { label: 'Visibility', render: (a) => badge(a.visibility) },
              { label: 'State', render: state },
              { label: 'Created', render: (a) => fmtDate(a.created_at) },
              { label: 'Action', render: action },
            ],
            page.items,
            'APIs',
          )
        : empty(q ? `No API matches “${q}”.` : 'No APIs.'),
      next ? h('div', { class: 'actions' }, cursor ? h('a', { class: 'btn', href: `#/admin/apis${qs({ q })}` }, 'First page') : null, next) : null,
    );
  }

  await load();
}
