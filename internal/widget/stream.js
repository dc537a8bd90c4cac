// The widget's live event stream over fetch. No DOM until start(): it runs in Node too.

import { API_PATH, ApiError, backoffDelay } from './api.js';

/**
 * @typedef {import('./api.js').ChatClient} ChatClient
 * @typedef {'idle' | 'connecting' | 'open' | 'offline'} StreamStatus
 * @typedef {{type: string, id: string, data: any}} StreamEvent
 */

/** An event stream that sends nothing (not even its 15 s keep-alive) for this long is dead. */
const STREAM_IDLE_MS = 45_000;

/**
 * EventStream reads GET /chat/events with fetch (so the token travels in the Authorization header,
 * never in a URL), parses Server-Sent Events, and reconnects until stopped: at once with
 * Last-Event-ID after the server ends a stream (token expiry, shutdown), with exponential backoff
 * and jitter after failures, with a fresh token after a 401, at once when the browser comes back
 * online, and when a stream stays silent past its keep-alive.
 */
export class EventStream {
  #client;
  #handlers;
  /** @type {AbortController | null} */
  #abort = null;
  #stopped = true;
  #lastEventId = '';
  #retry = 2000;
  /** @type {StreamStatus} */
  #status = 'idle';
  /** @type {(() => void) | null} */
  #wake = null;

  /**
   * @param {ChatClient} client
   * @param {{onEvent?: (e: StreamEvent) => void, onOpen?: (info: {resumed: boolean}) => void,
   *   onStatus?: (status: StreamStatus) => void}} handlers onEvent gets each event with its parsed
   *   data; onOpen runs when a stream starts (resumed: it continues after Last-Event-ID); onStatus
   *   sees every status change.
   */
  constructor(client, handlers) {
    this.#client = client;
    this.#handlers = handlers;
  }

