// Sign up and log in.

import { field, form, h, notice, pageHeader } from '../dom.js';
import { navigate } from '../router.js';
import { login as logIn, signup as signUp } from '../session.js';

function landing(user, query) {
  const next = query.get('next');
  // Only our own hash routes: never an address someone put into the link.
  if (next && next.startsWith('/') && !next.startsWith('//')) return next;
  if (user.role === 'consumer') return '/marketplace';
  return '/apis';
}

export async function login({ container, query }) {
  document.title = 'Log in · Veil';
  const page = h(
    'div',
    { class: 'card narrow' },
    pageHeader('Log in'),
    query.get('bye') ? notice('success', 'You are logged out.') : null,
    form({
      label: 'Log in',
      submit: 'Log in',
      busyText: 'Logging in…',
      fields: [
        field({ label: 'Email', name: 'email', type: 'email', required: true, autocomplete: 'username', maxlength: 254 }),
        field({ label: 'Password', name: 'password', type: 'password', required: true, autocomplete: 'current-password', maxlength: 1024 }),
      ],
      onSubmit: async (values) => {
        const user = await logIn(values.email.trim(), values.password);
        navigate(landing(user, query));
      },
    }),
    h('p', {}, 'No account yet? ', h('a', { href: '#/signup' }, 'Sign up'), '.'),
  );
  container.append(page);
}

export async function signup({ container, query }) {
  document.title = 'Sign up · Veil';
  const roles = h(
    'fieldset',
    { class: 'radio-group' },
    h('legend', {}, 'I want to'),
    h('label', { for: 'role-developer' }, h('input', { type: 'radio', name: 'role', value: 'developer', id: 'role-developer', checked: query.get('role') !== 'consumer' }), 'publish APIs (developer)'),
    h('label', { for: 'role-consumer' }, h('input', { type: 'radio', name: 'role', value: 'consumer', id: 'role-consumer', checked: query.get('role') === 'consumer' }), 'use APIs from the marketplace (consumer)'),
  );
  const page = h(
    'div',
    { class: 'card narrow' },
    pageHeader('Create your account'),
    form({
      label: 'Sign up',
      submit: 'Sign up',
      busyText: 'Creating your account…',
      fields: [
        field({ label: 'Email', name: 'email', type: 'email', required: true, autocomplete: 'email', maxlength: 254 }),
        field({
          label: 'Password',
          name: 'password',
          type: 'password',
          required: true,
          minlength: 8,
          maxlength: 1024,
          autocomplete: 'new-password',
          hint: 'At least 8 characters.',
        }),
        roles,
      ],
      onSubmit: async (values) => {
        const user = await signUp(values.email.trim(), values.password, values.role || 'developer');
        navigate(landing(user, query));
      },
    }),
    h('p', {}, 'Already have an account? ', h('a', { href: '#/login' }, 'Log in'), '.'),
  );
  container.append(page);
}
