// Plans and prices of an API, and who subscribes to them.

import { api } from '../api.js';
import { badge, busy, empty, field, fill, fmtDate, form, h, loading, majorText, notice, parseMoney, planLimits, price, section, showError, table, toast } from '../dom.js';
import { apiPath, apiShell } from './api_shell.js';

export async function render(ctx) {
  const shell = await apiShell(ctx, '/plans', 'Plans');
  if (!shell) return;
  const { item, body } = shell;
  const { signal } = ctx;
  const plansSlot = h('div', {}, loading());
  const formSlot = h('div');
  const subscribersSlot = h('div', {}, loading());
  body.append(
    section('Plans and prices', h('p', { class: 'muted' }, 'Consumers pick a plan when they subscribe. A plan without a price is free. Changes apply to current subscribers too.'), plansSlot),
    h('section', { class: 'card', 'aria-labelledby': 'plan-form-title' }, h('h2', { id: 'plan-form-title' }, 'New plan'), formSlot),
    section('Subscribers', subscribersSlot),
  );

  async function load() {
    try {
      const plans = (await api.get(apiPath(item.id, '/plans'), { signal })).items;
      drawPlans(plans);
    } catch (error) {
      showError(plansSlot, error);
    }
  }

  function editForm(plan) {
    const title = document.getElementById('plan-form-title');
    title.textContent = plan ? `Edit plan ${plan.name}` : 'New plan';
    fill(formSlot, planForm(item, plan, async () => {
      await load();
      editForm(null);
    }));
    if (plan) formSlot.querySelector('input').focus();
  }

  function drawPlans(plans) {
    const message = h('div');
    const actions = (plan) => {
      if (plan.archived_at) return badge('archived');
      const edit = h('button', { type: 'button', class: 'btn btn-small' }, 'Edit');
      edit.setAttribute('aria-label', `Edit plan ${plan.name}`);
      edit.addEventListener('click', () => editForm(plan));
      const remove = h('button', { type: 'button', class: 'btn btn-small btn-danger' }, 'Delete');
      remove.setAttribute('aria-label', `Delete plan ${plan.name}`);
      remove.addEventListener('click', () =>
        busy(remove, 'Deleting…', async () => {
          try {
            await api.delete(apiPath(item.id, `/plans/${encodeURIComponent(plan.id)}`));
            toast(`Plan ${plan.name} removed (archived if someone subscribes to it).`);
            await load();
          } catch (error) {
            showError(message, error);
          }
        }),
      );
      return h('div', { class: 'row' }, edit, remove);
    };
    fill(plansSlot, 
      plans.length
        ? table(
            [
              { label: 'Plan', render: (p) => h('strong', {}, p.name) },
              { label: 'Price', render: price },
              { label: 'Limits', render: planLimits },
              { label: 'Action', render: actions },
            ],
            plans,
            'Plans',
          )
        : empty(item.visibility === 'public' ? 'No plans yet: consumers cannot subscribe until you add one.' : 'No plans yet.'),
      message,
    );
  }

  editForm(null);
  await load();
  try {
    const subscribers = (await api.get(apiPath(item.id, '/subscribers'), { signal })).items;
    fill(subscribersSlot, 
      subscribers.length
        ? table(
            [
              { label: 'Consumer', render: (x) => x.consumer },
              { label: 'Plan', render: (x) => x.plan.name },
              { label: 'Status', render: (x) => badge(x.status) },
              { label: 'Since', render: (x) => fmtDate(x.created_at) },
            ],
            subscribers,
            'Subscribers',
          )
        : empty('No subscribers yet.'),
    );
  } catch (error) {
    showError(subscribersSlot, error);
  }
}

function optionalInt(text) {
  return text === '' || text === undefined ? null : Number.parseInt(text, 10);
}

function planForm(item, plan, done) {
  const currency = plan ? plan.currency : 'USD';
  const priceText = plan && plan.price_per_1000_minor ? majorText(plan.price_per_1000_minor, currency) : '';
  const priceField = field({ label: 'Price per 1,000 calls', name: 'price', value: priceText, inputmode: 'decimal', pattern: '\\d{1,15}([.,]\\d{0,3})?', hint: 'In the currency below, e.g. 0.50. Empty or 0: free.' });
  priceField.querySelector('input').dataset.patternHint = 'Enter an amount like 0.50.';
  const currencyField = field({ label: 'Currency', name: 'currency', value: currency, required: true, pattern: '[A-Z]{3}', maxlength: 3, hint: 'ISO code, e.g. USD, EUR.' });
  currencyField.querySelector('input').dataset.patternHint = 'Three capital letters, like USD.';
  const number = (label, name, value, hint) => field({ label, name, type: 'number', min: 1, step: 1, value: value ?? '', hint });
  return form({
    label: plan ? 'Edit plan' : 'New plan',
    submit: plan ? 'Save plan' : 'Add plan',
    busyText: 'Saving…',
    fields: [
      field({ label: 'Plan name', name: 'name', value: plan ? plan.name : '', required: true, maxlength: 60 }),
      h('div', { class: 'inline-fields' }, priceField, currencyField, field({ label: 'Included calls per month', name: 'included', type: 'number', min: 0, step: 1, value: plan ? plan.included_calls_per_month : 0 })),
      h(
        'div',
        { class: 'inline-fields' },
        number('Calls per second', 'rate', plan && plan.rate_per_second, 'Empty: no rate limit.'),
        number('Burst', 'burst', plan && plan.burst, 'At least the rate.'),
        number('Daily quota', 'daily', plan && plan.daily_quota, 'Empty: unlimited.'),
        number('Monthly quota', 'monthly', plan && plan.monthly_quota, 'Empty: unlimited.'),
      ),
    ],
    onSubmit: async (values, element) => {
      const minor = values.price ? parseMoney(values.price, values.currency) : 0;
      if (minor === null) {
        fill(element.status, notice('error', `The price has more decimals than ${values.currency} allows.`));
        return;
      }
      const payload = {
        name: values.name.trim(),
        price_per_1000_minor: minor,
        currency: values.currency.trim().toUpperCase(),
        included_calls_per_month: optionalInt(values.included) || 0,
        rate_per_second: optionalInt(values.rate),
        burst: optionalInt(values.burst),
        daily_quota: optionalInt(values.daily),
        monthly_quota: optionalInt(values.monthly),
      };
      if (payload.burst !== null && payload.rate_per_second === null) {
        fill(element.status, notice('error', 'A burst needs a rate: set “Calls per second” too.'));
        return;
      }
      if (plan) await api.patch(apiPath(item.id, `/plans/${encodeURIComponent(plan.id)}`), payload);
      else await api.post(apiPath(item.id, '/plans'), payload);
      toast(plan ? 'Plan saved.' : `Plan ${payload.name} added.`);
      await done();
    },
  });
}
