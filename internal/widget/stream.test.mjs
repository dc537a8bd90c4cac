// Unit tests of the event stream: the Server-Sent Events parser, the reconnect backoff, and
// EventStream's reconnects against a fake fetch. Run by TestModulesInNode (node --test).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ChatClient, backoffDelay } from './api.js';
import { EventParser, EventStream, reconnectDelay } from './stream.js';

/**
 * Returns the events of chunks pushed one after another into one parser.
 * @param {string[]} chunks
 * @param {string} [lastEventId]
 */
function parse(chunks, lastEventId) {
  const parser = new EventParser(lastEventId);
  const events = chunks.flatMap((c) => parser.push(c));
  return { events, lastEventId: parser.lastEventId, retry: parser.retry };
}

test('the parser reads named events with their id and data', () => {
  const { events, lastEventId } = parse(['event: message.created\nid: 7\ndata: {"a":1}\n\n']);
  assert.deepEqual(events, [{ type: 'message.created', id: '7', data: '{"a":1}' }]);
  assert.equal(lastEventId, '7');
});

test('an event without a name is a message, and the name does not carry over', () => {
  const { events } = parse(['event: support.changed\ndata: 1\n\ndata: 2\n\n']);
  assert.deepEqual(events.map((e) => e.type), ['support.changed', 'message']);
});

test('data lines join with newlines; one space after the colon is dropped, others kept', () => {
  const { events } = parse(['data: one\ndata:two\ndata:  three\ndata\n\n']);
  assert.deepEqual(events.map((e) => e.data), ['one\ntwo\n three\n']);
});

test('comments, unknown fields and events without data dispatch nothing', () => {
  const { events } = parse([': keep-alive\n\nfoo: bar\n\nevent: x\n\n']);
  assert.deepEqual(events, []);
});

test('an event not ended by a blank line is not dispatched', () => {
  const { events } = parse(['data: done\n\ndata: cut off\n']);
  assert.deepEqual(events.map((e) => e.data), ['done']);
});

test('chunks may split lines anywhere, even a CRLF between its CR and LF', () => {
  const text = 'id: 1\r\nevent: a\r\ndata: x\r\n\r\nid: 2\rdata: y\r\rdata: z\n\n';
  const want = parse([text]).events;
  assert.deepEqual(want, [
    { type: 'a', id: '1', data: 'x' },
    { type: 'message', id: '2', data: 'y' },
    { type: 'message', id: '2', data: 'z' },
  ]);
  assert.deepEqual(parse([...text]).events, want, 'one character at a time');
  // A CR at the end of a chunk waits for the next: with its LF it is one line end, not two.
  assert.deepEqual(parse(['data: a\r', '\ndata: b\r\n\r\n']).events, [{ type: 'message', id: '', data: 'a\nb' }]);
});

test('the last event id counts at the blank line, also for events without data', () => {
  const parser = new EventParser('4');
  assert.deepEqual(parser.push('data: resumed\n\n'), [{ type: 'message', id: '4', data: 'resumed' }]);
  parser.push('id: 5\n');
  assert.equal(parser.lastEventId, '4', 'not before the event ends');
  parser.push('\n');
  assert.equal(parser.lastEventId, '5', 'an event of only an id moves it');
  parser.push('id: bad\0id\ndata: x\n\n');
  assert.equal(parser.lastEventId, '5', 'an id with NUL is ignored');
  parser.push('id\n\n');
  assert.equal(parser.lastEventId, '', 'an empty id resets it');
});

test('retry takes digits only', () => {
  assert.equal(parse(['retry: 5000\n\n']).retry, 5000);
  assert.equal(parse(['retry: 5s\n\n']).retry, null);
  assert.equal(parse(['retry: 100\nretry: -1\n\n']).retry, 100);
});

test('backoff doubles from its base up to its cap, with jitter between half and all of it', () => {
  const low = () => 0;
  const high = () => 1 - Number.EPSILON;
  for (const [attempt, ceiling] of [[0, 500], [1, 1000], [2, 2000], [3, 4000], [4, 8000], [5, 8000]]) {
    assert.equal(backoffDelay(attempt, 500, 8000, low), ceiling / 2, `attempt ${attempt}, least`);
    assert.ok(Math.abs(backoffDelay(attempt, 500, 8000, high) - ceiling) < 1e-6, `attempt ${attempt}, most`);
  }
  assert.equal(backoffDelay(1000, 1000, 30_000, low), 15_000, 'a long run of failures stays at the cap');
  for (let i = 0; i < 100; i++) {
    const d = backoffDelay(2);
    assert.ok(d >= 2000 && d <= 4000, `backoffDelay(2) = ${d}, want 2000..4000`);
  }
});

