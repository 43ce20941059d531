// Browse and search the public APIs.

import { api, query as qs } from '../api.js';
import { badge, empty, field, fill, fmtMoney, h, loading, pageHeader, showError } from '../dom.js';
import { navigate } from '../router.js';

const PAGE = 24;

export async function render({ container, signal, query }) {
  document.title = 'Marketplace · Veil';
  const q = query.get('q') || '';
  const offset = Math.max(0, Number.parseInt(query.get('offset') || '0', 10) || 0);
  const search = field({ label: 'Search APIs', name: 'q', type: 'search', value: q, maxlength: 100, id: 'market-search' });
  const searchForm = h('form', { class: 'search-form', role: 'search' }, search, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Search'));
  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = searchForm.querySelector('input').value.trim();
    navigate(`/marketplace${qs({ q: value })}`);
  });
  const results = h('div', {}, loading());
  container.append(pageHeader('Marketplace'), searchForm, results);

  let page;
  try {
    page = await api.get(`/marketplace/apis${qs({ q, limit: PAGE, offset })}`, { signal, auth: false });
  } catch (error) {
    showError(results, error);
    return;
  }
  if (!page.items.length) {
    fill(results, empty(q ? `No public API matches “${q}”.` : 'No public APIs yet.'));
    return;
  }
  const from = page.offset + 1;
  const to = page.offset + page.items.length;
  const pager = h('div', { class: 'actions' });
  if (page.offset > 0) pager.append(h('a', { class: 'btn', href: `#/marketplace${qs({ q, offset: Math.max(0, page.offset - PAGE) || null })}` }, 'Previous'));
  if (to < page.total) pager.append(h('a', { class: 'btn', href: `#/marketplace${qs({ q, offset: to })}` }, 'Next'));
  fill(results, 
    h('p', { class: 'muted', role: 'status' }, `${from}–${to} of ${page.total} API${page.total === 1 ? '' : 's'}${q ? ` matching “${q}”` : ''}`),
    h(
      'ul',
      { class: 'cards' },
      page.items.map((item) =>
        h(
          'li',
          {},
          h(
            'article',
            { class: 'card api-card' },
            h('h2', {}, h('a', { href: `#/marketplace/${encodeURIComponent(item.id)}` }, item.name)),
            h('div', { class: 'row' }, badge(item.running ? 'running' : 'stopped', item.running ? 'online' : 'offline'), item.has_free_plan ? badge('public', 'free plan') : null),
            h('p', {}, item.description || 'No description.'),
            h('p', { class: 'muted' }, `by ${item.owner} · `, item.lowest_price && item.lowest_price.price_per_1000_minor > 0 ? `from ${fmtMoney(item.lowest_price.price_per_1000_minor, item.lowest_price.currency)} per 1,000 calls` : `${item.plan_count} plan${item.plan_count === 1 ? '' : 's'}`),
          ),
        ),
      ),
    ),
    pager,
  );
}
