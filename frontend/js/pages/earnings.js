// What a developer's APIs earned in a month: gross, the platform fee, net.

import { api, query as qs } from '../api.js';
import { empty, fill, fmtMoney, fmtNumber, h, loading, pageHeader, section, showError, table } from '../dom.js';

function thisMonth() {
  const now = new Date();
  return `${now.getUTCFullYear()}-${String(now.getUTCMonth() + 1).padStart(2, '0')}`;
}

export async function render({ container, signal, query }) {
  document.title = 'Earnings · Veil';
  const period = h('input', { type: 'month', id: 'earnings-period', value: query.get('period') || thisMonth(), max: thisMonth() });
  const slot = h('div', {}, loading());
  container.append(
    pageHeader('Earnings'),
    h('div', { class: 'row', style: { marginBottom: '1rem' } }, h('label', { for: 'earnings-period' }, 'Month (UTC)'), period),
    slot,
  );

  async function load() {
    fill(slot, loading());
    let data;
    try {
      data = await api.get(`/earnings${qs({ period: period.value })}`, { signal });
    } catch (error) {
      showError(slot, error);
      return;
    }
    const money = (key) => (row) => fmtMoney(row[key], row.currency);
    fill(slot, 
      section(
        'Totals',
        data.totals.length
          ? table(
              [
                { label: 'Currency', render: (t) => t.currency },
                { label: 'Invoices', render: (t) => `${fmtNumber(t.invoices)}${t.draft_invoices ? ` (${fmtNumber(t.draft_invoices)} still drafts)` : ''}` },
                { label: 'Gross', render: money('gross_minor'), class: 'num' },
                { label: 'Platform fee', render: money('fee_minor'), class: 'num' },
                { label: 'You earn', render: (t) => h('strong', {}, fmtMoney(t.net_minor, t.currency)), class: 'num' },
              ],
              data.totals,
              'Totals',
            )
          : empty('Nothing billed in this month yet.'),
        h('p', { class: 'muted' }, `Platform fee for new invoices: ${(data.fee_bps / 100).toFixed(2)} %. A running month counts its draft invoices so far.`),
      ),
      section(
        'Per API',
        data.items.length
          ? table(
              [
                { label: 'API', render: (r) => (r.api_name ? h('a', { href: `#/apis/${encodeURIComponent(r.api_id)}/stats` }, r.api_name) : 'deleted API') },
                { label: 'Invoices', render: (r) => fmtNumber(r.invoices) },
                { label: 'Gross', render: money('gross_minor'), class: 'num' },
                { label: 'Fee', render: money('fee_minor'), class: 'num' },
                { label: 'Net', render: money('net_minor'), class: 'num' },
              ],
              data.items,
              'Earnings per API',
            )
          : empty('No API of yours was billed in this month.'),
      ),
    );
  }

  period.addEventListener('change', () => {
    if (/^\d{4}-\d{2}$/.test(period.value)) load();
  });
  await load();
}
