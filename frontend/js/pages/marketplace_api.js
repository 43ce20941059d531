// One API in the marketplace: description, example request, plans; subscribing, and the
// key that is shown this once.

import { api, hasSession } from '../api.js';
import { badge, busy, clear, codeBlock, copyable, empty, fill, h, notice, pageHeader, planLimits, price, section, showError, table } from '../dom.js';
import { currentUser } from '../session.js';

export async function render({ container, params, signal }) {
  document.title = 'API · Marketplace · Veil';
  const header = pageHeader('API');
  container.append(h('p', {}, h('a', { href: '#/marketplace' }, '← Marketplace')), header);
  let item;
  try {
    item = await api.get(`/marketplace/apis/${encodeURIComponent(params.id)}`, { signal, auth: hasSession() });
  } catch (error) {
    const slot = h('div');
    container.append(slot);
    showError(slot, error);
    return;
  }
  document.title = `${item.name} · Marketplace · Veil`;
  header.querySelector('h1').textContent = item.name;
  header.append(h('p', { class: 'meta' }, badge(item.running ? 'running' : 'stopped', item.running ? 'online' : 'offline'), ` by ${item.owner}`));

  const keySlot = h('div', { id: 'key-slot' });
  const message = h('div');
  const user = currentUser();
  const subscribeButton = (plan) => {
    if (!user) return h('a', { class: 'btn btn-small', href: `#/login?next=${encodeURIComponent(`/marketplace/${item.id}`)}` }, 'Log in to subscribe');
    const button = h('button', { type: 'button', class: 'btn btn-primary btn-small', dataset: { plan: plan.id } }, 'Subscribe');
    button.setAttribute('aria-label', `Subscribe to the ${plan.name} plan`);
    button.addEventListener('click', () =>
      busy(button, 'Subscribing…', async () => {
        clear(message);
        try {
          const answer = await api.post(`/marketplace/apis/${encodeURIComponent(item.id)}/subscribe`, { plan_id: plan.id });
          showKey(keySlot, answer);
        } catch (error) {
          showError(message, error);
        }
      }),
    );
    return button;
  };

  container.append(
    keySlot,
    section('About', h('p', { class: 'description' }, item.description || 'No description.'), h('p', {}, 'Address: ', h('code', {}, item.url))),
    section('Example request', codeBlock(item.example_request, 'Copy example')),
    section(
      'Plans',
      item.plans.length
        ? table(
            [
              { label: 'Plan', render: (p) => h('strong', {}, p.name) },
              { label: 'Price', render: price },
              { label: 'Limits', render: planLimits },
              { label: 'Action', render: subscribeButton },
            ],
            item.plans,
            'Plans',
          )
        : empty('This API has no plans yet, so nobody can subscribe.'),
      message,
    ),
  );
}

function showKey(slot, answer) {
  const sub = answer.subscription;
  const card = h(
    'section',
    { class: 'card key-once', 'aria-labelledby': 'key-title', tabindex: '-1' },
    h('h2', { id: 'key-title' }, 'Your API key'),
    notice('success', `Subscribed to ${sub.api_name} on the ${sub.plan.name} plan.`),
    h('p', {}, h('strong', {}, 'This key is shown only now.'), ' Copy it and keep it somewhere safe: Veil keeps only a hash of it. You can make a new key later on the subscription page.'),
    copyable(answer.api_key, 'API key'),
    h('h3', {}, 'Call the API with it'),
    codeBlock(`curl -H 'X-API-Key: ${answer.api_key}' '${sub.url}'`, 'Copy command'),
    h('p', {}, h('a', { href: `#/subscriptions/${encodeURIComponent(sub.id)}` }, 'Go to this subscription'), ' to see usage, quotas and keys.'),
  );
  fill(slot, card);
  card.focus();
}
