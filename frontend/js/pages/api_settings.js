// An API's settings: name and visibility; limits and environment; secrets; deletion.

import { api } from '../api.js';
import { badge, busy, copyable, empty, field, fill, fmtDate, form, h, loading, notice, section, showError, table, toast } from '../dom.js';
import { navigate } from '../router.js';
import { apiPath, apiShell } from './api_shell.js';

const ENV_NAME = '^[A-Za-z_][A-Za-z0-9_]*$';

export async function render(ctx) {
  const shell = await apiShell(ctx, '/settings', 'Settings');
  if (!shell) return;
  const { item, body } = shell;
  const { signal } = ctx;
  const limitsSlot = h('div', {}, loading());
  const secretsSlot = h('div', {}, loading());
  body.append(
    section('General', generalForm(item)),
    section('Limits and environment', h('p', { class: 'muted' }, 'Memory, CPU and environment apply from the next deploy; timeout and concurrency at once. Empty means the platform default.'), limitsSlot),
    section('Secrets', h('p', { class: 'muted' }, 'Environment variables whose values are stored encrypted and never shown again. A secret wins over a variable of the same name.'), secretsSlot),
    section('Delete this API', deleteBlock(item)),
  );
  try {
    const settings = await api.get(apiPath(item.id, '/settings'), { signal });
    fill(limitsSlot, limitsForm(item, settings));
  } catch (error) {
    showError(limitsSlot, error);
  }
  await drawSecrets(item, secretsSlot, signal);
}

function generalForm(item) {
  return form({
    label: 'General settings',
    submit: 'Save',
    busyText: 'Saving…',
    fields: [
      field({ label: 'Name', name: 'name', value: item.name, required: true, maxlength: 100 }),
      field({ label: 'Description', name: 'description', type: 'textarea', value: item.description, maxlength: 2000, hint: 'Shown on the marketplace page.' }),
      field({
        label: 'Visibility',
        name: 'visibility',
        type: 'select',
        value: item.visibility,
        options: [
          ['private', 'Private: only you can call it'],
          ['public', 'Public: listed in the marketplace'],
        ],
      }),
    ],
    onSubmit: async (values, element) => {
      const saved = await api.patch(apiPath(item.id), { name: values.name.trim(), description: values.description, visibility: values.visibility });
      Object.assign(item, saved);
      fill(element.status, notice('success', 'Saved.'));
      document.querySelector('#main h1').textContent = saved.name;
      const visibility = document.getElementById('api-visibility');
      if (visibility) fill(visibility, badge(saved.visibility));
    },
  });
}

function limitField(label, name, value, max, opts = {}) {
  return field({
    label,
    name,
    type: 'number',
    value: value ?? '',
    min: opts.min,
    max,
    step: opts.step || 1,
    hint: max !== undefined ? `Up to ${max}${opts.unit ? ` ${opts.unit}` : ''}.` : null,
  });
}

function envRow(name = '', value = '') {
  const row = h('div', { class: 'env-row' });
  const nameField = field({ label: 'Name', name: 'env_name', value: name, pattern: ENV_NAME, maxlength: 128, required: true });
  nameField.querySelector('input').dataset.patternHint = 'A name is letters, digits and _, not starting with a digit.';
  const remove = h('button', { type: 'button', class: 'btn btn-small btn-danger' }, 'Remove');
  remove.addEventListener('click', () => row.remove());
  row.append(nameField, field({ label: 'Value', name: 'env_value', value, maxlength: 4096 }), remove);
  return row;
}

