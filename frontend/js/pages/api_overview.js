// One API: its status and controls, uploading code, deploying with the live build log.

import { api, plainWords, stream, upload } from '../api.js';
import { badge, busy, clear, every, fill, fmtBytes, fmtDate, h, notice, showError, toast } from '../dom.js';
import { apiPath, apiShell, statusWord } from './api_shell.js';

const STEPS = ['queued', 'building', 'starting', 'running'];
const IN_PROGRESS = new Set(['queued', 'building', 'starting']);
const ACCEPT = '.zip,.tar.gz,.tgz,.tar,.py,.js,.go';

// How the container last died, and how often it was restarted: an OOM kill or a
// crash must not hide behind a status that says "running" again.
function lastExit(status) {
  const last = status.last_exit;
  if (!last) return null;
  const why = last.oom_killed
    ? 'it ran out of memory and was killed'
    : last.exit_code !== null ? `it exited with code ${last.exit_code}` : last.description;
  const when = last.at ? ` at ${fmtDate(last.at)}` : '';
  const restarts = status.restart_count ? ` Restarted ${status.restart_count} time${status.restart_count === 1 ? '' : 's'}.` : '';
  return h('p', { class: 'muted last-exit' }, `Last stop: ${why}${when}.${restarts}`);
}

export async function render(ctx) {
  const shell = await apiShell(ctx, '', 'Overview');
  if (!shell) return;
  const { item, body, statusSlot } = shell;
  const { signal, query } = ctx;

  const state = { status: null, following: null };
  const statusCard = h('section', { class: 'card', 'aria-labelledby': 'status-title' });
  const buildCard = buildLogCard();
  body.append(h('div', { class: 'grid' }, statusCard, uploadCard(item, signal, onUploaded)), buildCard.element);

  async function refreshStatus() {
    const status = await api.get(apiPath(item.id, '/status'), { signal });
    state.status = status;
    fill(statusSlot, badge(item.suspended ? 'suspended' : statusWord(status)));
    drawStatus();
    if (IN_PROGRESS.has(status.status) && status.deployment_id && state.following !== status.deployment_id) {
      follow(status.deployment_id);
    }
  }

  function follow(deploymentId) {
    state.following = deploymentId;
    buildCard.follow(item, deploymentId, signal, () => refreshStatus().catch(() => {}));
  }

  let drawn = '';

  function drawStatus() {
    const status = state.status;
    const word = statusWord(status);
    // Redraw only when something changed, so that focus stays on a button.
    const key = JSON.stringify([word, status.version, status.error, status.ready_at, status.restart_count, status.last_exit]);
    if (key === drawn) return;
    drawn = key;
    const actions = h('div', { class: 'actions' });
    const message = h('div');
    const deployButton = h('button', { type: 'button', class: 'btn btn-primary', id: 'deploy' }, 'Deploy latest version');
    deployButton.addEventListener('click', () =>
      busy(deployButton, 'Deploying…', async () => {
        clear(message);
        try {
          const started = await api.post(apiPath(item.id, '/deploy'), {});
          toast(`Deploying version ${started.version}.`);
          follow(started.deployment_id);
          await refreshStatus();
        } catch (error) {
          showError(message, error);
        }
      }),
    );
    actions.append(deployButton);
    const control = (label, busyText, path, done) => {
      const button = h('button', { type: 'button', class: 'btn' }, label);
      button.addEventListener('click', () =>
        busy(button, busyText, async () => {
          clear(message);
          try {
            const answer = await api.post(apiPath(item.id, path), {});
            toast(done);
            if (answer && answer.deployment_id && path === '/start') follow(answer.deployment_id);
            await refreshStatus();
          } catch (error) {
            showError(message, error);
          }
        }),
      );
      return button;
    };
    if (status.status === 'running') {
      actions.append(control('Restart', 'Restarting…', '/restart', 'Restarted.'), control('Stop', 'Stopping…', '/stop', 'Stopping the API.'));
    } else if (['stopped', 'crash-looping'].includes(status.status)) {
      actions.append(control('Start', 'Starting…', '/start', 'Starting the API.'));
    }
    fill(statusCard, 
      h('h2', { id: 'status-title' }, 'Status'),
      h('p', { class: 'status-line' }, badge(item.suspended ? 'suspended' : word), status.version ? ` version ${status.version}` : ''),
      status.status === 'not_deployed' ? h('p', { class: 'muted' }, 'Upload your code, then deploy it.') : null,
      status.ready_at ? h('p', { class: 'muted' }, `Serving since ${fmtDate(status.ready_at)}.`) : null,
      status.error ? notice('error', status.error) : null,
      lastExit(status),
      status.status === 'running' ? h('p', {}, 'Call it at ', h('code', {}, status.url)) : null,
      actions,
      message,
    );
  }

  function onUploaded(version) {
    toast(`Version ${version.version} uploaded.`);
  }

  try {
    await refreshStatus();
  } catch (error) {
    showError(statusCard, error);
  }
  const asked = query.get('deployment');
  if (asked && state.following !== asked) follow(asked);
  every(3000, refreshStatus, signal);
}

