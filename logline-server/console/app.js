// The console's shell: sign-in, navigation by the URL fragment, one view at a time.

import { currentUser, login, logout, onSignOut } from './api.js';
import { h, replace, announce, errorText } from './dom.js';
import { runsView, runView } from './runs.js';
import { workflowsView, workflowView } from './workflows.js';
import { chatView } from './chat.js';

const main = document.getElementById('main');
let cleanup = null;
let wanted = null;

/** Parses `#/runs/abc?status=paused` into `{parts: ['runs', 'abc'], params}`. */
function route() {
  const hash = location.hash.startsWith('#/') ? location.hash.slice(2) : '';
  const [path, search] = hash.split('?');
  return {
    parts: path.split('/').filter(Boolean).map(decodeURIComponent),
    params: new URLSearchParams(search || ''),
  };
}

function setNav(view) {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function showAccount() {
  const user = currentUser();
  document.getElementById('nav').hidden = !user;
  document.getElementById('account').hidden = !user;
  document.getElementById('who').textContent = user ? `${user.email} (${user.role})` : '';
}

function signInView(root) {
  const error = h('p', { class: 'error', role: 'alert' });
  const email = h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', {
    id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true,
  });
  const submit = h('button', { type: 'submit', id: 'signin' }, 'Sign in');
  const form = h('form', { 'aria-labelledby': 'signin-title', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'email' }, 'Email'), email),
    h('div', { class: 'field' }, h('label', { for: 'password' }, 'Password'), password),
    submit, error);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.textContent = '';
    submit.disabled = true;
    try {
      await login(email.value.trim(), password.value);
      password.value = '';
      showAccount();
      announce('Signed in');
      const target = wanted && wanted !== '#/signin' ? wanted : '#/chat';
      wanted = null;
      if (location.hash === target) render();
      else location.hash = target;
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      submit.disabled = false;
    }
  });
  replace(root, h('h1', { id: 'signin-title' }, 'Sign in'), form);
  email.focus();
}

const views = {
  chat: (root, r) => chatView(root, r.parts[1] || null),
  runs: (root, r) => (r.parts[1] ? runView(root, r.parts[1]) : runsView(root, r.params)),
  workflows: (root, r) => (r.parts[1] ? workflowView(root, r.parts[1]) : workflowsView(root)),
};

function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const r = route();
  const name = r.parts[0] || 'chat';
  if (!currentUser()) {
    if (name !== 'signin') wanted = location.hash || null;
    setNav(null);
    showAccount();
    signInView(main);
    return;
  }
  const view = views[name];
  setNav(view ? name : null);
  if (!view) {
    replace(main, h('h1', {}, 'Not found'), h('p', {}, 'There is no such page in the console.'));
    return;
  }
  replace(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    cleanup = view(main, r) || null;
  } catch (err) {
    replace(main, h('h1', {}, 'Something went wrong'), h('p', { class: 'error' }, errorText(err)));
  }
}

window.addEventListener('hashchange', () => {
  if (location.hash === '#main') return;
  render();
  main.focus();
});

document.getElementById('signout').addEventListener('click', async () => {
  await logout();
});

onSignOut(() => {
  showAccount();
  announce('Signed out');
  if (location.hash !== '#/signin') location.hash = '#/signin';
  else render();
});

render();
