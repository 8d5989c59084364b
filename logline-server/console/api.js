// The console's only door to the server: tokens live in memory, a 401 refreshes once,
// problems become `ApiError`s, and nothing secret ever goes into a URL.

const BASE = '/api/v1';

let session = null; // { access, refresh, user }
let refreshing = null;
let refreshTimer = null;
const signOutListeners = [];

/** A problem document answered by the server. */
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/** The signed-in user, or null. */
export function currentUser() {
  return session ? session.user : null;
}

/** Calls `fn` whenever the session ends (sign-out or a refused refresh). */
export function onSignOut(fn) {
  signOutListeners.push(fn);
}

async function problemOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch (_) {
    body = null;
  }
  return new ApiError(res.status, body);
}

function adopt(tokens) {
  session = { access: tokens.access_token, refresh: tokens.refresh_token, user: tokens.user };
  clearTimeout(refreshTimer);
  const ttl = Number(tokens.expires_in) || 0;
  if (ttl > 10) {
    refreshTimer = setTimeout(() => refresh().catch(() => {}), (ttl - 5) * 800);
  }
}

function end() {
  clearTimeout(refreshTimer);
  const had = session !== null;
  session = null;
  if (had) signOutListeners.forEach((fn) => fn());
}

async function postJson(path, body) {
  return fetch(BASE + path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    credentials: 'omit',
  });
}

/** Signs in with email and password. */
export async function login(email, password) {
  const res = await postJson('/auth/login', { email, password });
  if (!res.ok) throw await problemOf(res);
  adopt(await res.json());
  return session.user;
}

/** Exchanges the refresh token for new tokens (one exchange at a time). */
export function refresh() {
  if (!session) return Promise.reject(new ApiError(401, { detail: 'signed out' }));
  if (!refreshing) {
    const token = session.refresh;
    refreshing = postJson('/auth/refresh', { refresh_token: token })
      .then(async (res) => {
        if (!res.ok) {
          end();
          throw await problemOf(res);
        }
        adopt(await res.json());
      })
      .finally(() => {
        refreshing = null;
      });
  }
  return refreshing;
}

/** Ends the session on the server, then here. */
export async function logout() {
  if (session) {
    try {
      await postJson('/auth/logout', { refresh_token: session.refresh });
    } catch (_) {
      // The session ends here either way.
    }
  }
  end();
}

/** A fetch with the access token; a 401 refreshes once and retries. */
export async function authorized(path, init = {}) {
  if (!session) throw new ApiError(401, { detail: 'sign in first' });
  const send = () => {
    const headers = new Headers(init.headers || {});
    headers.set('Authorization', 'Bearer ' + session.access);
    return fetch(BASE + path, { ...init, headers, credentials: 'omit' });
  };
  let res = await send();
  if (res.status === 401) {
    await refresh();
    res = await send();
  }
  return res;
}

/** A JSON call: `body` is sent as JSON; the answer is parsed (null for 204). */
export async function api(method, path, body) {
  const init = { method };
  if (body !== undefined) {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(body);
  }
  const res = await authorized(path, init);
  if (!res.ok) throw await problemOf(res);
  if (res.status === 204) return null;
  return res.json();
}

/** Sends a file as multipart field `file`. */
export async function upload(path, file) {
  const form = new FormData();
  form.append('file', file, file.name);
  const res = await authorized(path, { method: 'POST', body: form });
  if (!res.ok) throw await problemOf(res);
  return res.json();
}

/** Downloads a body as a Blob (with the Authorization header, never a token in the URL). */
export async function blob(path) {
  const res = await authorized(path);
  if (!res.ok) throw await problemOf(res);
  return res.blob();
}

/** Query string of the given non-empty parameters. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}