function limitsForm(item, settings) {
  const max = settings.maximums || {};
  const rows = h('div', { class: 'env-rows' }, Object.entries(settings.env || {}).map(([k, v]) => envRow(k, v)));
  const add = h('button', { type: 'button', class: 'btn btn-small' }, 'Add variable');
  add.addEventListener('click', () => {
    const row = envRow();
    rows.append(row);
    row.querySelector('input').focus();
  });
  const env = h('fieldset', { class: 'radio-group' }, h('legend', {}, 'Environment variables'), rows, add);
  const numberOrNull = (text, parse) => (text === '' || text === undefined ? null : parse(text));
  return h(
    'div',
    {},
    form({
      label: 'Limits and environment',
      submit: 'Save limits and environment',
      busyText: 'Saving…',
      fields: h(
        'div',
        { class: 'inline-fields' },
        limitField('Memory (MB)', 'memory_mb', settings.memory_mb, max.memory_mb, { min: 32, unit: 'MB' }),
        limitField('CPUs', 'cpus', settings.cpus, max.cpus, { min: 0.05, step: 0.05 }),
        limitField('Timeout (seconds)', 'timeout_seconds', settings.timeout_seconds, max.timeout_seconds, { min: 1, step: 0.5, unit: 's' }),
        limitField('Max concurrent calls', 'max_concurrency', settings.max_concurrency, max.max_concurrency, { min: 1 }),
        limitField('Max answer size (MB)', 'max_response_mb', settings.max_response_mb, max.max_response_mb, { min: 1, unit: 'MB' }),
      ),
      extra: env,
      onSubmit: async (values, element) => {
        const envValues = {};
        for (const row of rows.querySelectorAll('.env-row')) {
          const [nameInput, valueInput] = row.querySelectorAll('input');
          envValues[nameInput.value.trim()] = valueInput.value;
        }
        await api.put(apiPath(item.id, '/settings'), {
          memory_mb: numberOrNull(values.memory_mb, Number.parseInt),
          cpus: numberOrNull(values.cpus, Number.parseFloat),
          timeout_seconds: numberOrNull(values.timeout_seconds, Number.parseFloat),
          max_concurrency: numberOrNull(values.max_concurrency, Number.parseInt),
          max_response_mb: numberOrNull(values.max_response_mb, Number.parseInt),
          env: envValues,
        });
        fill(element.status, notice('success', 'Saved. Memory, CPU and environment apply from the next deploy.'));
      },
    }),
    settings.gateway_secret ? copyable(settings.gateway_secret, 'Gateway secret') : null,
    h('p', { class: 'hint muted' }, 'Veil sends this value as the X-Veil-Gateway-Secret header and gives it to your app as VEIL_GATEWAY_SECRET, so the app can refuse calls that bypass the gateway.'),
  );
}

async function drawSecrets(item, slot, signal) {
  let secrets;
  try {
    secrets = (await api.get(apiPath(item.id, '/secrets'), { signal })).items;
  } catch (error) {
    showError(slot, error);
    return;
  }
  const message = h('div');
  const remove = (secret) => {
    const button = h('button', { type: 'button', class: 'btn btn-small btn-danger' }, 'Delete');
    button.setAttribute('aria-label', `Delete secret ${secret.name}`);
    button.addEventListener('click', () =>
      busy(button, 'Deleting…', async () => {
        try {
          await api.delete(apiPath(item.id, `/secrets/${encodeURIComponent(secret.name)}`));
          toast(`Secret ${secret.name} deleted.`);
          await drawSecrets(item, slot, signal);
        } catch (error) {
          showError(message, error);
        }
      }),
    );
    return button;
  };
  const nameField = field({ label: 'Secret name', name: 'name', required: true, pattern: ENV_NAME, maxlength: 128 });
  nameField.querySelector('input').dataset.patternHint = 'A name is letters, digits and _, not starting with a digit.';
  fill(slot, 
    secrets.length
      ? table(
          [
            { label: 'Name', render: (x) => h('code', {}, x.name) },
            { label: 'Changed', render: (x) => fmtDate(x.updated_at) },
            { label: 'Action', render: remove },
          ],
          secrets,
          'Secrets',
        )
      : empty('No secrets.'),
    message,
    h('h3', {}, 'Set a secret'),
    form({
      label: 'Set a secret',
      submit: 'Save secret',
      busyText: 'Saving…',
      fields: [nameField, field({ label: 'Secret value', name: 'value', type: 'password', required: true, maxlength: 4096, autocomplete: 'off' })],
      onSubmit: async (values) => {
        await api.put(apiPath(item.id, `/secrets/${encodeURIComponent(values.name.trim())}`), { value: values.value });
        toast(`Secret ${values.name.trim()} saved.`);
        await drawSecrets(item, slot, signal);
      },
    }),
  );
}

function deleteBlock(item) {
  const slot = h('div');
  const start = h('button', { type: 'button', class: 'btn btn-danger' }, 'Delete API…');
  start.addEventListener('click', () => {
    const confirmField = field({ label: `Type ${item.slug} to confirm`, name: 'confirm', required: true, pattern: escapeRegex(item.slug), autocomplete: 'off' });
    confirmField.querySelector('input').dataset.patternHint = `Type exactly ${item.slug}.`;
    fill(slot, 
      form({
        label: 'Delete this API',
        submit: 'Delete for good',
        busyText: 'Deleting…',
        fields: [confirmField],
        onSubmit: async () => {
          await api.delete(apiPath(item.id));
          toast(`${item.name} deleted.`);
          navigate('/apis');
        },
      }),
    );
    slot.querySelector('input').focus();
  });
  return h('div', {}, h('p', {}, 'Stops the API, removes its containers, images, versions and plans. Subscribers lose access.'), start, slot);
}

function escapeRegex(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
