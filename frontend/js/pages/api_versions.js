// Versions (each upload) with one-click deploy / rollback, and the deployment history.

import { api } from '../api.js';
import { badge, busy, clear, empty, fill, fmtBytes, fmtDate, h, loading, section, showError, table, toast } from '../dom.js';
import { navigate } from '../router.js';
import { apiPath, apiShell } from './api_shell.js';

export async function render(ctx) {
  const shell = await apiShell(ctx, '/versions', 'Versions');
  if (!shell) return;
  const { item, body } = shell;
  const { signal } = ctx;
  const versionsSlot = h('div', {}, loading());
  const historySlot = h('div', {}, loading());
  const message = h('div');
  body.append(section('Versions', h('p', { class: 'muted' }, 'Every upload is kept as an immutable version. Deploy any of them; going back to one of the newest five skips the build.'), message, versionsSlot), section('Deployments', historySlot));

  let versions;
  let deployments;
  try {
    [versions, deployments] = await Promise.all([
      api.get(apiPath(item.id, '/versions'), { signal }),
      api.get(apiPath(item.id, '/deployments'), { signal }),
    ]);
  } catch (error) {
    showError(versionsSlot, error);
    clear(historySlot);
    return;
  }
  const live = deployments.items.find((d) => d.id === item.active_deployment_id);
  const liveVersion = live ? live.version : null;

  const action = (v) => {
    if (v.version === liveVersion) return badge('running', 'live');
    const older = liveVersion !== null && v.version < liveVersion;
    const label = older ? `Roll back to v${v.version}` : `Deploy v${v.version}`;
    const button = h('button', { type: 'button', class: 'btn btn-small', dataset: { version: v.version } }, label);
    button.addEventListener('click', () =>
      busy(button, older ? 'Rolling back…' : 'Deploying…', async () => {
        clear(message);
        try {
          const started = await api.post(apiPath(item.id, '/rollback'), { version: v.version });
          toast(`${older ? 'Rolling back' : 'Deploying'} to version ${v.version}.`);
          navigate(`${apiPath(item.id)}?deployment=${encodeURIComponent(started.deployment_id)}`);
        } catch (error) {
          showError(message, error);
        }
      }),
    );
    return button;
  };

  fill(versionsSlot, 
    versions.items.length
      ? table(
          [
            { label: 'Version', render: (v) => h('strong', {}, `v${v.version}`) },
            { label: 'Uploaded', render: (v) => fmtDate(v.created_at) },
            { label: 'File', render: (v) => v.filename },
            { label: 'Runtime', render: (v) => `${v.runtime} · ${v.contract} · ${v.entry}` },
            { label: 'Size', render: (v) => `${fmtBytes(v.size_bytes)}, ${v.file_count} file${v.file_count === 1 ? '' : 's'}` },
            { label: 'SHA-256', render: (v) => h('code', { title: v.sha256 }, v.sha256.slice(0, 12)) },
            { label: 'Action', render: action },
          ],
          versions.items,
          'Versions',
        )
      : empty('No versions yet: upload code on the Overview tab.'),
  );
  fill(historySlot, 
    deployments.items.length
      ? table(
          [
            { label: 'Started', render: (d) => fmtDate(d.created_at) },
            { label: 'Version', render: (d) => `v${d.version}` },
            { label: 'Status', render: (d) => badge(d.status) },
            { label: 'Ready', render: (d) => fmtDate(d.ready_at) },
            { label: 'Error', render: (d) => d.error || '—' },
            { label: 'Log', render: (d) => h('a', { href: `#${apiPath(item.id)}?deployment=${encodeURIComponent(d.id)}` }, 'Build log') },
          ],
          deployments.items,
          'Deployments',
        )
      : empty('Nothing deployed yet.'),
  );
}
