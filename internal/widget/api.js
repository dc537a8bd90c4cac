// The widget's API client: calls, tokens, retries and errors. No DOM: it runs in Node too.

/**
 * @typedef {{id: string, role: 'customer' | 'admin' | 'system', name: string | null}} Sender
 * @typedef {{id: string, conversation_id: string, sender: Sender, body: string, created_at: string,
 *   local?: {key: string, state: 'sending' | 'failed', error?: ApiError}}} Message
 * @typedef {{order_id: string | null, product_id: string | null, page_url: string | null}} ChatContext
 * @typedef {{id: string, role: 'customer' | 'admin', name: string | null}} Participant
 * @typedef {{id: string, status: 'open' | 'resolved', subject: string, participants: Participant[],
 *   context: ChatContext | null, assignee?: string | null, messages: Message[], unread_count: number,
 *   created_at: string, updated_at: string}} Conversation
 * @typedef {{status: 'online' | 'away' | 'offline', available: boolean, reason: string | null,
 *   prompt: string | null, next_available_at: string | null, expected_reply_seconds: number | null}} Support
 * @typedef {{conversations: Conversation[], next_cursor: string | null, support: Support}} ConversationList
 * @typedef {{messages: Message[], next_cursor: string | null}} MessagePage
 * @typedef {{type?: string, title?: string, status?: number, detail?: string, request_id?: string}} Problem
 */

/** The path of the API below the service's base URL. */
export const API_PATH = '/api/v1';
/** How long before a token's exp the widget asks getToken for a new one. */
const TOKEN_MARGIN_MS = 60_000;
const HISTORY_PAGE = 30;

/** An error answer of the API (status 0: the request did not reach it). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {Problem | null} problem
   */
  constructor(status, problem) {
    super(problem?.detail || problem?.title || (status ? `HTTP ${status}` : 'network error'));
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
  }

  /** Whether the same request may succeed later (network, 408, 429, 5xx). */
  get retryable() {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

/**
 * Returns a delay for retry number attempt (0-based): exponential from base up to cap, with
 * "equal jitter" (between half and all of it) so clients that failed together spread out.
 * @param {number} attempt
 * @param {number} [base]
 * @param {number} [cap]
 * @param {() => number} [random] a number in [0, 1), Math.random unless a test fixes it
 */
export function backoffDelay(attempt, base = 1000, cap = 30_000, random = Math.random) {
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 16));
  return ceiling / 2 + (random() * ceiling) / 2;
}

/**
 * Resolves after ms, or at once when signal aborts.
 * @param {number} ms
 * @param {AbortSignal} [signal]
 */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(timer); resolve(undefined); }, { once: true });
  });
}

/** Returns a random Idempotency-Key. */
export function newKey() {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * Returns the exp of a JWT in milliseconds, or Infinity when token is not a JWT with one.
 * @param {string} token
 */
function tokenExpiry(token) {
  try {
    const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(payload)).exp;
    return typeof exp === 'number' ? exp * 1000 : Infinity;
  } catch {
    return Infinity;
  }
}

/**
 * Returns a query string of the params that are set.
 * @param {Record<string, string | number | boolean | null | undefined>} params
 */
function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

/**
 * ChatClient calls the Support Chat API of one tenant with the bearer token getToken returns. It
 * asks getToken again when the token nears its exp or a call answers 401, and retries reads and
 * writes with an Idempotency-Key on network errors, 429 and 5xx.
 */
export class ChatClient {
  #api;
  #tenant;
  #getToken;
  /** @type {string | null} */
  #token = null;
  #refreshAt = 0;
  /** @type {Promise<string> | null} */
  #pending = null;

  /**
   * @param {{api: string, tenant?: string | null, getToken: () => Promise<string> | string}} options
   *   api: the service's base URL; tenant: sent as X-Tenant-ID (leave out when the API's host names
   *   the tenant); getToken: returns the caller's bearer token.
   */
  constructor({ api, tenant, getToken }) {
    this.#api = api.replace(/\/+$/, '');
    this.#tenant = tenant || null;
    this.#getToken = getToken;
  }

