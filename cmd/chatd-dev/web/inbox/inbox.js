// The development inbox: a tenant's conversations as an admin sees them, with the admin filters,
// the selected conversation with its storefront context, reply, mark read, assign to me,
// resolve/reopen, an online/away switch that sends the presence heartbeat while the page is open,
// and live updates. It uses the public API and event stream through the widget's own client.
// Like the widget, it builds every element with the widget's h() and sets text as text.

import { ApiError, ChatClient, EventStream } from '/widget/v1/support-chat.js';
import { h } from '/widget/v1/dom.js';

/** @typedef {import('/widget/v1/api.js').Conversation} Conversation */
/** @typedef {import('/widget/v1/api.js').Message} Message */
/** @typedef {import('/widget/v1/api.js').Support} Support */

const tenant = document.body.dataset.tenant || '';
const me = document.body.dataset.admin || '';
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

const client = new ChatClient({
  api: location.origin,
  tenant,
  getToken: async () => {
    const res = await fetch('/demo/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ tenant, role: 'admin' }),
    });
    if (!res.ok) throw new Error(`no demo token: ${res.status}`);
    return (await res.json()).access_token;
  },
});

const state = {
  /** @type {Map<string, Conversation>} */
  convs: new Map(),
  /** @type {string | null} */
  cursor: null,
  filters: { status: 'open', assignee: '', unread: false },
  /** @type {string | null} */
  selected: null,
  /** @type {{id: string, messages: Message[], before: string | null} | null} */
  history: null,
  /** @type {Set<string>} conversations that arrived live, flashed once */
  fresh: new Set(),
  /** @type {Set<string>} */
  seen: new Set(),
};

/** @param {unknown} err */
function showError(err) {
  $('error').textContent = err instanceof ApiError ? `${err.status || 'network'}: ${err.message}` : String(err);
}

/** @param {Conversation} c */
function customerOf(c) {
  const p = c.participants.find((x) => x.role === 'customer');
  return p ? p.name || p.id : 'customer';
}

/** @param {string} iso */
function ago(iso) {
  const secs = (Date.parse(iso) - Date.now()) / 1000;
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  const abs = Math.abs(secs);
  if (abs < 45) return rtf.format(0, 'second');
  if (abs < 2700) return rtf.format(Math.round(secs / 60), 'minute');
  if (abs < 79200) return rtf.format(Math.round(secs / 3600), 'hour');
  return rtf.format(Math.round(secs / 86400), 'day');
}

/** @param {Conversation} c */
function matches(c) {
  const f = state.filters;
  if (f.status && c.status !== f.status) return false;
  if (f.assignee === 'me' && c.assignee !== me) return false;
  if (f.assignee === 'none' && c.assignee) return false;
  if (f.unread && !(c.unread_count > 0)) return false;
  return true;
}

/** @param {Conversation} c */
function upsert(c) {
  const old = state.convs.get(c.id);
  const oldLast = old?.messages?.at(-1);
  const newLast = c.messages?.at(-1);
  const merged = { ...c };
  if (oldLast && (!newLast || oldLast.created_at > newLast.created_at)) merged.messages = [oldLast];
  for (const m of c.messages || []) state.seen.add(m.id);
  state.convs.set(c.id, merged);
}

// --- the list --------------------------------------------------------------------------------

async function loadList(more = false) {
  const f = state.filters;
  try {
    const page = await client.list({
      limit: 50,
      messages: 1,
      status: f.status || undefined,
      assignee: f.assignee || undefined,
      unread: f.unread ? 'true' : undefined,
      cursor: more ? state.cursor : undefined,
    });
    page.conversations.forEach(upsert);
    state.cursor = page.next_cursor;
    renderSupport(page.support);
    $('error').textContent = '';
  } catch (err) {
    showError(err);
  }
  renderList();
}

