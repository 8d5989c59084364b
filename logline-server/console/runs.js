// Runs: the filtered, paged list and a run's view (facts, gate, live trace timeline).

import { api, currentUser, query } from './api.js';
import { follow } from './sse.js';
import { h, replace, jsonBlock, when, announce, errorText } from './dom.js';

const STATUSES = ['pending', 'running', 'paused', 'completed', 'failed', 'cancelled'];
const PAGE_SIZE = 20;
const FINISHED = new Set(['completed', 'failed', 'cancelled']);

function localInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const local = new Date(d.getTime() - d.getTimezoneOffset() * 60000);
  return local.toISOString().slice(0, 16);
}

function isoOf(local) {
  if (!local) return '';
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

function statusText(status) {
  return h('span', { class: `status status-${status}` }, status);
}

/** The runs list: filters (status, workflow, created after/before) and paging. */
export function runsView(root, params) {
  const page = Math.max(1, parseInt(params.get('page') || '1', 10) || 1);
  const filters = {
    status: params.get('status') || '',
    workflow_id: params.get('workflow_id') || '',
    created_after: params.get('created_after') || '',
    created_before: params.get('created_before') || '',
  };
  const status = h('select', { id: 'f-status', name: 'status' },
    h('option', { value: '' }, 'Any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filters.status }, s)));
  const workflow = h('select', { id: 'f-workflow', name: 'workflow_id' },
    h('option', { value: '' }, 'Any workflow'));
  const after = h('input', { id: 'f-after', type: 'datetime-local', value: localInput(filters.created_after) });
  const before = h('input', { id: 'f-before', type: 'datetime-local', value: localInput(filters.created_before) });
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter runs' },
    h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), status),
    h('div', { class: 'field' }, h('label', { for: 'f-workflow' }, 'Workflow'), workflow),
    h('div', { class: 'field' }, h('label', { for: 'f-after' }, 'Created after'), after),
    h('div', { class: 'field' }, h('label', { for: 'f-before' }, 'Created before'), before),
    h('button', { type: 'submit', id: 'f-apply' }, 'Apply filters'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = '#/runs' + query({
      status: status.value,
      workflow_id: workflow.value,
      created_after: isoOf(after.value),
      created_before: isoOf(before.value),
    });
  });
  const body = h('div', { id: 'runs-body' }, h('p', { class: 'muted' }, 'Loading runs…'));
  replace(root, h('h1', {}, 'Runs'), form, body);

  const names = new Map();
  api('GET', '/workflows' + query({ limit: 100 }))
    .then((res) => {
      for (const wf of res.items) {
        names.set(wf.id, wf.name);
        workflow.append(h('option', { value: wf.id, selected: wf.id === filters.workflow_id }, wf.name));
      }
    })
    .catch(() => {});

  api('GET', '/runs' + query({ ...filters, page, limit: PAGE_SIZE }))
    .then((res) => {
      const pageLink = (p) => '#/runs' + query({ ...filters, page: p });
      const rows = res.items.map((run) => h('tr', {},
        h('td', { class: 'id' }, h('a', { href: `#/runs/${encodeURIComponent(run.id)}` }, run.id)),
        h('td', {}, names.get(run.workflow_id) || run.workflow_id),
        h('td', {}, statusText(run.status)),
        h('td', {}, when(run.created_at))));
      const table = res.items.length
        ? h('div', { class: 'scroll', role: 'region', 'aria-label': 'Runs table', tabindex: '0' },
          h('table', { id: 'runs-table' },
            h('caption', { class: 'visually-hidden' }, `Runs, page ${page}`),
            h('thead', {}, h('tr', {},
              h('th', { scope: 'col' }, 'Run'), h('th', { scope: 'col' }, 'Workflow'),
              h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Created'))),
            h('tbody', {}, rows)))
        : h('p', { id: 'runs-empty' }, 'No runs match.');
      const pager = h('nav', { class: 'pager', 'aria-label': 'Pages of runs' },
        page > 1 ? h('a', { href: pageLink(page - 1), id: 'page-prev' }, 'Previous page') : null,
        h('span', { id: 'page-now' }, `Page ${page}`),
        res.items.length === PAGE_SIZE ? h('a', { href: pageLink(page + 1), id: 'page-next' }, 'Next page') : null);
      replace(body, table, pager);
      announce(`${res.items.length} runs on page ${page}`);
    })
    .catch((err) => replace(body, h('p', { class: 'error', role: 'alert' }, errorText(err))));
  return null;
}

function eventDetails(e) {
  const p = e.payload || {};
  switch (e.kind) {
    case 'step_started':
      return [h('p', {}, `Node ${p.node_id} (${p.node_type})`)];
    case 'step_completed':
      return [h('p', {}, `Node ${p.node_id}` + (p.next ? ` → ${p.next}` : ' (last)'))];
    case 'tool_call':
      return [
        h('p', { class: 'tool' }, `Tool ${p.tool_id}` + (p.hub ? ` via ${p.hub}` : '')
          + (p.duration_ms != null ? `, ${p.duration_ms} ms` : '') + (p.error ? ' — failed' : '')),
        jsonBlock(p.input, 'Tool input'),
        jsonBlock(p.error || p.output, p.error ? 'Tool error' : 'Tool output'),
      ];
    case 'llm_call': {
      const u = p.usage || {};
      return [
        h('p', {}, `${p.provider || ''}/${p.model || ''} for ${p.agent_id || '?'} (${p.purpose || 'call'})`),
        h('p', { class: 'tokens' }, `Tokens in ${u.input_tokens ?? 0}, out ${u.output_tokens ?? 0}; cost ${Number(p.cost_cents || 0).toFixed(4)} ¢`),
        p.text ? jsonBlock(p.text, 'Model text') : null,
      ];
    }
    case 'policy_eval':
      return [jsonBlock(p, 'Policy decision')];
    default:
      return Object.keys(p).length ? [jsonBlock(p, `${e.kind} details`)] : [];
  }
}

function gatePreview(gate) {
  const s = gate.subject || {};
  if (s.tool_id) {
    return [h('p', {}, `Tool ${s.tool_id} with:`), jsonBlock(s.arguments, 'Arguments to approve')];
  }
  return [jsonBlock(s, 'What is approved')];
}

/** A run: facts, the gate with approve / deny, cancel, and the trace as it grows. */
export function runView(root, id) {
  const facts = h('section', { 'aria-labelledby': 'facts-title' }, h('h2', { id: 'facts-title' }, 'Run'));
  const gate = h('section', { id: 'gate', 'aria-live': 'polite' });
  const actions = h('div', { class: 'actions' });
  const timeline = h('ol', { class: 'timeline', id: 'timeline', 'aria-label': 'Trace' });
  const streamState = h('p', { class: 'muted', id: 'stream-state' });
  replace(root,
    h('h1', {}, 'Run ', h('span', { class: 'id' }, id)),
    facts, gate, actions,
    h('section', { 'aria-labelledby': 'trace-title' },
      h('h2', { id: 'trace-title' }, 'Trace'), streamState, timeline));

  const seen = new Set();
  let current = null;
  const isAdmin = (currentUser() || {}).role === 'admin';

  const decide = async (what, button) => {
    button.disabled = true;
    try {
      if (what === 'cancel') {
        current = await api('POST', `/runs/${encodeURIComponent(id)}/cancel`, { reason: 'cancelled in the console' });
      } else {
        current = await api('POST', `/runs/${encodeURIComponent(id)}/${what}`, { gate_id: current.pending_gate.gate_id });
      }
      announce(`Run ${what === 'approve' ? 'approved' : what === 'deny' ? 'denied' : 'cancelled'}`);
      showRun(current);
    } catch (err) {
      replace(actions, h('p', { class: 'error', role: 'alert' }, errorText(err)));
      button.disabled = false;
    }
  };

  function showRun(run) {
    current = run;
    const u = run.usage || {};
    replace(facts, h('h2', { id: 'facts-title' }, 'Run'), h('dl', { class: 'facts' },
      h('dt', {}, 'Status'), h('dd', { id: 'run-status' }, statusText(run.status)),
      h('dt', {}, 'Workflow'), h('dd', {}, h('a', { href: `#/workflows/${encodeURIComponent(run.workflow_id)}` }, run.workflow_id), ` ${run.workflow_version || ''}`),
      h('dt', {}, 'Created'), h('dd', {}, when(run.created_at)),
      h('dt', {}, 'Usage'), h('dd', {}, `${u.llm_calls ?? 0} LLM calls, ${u.tool_calls ?? 0} tool calls, tokens in ${u.input_tokens ?? 0} / out ${u.output_tokens ?? 0}, ${Number(u.cost_cents || 0).toFixed(4)} ¢`)),
    h('h3', {}, 'Input'), jsonBlock(run.input, 'Run input'),
    run.result != null ? [h('h3', {}, 'Result'), jsonBlock(run.result, 'Run result')] : null,
    run.error != null ? [h('h3', {}, 'Error'), jsonBlock(run.error, 'Run error')] : null);
    if (run.status === 'paused' && run.pending_gate) {
      const g = run.pending_gate;
      replace(gate, h('div', { class: 'card confirm' },
        h('h2', {}, 'Waiting for approval'),
        h('p', {}, g.reason || ''), gatePreview(g),
        isAdmin ? null : h('p', { class: 'muted' }, 'An admin approves or denies this run.')));
    } else {
      replace(gate);
    }
    const buttons = [];
    if (run.status === 'paused' && run.pending_gate && isAdmin) {
      const approve = h('button', { type: 'button', id: 'approve' }, 'Approve');
      const deny = h('button', { type: 'button', id: 'deny', class: 'danger' }, 'Deny');
      approve.addEventListener('click', () => decide('approve', approve));
      deny.addEventListener('click', () => decide('deny', deny));
      buttons.push(approve, deny);
    }
    if (!FINISHED.has(run.status)) {
      const cancel = h('button', { type: 'button', id: 'cancel', class: 'secondary' }, 'Cancel run');
      cancel.addEventListener('click', () => decide('cancel', cancel));
      buttons.push(cancel);
    }
    replace(actions, buttons);
  }

  const refreshRun = () => api('GET', `/runs/${encodeURIComponent(id)}`).then(showRun)
    .catch((err) => replace(facts, h('p', { class: 'error', role: 'alert' }, errorText(err))));

  const addEvent = (e) => {
    if (!e || typeof e.seq !== 'number' || seen.has(e.seq)) return;
    seen.add(e.seq);
    timeline.append(h('li', { 'data-kind': e.kind, 'data-seq': String(e.seq) },
      h('span', { class: 'kind' }, e.kind.replace(/_/g, ' ')),
      h('span', { class: 'meta' }, ` #${e.seq} · ${when(e.ts)}`),
      eventDetails(e)));
    if (/^run_/.test(e.kind)) {
      announce(`Run: ${e.kind.replace(/_/g, ' ')}`);
      refreshRun();
    }
  };

  refreshRun();
  streamState.textContent = 'Following the run live…';
  const handle = follow(`/runs/${encodeURIComponent(id)}/stream`, (msg) => {
    if (msg.event === 'error' && msg.data && !msg.data.seq) {
      streamState.textContent = `Stream error: ${msg.data.detail || msg.data.title || ''}`;
      return;
    }
    addEvent(msg.data);
  });
  handle.done
    .then(() => {
      streamState.textContent = 'The run has finished.';
      refreshRun();
    })
    .catch((err) => {
      streamState.textContent = `Live updates stopped: ${errorText(err)}`;
    });
  return () => handle.stop();
}
