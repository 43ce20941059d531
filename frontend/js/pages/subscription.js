// One subscription: usage against its quotas, its keys (new, rotate, revoke), its plan.

import { api } from '../api.js';
import { badge, busy, clear, codeBlock, copyable, empty, every, field, fill, fmtDate, fmtMoney, fmtNumber, form, h, loading, notice, pageHeader, price, section, showError, table, toast } from '../dom.js';
import { navigate } from '../router.js';

const USAGE_REFRESH_MS = 10000;

export async function render({ container, params, signal }) {
  document.title = 'Subscription · Veil';
  const header = pageHeader('Subscription');
  container.append(h('p', {}, h('a', { href: '#/subscriptions' }, '← Subscriptions')), header);
  const path = `/subscriptions/${encodeURIComponent(params.id)}`;
  let sub;
  try {
    sub = await api.get(path, { signal });
  } catch (error) {
    const slot = h('div');
    container.append(slot);
    showError(slot, error);
    return;
  }
  document.title = `${sub.api_name} · Subscription · Veil`;
  header.querySelector('h1').textContent = sub.api_name;
  header.append(h('p', { class: 'meta' }, badge(sub.status), ` ${sub.plan.name} plan · ${price(sub.plan)} · since ${fmtDate(sub.created_at)}`));

  const usageSlot = h('div', { id: 'usage' }, loading());
  const keysSlot = h('div', { id: 'keys' }, loading());
  const newKeySlot = h('div');
  container.append(
    h('div', { class: 'grid' }, section('Usage this month', usageSlot), section('Call it', h('p', {}, 'Send your key in the X-API-Key header:'), codeBlock(`curl -H 'X-API-Key: <your key>' '${sub.url}'`, 'Copy example'))),
    newKeySlot,
    section('API keys', keysSlot),
  );
  if (sub.status === 'active') {
    container.append(section('Plan', await planBlock(sub, path, signal)), section('Cancel', cancelBlock(path)));
  }

  async function loadUsage() {
    try {
      const usage = await api.get(`${path}/usage`, { signal });
      drawUsage(usageSlot, usage);
    } catch (error) {
      showError(usageSlot, error);
    }
  }

  async function loadKeys() {
    try {
      const keys = (await api.get(`${path}/keys`, { signal })).items;
      drawKeys(keys);
    } catch (error) {
      showError(keysSlot, error);
    }
  }

  function showNewKey(answer, what) {
    fill(newKeySlot, 
      h(
        'section',
        { class: 'card key-once', tabindex: '-1', 'aria-labelledby': 'new-key-title' },
        h('h2', { id: 'new-key-title' }, what),
        h('p', {}, h('strong', {}, 'This key is shown only now.'), ' Copy it and keep it safe.'),
        copyable(answer.api_key, 'API key'),
      ),
    );
    newKeySlot.firstChild.focus();
  }

  function drawKeys(keys) {
    const message = h('div');
    const actions = (key) => {
      if (key.revoked_at) return badge('revoked');
      const rotate = h('button', { type: 'button', class: 'btn btn-small' }, 'Rotate');
      rotate.setAttribute('aria-label', `Rotate key ${key.prefix}`);
      rotate.addEventListener('click', () =>
        busy(rotate, 'Rotating…', async () => {
          try {
            const answer = await api.post(`/keys/${encodeURIComponent(key.id)}/rotate`, {});
            showNewKey(answer, 'Your new key (the old one no longer works)');
            await loadKeys();
          } catch (error) {
            showError(message, error);
          }
        }),
      );
      const revoke = h('button', { type: 'button', class: 'btn btn-small btn-danger' }, 'Revoke');
      revoke.setAttribute('aria-label', `Revoke key ${key.prefix}`);
      revoke.addEventListener('click', () =>
        busy(revoke, 'Revoking…', async () => {
          try {
            await api.delete(`/keys/${encodeURIComponent(key.id)}`);
            toast(`Key ${key.prefix} revoked: it stops working within a second.`);
            await loadKeys();
          } catch (error) {
            showError(message, error);
          }
        }),
      );
      return h('div', { class: 'row' }, rotate, revoke);
    };
    const create = form({
      label: 'New key',
      submit: 'Create a new key',
      busyText: 'Creating…',
      fields: [field({ label: 'Key name (optional)', name: 'name', maxlength: 60 })],
      onSubmit: async (values, element) => {
        const answer = await api.post(`${path}/keys`, { name: values.name.trim() || null });
        element.reset();
        showNewKey(answer, 'Your new key');
        await loadKeys();
      },
    });
    fill(keysSlot, 
      keys.length
        ? table(
            [
              { label: 'Key', render: (k) => h('code', {}, k.prefix.endsWith('…') ? k.prefix : `${k.prefix}…`) },
              { label: 'Name', render: (k) => k.name || '—' },
              { label: 'Created', render: (k) => fmtDate(k.created_at) },
              { label: 'Last used', render: (k) => fmtDate(k.last_used_at) },
              { label: 'Action', render: actions },
            ],
            keys,
            'API keys',
          )
        : empty('No keys.'),
      message,
      sub.status === 'active' ? create : null,
    );
  }

  await Promise.all([loadUsage(), loadKeys()]);
  every(USAGE_REFRESH_MS, loadUsage, signal);
}