function renderList() {
  const ul = $('conversations');
  const active = document.activeElement;
  const focusedId = active instanceof HTMLElement && active.classList.contains('conv') ? active.dataset.id : undefined;
  const list = [...state.convs.values()].filter(matches).sort((a, b) => (a.updated_at < b.updated_at ? 1 : a.updated_at > b.updated_at ? -1 : 0));
  ul.replaceChildren(...list.map((c) => {
    const last = c.messages?.at(-1);
    const tags = h('span', { class: 'tags' },
      c.status === 'resolved' ? h('span', { class: 'tag' }, 'resolved') : null,
      c.assignee ? h('span', { class: 'tag' }, c.assignee === me ? 'mine' : c.assignee) : null,
      c.unread_count > 0 ? h('span', { class: 'badge', title: `${c.unread_count} unread` }, String(c.unread_count)) : null);
    const button = h('button', {
      class: `conv${state.fresh.has(c.id) ? ' fresh' : ''}`, type: 'button', 'data-id': c.id,
      'aria-current': c.id === state.selected ? 'true' : 'false',
      onclick: () => select(c.id),
    },
    h('span', { class: 'customer' }, customerOf(c)),
    h('time', { datetime: c.updated_at }, ago(c.updated_at)),
    h('span', { class: 'subject', dir: 'auto' }, c.subject),
    h('span', { class: 'preview', dir: 'auto' }, last ? `${last.sender.role === 'admin' ? `${last.sender.name || last.sender.id}: ` : ''}${last.body}` : ''),
    tags);
    return h('li', {}, button);
  }));
  state.fresh.clear();
  $('list-note').textContent = list.length ? '' : 'No conversations match.';
  $('more').hidden = !state.cursor;
  if (focusedId) /** @type {HTMLElement | null} */ (ul.querySelector(`button[data-id="${CSS.escape(focusedId)}"]`))?.focus();
}

// --- the selected conversation ---------------------------------------------------------------

/** @param {string} id */
async function select(id) {
  state.selected = id;
  state.history = { id, messages: [], before: null };
  renderList();
  renderThread();
  try {
    const page = await client.history(id, { limit: 50 });
    if (state.selected !== id) return;
    state.history = { id, messages: page.messages, before: page.next_cursor };
    page.messages.forEach((m) => state.seen.add(m.id));
    renderThread({ focus: true });
    const c = state.convs.get(id);
    if (c && c.unread_count > 0) await markRead();
  } catch (err) {
    showError(err);
  }
}

async function loadEarlier() {
  const hist = state.history;
  if (!hist?.before) return;
  try {
    const page = await client.history(hist.id, { before: hist.before, limit: 50 });
    hist.messages = [...page.messages, ...hist.messages];
    hist.before = page.next_cursor;
    renderThread();
  } catch (err) {
    showError(err);
  }
}

