// The admin pages' tabs.

import { h } from '../dom.js';

const TABS = [
  ['/admin', 'Deployments'],
  ['/admin/apis', 'APIs'],
  ['/admin/users', 'Users'],
  ['/admin/audit', 'Audit log'],
];

export function adminTabs(current) {
  return h(
    'nav',
    { 'aria-label': 'Admin sections' },
    h('ul', { class: 'tabs' }, TABS.map(([path, label]) => h('li', {}, h('a', { href: `#${path}`, 'aria-current': path === current ? 'page' : null }, label)))),
  );
}

/** Keep keyboard focus on "the same" button when a live table is redrawn. */
export function keepFocus(slot, redraw) {
  const active = document.activeElement;
  const key = active && slot.contains(active) ? active.dataset.focusKey : null;
  redraw();
  if (key) {
    const again = slot.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}