function uploadCard(item, signal, onUploaded) {
  const result = h('div', { class: 'upload-result', 'aria-live': 'polite' });
  const progress = h('progress', { max: 100, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const input = h('input', { type: 'file', id: 'upload-file', name: 'file', accept: ACCEPT, 'aria-describedby': 'upload-hint' });
  const zone = h(
    'label',
    { class: 'dropzone', for: 'upload-file', id: 'dropzone' },
    h('strong', {}, 'Drop a file here, or choose one'),
    h('span', { class: 'hint', id: 'upload-hint' }, ' A .zip, .tar.gz or a single .py, .js or .go file. Each upload is a new version.'),
    input,
  );

  async function send(file) {
    clear(result);
    if (!file) return;
    progress.hidden = false;
    progress.value = 0;
    result.append(h('p', { role: 'status' }, `Uploading ${file.name} (${fmtBytes(file.size)})…`));
    try {
      const version = await upload(apiPath(item.id, '/upload'), file, (share) => {
        progress.value = Math.round(share * 100);
      }, signal);
      fill(result, 
        notice('success', `Version ${version.version} uploaded: ${version.runtime} (${version.contract}), entry ${version.entry}, ${version.file_count} file${version.file_count === 1 ? '' : 's'}. Deploy it to make it live.`),
      );
      onUploaded(version);
    } catch (error) {
      if (error && error.name === 'AbortError') return;
      fill(result, notice('error', plainWords(error)));
    } finally {
      progress.hidden = true;
      input.value = '';
    }
  }

  input.addEventListener('change', () => send(input.files[0]));
  for (const name of ['dragenter', 'dragover']) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add('dragging');
    });
  }
  for (const name of ['dragleave', 'drop']) {
    zone.addEventListener(name, () => zone.classList.remove('dragging'));
  }
  zone.addEventListener('drop', (event) => {
    event.preventDefault();
    const files = event.dataTransfer ? event.dataTransfer.files : null;
    if (!files || files.length !== 1) {
      fill(result, notice('error', 'Drop exactly one file: an archive or a single source file.'));
      return;
    }
    send(files[0]);
  });

  return h('section', { class: 'card', 'aria-labelledby': 'upload-title' }, h('h2', { id: 'upload-title' }, 'Upload code'), zone, progress, result);
}

function buildLogCard() {
  const steps = h('ol', { class: 'steps', 'aria-label': 'Deploy progress' }, STEPS.map((step) => h('li', { dataset: { step } }, step)));
  const summary = h('p', { class: 'muted', role: 'status', id: 'build-summary' }, 'No deploy running. Press “Deploy latest version” to build and start your code.');
  const log = h('pre', { class: 'log', id: 'build-log', role: 'log', 'aria-label': 'Build log', tabindex: '0' });
  const outcome = h('div');
  const element = h('section', { class: 'card', 'aria-labelledby': 'build-title' }, h('h2', { id: 'build-title' }, 'Build log'), steps, summary, log, outcome);
  let controller = null;

  function mark(status) {
    const at = STEPS.indexOf(status);
    if (at >= 0) steps.dataset.last = status;
    const reached = STEPS.indexOf(steps.dataset.last || 'queued');
    for (const li of steps.children) {
      const i = STEPS.indexOf(li.dataset.step);
      let cls = '';
      if (status === 'failed') cls = i < reached ? 'done' : i === reached ? 'failed' : '';
      else if (status === 'running') cls = 'done';
      else if (at >= 0) cls = i < at ? 'done' : i === at ? 'current' : '';
      else continue; // stopped, superseded: leave the steps as they were
      li.className = cls;
    }
  }

  function follow(item, deploymentId, pageSignal, onEnd) {
    if (controller) controller.abort();
    controller = new AbortController();
    const signal = controller.signal;
    pageSignal.addEventListener('abort', () => controller.abort());
    clear(log);
    clear(outcome);
    delete steps.dataset.last;
    mark('queued');
    let lines = 0;
    summary.textContent = 'Waiting for a build worker…';
    const path = apiPath(item.id, `/deployments/${encodeURIComponent(deploymentId)}/events`);
    const stick = () => {
      log.scrollTop = log.scrollHeight;
    };
    stream(
      path,
      (name, data) => {
        if (name === 'status') {
          mark(data.status);
          summary.textContent = `${capital(data.status)}…`;
        } else if (name === 'log') {
          lines += 1;
          const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
          log.append(document.createTextNode(`${data.line}\n`));
          if (atBottom) stick();
          if (steps.dataset.last === 'building' || !steps.dataset.last) summary.textContent = `Building… ${lines} line${lines === 1 ? '' : 's'} of output`;
        } else if (name === 'end') {
          mark(data.status);
          summary.textContent = data.status === 'running' ? 'Deployed.' : `Finished: ${data.status}.`;
          if (data.status === 'running') outcome.append(notice('success', `Deployed and running at ${item.url}`));
          else if (data.error) outcome.append(notice('error', data.error));
          stick();
          onEnd();
        }
      },
      signal,
    ).catch((error) => {
      if (error && error.name === 'AbortError') return;
      summary.textContent = 'The live log was interrupted.';
      outcome.append(notice('error', plainWords(error)));
    });
  }

  return { element, follow };
}

function capital(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : text;
}