/** @param {{focus?: boolean}} [options] */
function renderThread({ focus = false } = {}) {
  const pane = $('thread');
  const c = state.selected ? state.convs.get(state.selected) : null;
  if (!c) {
    pane.replaceChildren(h('p', { class: 'placeholder' }, 'Select a conversation.'));
    return;
  }
  const ctx = c.context;
  const context = ctx && (ctx.order_id || ctx.product_id || ctx.page_url)
    ? h('dl', { class: 'context', 'aria-label': 'Storefront context' },
      ctx.order_id ? h('div', {}, h('dt', {}, 'Order'), h('dd', { 'data-field': 'order' }, ctx.order_id)) : null,
      ctx.product_id ? h('div', {}, h('dt', {}, 'Product'), h('dd', { 'data-field': 'product' }, ctx.product_id)) : null,
      ctx.page_url ? h('div', {}, h('dt', {}, 'Page'), h('dd', {}, safeLink(ctx.page_url))) : null)
    : null;
  const mine = c.assignee === me;
  const head = h('div', { class: 'thread-head' },
    h('h2', { dir: 'auto', tabindex: '-1' }, c.subject),
    h('p', { class: 'meta' },
      `${customerOf(c)} · ${c.status === 'resolved' ? 'Resolved' : 'Open'} · ${c.assignee ? `assigned to ${mine ? 'you' : c.assignee}` : 'unassigned'}`),
    context,
    h('div', { class: 'actions' },
      h('button', { type: 'button', 'data-action': 'assign', disabled: mine, onclick: () => patch({ assignee: 'me' }) }, mine ? 'Assigned to me' : 'Assign to me'),
      h('button', { type: 'button', 'data-action': 'status', onclick: () => patch({ status: c.status === 'resolved' ? 'open' : 'resolved' }) }, c.status === 'resolved' ? 'Reopen' : 'Resolve'),
      h('button', { type: 'button', 'data-action': 'read', disabled: !(c.unread_count > 0), onclick: markRead }, c.unread_count > 0 ? `Mark read (${c.unread_count})` : 'Mark read')));
  const hist = state.history?.id === c.id ? state.history : null;
  const log = h('ol', { class: 'log', role: 'log', 'aria-label': 'Messages' },
    hist?.before ? h('li', { class: 'earlier' }, h('button', { class: 'secondary', type: 'button', onclick: loadEarlier }, 'Load earlier messages')) : null,
    ...(hist ? hist.messages : c.messages || []).map((m) => {
      const role = m.sender.role;
      return h('li', { class: `msg ${role}`, 'data-id': m.id },
        role === 'system' ? null : h('span', { class: 'who' }, m.sender.id === me ? 'You' : m.sender.name || m.sender.id),
        h('p', { class: 'text', dir: 'auto' }, m.body),
        h('time', { datetime: m.created_at }, new Date(m.created_at).toLocaleTimeString(undefined, { timeStyle: 'short' })));
    }));
  const old = /** @type {HTMLTextAreaElement | null} */ (pane.querySelector('textarea'));
  const draft = old && old.dataset.conv === c.id ? old.value : '';
  const hadFocus = old !== null && document.activeElement === old;
  const input = /** @type {HTMLTextAreaElement} */ (h('textarea', { id: 'reply', 'data-conv': c.id, 'aria-label': `Reply to ${customerOf(c)}`, placeholder: 'Write a reply… (Enter sends, Shift+Enter for a new line)' }));
  input.value = draft;
  const composer = h('form', { class: 'composer', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); reply(input); } },
    input, h('button', { type: 'submit' }, 'Send'));
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); /** @type {HTMLFormElement} */ (composer).requestSubmit(); }
  });
  pane.replaceChildren(head, log, composer);
  log.scrollTop = log.scrollHeight;
  if (focus || hadFocus) input.focus();
  if (hadFocus && old) input.setSelectionRange(old.selectionStart, old.selectionEnd);
}

/**
 * A link for a page URL, only for http(s); anything else stays text.
 * @param {string} url
 */
function safeLink(url) {
  try {
    const u = new URL(url);
    if (u.protocol === 'https:' || u.protocol === 'http:') return h('a', { href: u.href, target: '_blank', rel: 'noopener noreferrer' }, url);
  } catch { /* not a URL */ }
  return url;
}

/** @param {HTMLTextAreaElement} input */
async function reply(input) {
  const id = state.selected;
  const body = input.value.trim();
  if (!id || !body) return;
  input.value = '';
  try {
    const m = await client.send(id, body, crypto.randomUUID());
    onMessage(id, m);
    renderList();
    renderThread({ focus: true });
  } catch (err) {
    input.value = body;
    showError(err);
  }
}

async function markRead() {
  const id = state.selected;
  if (!id) return;
  try {
    const st = await client.read(id);
    const c = state.convs.get(id);
    if (c) c.unread_count = st.unread_count;
    renderList();
    renderThread();
  } catch (err) {
    showError(err);
  }
}

/** @param {{status?: 'open' | 'resolved', assignee?: string | null}} p */
async function patch(p) {
  const id = state.selected;
  if (!id) return;
  try {
    upsert(await client.update(id, p));
    renderList();
    renderThread();
  } catch (err) {
    showError(err);
  }
}

