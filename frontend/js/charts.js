// Hand-written SVG charts: a bar chart of counts over time, a line chart of latencies,
// and a horizontal bar list. Each chart has a title and a text summary for screen
// readers, and draws with CSS classes (colours live in app.css).

import { fmtMs, fmtNumber, fmtTime, h, s } from './dom.js';

const WIDTH = 640;
const HEIGHT = 220;
const PAD = { top: 12, right: 16, bottom: 26, left: 58 };

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

function axes(svg, max, times, format) {
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  for (let i = 0; i <= 4; i += 1) {
    const y = PAD.top + plotH - (plotH * i) / 4;
    svg.append(
      s('line', { class: 'grid', x1: PAD.left, x2: WIDTH - PAD.right, y1: y, y2: y }),
      s('text', { class: 'tick', x: PAD.left - 6, y: y + 4, 'text-anchor': 'end' }, format((max * i) / 4)),
    );
  }
  if (times.length) {
    const plotW = WIDTH - PAD.left - PAD.right;
    const marks = Math.min(5, times.length);
    for (let i = 0; i < marks; i += 1) {
      const index = marks === 1 ? 0 : Math.round((i * (times.length - 1)) / (marks - 1));
      const x = PAD.left + (plotW * (index + 0.5)) / times.length;
      const anchor = marks > 1 && i === 0 ? 'start' : marks > 1 && i === marks - 1 ? 'end' : 'middle';
      const at = anchor === 'start' ? PAD.left : anchor === 'end' ? WIDTH - PAD.right : x;
      svg.append(s('text', { class: 'tick', x: at, y: HEIGHT - 6, 'text-anchor': anchor }, fmtTime(times[index])));
    }
  }
}

function frame(title, summary) {
  const id = `chart-${Math.random().toString(36).slice(2)}`;
  const svg = s(
    'svg',
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'chart', role: 'img', 'aria-labelledby': `${id}-t ${id}-d` },
    s('title', { id: `${id}-t` }, title),
    s('desc', { id: `${id}-d` }, summary),
  );
  return svg;
}

function legend(entries) {
  return h(
    'ul',
    { class: 'legend' },
    entries.map(([cls, text]) => h('li', {}, h('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), text)),
  );
}

/**
 * Stacked bars per time step. stacks: [{name, cls, values: number[]}] drawn bottom-up.
 */
export function barChart({ title, times, stacks, format = fmtNumber }) {
  const totals = times.map((_, i) => stacks.reduce((sum, st) => sum + (st.values[i] || 0), 0));
  const max = niceMax(Math.max(0, ...totals));
  const sums = stacks.map((st) => `${st.name}: ${fmtNumber(st.values.reduce((a, b) => a + (b || 0), 0))}`);
  const svg = frame(title, `${title} over ${times.length} intervals. ${sums.join(', ')}.`);
  axes(svg, max, times, (v) => format(Math.round(v)));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(1, times.length);
  const barW = Math.max(1, slot * 0.7);
  times.forEach((at, i) => {
    let base = 0;
    for (const st of stacks) {
      const value = st.values[i] || 0;
      if (value > 0) {
        const height = (plotH * value) / max;
        const y = PAD.top + plotH - ((plotH * base) / max) - height;
        svg.append(
          s(
            'rect',
            { class: `bar ${st.cls}`, x: PAD.left + i * slot + (slot - barW) / 2, y, width: barW, height, dataset: { value } },
            s('title', {}, `${fmtTime(at)}: ${fmtNumber(value)} ${st.name.toLowerCase()}`),
          ),
        );
      }
      base += value;
    }
  });
  return h('figure', { class: 'chart-figure' }, h('figcaption', {}, title), svg, legend(stacks.map((st) => [st.cls, st.name])));
}

/**
 * Lines over time (null = no data: the line breaks), plus optional horizontal
 * reference lines (e.g. the window's p50/p95/p99). lines: [{name, cls, values}],
 * references: [{name, cls, value}].
 */
function axisMs(value) {
  if (value >= 1000) return `${+(value / 1000).toFixed(1)} s`;
  return `${+value.toFixed(value < 10 ? 1 : 0)} ms`;
}

export function lineChart({ title, times, lines, references = [], format = fmtMs, axisFormat = axisMs }) {
  const values = lines.flatMap((l) => l.values).concat(references.map((r) => r.value));
  const max = niceMax(Math.max(0, ...values.filter((v) => v !== null && v !== undefined)));
  const described = references
    .filter((r) => r.value !== null && r.value !== undefined)
    .map((r) => `${r.name} ${format(r.value)}`);
  const svg = frame(title, `${title}. ${described.join(', ') || 'No calls in this window.'}`);
  axes(svg, max, times, axisFormat);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (plotW * (i + 0.5)) / Math.max(1, times.length);
  const y = (v) => PAD.top + plotH - (plotH * v) / max;
  for (const ref of references) {
    if (ref.value === null || ref.value === undefined) continue;
    svg.append(
      s('line', { class: `ref ${ref.cls}`, x1: PAD.left, x2: WIDTH - PAD.right, y1: y(ref.value), y2: y(ref.value) }, s('title', {}, `${ref.name}: ${format(ref.value)}`)),
    );
  }
  for (const line of lines) {
    let path = '';
    let pen = false;
    line.values.forEach((v, i) => {
      if (v === null || v === undefined) {
        pen = false;
        return;
      }
      path += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
    });
    if (path) svg.append(s('path', { class: `line ${line.cls}`, d: path }));
    line.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      svg.append(s('circle', { class: `dot ${line.cls}`, cx: x(i), cy: y(v), r: 2.5 }, s('title', {}, `${fmtTime(times[i])}: ${line.name} ${format(v)}`)));
    });
  }
  const entries = lines.map((l) => [l.cls, l.name]).concat(references.map((r) => [`ref ${r.cls}`, r.name]));
  return h('figure', { class: 'chart-figure' }, h('figcaption', {}, title), svg, legend(entries));
}

/** Horizontal bars: items [{label, value, detail}] — e.g. top consumers. */
export function barList({ title, items, format = fmtNumber }) {
  const max = Math.max(1, ...items.map((i) => i.value));
  return h(
    'figure',
    { class: 'chart-figure' },
    h('figcaption', {}, title),
    h(
      'ol',
      { class: 'bar-list' },
      items.map((item) =>
        h(
          'li',
          {},
          h('span', { class: 'bar-label' }, item.label),
          h('span', { class: 'bar-track', 'aria-hidden': 'true' }, h('span', { class: 'bar-fill', style: { width: `${(100 * item.value) / max}%` } })),
          h('span', { class: 'bar-value' }, format(item.value), item.detail ? ` · ${item.detail}` : ''),
        ),
      ),
    ),
  );
}