  /** The id of the last event received, sent as Last-Event-ID when reconnecting. */
  get lastEventId() { return this.#lastEventId; }

  /** @returns {StreamStatus} */
  get status() { return this.#status; }

  /** Starts reading (and reconnecting) until stop. */
  start() {
    if (!this.#stopped) return;
    this.#stopped = false;
    window.addEventListener('online', this.#onOnline);
    window.addEventListener('offline', this.#onOffline);
    this.#loop();
  }

  /** Stops reading and reconnecting. */
  stop() {
    this.#stopped = true;
    window.removeEventListener('online', this.#onOnline);
    window.removeEventListener('offline', this.#onOffline);
    this.#abort?.abort();
    this.#wake?.();
    this.#setStatus('idle');
  }

  /** Reconnects now instead of after the current backoff. */
  reconnect() { this.#wake?.(); }

  #onOnline = () => this.#wake?.();

  #onOffline = () => {
    this.#setStatus('offline');
    this.#abort?.abort();
  };

  /** @param {StreamStatus} status */
  #setStatus(status) {
    if (status === this.#status) return;
    this.#status = status;
    this.#handlers.onStatus?.(status);
  }

  async #loop() {
    let failures = 0;
    let forceToken = false;
    while (!this.#stopped) {
      const ctrl = new AbortController();
      this.#abort = ctrl;
      let opened = false;
      let unauthorized = false;
      try {
        if (navigator.onLine === false) throw new ApiError(0, { title: 'offline' });
        if (this.#status !== 'offline') this.#setStatus('connecting');
        opened = await this.#connect(ctrl, forceToken, () => { opened = true; failures = 0; });
        forceToken = false;
      } catch (err) {
        if (this.#stopped) return;
        unauthorized = err instanceof ApiError && err.status === 401;
        if (!opened && !(unauthorized && !forceToken)) {
          failures++;
          this.#setStatus('offline');
        }
        forceToken = unauthorized;
      }
      if (this.#stopped) return;
      const delay = reconnectDelay({ opened, unauthorized, failures, retry: this.#retry });
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => { clearTimeout(timer); resolve(undefined); };
      });
      this.#wake = null;
    }
  }

  /**
   * Opens one stream and reads it to its end. Returns true when it was opened.
   * @param {AbortController} ctrl
   * @param {boolean} forceToken
   * @param {() => void} onOpened
   */
  async #connect(ctrl, forceToken, onOpened) {
    const token = await this.#client.token(forceToken);
    /** @type {Record<string, string>} */
    const extra = { Accept: 'text/event-stream' };
    if (this.#lastEventId) extra['Last-Event-ID'] = this.#lastEventId;
    const res = await fetch(`${this.#client.api}${API_PATH}/chat/events`, {
      headers: this.#client.headers(token, extra),
      signal: ctrl.signal,
      cache: 'no-store',
      credentials: 'omit',
    });
    if (!res.ok || !res.body) throw new ApiError(res.status, await res.json().catch(() => null));
    const resumed = this.#lastEventId !== '';
    onOpened();
    this.#setStatus('open');
    try {
      this.#handlers.onOpen?.({ resumed });
    } catch (err) {
      console.error(err);
    }
    try {
      await this.#read(res.body, ctrl);
    } catch (err) {
      if (this.#stopped) throw err;
      // A stream that broke after it opened reconnects like one that ended.
    }
    if (!this.#stopped) this.#setStatus('connecting');
    return true;
  }

  /**
   * Reads the event stream body until it ends, dispatching its events.
   * @param {ReadableStream<Uint8Array>} body
   * @param {AbortController} ctrl
   */
  async #read(body, ctrl) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    const parser = new EventParser(this.#lastEventId);
    let watchdog = setTimeout(() => ctrl.abort(), STREAM_IDLE_MS);
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        clearTimeout(watchdog);
        watchdog = setTimeout(() => ctrl.abort(), STREAM_IDLE_MS);
        for (const e of parser.push(value)) this.#dispatch(e.type, e.id, e.data);
        this.#lastEventId = parser.lastEventId;
        if (parser.retry !== null) this.#retry = parser.retry;
      }
    } finally {
      clearTimeout(watchdog);
      reader.cancel().catch(() => {});
    }
  }

  /**
   * @param {string} type
   * @param {string} id
   * @param {string} raw
   */
  #dispatch(type, id, raw) {
    let data = null;
    try {
      data = JSON.parse(raw);
    } catch {
      data = raw;
    }
    try {
      this.#handlers.onEvent?.({ type, id, data });
    } catch (err) {
      console.error(err);
    }
  }
}

/**
 * Returns the wait before the next connection. After a stream that worked: soon, spread over the
 * server's retry, so a replica that shut down is not hit by all its clients at once; after a 401:
 * at once (with a fresh token); after failures in a row: backoff from the retry up to 30 s.
 * @param {{opened: boolean, unauthorized: boolean, failures: number, retry: number}} state
 * @param {() => number} [random]
 */
export function reconnectDelay({ opened, unauthorized, failures, retry }, random = Math.random) {
  if (opened) return random() * retry;
  if (unauthorized && failures === 0) return 0;
  return backoffDelay(failures - 1, Math.max(retry, 1000), 30_000, random);
}

/** EventParser parses Server-Sent Events (the WHATWG rules) from text chunks split anywhere. */
export class EventParser {
  #buf = '';
  #type = '';
  /** @type {string[]} */
  #data = [];
  #id;

  /** @param {string} [lastEventId] the id the stream resumes after */
  constructor(lastEventId = '') {
    this.#id = lastEventId;
    this.lastEventId = lastEventId;
    /** @type {number | null} */
    this.retry = null;
  }

  /**
   * Parses a chunk and returns the events it ended (type "message" when unnamed).
   * @param {string} chunk
   * @returns {{type: string, id: string, data: string}[]}
   */
  push(chunk) {
    /** @type {{type: string, id: string, data: string}[]} */
    const events = [];
    this.#buf += chunk;
    for (;;) {
      const buf = this.#buf;
      const nl = buf.search(/[\r\n]/);
      if (nl < 0 || (buf[nl] === '\r' && nl === buf.length - 1)) break; // wait for a \n after \r
      const line = buf.slice(0, nl);
      this.#buf = buf.slice(buf.startsWith('\r\n', nl) ? nl + 2 : nl + 1);
      if (line === '') {
        this.lastEventId = this.#id;
        if (this.#data.length > 0) events.push({ type: this.#type || 'message', id: this.#id, data: this.#data.join('\n') });
        this.#type = '';
        this.#data = [];
        continue;
      }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'event') this.#type = val;
      else if (field === 'data') this.#data.push(val);
      else if (field === 'id' && !val.includes('\0')) this.#id = val;
      else if (field === 'retry' && /^\d+$/.test(val)) this.retry = Number(val);
    }
    return events;
  }
}