// --- live events -----------------------------------------------------------------------------

/**
 * @param {string} id
 * @param {Message} m
 */
function onMessage(id, m) {
  const c = state.convs.get(id);
  const isNew = !state.seen.has(m.id);
  state.seen.add(m.id);
  if (state.history?.id === id && !state.history.messages.some((x) => x.id === m.id)) state.history.messages.push(m);
  if (!c) {
    client.conversation(id).then((conv) => { upsert(conv); state.fresh.add(id); renderList(); }, showError);
    return;
  }
  if (!c.messages?.at(-1) || c.messages.at(-1).created_at <= m.created_at) c.messages = [m];
  if (m.created_at > c.updated_at) c.updated_at = m.created_at;
  if (m.sender.role === 'customer' && isNew) c.unread_count += 1;
  if (m.sender.role === 'admin') c.unread_count = 0; // the team read mark moves with a reply
}

const stream = new EventStream(client, {
  onEvent: ({ type, data }) => {
    if (type === 'conversation.created') {
      upsert(data);
      state.fresh.add(data.id);
    } else if (type === 'conversation.updated') {
      upsert(data);
    } else if (type === 'message.created') {
      onMessage(data.conversation_id, data.message);
    } else if (type === 'support.changed') {
      renderSupport(data);
      return;
    } else if (type === 'resync') {
      loadList();
      return;
    }
    renderList();
    if (state.selected && (type !== 'message.created' || data.conversation_id === state.selected)) renderThread();
  },
  onOpen: ({ resumed }) => { if (!resumed) loadList(); },
  onStatus: (status) => {
    const el = $('connection');
    el.textContent = status === 'open' ? 'Live' : status === 'offline' ? 'Offline, reconnecting…' : 'Connecting…';
    el.classList.toggle('offline', status === 'offline');
  },
});

// --- presence --------------------------------------------------------------------------------

/** @type {ReturnType<typeof setTimeout> | undefined} */
let heartbeat;
/** The admin's choice, kept across reloads of this tab. */
let wanted = /** @type {'online' | 'away'} */ (sessionStorage.getItem(`presence:${tenant}`) === 'online' ? 'online' : 'away');

/** @param {Support} s */
function renderSupport(s) {
  const reason = { no_admin_online: 'no admin online', admins_away: 'admins away', outside_business_hours: 'outside business hours' };
  const el = $('support');
  el.textContent = s.available ? 'Customers see: online' : `Customers see: ${s.status} (${reason[/** @type {keyof typeof reason} */ (s.reason)] || s.reason})`;
  el.classList.toggle('online', s.available);
}

/** Sends the presence heartbeat now and again halfway to its expiry, while the page is open. */
async function beat() {
  clearTimeout(heartbeat);
  const button = $('presence');
  button.setAttribute('aria-checked', String(wanted === 'online'));
  try {
    const p = await client.presence(wanted);
    renderSupport(p.support);
    const left = Date.parse(p.expires_at) - Date.now();
    heartbeat = setTimeout(beat, Math.max(2000, left / 2));
  } catch (err) {
    showError(err);
    heartbeat = setTimeout(beat, 5000);
  }
}

$('presence').addEventListener('click', () => {
  wanted = wanted === 'online' ? 'away' : 'online';
  sessionStorage.setItem(`presence:${tenant}`, wanted);
  beat();
});

// --- filters ---------------------------------------------------------------------------------

$('filters').addEventListener('change', () => {
  const form = /** @type {HTMLFormElement} */ ($('filters'));
  const data = new FormData(form);
  state.filters = { status: String(data.get('status') || ''), assignee: String(data.get('assignee') || ''), unread: data.get('unread') === 'on' };
  state.cursor = null;
  loadList();
});
$('more').addEventListener('click', () => loadList(true));

setInterval(() => { for (const t of document.querySelectorAll('.conv time')) t.textContent = ago(t.getAttribute('datetime') || ''); }, 30_000);

loadList();
stream.start();
beat();
