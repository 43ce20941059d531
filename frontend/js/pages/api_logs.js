// Runtime logs of the running container: the tail, followed live while the box is ticked.

import { api, query as qs } from '../api.js';
import { clear, every, fill, h, notice, section, showError } from '../dom.js';
import { apiPath, apiShell } from './api_shell.js';

const FOLLOW_MS = 2000;

export async function render(ctx) {
  const shell = await apiShell(ctx, '/logs', 'Runtime logs');
  if (!shell) return;
  const { item, body } = shell;
  const { signal } = ctx;

  const tail = h('select', { id: 'log-tail', name: 'tail' }, [100, 200, 500, 2000].map((n) => h('option', { value: n }, `last ${n} lines`)));
  tail.value = '200';
  const followBox = h('input', { type: 'checkbox', id: 'log-follow', checked: true });
  const refresh = h('button', { type: 'button', class: 'btn btn-small' }, 'Refresh now');
  const updated = h('span', { class: 'updated', role: 'status' });
  const problem = h('div');
  const log = h('pre', { class: 'log', id: 'runtime-log', role: 'log', 'aria-label': 'Runtime log', tabindex: '0' });

  let last = null;
  async function load() {
    try {
      const answer = await api.get(apiPath(item.id, `/logs${qs({ tail: tail.value })}`), { signal });
      clear(problem);
      if (answer.logs !== last) {
        const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
        log.textContent = answer.logs;
        last = answer.logs;
        if (atBottom || log.scrollTop === 0) log.scrollTop = log.scrollHeight;
      }
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (error && error.code === 'not_running') {
        followBox.checked = false; // nothing to follow until it runs again
        fill(problem, notice('info', 'This API has no running container, so there are no runtime logs. Deploy or start it first, then press “Refresh now”.'));
      } else {
        showError(problem, error);
      }
    }
  }

  refresh.addEventListener('click', load);
  tail.addEventListener('change', load);
  body.append(
    section(
      'Runtime logs',
      h('p', { class: 'muted' }, 'What your app writes to stdout and stderr.'),
      h(
        'div',
        { class: 'row' },
        h('label', { for: 'log-tail' }, 'Show'),
        tail,
        h('label', { for: 'log-follow', class: 'row' }, followBox, 'Follow live'),
        refresh,
        updated,
      ),
      problem,
      log,
    ),
  );
  await load();
  every(FOLLOW_MS, async () => {
    if (followBox.checked) await load();
  }, signal);
}
