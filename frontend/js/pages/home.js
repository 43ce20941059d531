// The start page: what Veil is, and where to go next.

import { h } from '../dom.js';
import { navigate } from '../router.js';

export async function render({ container, user }) {
  document.title = 'Veil';
  if (user) {
    navigate(user.role === 'consumer' ? '/marketplace' : '/apis');
    return;
  }
  container.append(
    h(
      'div',
      { class: 'hero' },
      h('h1', { tabindex: '-1' }, 'Upload code. Get a metered API.'),
      h(
        'p',
        {},
        'Veil builds your Python, Node.js or Go code into a container, publishes it behind a gateway, ',
        'and counts every call: keys, plans, quotas and invoices included.',
      ),
      h(
        'div',
        { class: 'actions' },
        h('a', { class: 'btn btn-primary', href: '#/signup' }, 'Sign up'),
        h('a', { class: 'btn', href: '#/login' }, 'Log in'),
        h('a', { class: 'btn', href: '#/marketplace' }, 'Browse the marketplace'),
      ),
    ),
  );
}