function meter(label, state) {
  if (!state) return null;
  const id = `meter-${label.toLowerCase().replace(/\W+/g, '-')}`;
  if (state.quota === null || state.quota === undefined) {
    return h('div', { class: 'meter-row' }, h('strong', {}, label), h('p', {}, `${fmtNumber(state.used)} calls, no quota.`));
  }
  return h(
    'div',
    { class: 'meter-row' },
    h('label', { for: id }, h('strong', {}, label)),
    h('progress', { id, max: state.quota, value: Math.min(state.used, state.quota) }),
    h('p', { class: 'muted' }, `${fmtNumber(state.used)} of ${fmtNumber(state.quota)} used, ${fmtNumber(state.remaining)} left; resets ${fmtDate(state.resets_at)}.`),
  );
}

function drawUsage(slot, usage) {
  const quota = usage.quota || {};
  fill(slot, 
    h(
      'dl',
      { class: 'tiles' },
      [
        ['Calls this month', fmtNumber(usage.calls_this_month ?? usage.calls)],
        ['Included', fmtNumber(usage.included)],
        ['Billable', fmtNumber(usage.billable)],
        ['Amount so far', fmtMoney(usage.amount_minor, usage.currency || 'USD')],
      ].map(([label, value]) => h('div', { class: 'tile' }, h('dt', { class: 'label' }, label), h('dd', { class: 'value', style: { margin: 0 } }, value))),
    ),
    meter('Daily quota', quota.daily),
    meter('Monthly quota', quota.monthly),
  );
}

async function planBlock(sub, path, signal) {
  let plans = [];
  try {
    plans = (await api.get(`/marketplace/apis/${encodeURIComponent(sub.api_id)}`, { signal })).plans;
  } catch {
    plans = [];
  }
  const others = plans.filter((p) => p.id !== sub.plan.id);
  if (!others.length) return h('p', {}, `You are on the ${sub.plan.name} plan; this API offers no other plan.`);
  return form({
    label: 'Change plan',
    submit: 'Change plan',
    busyText: 'Changing…',
    fields: [field({ label: 'New plan', name: 'plan_id', type: 'select', options: others.map((p) => [p.id, `${p.name}: ${price(p)}`]) })],
    onSubmit: async (values) => {
      await api.post(`${path}/change-plan`, { plan_id: values.plan_id });
      toast('Plan changed: the new limits apply within a second.');
      navigate(path);
    },
  });
}

function cancelBlock(path) {
  const slot = h('div');
  const button = h('button', { type: 'button', class: 'btn btn-danger' }, 'Cancel subscription…');
  button.addEventListener('click', () => {
    const confirm = h('button', { type: 'button', class: 'btn btn-danger' }, 'Yes, cancel it');
    const keep = h('button', { type: 'button', class: 'btn' }, 'Keep it');
    const message = h('div');
    keep.addEventListener('click', () => {
      clear(slot);
      button.focus();
    });
    confirm.addEventListener('click', () =>
      busy(confirm, 'Cancelling…', async () => {
        try {
          await api.delete(path);
          toast('Subscription cancelled; its keys stop working within a second.');
          navigate('/subscriptions');
        } catch (error) {
          showError(message, error);
        }
      }),
    );
    fill(slot, notice('warning', 'Every key of this subscription stops working within a second.'), h('div', { class: 'actions' }, confirm, keep), message);
    confirm.focus();
  });
  return h('div', {}, button, slot);
}
