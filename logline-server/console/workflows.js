// Workflows: the list, one workflow's graph drawn as SVG, and starting a run with JSON input.

import { api, query } from './api.js';
import { h, replace, jsonBlock, announce, errorText } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';
const NODE_W = 150;
const NODE_H = 46;
const GAP_X = 50;
const GAP_Y = 40;

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** Layers of the graph: the entry first, then each node one layer below its earliest parent. */
export function layers(def) {
  const ids = (def.nodes || []).map((n) => n.id);
  const depth = new Map();
  const queue = [];
  if (ids.includes(def.entry)) {
    depth.set(def.entry, 0);
    queue.push(def.entry);
  }
  while (queue.length) {
    const id = queue.shift();
    for (const e of def.edges || []) {
      if (e.from === id && !depth.has(e.to)) {
        depth.set(e.to, depth.get(id) + 1);
        queue.push(e.to);
      }
    }
  }
  let last = Math.max(0, ...depth.values());
  for (const id of ids) if (!depth.has(id)) depth.set(id, ++last);
  const rows = [];
  for (const id of ids) (rows[depth.get(id)] ||= []).push(id);
  return rows.filter(Boolean);
}

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}

/** The graph as SVG: one box per node (id and type), one arrow per edge. */
export function graph(def, title) {
  const rows = layers(def);
  const types = new Map((def.nodes || []).map((n) => [n.id, n.type]));
  const widest = Math.max(1, ...rows.map((r) => r.length));
  const width = widest * (NODE_W + GAP_X) + GAP_X;
  const height = rows.length * (NODE_H + GAP_Y) + GAP_Y;
  const pos = new Map();
  rows.forEach((row, y) => row.forEach((id, x) => {
    const offset = (width - row.length * (NODE_W + GAP_X) + GAP_X) / 2;
    pos.set(id, { x: offset + x * (NODE_W + GAP_X), y: GAP_Y + y * (NODE_H + GAP_Y) });
  }));
  const root = svg('svg', {
    class: 'graph', id: 'graph', role: 'img', 'aria-labelledby': 'graph-title',
    viewBox: `0 0 ${width} ${height}`, width, height,
  });
  root.append(svg('title', { id: 'graph-title' }, title));
  const defs = svg('defs');
  const marker = svg('marker', {
    id: 'arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse',
  });
  marker.append(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', fill: '#4a5560' }));
  defs.append(marker);
  root.append(defs);
  for (const e of def.edges || []) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (!a || !b) continue;
    const line = svg('path', {
      class: 'edge', 'data-from': e.from, 'data-to': e.to, 'marker-end': 'url(#arrow)',
      d: `M ${a.x + NODE_W / 2} ${a.y + NODE_H} L ${b.x + NODE_W / 2} ${b.y}`,
    });
    root.append(line);
    if (e.route || e.condition) {
      root.append(svg('text', { x: (a.x + b.x) / 2 + NODE_W / 2 + 4, y: (a.y + NODE_H + b.y) / 2 },
        clip(e.route || e.condition, 24)));
    }
  }
  for (const [id, p] of pos) {
    const g = svg('g', { class: 'node', 'data-id': id });
    g.append(svg('rect', { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 6 }));
    g.append(svg('text', { x: p.x + 8, y: p.y + 18, 'font-weight': 700 }, clip(id, 20)));
    g.append(svg('text', { x: p.x + 8, y: p.y + 36 }, clip(types.get(id) || '', 22)));
    root.append(g);
  }
  return root;
}

/** The list of workflows the tenant can see. */
export function workflowsView(root) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading workflows…'));
  replace(root, h('h1', {}, 'Workflows'), body);
  api('GET', '/workflows' + query({ limit: 100 }))
    .then((res) => {
      if (!res.items.length) {
        replace(body, h('p', {}, 'No workflows yet.'));
        return;
      }
      replace(body, h('div', { class: 'scroll', role: 'region', 'aria-label': 'Workflows table', tabindex: '0' },
        h('table', { id: 'workflows-table' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Id'),
            h('th', { scope: 'col' }, 'Version'), h('th', { scope: 'col' }, 'Nodes'))),
          h('tbody', {}, res.items.map((wf) => h('tr', {},
            h('td', {}, h('a', { href: `#/workflows/${encodeURIComponent(wf.id)}` }, wf.name)),
            h('td', { class: 'id' }, wf.id),
            h('td', {}, wf.version),
            h('td', {}, String((wf.definition.nodes || []).length))))))));
    })
    .catch((err) => replace(body, h('p', { class: 'error', role: 'alert' }, errorText(err))));
  return null;
}

/** One workflow: its graph, its nodes and edges as text, and a form that starts a run. */
export function workflowView(root, id) {
  const body = h('div', {}, h('p', { class: 'muted' }, 'Loading the workflow…'));
  replace(root, h('h1', {}, 'Workflow'), body);
  api('GET', `/workflows/${encodeURIComponent(id)}`)
    .then((wf) => {
      const def = wf.definition || {};
      const input = h('textarea', { id: 'run-input', name: 'input', spellcheck: 'false', 'aria-describedby': 'run-input-help' }, '{}');
      const error = h('p', { class: 'error', role: 'alert', id: 'start-error' });
      const start = h('button', { type: 'submit', id: 'start-run' }, 'Start run');
      const form = h('form', { 'aria-labelledby': 'start-title' },
        h('h2', { id: 'start-title' }, 'Start a run'),
        h('div', { class: 'field' }, h('label', { for: 'run-input' }, 'Run input (JSON)'), input,
          h('p', { id: 'run-input-help', class: 'muted' }, 'A JSON value the entry node receives.')),
        start, error);
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        error.textContent = '';
        let value;
        try {
          value = JSON.parse(input.value || '{}');
        } catch (err) {
          error.textContent = `The input is not JSON: ${err.message}`;
          input.focus();
          return;
        }
        start.disabled = true;
        try {
          const run = await api('POST', `/workflows/${encodeURIComponent(id)}/runs`, { input: value });
          announce('Run started');
          location.hash = `#/runs/${encodeURIComponent(run.id)}`;
        } catch (err) {
          error.textContent = errorText(err);
          start.disabled = false;
        }
      });
      replace(root,
        h('h1', {}, wf.name),
        h('p', { class: 'muted' }, `${wf.id} · version ${wf.version}`),
        h('section', { 'aria-labelledby': 'graph-h' },
          h('h2', { id: 'graph-h' }, 'Graph'),
          h('div', { class: 'scroll', role: 'region', 'aria-label': 'Graph drawing', tabindex: '0' },
            graph(def, `Graph of ${wf.name}: ${(def.nodes || []).length} nodes, ${(def.edges || []).length} edges`)),
          h('h3', {}, 'Nodes'),
          h('ul', { id: 'node-list' }, (def.nodes || []).map((n) => h('li', {},
            `${n.id} (${n.type})${n.id === def.entry ? ', entry' : ''}`))),
          h('h3', {}, 'Edges'),
          (def.edges || []).length
            ? h('ul', { id: 'edge-list' }, def.edges.map((e) => h('li', {},
              `${e.from} → ${e.to}${e.route ? ` (route ${e.route})` : ''}${e.condition ? ` (if ${e.condition})` : ''}`)))
            : h('p', {}, 'No edges.'),
          h('details', {}, h('summary', {}, 'Definition as JSON'), jsonBlock(def, 'Workflow definition'))),
        form);
    })
    .catch((err) => replace(body, h('p', { class: 'error', role: 'alert' }, errorText(err))));
  return null;
}
