// A consumer's invoices: every month, newest first, and one with its lines.

import { api } from '../api.js';
import { badge, empty, fill, fmtDate, fmtMoney, fmtNumber, h, loading, pageHeader, section, showError, table } from '../dom.js';

export async function render({ container, signal }) {
  document.title = 'Invoices · Veil';
  const slot = h('div', {}, loading());
  container.append(pageHeader('Invoices'), section('Your invoices', h('p', { class: 'muted' }, 'This month’s invoice is a draft that grows with your calls; earlier months are final.'), slot));
  let items;
  try {
    items = (await api.get('/invoices', { signal })).items;
  } catch (error) {
    showError(slot, error);
    return;
  }
  fill(slot, 
    items.length
      ? table(
          [
            { label: 'Month', render: (i) => h('a', { href: `#/invoices/${encodeURIComponent(i.id)}` }, i.period) },
            { label: 'API', render: (i) => i.api_name || 'deleted API' },
            { label: 'Status', render: (i) => badge(i.status) },
            { label: 'Total', render: (i) => fmtMoney(i.total_minor, i.currency), class: 'num' },
            { label: 'Updated', render: (i) => fmtDate(i.finalized_at || i.updated_at) },
          ],
          items,
          'Invoices',
        )
      : empty('No invoices yet: they appear once you call a subscribed API.'),
  );
}

export async function renderOne({ container, params, signal }) {
  document.title = 'Invoice · Veil';
  const header = pageHeader('Invoice');
  const slot = h('div', {}, loading());
  container.append(h('p', {}, h('a', { href: '#/invoices' }, '← Invoices')), header, slot);
  let invoice;
  try {
    invoice = await api.get(`/invoices/${encodeURIComponent(params.id)}`, { signal });
  } catch (error) {
    showError(slot, error);
    return;
  }
  header.querySelector('h1').textContent = `Invoice ${invoice.period}: ${invoice.api_name || 'deleted API'}`;
  header.append(h('p', { class: 'meta' }, badge(invoice.status), ` Total ${fmtMoney(invoice.total_minor, invoice.currency)}`));
  fill(slot, 
    section(
      'Lines',
      invoice.lines.length
        ? table(
            [
              { label: 'Plan', render: (l) => (l.kind === 'adjustment' ? `${l.plan_name} (late calls of ${l.adjusts_period})` : l.plan_name) },
              { label: 'Period', render: (l) => `${fmtDate(l.segment_start)} – ${fmtDate(l.segment_end)}` },
              { label: 'Calls', render: (l) => fmtNumber(l.calls), class: 'num' },
              { label: 'Included', render: (l) => fmtNumber(l.included), class: 'num' },
              { label: 'Billable', render: (l) => fmtNumber(l.billable), class: 'num' },
              { label: 'Price per 1,000', render: (l) => fmtMoney(l.price_per_1000_minor, l.currency), class: 'num' },
              { label: 'Amount', render: (l) => fmtMoney(l.amount_minor, l.currency), class: 'num' },
            ],
            invoice.lines,
            'Invoice lines',
          )
        : empty('No lines yet.'),
    ),
  );
}
