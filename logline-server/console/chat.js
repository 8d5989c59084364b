// Chat: conversations, messages, a turn's live progress (router, tools, tool calls, the
// answer as it streams), confirmation cards, attachments and artifact downloads.

import { api, blob, upload, query } from './api.js';
import { follow } from './sse.js';
import { h, replace, jsonBlock, when, announce, errorText } from './dom.js';

function text(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** The router's decision in a few words (its intent and whether it needs tools). */
function routerSummary(decision) {
  if (!decision || typeof decision !== 'object') return text(decision);
  const parts = [];
  if (decision.intent) parts.push(String(decision.intent));
  if (decision.needs_tools !== undefined) parts.push(decision.needs_tools ? 'needs tools' : 'no tools');
  if (decision.requires_confirmation) parts.push('asks for confirmation');
  return parts.length ? parts.join(', ') : text(decision);
}

async function download(artifact, button) {
  button.disabled = true;
  try {
    const data = await blob(`/artifacts/${encodeURIComponent(artifact.id)}/content`);
    const url = URL.createObjectURL(data);
    const a = h('a', { href: url, download: artifact.name || 'download' });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    announce(`Download failed: ${errorText(err)}`);
  } finally {
    button.disabled = false;
  }
}

function artifactList(artifacts) {
  if (!artifacts || !artifacts.length) return null;
  return h('ul', { class: 'artifacts', 'aria-label': 'Artifacts' }, artifacts.map((a) => {
    const button = h('button', { type: 'button', class: 'secondary', 'data-artifact': a.id },
      `Download ${a.name}`);
    button.addEventListener('click', () => download(a, button));
    return h('li', {}, button, h('span', { class: 'muted' }, ` ${a.content_type || ''}, ${a.size ?? '?'} bytes`));
  }));
}

function messageItem(m) {
  const who = m.role === 'user' ? 'You' : 'Assistant';
  return h('li', { class: m.role === 'user' ? 'user' : 'assistant', 'data-seq': m.seq != null ? String(m.seq) : null },
    h('span', { class: 'who' }, who),
    h('span', { class: 'text' }, m.content || ''),
    m.attachments && m.attachments.length ? h('span', { class: 'muted' }, ` (${m.attachments.length} attached)`) : null);
}

/** The chat panel, on conversation `conversationId` (or a new one). */
export function chatView(root, conversationId) {
  let conversation = conversationId;
  let turn = null;
  const list = h('ul', { id: 'conversations' });
  const newButton = h('button', { type: 'button', id: 'new-conversation', class: 'secondary' }, 'New conversation');
  const messages = h('ol', { class: 'messages', id: 'messages', 'aria-label': 'Messages' });
  const message = h('textarea', { id: 'chat-message', name: 'message', required: true });
  const file = h('input', { id: 'chat-file', name: 'file', type: 'file' });
  const send = h('button', { type: 'submit', id: 'chat-send' }, 'Send');
  const error = h('p', { class: 'error', role: 'alert', id: 'chat-error' });
  const form = h('form', { 'aria-label': 'Send a message', id: 'chat-form' },
    h('div', { class: 'field' }, h('label', { for: 'chat-message' }, 'Message'), message),
    h('div', { class: 'field' }, h('label', { for: 'chat-file' }, 'Attach a file (optional)'), file),
    send, error);

  replace(root, h('h1', {}, 'Chat'), h('div', { class: 'chat' },
    h('section', { class: 'conversations', 'aria-labelledby': 'conv-title' },
      h('h2', { id: 'conv-title' }, 'Conversations'), newButton, list),
    h('section', { 'aria-labelledby': 'thread-title' },
      h('h2', { id: 'thread-title' }, 'Messages'), messages, form)));

  newButton.addEventListener('click', () => {
    location.hash = '#/chat';
  });

  const loadConversations = () => api('GET', '/chat/conversations' + query({ limit: 50 }))
    .then((res) => replace(list, res.items.map((c) => h('li', {},
      h('a', {
        href: `#/chat/${encodeURIComponent(c.id)}`,
        'aria-current': c.id === conversation ? 'true' : null,
      }, c.title || `Conversation of ${when(c.created_at)}`)))))
    .catch((err) => replace(list, h('li', { class: 'error' }, errorText(err))));

  const loadMessages = () => {
    if (!conversation) {
      replace(messages);
      return Promise.resolve();
    }
    return api('GET', `/chat/conversations/${encodeURIComponent(conversation)}/messages` + query({ limit: 100 }))
      .then((res) => replace(messages, res.items.map(messageItem)))
      .catch((err) => replace(messages, h('li', { class: 'error' }, errorText(err))));
  };

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const textValue = message.value.trim();
    if (!textValue) {
      error.textContent = 'Write a message first.';
      message.focus();
      return;
    }
    error.textContent = '';
    send.disabled = true;
    try {
      const attachments = [];
      if (file.files && file.files[0]) {
        const artifact = await upload('/files/upload', file.files[0]);
        attachments.push(artifact.id);
        file.value = '';
      }
      const body = { message: textValue };
      if (conversation) body.conversation_id = conversation;
      if (attachments.length) body.attachments = attachments;
      const started = await api('POST', '/chat/send', body);
      message.value = '';
      if (conversation !== started.conversation_id) {
        conversation = started.conversation_id;
        history.replaceState(null, '', `#/chat/${encodeURIComponent(conversation)}`);
        loadConversations();
      }
      messages.append(messageItem({ role: 'user', content: textValue, attachments }));
      if (turn) turn.stop();
      turn = followTurn(started.task_id, messages);
      turn.done.finally(() => {
        send.disabled = false;
      });
    } catch (err) {
      error.textContent = errorText(err);
      send.disabled = false;
    }
  });

  loadConversations();
  loadMessages();
  message.focus();
  return () => {
    if (turn) turn.stop();
  };
}

