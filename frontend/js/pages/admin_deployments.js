// Admin: every deployment with live CPU and memory; stop, restart or suspend any API;
// the platform's revenue this month.

import { api, plainWords } from '../api.js';
import { badge, busy, clear, empty, every, field, fill, fmtBytes, fmtMoney, fmtNumber, form, h, loading, notice, pageHeader, section, showError, table, toast } from '../dom.js';
import { adminTabs, keepFocus } from './admin_nav.js';

const REFRESH_MS = 5000;

export async function render({ container, signal }) {
  document.title = 'Admin · Veil';
  const slot = h('div', { id: 'admin-deployments' }, loading());
  const message = h('div');
  const suspendSlot = h('div');
  const updated = h('span', { class: 'updated' });
  const revenueSlot = h('div', {}, loading());
  container.append(
    pageHeader('Administration'),
    adminTabs('/admin'),
    section('Deployments', h('p', { class: 'muted' }, 'Everything serving or on its way, with live container usage. ', updated), message, suspendSlot, slot),
    section('Revenue this month', revenueSlot),
  );
  let inFlight = 0; // no redraw while a button works: it would lose its progress text

  const act = (button, busyText, work) =>
    busy(button, busyText, async () => {
      inFlight += 1;
      clear(message);
      try {
        await work();
      } catch (error) {
        showError(message, error);
      } finally {
        inFlight -= 1;
      }
      await load();
    });

  function askSuspend(row) {
    fill(suspendSlot, 
      h(
        'div',
        { class: 'card' },
        h('h3', {}, `Suspend ${row.api_slug}`),
        form({
          label: 'Suspend API',
          submit: 'Suspend API',
          busyText: 'Suspending…',
          fields: [field({ label: 'Reason (shown to the owner)', name: 'reason', maxlength: 500 })],
          onSubmit: async (values) => {
            await api.post(`/admin/apis/${encodeURIComponent(row.api_id)}/suspend`, values.reason ? { reason: values.reason } : {});
            toast(`${row.api_slug} suspended.`);
            clear(suspendSlot);
            await load();
          },
        }),
      ),
    );
    suspendSlot.querySelector('input').focus();
  }

  function actions(row) {
    const key = (what) => `${what}:${row.deployment_id}`;
    const stop = h('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { focusKey: key('stop') } }, 'Stop');
    stop.setAttribute('aria-label', `Stop ${row.api_slug}`);
    stop.addEventListener('click', () =>
      act(stop, 'Stopping…', async () => {
        await api.post(`/admin/apis/${encodeURIComponent(row.api_id)}/stop`, {});
        toast(`Stopping ${row.api_slug}.`);
      }),
    );
    const restart = h('button', { type: 'button', class: 'btn btn-small', dataset: { focusKey: key('restart') } }, 'Restart');
    restart.setAttribute('aria-label', `Restart ${row.api_slug}`);
    restart.addEventListener('click', () =>
      act(restart, 'Restarting…', async () => {
        await api.post(`/admin/apis/${encodeURIComponent(row.api_id)}/restart`, {});
        toast(`${row.api_slug} restarted.`);
      }),
    );
    const suspend = h('button', { type: 'button', class: 'btn btn-small', dataset: { focusKey: key('suspend') } }, 'Suspend…');
    suspend.setAttribute('aria-label', `Suspend ${row.api_slug}`);
    suspend.addEventListener('click', () => askSuspend(row));
    return h('div', { class: 'row' }, restart, stop, suspend);
  }

  function usage(row) {
    const c = row.container;
    if (!c) return h('span', { class: 'muted' }, 'no container yet');
    if (!c.running) return h('span', {}, `${c.state}${c.oom_killed ? ' (out of memory)' : ''}`);
    const memory = c.memory_limit_bytes ? `${fmtBytes(c.memory_bytes)} of ${fmtBytes(c.memory_limit_bytes)}` : fmtBytes(c.memory_bytes);
    return h('span', { class: 'usage' }, `CPU ${c.cpu_percent === null || c.cpu_percent === undefined ? '—' : `${c.cpu_percent.toFixed(1)} %`}`, h('br'), `Memory ${memory}`, h('br'), `${fmtNumber(c.pids)} processes`);
  }

  async function load() {
    if (inFlight) return;
    let data;
    try {
      data = await api.get('/admin/deployments', { signal });
    } catch (error) {
      showError(slot, error);
      return;
    }
    updated.textContent = `Sampled ${data.sampled_at ? new Date(data.sampled_at).toLocaleTimeString() : 'now'}; refreshes every ${REFRESH_MS / 1000} s.`;
    keepFocus(slot, () =>
      fill(slot, 
        data.items.length
          ? table(
              [
                { label: 'API', render: (r) => h('code', {}, r.api_slug) },
                { label: 'Owner', render: (r) => r.owner_email },
                { label: 'Version', render: (r) => `v${r.version}` },
                { label: 'Status', render: (r) => badge(r.status) },
                { label: 'Usage', render: usage },
                { label: 'Actions', render: actions },
              ],
              data.items,
              'Deployments',
            )
          : empty('Nothing is deployed.'),
      ),
    );
  }

  await load();
  every(REFRESH_MS, load, signal);
  try {
    const revenue = await api.get('/admin/revenue', { signal });
    fill(revenueSlot, 
      revenue.items.length
        ? table(
            [
              { label: 'Currency', render: (t) => t.currency },
              { label: 'Invoices', render: (t) => fmtNumber(t.invoices) },
              { label: 'Gross billed', render: (t) => fmtMoney(t.gross_minor, t.currency), class: 'num' },
              { label: 'Platform fees', render: (t) => fmtMoney(t.fee_minor, t.currency), class: 'num' },
              { label: 'Developers earn', render: (t) => fmtMoney(t.net_minor, t.currency), class: 'num' },
            ],
            revenue.items,
            'Revenue',
          )
        : empty(`Nothing billed in ${revenue.period} yet.`),
    );
  } catch (error) {
    fill(revenueSlot, notice('error', plainWords(error)));
  }
}
