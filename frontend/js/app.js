// Start-up: restore the session, draw the navigation for this person, route.

import { fill, h } from './dom.js';
import { currentPath, navigate, render, route, start } from './router.js';
import { currentUser, logout, onUserChange, restore } from './session.js';

const page = (name) => () => import(`./pages/${name}.js`);

route('/', page('home'));
route('/login', page('auth'), { page: 'login' });
route('/signup', page('auth'), { page: 'signup' });

route('/apis', page('apis'), { role: 'developer' });
route('/apis/:id', page('api_overview'), { role: 'developer' });
route('/apis/:id/logs', page('api_logs'), { role: 'developer' });
route('/apis/:id/versions', page('api_versions'), { role: 'developer' });
route('/apis/:id/settings', page('api_settings'), { role: 'developer' });
route('/apis/:id/plans', page('api_plans'), { role: 'developer' });
route('/apis/:id/stats', page('api_stats'), { role: 'developer' });
route('/earnings', page('earnings'), { role: 'developer' });

route('/marketplace', page('marketplace'));
route('/marketplace/:id', page('marketplace_api'));

route('/subscriptions', page('subscriptions'), { role: 'user' });
route('/subscriptions/:id', page('subscription'), { role: 'user' });
route('/invoices', page('invoices'), { role: 'user' });
route('/invoices/:id', page('invoices'), { role: 'user', page: 'renderOne' });

route('/admin', page('admin_deployments'), { role: 'admin' });
route('/admin/apis', page('admin_apis'), { role: 'admin' });
route('/admin/users', page('admin_users'), { role: 'admin' });
route('/admin/audit', page('admin_audit'), { role: 'admin' });

function links(user) {
  const items = [];
  if (user && (user.role === 'developer' || user.role === 'admin')) {
    items.push(['#/apis', 'My APIs'], ['#/earnings', 'Earnings']);
  }
  items.push(['#/marketplace', 'Marketplace']);
  if (user) items.push(['#/subscriptions', 'Subscriptions'], ['#/invoices', 'Invoices']);
  if (user && user.role === 'admin') items.push(['#/admin', 'Admin']);
  return items;
}

function drawNav() {
  const nav = document.getElementById('main-nav');
  const user = currentUser();
  const { path } = currentPath();
  const list = h(
    'ul',
    {},
    links(user).map(([href, text]) => {
      const target = href.slice(1);
      const current = path === target || path.startsWith(`${target}/`);
      return h('li', {}, h('a', { href, 'aria-current': current ? 'page' : null }, text));
    }),
  );
  const account = h('div', { class: 'account' });
  if (user) {
    const out = h('button', { type: 'button', class: 'btn btn-small', id: 'logout' }, 'Log out');
    out.addEventListener('click', async () => {
      out.disabled = true;
      await logout();
      navigate('/login?bye=1');
    });
    account.append(h('span', { class: 'who', title: user.email }, h('span', { class: 'visually-hidden' }, 'Signed in as '), user.email, ' ', h('span', { class: 'role' }, `(${user.role})`)), out);
  } else {
    account.append(h('a', { href: '#/login', class: 'btn btn-small' }, 'Log in'), h('a', { href: '#/signup', class: 'btn btn-small btn-primary' }, 'Sign up'));
  }
  fill(nav, list, account);
}

function setUpMenu() {
  const toggle = document.getElementById('menu-toggle');
  const nav = document.getElementById('main-nav');
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    nav.classList.toggle('open', open);
  });
  window.addEventListener('hashchange', () => {
    toggle.setAttribute('aria-expanded', 'false');
    nav.classList.remove('open');
  });
  // The skip link must not change the hash: the hash is the route.
  document.getElementById('skip-link').addEventListener('click', (event) => {
    event.preventDefault();
    const heading = document.querySelector('#main h1');
    (heading || document.getElementById('main')).focus();
  });
}

async function boot() {
  setUpMenu();
  await restore();
  drawNav();
  onUserChange(() => {
    drawNav();
    // Signed out (or the session ended): leave pages that need an account.
    if (!currentUser()) render();
  });
  window.addEventListener('hashchange', drawNav);
  await start();
}

boot();
