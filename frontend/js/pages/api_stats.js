// An API's stats: calls and errors over time, latency percentiles, top consumers, the
// latest calls. Refreshes every few seconds while the tab is visible.

import { api, query as qs } from '../api.js';
import { barChart, barList, lineChart } from '../charts.js';
import { clear, empty, every, fill, fmtBytes, fmtDate, fmtMs, fmtNumber, fmtPercent, h, section, showError, table } from '../dom.js';
import { apiPath, apiShell } from './api_shell.js';

const REFRESH_MS = 5000;
const WINDOWS = [
  ['15m', 'Last 15 minutes', 15 * 60],
  ['1h', 'Last hour', 3600],
  ['6h', 'Last 6 hours', 6 * 3600],
  ['24h', 'Last 24 hours', 24 * 3600],
  ['7d', 'Last 7 days', 7 * 24 * 3600],
];

export async function render(ctx) {
  const shell = await apiShell(ctx, '/stats', 'Stats');
  if (!shell) return;
  const { item, body } = shell;
  const { signal, query } = ctx;

  const windowSelect = h('select', { id: 'stats-window' }, WINDOWS.map(([value, label]) => h('option', { value }, label)));
  windowSelect.value = WINDOWS.some(([v]) => v === query.get('window')) ? query.get('window') : '1h';
  const updated = h('span', { class: 'updated', id: 'stats-updated' });
  const problem = h('div');
  const tiles = h('div', { class: 'tiles', id: 'stats-tiles' });
  const traffic = h('div', { class: 'card', id: 'chart-calls' });
  const latency = h('div', { class: 'card', id: 'chart-latency' });
  const consumers = h('div', { class: 'card', id: 'top-consumers' });
  const calls = h('div', {});
  body.append(
    h('div', { class: 'row', style: { marginBottom: '1rem' } }, h('label', { for: 'stats-window' }, 'Window'), windowSelect, updated),
    problem,
    tiles,
    h('div', { class: 'grid' }, traffic, latency),
    consumers,
    section('Latest calls', calls),
  );

  async function load() {
    const seconds = WINDOWS.find(([v]) => v === windowSelect.value)[2];
    const since = new Date(Date.now() - seconds * 1000).toISOString();
    try {
      const [stats, executions] = await Promise.all([
        api.get(apiPath(item.id, `/stats${qs({ since })}`), { signal }),
        api.get(apiPath(item.id, `/executions${qs({ since, limit: 10 })}`), { signal }),
      ]);
      clear(problem);
      draw(stats, executions.items);
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
    } catch (error) {
      showError(problem, error);
    }
  }

  function draw(stats, latest) {
    const tile = (label, value, id) => h('div', { class: 'tile', dataset: { tile: id } }, h('span', { class: 'label' }, label), h('span', { class: 'value' }, value));
    const l = stats.latency_ms || {};
    fill(tiles, 
      tile('Calls', fmtNumber(stats.calls), 'calls'),
      tile('Errors (5xx)', fmtNumber(stats.errors), 'errors'),
      tile('Error rate', fmtPercent(stats.error_rate), 'error-rate'),
      tile('Client errors (4xx)', fmtNumber(stats.client_errors), 'client-errors'),
      tile('p50', fmtMs(l.p50), 'p50'),
      tile('p95', fmtMs(l.p95), 'p95'),
      tile('p99', fmtMs(l.p99), 'p99'),
      tile('Data out', fmtBytes(stats.bytes_out), 'bytes-out'),
    );
    const points = stats.series ? stats.series.points : [];
    const times = points.map((p) => new Date(p.at));
    fill(traffic, 
      barChart({
        title: 'Calls over time',
        times,
        stacks: [
          { name: 'Succeeded', cls: 'ok', values: points.map((p) => p.calls - p.errors - p.client_errors) },
          { name: 'Client errors', cls: 'client', values: points.map((p) => p.client_errors) },
          { name: 'Errors', cls: 'error', values: points.map((p) => p.errors) },
        ],
      }),
    );
    // Per point the series has the average and p95 (p50/p99 too where analytics sends
    // them); the window's p50/p95/p99 are drawn as dashed reference lines.
    const lines = [];
    for (const [key, name, cls] of [
      ['latency_p50_ms', 'p50', 'p50'],
      ['latency_p95_ms', 'p95', 'p95'],
      ['latency_p99_ms', 'p99', 'p99'],
      ['latency_avg_ms', 'average', 'avg'],
    ]) {
      if (points.some((p) => key in p)) lines.push({ name, cls, values: points.map((p) => p[key] ?? null) });
    }
    fill(latency, 
      lineChart({
        title: 'Latency over time',
        times,
        lines,
        references: [
          { name: 'window p50', cls: 'p50', value: l.p50 },
          { name: 'window p95', cls: 'p95', value: l.p95 },
          { name: 'window p99', cls: 'p99', value: l.p99 },
        ],
      }),
    );
    const top = stats.top_consumers || [];
    fill(consumers, 
      top.length
        ? barList({
            title: 'Top consumers',
            items: top.map((c) => ({
              label: c.subscription_id ? c.consumer || 'a former subscriber' : 'You (owner, unmetered)',
              value: c.calls,
              detail: `${fmtNumber(c.errors)} errors`,
            })),
          })
        : h('div', {}, h('h2', {}, 'Top consumers'), empty('No calls in this window.')),
    );
    fill(calls, 
      latest.length
        ? table(
            [
              { label: 'Time', render: (e) => fmtDate(e.started_at) },
              { label: 'Request', render: (e) => h('code', {}, `${e.method} ${e.path}`) },
              { label: 'Status', render: (e) => h('span', { class: `badge badge-${e.status_code >= 500 ? 'bad' : e.status_code >= 400 ? 'busy' : 'ok'}` }, String(e.status_code)) },
              { label: 'Latency', render: (e) => fmtMs(e.latency_ms) },
              { label: 'Version', render: (e) => (e.version ? `v${e.version}` : '—') },
            ],
            latest,
            'Latest calls',
          )
        : empty('No calls in this window.'),
    );
  }

  windowSelect.addEventListener('change', load);
  await load();
  every(REFRESH_MS, load, signal);
}
