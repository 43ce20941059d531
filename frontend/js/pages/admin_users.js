// Admin: every account, searchable; suspend or unsuspend a user.

import { api, query as qs } from '../api.js';
import { badge, busy, clear, empty, field, fill, fmtDate, fmtNumber, h, loading, pageHeader, section, showError, table, toast } from '../dom.js';
import { navigate } from '../router.js';
import { adminTabs } from './admin_nav.js';

export async function render({ container, signal, query }) {
  document.title = 'Users · Admin · Veil';
  const q = query.get('q') || '';
  const cursor = query.get('cursor') || '';
  const search = field({ label: 'Search by email', name: 'q', type: 'search', value: q, maxlength: 254, id: 'user-search' });
  const searchForm = h('form', { class: 'search-form', role: 'search' }, search, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Search'));
  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    navigate(`/admin/users${qs({ q: searchForm.querySelector('input').value.trim() })}`);
  });
  const slot = h('div', {}, loading());
  const message = h('div');
  container.append(pageHeader('Administration'), adminTabs('/admin/users'), section('Users', searchForm, message, slot));

  async function load() {
    let page;
    try {
      page = await api.get(`/admin/users${qs({ q, cursor, limit: 50 })}`, { signal });
    } catch (error) {
      showError(slot, error);
      return;
    }
    const toggle = (user) => {
      if (user.role === 'admin') return h('span', { class: 'muted' }, 'admin');
      const suspended = Boolean(user.suspended);
      const button = h('button', { type: 'button', class: `btn btn-small${suspended ? '' : ' btn-danger'}` }, suspended ? 'Unsuspend' : 'Suspend');
      button.setAttribute('aria-label', `${suspended ? 'Unsuspend' : 'Suspend'} ${user.email}`);
      button.addEventListener('click', () =>
        busy(button, suspended ? 'Unsuspending…' : 'Suspending…', async () => {
          clear(message);
          try {
            await api.post(`/admin/users/${encodeURIComponent(user.id)}/${suspended ? 'unsuspend' : 'suspend'}`, {});
            toast(`${user.email} ${suspended ? 'unsuspended' : 'suspended'}.`);
            await load();
          } catch (error) {
            showError(message, error);
          }
        }),
      );
      return button;
    };
    const next = page.next_cursor ? h('a', { class: 'btn', href: `#/admin/users${qs({ q, cursor: page.next_cursor })}` }, 'Next page') : null;
    fill(slot, 
      page.items.length
        ? table(
            [
              { label: 'Email', render: (u) => u.email },
              { label: 'Role', render: (u) => u.role },
              { label: 'Status', render: (u) => h('span', {}, badge(u.suspended ? 'suspended' : 'active'), u.suspended && u.suspension_reason ? ` ${u.suspension_reason}` : '') },
              { label: 'APIs', render: (u) => fmtNumber(u.api_count ?? u.apis ?? 0) },
              { label: 'Joined', render: (u) => fmtDate(u.created_at) },
              { label: 'Action', render: toggle },
            ],
            page.items,
            'Users',
          )
        : empty(q ? `No user matches “${q}”.` : 'No users.'),
      next ? h('div', { class: 'actions' }, cursor ? h('a', { class: 'btn', href: `#/admin/users${qs({ q })}` }, 'First page') : null, next) : null,
    );
  }

  await load();
}
