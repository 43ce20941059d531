// Hash routes (#/apis/abc/stats?window=1h): the server only ever serves index.html.
// Each page gets a fresh container and an AbortSignal that fires when the person
// leaves, which stops its timers and streams.

import { currentUser } from './session.js';
import { fill, h, notice } from './dom.js';

const routes = [];
let controller = null;
let renderId = 0;

/**
 * pattern: '/apis/:id/stats'; load: () => import('./pages/x.js'); opts.role: who may
 * see it ('user' any signed-in person, 'developer', 'admin'), none for everyone.
 */
export function route(pattern, load, opts = {}) {
  const keys = [];
  const regex = new RegExp(
    `^${pattern.replace(/:([a-z_]+)/g, (_, key) => {
      keys.push(key);
      return '([^/]+)';
    })}$`,
  );
  routes.push({ regex, keys, load, role: opts.role || null, exportName: opts.page || 'render' });
}

export function currentPath() {
  const hash = window.location.hash.replace(/^#/, '');
  const [path, search = ''] = (hash.startsWith('/') ? hash : '/').split('?');
  return { path, query: new URLSearchParams(search) };
}

export function navigate(path) {
  if (window.location.hash === `#${path}`) render();
  else window.location.hash = path;
}

function allowed(role, user) {
  if (!role) return true;
  if (!user) return false;
  if (role === 'user') return true;
  if (role === 'developer') return user.role === 'developer' || user.role === 'admin';
  return user.role === role;
}

export async function render() {
  const main = document.getElementById('main');
  if (controller) controller.abort();
  controller = new AbortController();
  const { signal } = controller;
  const id = ++renderId;
  const { path, query } = currentPath();
  const user = currentUser();
  let match = null;
  let found = null;
  for (const r of routes) {
    match = r.regex.exec(path);
    if (match) {
      found = r;
      break;
    }
  }
  const container = h('div', { class: 'page' });
  fill(main, container);
  if (!found) {
    document.title = 'Not found · Veil';
    container.append(h('h1', { tabindex: '-1' }, 'Page not found'), h('p', {}, 'There is no page at this address. ', h('a', { href: '#/' }, 'Go to the start page'), '.'));
    focusHeading(container);
    return;
  }
  if (!allowed(found.role, user)) {
    if (!user) {
      navigate(`/login?next=${encodeURIComponent(path + (query.toString() ? `?${query}` : ''))}`);
      return;
    }
    document.title = 'Not allowed · Veil';
    const who = found.role === 'admin' ? 'an administrator' : 'a developer';
    container.append(h('h1', { tabindex: '-1' }, 'Not available'), notice('error', `This page needs ${who} account.`));
    focusHeading(container);
    return;
  }
  const params = {};
  found.keys.forEach((key, i) => {
    params[key] = decodeURIComponent(match[i + 1]);
  });
  try {
    const module = await found.load();
    if (id !== renderId) return; // the person moved on meanwhile
    await module[found.exportName]({ container, params, query, signal, user });
  } catch (error) {
    if (error && error.name === 'AbortError') return;
    if (id !== renderId) return;
    console.warn('page failed', error);
    container.append(notice('error', 'This page could not be shown. Reload and try again.'));
  }
  if (id === renderId) focusHeading(container);
}

let firstRender = true;

function focusHeading(container) {
  // Move focus to the new page's heading so keyboard and screen-reader users start
  // there, as after a full page load; not on the first load (the browser's own start).
  if (firstRender) {
    firstRender = false;
    return;
  }
  const heading = container.querySelector('h1');
  if (heading) heading.focus({ preventScroll: false });
}

export function start() {
  window.addEventListener('hashchange', () => {
    if (window.location.hash.startsWith('#/') || window.location.hash === '') render();
  });
  return render();
}
