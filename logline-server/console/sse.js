// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, and a
// token never goes into a URL. Reconnects with Last-Event-ID until the stream ends cleanly
// or `stop()` is called.

import { authorized, ApiError } from './api.js';

/** Splits an SSE byte stream into `{id, event, data}` records. */
export function parseEvents(onEvent) {
  let buffer = '';
  let record = { id: null, event: 'message', data: [] };
  return (chunk) => {
    buffer += chunk;
    let nl;
    while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
      // A CR at the end may be the first half of a CRLF still on its way.
      if (buffer[nl] === '\r' && nl === buffer.length - 1) break;
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (record.data.length) {
          onEvent({ id: record.id, event: record.event, data: record.data.join('\n') });
        }
        record = { id: record.id, event: 'message', data: [] };
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') record.data.push(value);
      else if (field === 'event') record.event = value;
      else if (field === 'id') record.id = value;
    }
  };
}

/**
 * Follows `path` as an event stream; `onEvent` gets each parsed event with its JSON data.
 * Resolves when the server ends the stream; `handle.stop()` ends it early.
 */
export function follow(path, onEvent, { lastEventId = null, retries = 5 } = {}) {
  const controller = new AbortController();
  let last = lastEventId;
  let stopped = false;
  const run = async () => {
    let attempts = 0;
    while (!stopped) {
      try {
        const headers = { Accept: 'text/event-stream' };
        if (last !== null) headers['Last-Event-ID'] = last;
        const res = await authorized(path, { headers, signal: controller.signal });
        if (!res.ok) {
          let body = null;
          try {
            body = await res.json();
          } catch (_) {
            body = null;
          }
          throw new ApiError(res.status, body);
        }
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const feed = parseEvents((e) => {
          if (e.id !== null) last = e.id;
          let data = null;
          try {
            data = JSON.parse(e.data);
          } catch (_) {
            data = { text: e.data };
          }
          onEvent({ id: e.id, event: e.event, data });
        });
        for (;;) {
          const { value, done } = await reader.read();
          if (done) return;
          attempts = 0;
          feed(value);
        }
      } catch (err) {
        if (stopped || err.name === 'AbortError') return;
        if (err instanceof ApiError && err.status < 500) throw err;
        attempts += 1;
        if (attempts > retries) throw err;
        await new Promise((r) => setTimeout(r, 500 * attempts));
      }
    }
  };
  const done = run();
  return {
    done,
    stop() {
      stopped = true;
      controller.abort();
    },
  };
}