/** One turn: its live progress, confirmation card, streamed answer and artifacts. */
function followTurn(taskId, messages) {
  const progress = h('ul', { class: 'progress', 'aria-label': 'Progress' });
  const answer = h('span', { class: 'text', id: `answer-${taskId}` });
  const cards = h('div', {});
  const extra = h('div', {});
  const item = h('li', { class: 'assistant', 'data-task': taskId },
    h('span', { class: 'who' }, 'Assistant'), progress, cards, answer, extra);
  messages.append(item);
  let ended = false;
  let handle = null;
  let lastId = null;
  let reopened = 0;
  let resolveDone;
  const done = new Promise((r) => {
    resolveDone = r;
  });
  const step = (t) => progress.append(h('li', {}, t));

  const finish = async () => {
    ended = true;
    try {
      const task = await api('GET', `/tasks/${encodeURIComponent(taskId)}`);
      replace(extra,
        artifactList(task.artifacts),
        task.run_id ? h('p', {}, h('a', { href: `#/runs/${encodeURIComponent(task.run_id)}`, class: 'open-run' }, 'Open the run’s trace')) : null);
    } catch (err) {
      replace(extra, h('p', { class: 'error' }, errorText(err)));
    }
    resolveDone();
  };

  const confirmCard = (d) => {
    const status = h('p', { class: 'decision', role: 'status' });
    const yes = h('button', { type: 'button', class: 'confirm-yes' }, 'Confirm');
    const no = h('button', { type: 'button', class: 'danger confirm-no' }, 'Deny');
    const card = h('div', { class: 'card confirm', role: 'group', 'aria-label': `Confirm ${d.tool_id}` },
      h('h3', {}, `Confirm: ${d.tool_id}`),
      h('p', {}, 'The assistant wants to do exactly this:'),
      jsonBlock(d.preview, 'Preview of the action'),
      h('div', { class: 'actions' }, yes, no), status);
    const decide = async (approve) => {
      yes.disabled = true;
      no.disabled = true;
      try {
        await api('POST', `/tasks/${encodeURIComponent(taskId)}/confirm`, { gate_id: d.gate_id, approve });
        status.textContent = approve ? 'Confirmed.' : 'Denied.';
        announce(approve ? 'Confirmed' : 'Denied');
        if (!ended && handle === null) start();
      } catch (err) {
        status.textContent = errorText(err);
        yes.disabled = false;
        no.disabled = false;
      }
    };
    yes.addEventListener('click', () => decide(true));
    no.addEventListener('click', () => decide(false));
    cards.append(card);
    announce(`Confirmation needed for ${d.tool_id}`);
    yes.focus();
  };

  const onEvent = ({ event, data }) => {
    const type = (data && data.type) || event;
    switch (type) {
      case 'router':
        step(`Router: ${routerSummary(data.decision)}`);
        announce('Thinking');
        break;
      case 'tools_selected':
        step(`Tools selected: ${(data.tools || []).join(', ') || 'none'}`);
        break;
      case 'tool_call': {
        progress.append(h('li', {}, `Tool ${data.tool_id}: ${data.ok ? 'done' : 'failed'}`,
          jsonBlock(data.ok ? data.output : data.error, `Output of ${data.tool_id}`)));
        announce(`Tool ${data.tool_id} ${data.ok ? 'done' : 'failed'}`);
        break;
      }
      case 'awaiting_confirm':
        confirmCard(data);
        break;
      case 'delta':
        answer.textContent += data.text || '';
        break;
      case 'final':
        answer.textContent = data.text || answer.textContent;
        if (data.limit) step(`Stopped: ${text(data.limit)}`);
        announce('Answer ready');
        finish();
        break;
      case 'error':
        replace(extra, h('p', { class: 'error', role: 'alert' }, `${data.kind || 'error'}: ${data.message || data.detail || ''}`));
        ended = true;
        resolveDone();
        break;
      default:
        break;
    }
  };

  const start = () => {
    handle = follow('/chat/stream' + query({ task_id: taskId }), (e) => {
      if (e.id !== null) lastId = e.id;
      onEvent(e);
    }, { lastEventId: lastId });
    handle.done
      .then(() => {
        handle = null;
        // The stream may end while a confirmation waits; the decision reopens it.
        if (!ended && !cards.querySelector('.confirm-yes:not(:disabled)') && reopened < 5) {
          reopened += 1;
          setTimeout(start, 300 * reopened);
        }
      })
      .catch((err) => {
        handle = null;
        if (!ended) {
          replace(extra, h('p', { class: 'error', role: 'alert' }, errorText(err)));
          ended = true;
          resolveDone();
        }
      });
  };
  start();
  return {
    done,
    stop() {
      ended = true;
      if (handle) handle.stop();
      resolveDone();
    },
  };
}