  /** The service's base URL. */
  get api() { return this.#api; }

  /** The tenant id sent as X-Tenant-ID, or null. */
  get tenant() { return this.#tenant; }

  /**
   * Returns a bearer token: the one it has, or a new one from getToken when forced, when there is
   * none, or when it expires within a minute. Concurrent callers share one getToken call.
   * @param {boolean} [force]
   * @returns {Promise<string>}
   */
  token(force = false) {
    if (!force && this.#token && Date.now() < this.#refreshAt) return Promise.resolve(this.#token);
    if (!this.#pending) {
      this.#pending = (async () => {
        try {
          const token = await this.#getToken();
          if (typeof token !== 'string' || token === '') throw new ApiError(401, { title: 'getToken returned no token' });
          const now = Date.now();
          const exp = tokenExpiry(token);
          this.#token = token;
          // Refresh a minute ahead, or halfway through the life of a token shorter than that.
          this.#refreshAt = exp - Math.min(TOKEN_MARGIN_MS, Math.max(0, (exp - now) / 2));
          return token;
        } finally {
          this.#pending = null;
        }
      })();
    }
    return this.#pending;
  }

  /**
   * Returns the headers of a call with token.
   * @param {string} token
   * @param {Record<string, string>} [extra]
   * @returns {Record<string, string>}
   */
  headers(token, extra = {}) {
    /** @type {Record<string, string>} */
    const h = { Authorization: `Bearer ${token}`, ...extra };
    if (this.#tenant) h['X-Tenant-ID'] = this.#tenant;
    return h;
  }

  /**
   * Calls the API and returns the JSON answer. A 401 gets one retry with a fresh token. GETs and
   * calls with an Idempotency-Key (key) are retried with backoff when they may succeed later.
   * @param {string} method
   * @param {string} path below /api/v1
   * @param {{body?: any, key?: string, signal?: AbortSignal, retries?: number}} [options]
   * @returns {Promise<any>}
   * @throws {ApiError}
   */
  async request(method, path, { body, key, signal, retries } = {}) {
    const max = retries ?? (method === 'GET' || key ? 3 : 0);
    let refreshed = false;
    for (let attempt = 0; ; attempt++) {
      let res;
      try {
        const token = await this.token();
        /** @type {Record<string, string>} */
        const extra = { Accept: 'application/json' };
        if (body !== undefined) extra['Content-Type'] = 'application/json';
        if (key) extra['Idempotency-Key'] = key;
        res = await fetch(this.#api + API_PATH + path, {
          method,
          headers: this.headers(token, extra),
          body: body === undefined ? undefined : JSON.stringify(body),
          signal,
          cache: 'no-store',
          credentials: 'omit',
        });
      } catch (err) {
        if (err instanceof ApiError || signal?.aborted) throw err;
        if (attempt >= max) throw new ApiError(0, { title: 'network error', detail: String(/** @type {Error} */ (err).message || err) });
        await sleep(backoffDelay(attempt, 500, 8000), signal);
        continue;
      }
      if (res.status === 401 && !refreshed) {
        refreshed = true;
        attempt--;
        await this.token(true);
        continue;
      }
      if (res.ok) {
        return (res.headers.get('Content-Type') || '').includes('json') ? res.json() : null;
      }
      const err = new ApiError(res.status, await res.json().catch(() => null));
      if (!err.retryable || attempt >= max) throw err;
      const after = Number(res.headers.get('Retry-After'));
      await sleep(after > 0 ? Math.min(after * 1000, 30_000) : backoffDelay(attempt, 500, 8000), signal);
    }
  }

  /**
   * GET /chat/list.
   * @param {Record<string, string | number | boolean | null | undefined>} [params]
   * @returns {Promise<ConversationList>}
   */
  list(params = {}) { return this.request('GET', `/chat/list${query(params)}`); }

  /**
   * Every page of GET /chat/list?updated_since=since (delta sync), up to 1000 conversations.
   * @param {string} since RFC 3339
   * @param {Record<string, string | number | boolean | null | undefined>} [params]
   * @returns {Promise<{conversations: Conversation[], support: Support}>}
   */
  async listSince(since, params = {}) {
    /** @type {Conversation[]} */
    const all = [];
    /** @type {string | null} */
    let cursor = null;
    let support;
    do {
      const page = await this.list({ ...params, limit: 100, updated_since: since, cursor });
      all.push(...page.conversations);
      support = page.support;
      cursor = page.next_cursor;
    } while (cursor && all.length < 1000);
    return { conversations: all, support };
  }

  /**
   * GET /chat/{id} with its newest message.
   * @param {string} id
   * @returns {Promise<Conversation>}
   */
  conversation(id) { return this.request('GET', `/chat/${encodeURIComponent(id)}?messages=1`); }

  /**
   * GET /chat/{id}/messages: the newest page, or the one before the cursor before.
   * @param {string} id
   * @param {{before?: string | null, limit?: number}} [options]
   * @returns {Promise<MessagePage>}
   */
  history(id, { before = null, limit = HISTORY_PAGE } = {}) {
    return this.request('GET', `/chat/${encodeURIComponent(id)}/messages${query({ limit, before })}`);
  }

  /**
   * POST /chat/start; retried safely with the same key.
   * @param {{message: string, subject?: string, context?: Partial<ChatContext>}} input
   * @param {string} key Idempotency-Key
   * @returns {Promise<Conversation>}
   */
  start(input, key) { return this.request('POST', '/chat/start', { body: input, key }); }

  /**
   * POST /chat/{id}/messages; retried safely with the same key.
   * @param {string} id
   * @param {string} body
   * @param {string} key Idempotency-Key
   * @returns {Promise<Message>}
   */
  send(id, body, key) { return this.request('POST', `/chat/${encodeURIComponent(id)}/messages`, { body: { body }, key }); }

  /**
   * POST /chat/{id}/read up to messageId (the newest message when left out).
   * @param {string} id
   * @param {string} [messageId]
   * @returns {Promise<{conversation_id: string, unread_count: number}>}
   */
  read(id, messageId) {
    return this.request('POST', `/chat/${encodeURIComponent(id)}/read`, { body: messageId ? { message_id: messageId } : {} });
  }

  /**
   * PATCH /chat/{id} (admins).
   * @param {string} id
   * @param {{status?: 'open' | 'resolved', assignee?: string | null}} patch
   * @returns {Promise<Conversation>}
   */
  update(id, patch) { return this.request('PATCH', `/chat/${encodeURIComponent(id)}`, { body: patch }); }

  /**
   * PUT /chat/presence (admins): online or away until expires_at; call again before then.
   * @param {'online' | 'away'} status
   * @returns {Promise<{status: string, expires_at: string, support: Support}>}
   */
  presence(status) { return this.request('PUT', '/chat/presence', { body: { status }, retries: 2 }); }
}