test('reconnecting: soon after a stream that worked, at once after a 401, backing off after failures', () => {
  const half = () => 0.5;
  assert.equal(reconnectDelay({ opened: true, unauthorized: false, failures: 0, retry: 2000 }, half), 1000,
    'a stream that ended: a random point of the server retry');
  assert.equal(reconnectDelay({ opened: false, unauthorized: true, failures: 0, retry: 2000 }, half), 0,
    'a first 401: at once, with a fresh token');
  assert.equal(reconnectDelay({ opened: false, unauthorized: true, failures: 1, retry: 2000 }, half), 1500,
    'a 401 after failures backs off like them');
  const fails = [1, 2, 3, 4, 5, 6, 10].map((failures) => reconnectDelay({ opened: false, unauthorized: false, failures, retry: 2000 }, half));
  assert.deepEqual(fails, [1500, 3000, 6000, 12_000, 22_500, 22_500, 22_500], 'from the retry, doubling, up to 30 s');
  assert.equal(reconnectDelay({ opened: false, unauthorized: false, failures: 1, retry: 0 }, () => 0), 500,
    'never faster than from a 1 s base, whatever the server retry');
});

test('EventStream resumes with Last-Event-ID, and asks for a fresh token after a 401', async (t) => {
  const saved = { fetch: globalThis.fetch, window: globalThis.window, navigator: Object.getOwnPropertyDescriptor(globalThis, 'navigator') };
  t.after(() => {
    globalThis.fetch = saved.fetch;
    globalThis.window = saved.window;
    if (saved.navigator) Object.defineProperty(globalThis, 'navigator', saved.navigator);
    else delete globalThis.navigator;
  });
  globalThis.window = /** @type {any} */ (new EventTarget());
  Object.defineProperty(globalThis, 'navigator', { value: { onLine: true }, configurable: true, writable: true });

  const answers = [
    () => new Response('retry: 0\nid: 1\nevent: message.created\ndata: {"n":1}\n\nid: 1b\n\n', { status: 200 }),
    () => new Response('{"title":"Unauthorized"}', { status: 401, headers: { 'Content-Type': 'application/problem+json' } }),
    () => new Response('id: 2\ndata: two\n\n', { status: 200 }),
  ];
  /** @type {{url: string, headers: Record<string, string>}[]} */
  const requests = [];
  globalThis.fetch = async (url, init) => {
    requests.push({ url: String(url), headers: /** @type {Record<string, string>} */ (init?.headers) });
    const answer = answers.shift();
    if (!answer) return new Promise(() => {}); // no more: hang, as a quiet stream does
    return answer();
  };
  const tokens = ['first', 'second'];
  const client = new ChatClient({ api: 'https://chat.test/', tenant: 'shop', getToken: () => /** @type {string} */ (tokens.shift()) });
  /** @type {any[]} */
  const events = [];
  /** @type {boolean[]} */
  const opens = [];
  const done = new Promise((resolve) => {
    const stream = new EventStream(client, {
      onEvent: (e) => {
        events.push(e);
        if (events.length === 2) {
          stream.stop();
          resolve(undefined);
        }
      },
      onOpen: ({ resumed }) => opens.push(resumed),
    });
    stream.start();
  });
  await done;

  assert.deepEqual(events, [{ type: 'message.created', id: '1', data: { n: 1 } }, { type: 'message', id: '2', data: 'two' }]);
  assert.deepEqual(opens, [false, true]);
  assert.deepEqual(requests.map((r) => [r.url, r.headers.Authorization, r.headers['Last-Event-ID'], r.headers['X-Tenant-ID']]), [
    ['https://chat.test/api/v1/chat/events', 'Bearer first', undefined, 'shop'],
    ['https://chat.test/api/v1/chat/events', 'Bearer first', '1b', 'shop'],
    ['https://chat.test/api/v1/chat/events', 'Bearer second', '1b', 'shop'],
  ]);
});
