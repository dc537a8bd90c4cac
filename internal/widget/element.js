// The <support-chat> element: the storefront's support screen (the shopper's conversations, the
// away prompt, starting a chat, live messages) and its styles; support-chat.js defines it.

import { ApiError, ChatClient, newKey } from './api.js';
import { cssEscape, h } from './dom.js';
import { applyMessage, byActivity, mergeConversation, mergeMessages } from './merge.js';
import { EventStream } from './stream.js';

/**
 * @typedef {import('./api.js').ChatContext} ChatContext
 * @typedef {import('./api.js').Conversation} Conversation
 * @typedef {import('./api.js').Message} Message
 * @typedef {import('./api.js').Support} Support
 * @typedef {import('./stream.js').StreamEvent} StreamEvent
 * @typedef {import('./stream.js').StreamStatus} StreamStatus
 */

/** The UI strings; assign some or all of them to the element's `strings` property to translate. */
export const DEFAULT_STRINGS = Object.freeze({
  launcher: 'Chat with us',
  title: 'Support',
  close: 'Close chat',
  back: 'Back to conversations',
  online: 'We are online',
  offline: 'You are offline. Reconnecting…',
  reconnecting: 'Reconnecting…',
  awayBack: 'We are back {when}.',
  awayReply: 'We usually reply in about {duration}.',
  conversations: 'Your conversations',
  empty: 'No conversations yet. Start one and we will get back to you here.',
  more: 'Show older conversations',
  start: 'Start a chat',
  newChat: 'New conversation',
  messageLabel: 'How can we help?',
  subjectLabel: 'Subject (optional)',
  contextOrder: 'About order {id}',
  contextProduct: 'About product {id}',
  send: 'Send',
  cancel: 'Cancel',
  messages: 'Messages',
  earlier: 'Load earlier messages',
  composer: 'Write a message',
  composerHint: 'Write a message…',
  resolved: 'This conversation is resolved. Write to reopen it.',
  you: 'You',
  youPrefix: 'You: ',
  team: 'Support',
  unread: '{count} unread',
  unreadTotal: '{count} unread messages',
  sending: 'Sending…',
  failed: 'Not sent.',
  retry: 'Retry',
  loading: 'Loading…',
  error: 'Something went wrong. Please try again.',
  tryAgain: 'Try again',
  newMessage: 'New message from {name}: {text}',
});

/** @typedef {typeof DEFAULT_STRINGS} Strings */

const LIST_PAGE = 20;

/**
 * Fills {name} placeholders of template with vars.
 * @param {string} template
 * @param {Record<string, string | number>} vars
 */
function fill(template, vars) {
  return template.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
}

/** The largest count a badge shows; more shows as "99+" (screen readers get the exact count). */
const BADGE_MAX = 99;

/**
 * Shows count in the unread badge el (in its child text when given): capped at BADGE_MAX, and
 * "99+" in the smaller font that keeps the badge round.
 * @param {HTMLElement} el
 * @param {number} count
 * @param {HTMLElement} [text]
 */
function setBadge(el, count, text = el) {
  const s = count > BADGE_MAX ? `${BADGE_MAX}+` : String(count);
  text.textContent = s;
  el.classList.toggle('long', s.length > 2);
}

/** The icon of the launcher: a speech bubble, drawn with DOM calls like everything else. */
function bubbleIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z');
  svg.append(path);
  return svg;
}

// The styles. Public custom properties (--support-chat-*) theme the widget; explicit values win
// over the light and dark defaults.
const DARK = `
  --_bg: var(--support-chat-bg, #1d1e22);
  --_fg: var(--support-chat-fg, #ececef);
  --_muted: var(--support-chat-muted, #a3a6ad);
  --_surface: var(--support-chat-surface, #2b2d33);
  --_border: var(--support-chat-border, #3b3e46);
  --_away-bg: var(--support-chat-away-bg, #3a2f16);
  --_away-fg: var(--support-chat-away-fg, #f6d58e);
  --_accent: var(--support-chat-accent, #8b8cf8);
  --_on-accent: var(--support-chat-on-accent, #111218);
  --_focus: var(--support-chat-focus, #a5b4fc);
  --_danger: var(--support-chat-danger, #fca5a5);
  color-scheme: dark;`;

const STYLES = `
:host {
  --_bg: var(--support-chat-bg, #ffffff);
  --_fg: var(--support-chat-fg, #1f2328);
  --_muted: var(--support-chat-muted, #5f6670);
  --_surface: var(--support-chat-surface, #f1f2f5);
  --_border: var(--support-chat-border, #dfe1e6);
  --_away-bg: var(--support-chat-away-bg, #fff5de);
  --_away-fg: var(--support-chat-away-fg, #6b4500);
  --_accent: var(--support-chat-accent, #4338ca);
  --_on-accent: var(--support-chat-on-accent, #ffffff);
  --_focus: var(--support-chat-focus, #2563eb);
  --_danger: var(--support-chat-danger, #b42318);
  --_radius: var(--support-chat-radius, 14px);
  --_offset: var(--support-chat-offset, 20px);
  color-scheme: light;
  font: var(--support-chat-font-size, 15px)/1.45 var(--support-chat-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  color: var(--_fg);
}
:host([theme=dark]) {${DARK}}
@media (prefers-color-scheme: dark) { :host(:not([theme=light])) {${DARK}} }
:host([hidden]) { display: none; }
:host([inline]) { display: block; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
.sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden; clip-path: inset(50%); white-space: nowrap; border: 0; }
button, input, textarea { font: inherit; color: inherit; }
button { cursor: pointer; }
:focus-visible { outline: 3px solid var(--_focus); outline-offset: 2px; }
.launcher {
  position: fixed; right: var(--_offset); bottom: var(--_offset); z-index: var(--support-chat-z-index, 2147483000);
  display: inline-flex; align-items: center; gap: .5em; padding: .8em 1.15em; border: 0; border-radius: 999px;
  background: var(--_accent); color: var(--_on-accent); font-weight: 600;
  box-shadow: 0 6px 20px rgb(0 0 0 / .22); transition: transform .15s ease;
}
.launcher:hover { transform: translateY(-2px); }
.launcher svg { width: 1.3em; height: 1.3em; fill: currentColor; }
.badge {
  display: inline-grid; place-items: center; min-width: 1.75em; height: 1.75em; padding: 0 .1em; border-radius: 999px;
  background: var(--_danger); color: #fff; font-size: .78em; font-weight: 700; line-height: 1; font-variant-numeric: tabular-nums;
}
/* "99+" (counts are capped, see setBadge) keeps about the same circle in a smaller font: 2.1 × .64 ≈ 1.75 × .78. */
.badge.long { font-size: .64em; min-width: 2.1em; height: 2.1em; letter-spacing: -.04em; }
.launcher .badge { background: #fff; color: var(--_accent); }
.panel {
  position: fixed; right: var(--_offset); bottom: calc(var(--_offset) + 4.2em); z-index: var(--support-chat-z-index, 2147483000);
  width: min(var(--support-chat-width, 380px), calc(100vw - 2 * var(--_offset)));
  height: min(var(--support-chat-height, 600px), calc(100vh - 6.5em - var(--_offset)));
  display: flex; flex-direction: column; overflow: hidden;
  background: var(--_bg); color: var(--_fg); border: 1px solid var(--_border); border-radius: var(--_radius);
  box-shadow: 0 18px 50px rgb(0 0 0 / .25); animation: sc-in .18s ease-out;
}
:host([inline]) .panel { position: static; width: 100%; height: var(--support-chat-height, 560px); box-shadow: none; animation: none; }
@media (max-width: 480px) { :host(:not([inline])) .panel { inset: 0; width: auto; height: auto; border-radius: 0; } }
@keyframes sc-in { from { opacity: 0; transform: translateY(10px); } }
@keyframes sc-pop { from { opacity: 0; transform: translateY(6px); } }
.header { display: flex; align-items: center; gap: .5em; padding: .75em .85em; background: var(--_accent); color: var(--_on-accent); }
.header .titles { flex: 1; min-width: 0; }
.header h2 { margin: 0; font-size: 1.05em; line-height: 1.3; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.header h2:focus { outline: none; }
.header .subtitle { margin: 0; font-size: .8em; opacity: .9; }
.header .subtitle::before { content: ""; display: inline-block; width: .55em; height: .55em; margin-right: .35em; border-radius: 50%; background: #34d399; }
.header .subtitle[data-state=offline]::before { background: transparent; box-shadow: inset 0 0 0 1.5px currentColor; }
.icon-button { flex: none; display: grid; place-items: center; width: 2.2em; height: 2.2em; padding: 0; border: 0; border-radius: 8px; background: transparent; color: inherit; font-size: 1.15em; }
.icon-button:hover { background: rgb(255 255 255 / .18); }
.header :focus-visible { outline-color: var(--_on-accent); }
.offline { margin: 0; padding: .45em .85em; background: var(--_fg); color: var(--_bg); font-size: .85em; }
.away { padding: .7em .85em; background: var(--_away-bg); color: var(--_away-fg); border-bottom: 1px solid var(--_border); font-size: .9em; }
.away p { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.away .meta { margin-top: .25em; font-size: .92em; opacity: .9; }
.body { flex: 1; min-height: 0; display: flex; flex-direction: column; }
.scroll { flex: 1; min-height: 0; overflow-y: auto; padding: .85em; }
.primary { width: 100%; padding: .7em 1em; border: 0; border-radius: 10px; background: var(--_accent); color: var(--_on-accent); font-weight: 600; }
.primary:disabled { opacity: .6; cursor: default; }
.secondary { padding: .55em .9em; border: 1px solid var(--_border); border-radius: 10px; background: transparent; }
.link { padding: .2em; border: 0; background: none; color: var(--_accent); text-decoration: underline; }
.conversations { list-style: none; margin: .85em 0 0; padding: 0; }
.conversations li + li { border-top: 1px solid var(--_border); }
.conv { display: grid; grid-template-columns: 1fr auto; gap: .15em .6em; width: 100%; padding: .7em .5em; border: 0; border-radius: 8px; background: none; text-align: start; }
.conv:hover { background: var(--_surface); }
.conv .subject { font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.conv time { color: var(--_muted); font-size: .8em; white-space: nowrap; }
.conv .preview { color: var(--_muted); font-size: .9em; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.conv .status { color: var(--_muted); font-size: .8em; }
.conv .badge { justify-self: end; } /* not stretched to the width of the time above it */
.empty, .note, .loading { color: var(--_muted); font-size: .92em; }
.more { display: block; margin: .6em auto 0; }
.alert { margin: 0; padding: .5em .85em; color: var(--_danger); font-size: .9em; }
.alert:empty { display: none; }
form.start { display: flex; flex-direction: column; gap: .35em; }
label { font-weight: 600; font-size: .9em; }
input[type=text], textarea { width: 100%; padding: .6em .7em; border: 1px solid var(--_border); border-radius: 10px; background: var(--_bg); }
textarea { resize: vertical; min-height: 6em; }
input:focus-visible, textarea:focus-visible { outline-offset: 0; }
.start .primary { margin-top: .6em; }
.start .secondary { align-self: flex-start; }
.thread { display: flex; flex-direction: column; }
.log { list-style: none; margin: auto 0 0; padding: 0; display: flex; flex-direction: column; gap: .55em; }
.msg { max-width: 85%; animation: sc-pop .2s ease-out; }
.msg .who { display: block; margin: 0 0 .15em .2em; color: var(--_muted); font-size: .78em; }
.msg.cont { margin-top: -.3em; }
.msg.cont .who { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; } /* still read out */
.msg .text { margin: 0; padding: .55em .8em; border-radius: 14px; background: var(--_surface); white-space: pre-wrap; overflow-wrap: anywhere; }
.msg.mine { align-self: flex-end; text-align: end; }
.msg.mine .text { background: var(--_accent); color: var(--_on-accent); border-end-end-radius: 4px; text-align: start; }
.msg.theirs .text { border-end-start-radius: 4px; }
.msg.system { align-self: center; max-width: 92%; text-align: center; }
.msg.system .text { background: none; color: var(--_muted); font-size: .85em; font-style: italic; padding: .2em .5em; }
.msg .meta { display: block; margin: .15em .3em 0; color: var(--_muted); font-size: .72em; }
.msg.failed .meta { color: var(--_danger); }
.earlier { display: block; margin: 0 auto .7em; }
.status-note { margin: 0 0 .7em; text-align: center; color: var(--_muted); font-size: .85em; }
.composer { display: flex; gap: .5em; align-items: flex-end; padding: .6em .7em; border-top: 1px solid var(--_border); }
.composer textarea { min-height: 2.6em; max-height: 8em; resize: none; }
.composer .primary { width: auto; }
@media (prefers-reduced-motion: reduce) {
  *, *::before, *::after { animation: none !important; transition: none !important; scroll-behavior: auto !important; }
}
@media (forced-colors: active) { .launcher, .primary, .header { border: 1px solid CanvasText; } }
`;

/** @type {CSSStyleSheet | null} */
let sheet = null;

/**
 * Styles root with one constructed stylesheet shared by every instance (not a <style> element,
 * which a strict style-src would block).
 * @param {ShadowRoot} root
 */
function adoptStyles(root) {
  if ('adoptedStyleSheets' in root && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLES);
    }
    root.adoptedStyleSheets = [sheet];
  } else {
    root.append(h('style', { text: STYLES }));
  }
}

/**
 * <support-chat>: the shopper's support screen.
 *
 * Attributes: tenant, api (default: the origin that served this module), order-id, product-id,
 * page-url (the context of a new chat), inline (a panel in the page instead of a launcher
 * button), open (the panel is open), theme (light or dark; default: the system's), lang.
 * Properties: getToken (async () => bearer token), strings (overrides of DEFAULT_STRINGS), open,
 * connection (read-only: 'connecting', 'online' or 'offline'). Method: refresh().
 * Events (bubbling, composed; details in the README): support-chat-open, support-chat-close,
 * support-chat-started, support-chat-message, support-chat-unread, support-chat-connection,
 * support-chat-error.
 */
export class SupportChatElement extends HTMLElement {
  static observedAttributes = ['tenant', 'api', 'lang', 'open', 'inline'];

  #root;
  /** @type {Record<string, any>} */
  #ui = {};
  /** @type {Record<string, any>} the current view's elements */
  #v = {};
  /** @type {Strings} */
  #strings = DEFAULT_STRINGS;
  /** @type {(() => Promise<string> | string) | null} */
  #getToken = null;
  /** @type {ChatClient | null} */
  #client = null;
  /** @type {EventStream | null} */
  #stream = null;
  #generation = 0;

  /** @type {Map<string, Conversation>} */
  #convs = new Map();
  /** @type {string | null | undefined} undefined until the list is loaded */
  #cursor = undefined;
  /** @type {Support | null} */
  #support = null;
  /** @type {Map<string, {messages: Message[], before: string | null, loaded: boolean}>} */
  #histories = new Map();
  /** Message ids whose unread state the widget already knows, so none counts twice. */
  #seen = new Set();
  /** @type {Set<string>} */
  #fetching = new Set();
  /** @type {'list' | 'start' | 'conversation'} */
  #view = 'list';
  /** @type {string | null} */
  #current = null;
  /** @type {{key: string, sig: string} | null} */
  #startKey = null;
  #localSeq = 0;
  #unreadTotal = -1;
  #connection = 'connecting';
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  #readTimer;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #clock;
  /** @type {ApiError | null} */
  #listError = null;

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open' });
    adoptStyles(this.#root);
    this.#build();
  }

  /** The async function that returns the shopper's bearer token. */
  get getToken() { return this.#getToken; }

  set getToken(fn) {
    this.#getToken = typeof fn === 'function' ? fn : null;
    if (this.isConnected) this.#restart();
  }

  /** The UI strings in use; assigning an object overrides some or all of DEFAULT_STRINGS. */
  get strings() { return this.#strings; }

  set strings(overrides) {
    this.#strings = Object.freeze({ ...DEFAULT_STRINGS, ...(overrides || {}) });
    this.#relabel();
    this.#showView(this.#view, { focus: false });
  }

  /** The live connection: 'connecting', 'online' or 'offline' (the widget shows an indicator). */
  get connection() { return this.#connection; }

  /** Whether the panel is open (always true inline). */
  get open() { return this.hasAttribute('open') || this.hasAttribute('inline'); }

  set open(value) { this.toggleAttribute('open', !!value); }

  connectedCallback() {
    // A page may set properties before this module defined the element: take them over (the
    // restart below starts with them).
    const own = /** @type {any} */ (this);
    if (Object.prototype.hasOwnProperty.call(this, 'getToken')) {
      const fn = own.getToken;
      delete own.getToken;
      this.#getToken = typeof fn === 'function' ? fn : null;
    }
    if (Object.prototype.hasOwnProperty.call(this, 'strings')) {
      const strings = own.strings;
      delete own.strings;
      this.strings = strings;
    }
    document.addEventListener('visibilitychange', this.#onVisibility);
    this.#clock = setInterval(() => this.#refreshTimes(), 30_000);
    this.#renderOpen(false);
    this.#restart();
  }

  disconnectedCallback() {
    document.removeEventListener('visibilitychange', this.#onVisibility);
    clearInterval(this.#clock);
    clearTimeout(this.#readTimer);
    this.#stream?.stop();
    this.#stream = null;
    this.#generation++;
  }

  /**
   * @param {string} name
   * @param {string | null} old
   * @param {string | null} value
   */
  attributeChangedCallback(name, old, value) {
    if (old === value || !this.isConnected) return;
    if (name === 'open' || name === 'inline') this.#renderOpen(name === 'open');
    else if (name === 'lang') this.#showView(this.#view, { focus: false });
    else this.#restart();
  }

  /** Reloads the conversations and the support status. */
  refresh() { return this.#loadList(); }

  // --- set-up -------------------------------------------------------------------------------

  #restart() {
    this.#stream?.stop();
    this.#stream = null;
    this.#generation++;
    this.#convs.clear();
    this.#histories.clear();
    this.#seen.clear();
    this.#cursor = undefined;
    this.#support = null;
    this.#current = null;
    this.#view = 'list';
    if (!this.#getToken) {
      this.#showView('list', { focus: false });
      return;
    }
    const getToken = this.#getToken;
    this.#client = new ChatClient({
      api: this.getAttribute('api') || new URL(import.meta.url).origin,
      tenant: this.getAttribute('tenant'),
      getToken: () => getToken.call(this),
    });
    const generation = this.#generation;
    this.#stream = new EventStream(this.#client, {
      onEvent: (e) => { if (generation === this.#generation) this.#onEvent(e); },
      onOpen: ({ resumed }) => { if (generation === this.#generation) this.#onStreamOpen(resumed); },
      onStatus: (s) => { if (generation === this.#generation) this.#onStreamStatus(s); },
    });
    this.#showView('list', { focus: false });
    this.#loadList();
    this.#stream.start();
  }

  /** Builds the parts that never change: launcher, panel, header, banners. */
  #build() {
    const ui = this.#ui;
    ui.badge = h('span', { class: 'badge', hidden: true, 'aria-hidden': 'true' });
    ui.launcherLabel = h('span', { class: 'label' });
    ui.launcherUnread = h('span', { class: 'sr-only' });
    ui.launcher = h('button', {
      class: 'launcher', part: 'launcher', type: 'button', 'aria-controls': 'panel', 'aria-expanded': 'false',
      onclick: () => { this.open = !this.open; },
    }, bubbleIcon(), ui.launcherLabel, ui.badge, ui.launcherUnread);
    ui.back = h('button', { class: 'icon-button back', type: 'button', hidden: true, onclick: () => this.#showView('list') }, '‹');
    ui.title = h('h2', { id: 'title', tabindex: '-1' });
    ui.subtitle = h('p', { class: 'subtitle', hidden: true });
    ui.close = h('button', { class: 'icon-button close', type: 'button', onclick: () => this.#close() }, '×');
    ui.offline = h('p', { class: 'offline', role: 'status', hidden: true });
    ui.awayPrompt = h('p', { class: 'prompt', dir: 'auto' });
    ui.awayMeta = h('p', { class: 'meta' });
    ui.away = h('div', { class: 'away', part: 'away', role: 'status', hidden: true }, ui.awayPrompt, ui.awayMeta);
    ui.alert = h('p', { class: 'alert', role: 'alert' });
    ui.body = h('div', { class: 'body' });
    ui.announcer = h('div', { class: 'sr-only', 'aria-live': 'polite' });
    ui.panel = h('section', {
      id: 'panel', class: 'panel', part: 'panel', role: 'dialog', 'aria-labelledby': 'title', hidden: true,
      onkeydown: (/** @type {KeyboardEvent} */ e) => {
        if (e.key === 'Escape' && !this.hasAttribute('inline')) { e.preventDefault(); this.#close(); }
      },
    },
    h('div', { class: 'header', part: 'header' }, ui.back, h('div', { class: 'titles' }, ui.title, ui.subtitle), ui.close),
    ui.offline, ui.away, ui.alert, ui.body);
    this.#root.append(ui.launcher, ui.panel, ui.announcer);
    this.#relabel();
  }

  /** Sets the labels of the fixed parts from the strings. */
  #relabel() {
    const s = this.#strings;
    const ui = this.#ui;
    ui.launcherLabel.textContent = s.launcher;
    ui.back.setAttribute('aria-label', s.back);
    ui.close.setAttribute('aria-label', s.close);
    ui.offline.textContent = s.offline;
    this.#renderUnread();
    this.#renderSupport();
  }

  // --- open, close, views -------------------------------------------------------------------

  /** @param {boolean} announce whether open just changed (move focus, fire an event) */
  #renderOpen(announce) {
    const inline = this.hasAttribute('inline');
    const open = this.open;
    const ui = this.#ui;
    ui.launcher.hidden = inline;
    ui.close.hidden = inline;
    ui.panel.hidden = !open;
    ui.panel.setAttribute('role', inline ? 'region' : 'dialog');
    ui.launcher.setAttribute('aria-expanded', String(open));
    if (!announce || inline) return;
    if (open) {
      this.#focusView();
      this.#maybeMarkRead();
      this.#emit('support-chat-open', {});
    } else {
      if (this.#root.activeElement && ui.panel.contains(this.#root.activeElement)) ui.launcher.focus();
      this.#emit('support-chat-close', {});
    }
  }

  #close() {
    if (!this.hasAttribute('inline')) this.open = false;
  }

  /**
   * Shows a view and (by default) moves focus to its first control.
   * @param {'list' | 'start' | 'conversation'} view
   * @param {{focus?: boolean, id?: string | null}} [options]
   */
  #showView(view, { focus = true, id = this.#current } = {}) {
    const from = this.#current;
    this.#view = view;
    this.#current = view === 'conversation' ? id : null;
    this.#v = {};
    this.#ui.alert.textContent = '';
    this.#ui.body.replaceChildren();
    this.#ui.back.hidden = view === 'list';
    if (view === 'list') this.#buildList();
    else if (view === 'start') this.#buildStart();
    else this.#buildConversation();
    if (focus && this.open) this.#focusView(view === 'list' ? from : null);
  }

  /** @param {string | null} [convId] the conversation to focus in the list */
  #focusView(convId = null) {
    const v = this.#v;
    /** @type {HTMLElement | null} */
    let target = null;
    if (this.#view === 'list') {
      target = (convId && v.list?.querySelector(`button[data-id="${cssEscape(convId)}"]`)) || v.start;
    } else if (this.#view === 'start') target = v.message;
    else target = v.input;
    (target && !target.hidden ? target : this.#ui.title).focus();
  }

  // --- the list -----------------------------------------------------------------------------

  #buildList() {
    const s = this.#strings;
    this.#ui.title.textContent = s.title;
    const v = this.#v;
    v.start = h('button', { class: 'primary start', type: 'button', onclick: () => this.#showView('start') }, s.start);
    v.list = h('ul', { class: 'conversations', 'aria-label': s.conversations });
    v.status = h('p', { class: 'loading', role: 'status' });
    v.more = h('button', { class: 'secondary more', type: 'button', hidden: true, onclick: () => this.#loadMore() }, s.more);
    this.#ui.body.append(h('div', { class: 'scroll' }, v.start, v.list, v.status, v.more));
    this.#renderList();
  }

  #renderList() {
    const v = this.#v;
    if (this.#view !== 'list' || !v.list) return;
    const s = this.#strings;
    const convs = [...this.#convs.values()].sort(byActivity);
    /** @type {Map<string, HTMLLIElement>} */
    const existing = new Map();
    for (const li of v.list.children) existing.set(/** @type {HTMLElement} */ (li).dataset.id, li);
    /** @type {Element | null} */
    let prev = null;
    const focused = this.#root.activeElement;
    for (const c of convs) {
      let li = existing.get(c.id);
      existing.delete(c.id);
      if (!li) {
        li = /** @type {HTMLLIElement} */ (h('li', { 'data-id': c.id },
          h('button', { class: 'conv', type: 'button', 'data-id': c.id, onclick: () => this.#showView('conversation', { id: c.id }) })));
      }
      this.#fillConversationButton(/** @type {HTMLButtonElement} */ (li.firstChild), c);
      const at = prev ? prev.nextSibling : v.list.firstChild;
      if (at !== li) v.list.insertBefore(li, at);
      prev = li;
    }
    for (const li of existing.values()) li.remove();
    if (focused instanceof HTMLElement && focused !== this.#root.activeElement && focused.isConnected) focused.focus();
    const loading = this.#cursor === undefined;
    // Start a chat appears with the first answer, which brings the away banner too: nothing
    // moves under the shopper's pointer.
    v.start.hidden = loading && !this.#listError;
    v.status.textContent = this.#listError ? s.error : loading ? s.loading : convs.length === 0 ? s.empty : '';
    v.status.className = convs.length === 0 && !loading && !this.#listError ? 'empty' : 'loading';
    v.more.hidden = !this.#cursor;
    if (this.#listError && !v.retry) {
      v.retry = h('button', { class: 'secondary more', type: 'button', onclick: () => this.#loadList() }, s.tryAgain);
      v.status.after(v.retry);
    } else if (!this.#listError && v.retry) {
      v.retry.remove();
      v.retry = null;
    }
  }

  /**
   * @param {HTMLButtonElement} button
   * @param {Conversation} c
   */
  #fillConversationButton(button, c) {
    const s = this.#strings;
    const last = c.messages?.[c.messages.length - 1];
    let preview = '';
    if (last) {
      const who = last.sender.role === 'customer' ? s.youPrefix : last.sender.role === 'admin' ? `${last.sender.name || s.team}: ` : '';
      preview = who + last.body;
    }
    let unread = h('span', {});
    if (c.unread_count > 0) {
      const count = h('span', { 'aria-hidden': 'true' });
      unread = h('span', { class: 'badge' }, count, h('span', { class: 'sr-only' }, ` ${fill(s.unread, { count: c.unread_count })}`));
      setBadge(unread, c.unread_count, count);
    }
    button.replaceChildren(
      h('span', { class: 'subject', dir: 'auto' }, c.subject),
      timeNode(c.updated_at, 'relative', this.#lang()),
      h('span', { class: 'preview', dir: 'auto' }, preview),
      unread,
    );
  }

  async #loadList() {
    const client = this.#client;
    const generation = this.#generation;
    if (!client) return;
    try {
      const page = await client.list({ limit: LIST_PAGE, messages: 1 });
      if (generation !== this.#generation) return;
      this.#listError = null;
      this.#cursor = page.next_cursor;
      for (const c of page.conversations) this.#upsert(c, { authoritative: true });
      this.#setSupport(page.support);
    } catch (err) {
      if (generation !== this.#generation) return;
      this.#listError = /** @type {ApiError} */ (err);
      this.#reportError(err);
    }
    this.#renderList();
    this.#renderUnread();
  }

  async #loadMore() {
    if (!this.#client || !this.#cursor) return;
    const generation = this.#generation;
    try {
      const page = await this.#client.list({ limit: LIST_PAGE, messages: 1, cursor: this.#cursor });
      if (generation !== this.#generation) return;
      this.#cursor = page.next_cursor;
      for (const c of page.conversations) this.#upsert(c, { authoritative: true });
    } catch (err) {
      this.#reportError(err);
    }
    this.#renderList();
    this.#renderUnread();
  }

  /**
   * Catches up after a gap in the event stream: the conversations changed since the newest
   * one known (delta sync), and the open conversation's newest messages.
   */
  async #catchUp() {
    const client = this.#client;
    const generation = this.#generation;
    if (!client) return;
    if (this.#cursor === undefined) {
      await this.#loadList();
      return;
    }
    let newest = '';
    for (const c of this.#convs.values()) if (c.updated_at > newest) newest = c.updated_at;
    try {
      if (newest) {
        // A second of overlap: merging twice is harmless, missing a change is not.
        const since = new Date(Date.parse(newest) - 1000).toISOString();
        const { conversations, support } = await client.listSince(since, { messages: 1 });
        if (generation !== this.#generation) return;
        for (const c of conversations) this.#upsert(c, { authoritative: true });
        this.#setSupport(support);
      } else {
        await this.#loadList();
      }
      if (this.#current) await this.#loadHistory(this.#current, { newest: true });
    } catch (err) {
      this.#reportError(err);
    }
    this.#renderList();
    this.#renderUnread();
  }

  /**
   * Adds or replaces a conversation.
   * @param {Conversation} c
   * @param {{authoritative?: boolean}} [options] authoritative: its unread_count is the server's now
   */
  #upsert(c, options) {
    for (const m of c.messages || []) this.#seen.add(m.id);
    const merged = mergeConversation(this.#convs.get(c.id), c, options);
    if (!merged) return;
    this.#convs.set(c.id, merged);
    const hist = this.#histories.get(c.id);
    if (hist && c.messages) hist.messages = mergeMessages(hist.messages, c.messages);
  }

  // --- events -------------------------------------------------------------------------------

  /** @param {StreamEvent} e */
  #onEvent(e) {
    switch (e.type) {
      case 'conversation.created':
      case 'conversation.updated':
        this.#upsert(e.data, { authoritative: true });
        break;
      case 'message.created':
        this.#onMessage(e.data.conversation_id, e.data.message);
        break;
      case 'support.changed':
        this.#setSupport(e.data);
        break;
      case 'resync':
        this.#catchUp();
        return;
      default:
        return;
    }
    this.#renderList();
    this.#renderUnread();
    if (this.#view === 'conversation') {
      this.#renderConversation();
      this.#maybeMarkRead();
    }
  }

  /**
   * @param {string} id
   * @param {Message} m
   */
  #onMessage(id, m) {
    const c = this.#convs.get(id);
    if (!c) {
      this.#fetchConversation(id);
      return;
    }
    const isNew = !this.#seen.has(m.id);
    this.#seen.add(m.id);
    applyMessage(c, m, isNew);
    const hist = this.#histories.get(id);
    if (hist) hist.messages = mergeMessages(hist.messages, [m]);
    if (isNew && m.sender.role === 'admin') {
      const viewing = this.#view === 'conversation' && this.#current === id && this.open;
      if (!viewing) {
        this.#ui.announcer.textContent = fill(this.#strings.newMessage, { name: m.sender.name || this.#strings.team, text: m.body.slice(0, 140) });
      }
      this.#emit('support-chat-message', { conversationId: id, message: m });
    }
  }

  /** @param {string} id */
  async #fetchConversation(id) {
    if (!this.#client || this.#fetching.has(id)) return;
    this.#fetching.add(id);
    const generation = this.#generation;
    try {
      const c = await this.#client.conversation(id);
      if (generation !== this.#generation) return;
      this.#upsert(c, { authoritative: true });
      this.#renderList();
      this.#renderUnread();
    } catch (err) {
      this.#reportError(err);
    } finally {
      this.#fetching.delete(id);
    }
  }

  /** @param {boolean} resumed */
  #onStreamOpen(resumed) {
    // Without Last-Event-ID the stream starts now: catch up on what happened before it.
    if (!resumed && this.#cursor !== undefined) this.#catchUp();
    // Messages that failed for want of a network go out again.
    for (const hist of this.#histories.values()) {
      for (const m of hist.messages) {
        if (m.local?.state === 'failed' && m.local.error?.retryable) this.#deliver(m);
      }
    }
  }

  /** @param {StreamStatus} status */
  #onStreamStatus(status) {
    const connection = status === 'open' ? 'online' : status === 'offline' ? 'offline' : this.#connection === 'offline' ? 'offline' : 'connecting';
    if (connection === this.#connection) return;
    this.#connection = connection;
    this.#ui.offline.hidden = connection !== 'offline';
    this.#renderSupport();
    this.#emit('support-chat-connection', { status: connection });
  }

  #onVisibility = () => {
    if (document.visibilityState === 'visible') this.#maybeMarkRead();
  };

  // --- support status -----------------------------------------------------------------------

  /** @param {Support | null | undefined} support */
  #setSupport(support) {
    if (!support) return;
    this.#support = support;
    this.#renderSupport();
  }

  /** Shows the support block: the header's state (unless the widget is offline) and the away prompt. */
  #renderSupport() {
    const s = this.#strings;
    const sup = this.#support;
    const ui = this.#ui;
    // Offline, the widget cannot know whether the team is online: the header says it reconnects.
    const offline = this.#connection === 'offline';
    ui.subtitle.hidden = !offline && !sup?.available;
    ui.subtitle.textContent = offline ? s.reconnecting : s.online;
    ui.subtitle.dataset.state = offline ? 'offline' : 'online';
    if (!sup || sup.available) {
      ui.away.hidden = true;
      return;
    }
    ui.awayPrompt.textContent = sup.prompt || '';
    const meta = [];
    if (sup.next_available_at) meta.push(fill(s.awayBack, { when: formatWhen(sup.next_available_at, this.#lang()) }));
    if (sup.expected_reply_seconds !== null && sup.expected_reply_seconds !== undefined) {
      meta.push(fill(s.awayReply, { duration: formatDuration(sup.expected_reply_seconds, this.#lang()) }));
    }
    ui.awayMeta.textContent = meta.join(' ');
    ui.awayMeta.hidden = meta.length === 0;
    ui.away.hidden = !sup.prompt && meta.length === 0;
  }

  // --- starting a chat ----------------------------------------------------------------------

  #buildStart() {
    const s = this.#strings;
    const v = this.#v;
    this.#ui.title.textContent = s.newChat;
    v.message = h('textarea', { id: 'start-message', name: 'message', required: true, maxlength: '4000', rows: '4' });
    v.message.addEventListener('keydown', (/** @type {KeyboardEvent} */ e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); v.form.requestSubmit(); }
    });
    v.subject = h('input', { id: 'start-subject', name: 'subject', type: 'text', maxlength: '200', autocomplete: 'off' });
    const ctx = chatContext(this);
    const notes = [];
    if (ctx?.order_id) notes.push(fill(s.contextOrder, { id: ctx.order_id }));
    if (ctx?.product_id) notes.push(fill(s.contextProduct, { id: ctx.product_id }));
    v.submit = h('button', { class: 'primary', type: 'submit' }, s.send);
    v.form = h('form', { class: 'start', novalidate: true, onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); this.#submitStart(); } },
      h('label', { for: 'start-message' }, s.messageLabel), v.message,
      h('label', { for: 'start-subject' }, s.subjectLabel), v.subject,
      notes.length ? h('p', { class: 'note' }, notes.join(' · ')) : null,
      v.submit,
      h('button', { class: 'secondary', type: 'button', onclick: () => this.#showView('list') }, s.cancel));
    this.#ui.body.append(h('div', { class: 'scroll' }, v.form));
  }

  async #submitStart() {
    const v = this.#v;
    const client = this.#client;
    const message = v.message.value.trim();
    if (!message || !client) {
      v.message.setAttribute('aria-invalid', 'true');
      v.message.focus();
      return;
    }
    v.message.removeAttribute('aria-invalid');
    /** @type {{message: string, subject?: string, context?: Partial<ChatContext>}} */
    const input = { message };
    const subject = v.subject.value.trim();
    if (subject) input.subject = subject;
    const ctx = chatContext(this);
    if (ctx) input.context = ctx;
    // The same request keeps its Idempotency-Key, so retrying after a lost answer is safe.
    const sig = JSON.stringify(input);
    if (this.#startKey?.sig !== sig) this.#startKey = { key: newKey(), sig };
    v.submit.disabled = true;
    v.submit.textContent = this.#strings.sending;
    this.#ui.alert.textContent = '';
    const generation = this.#generation;
    try {
      const c = await client.start(input, this.#startKey.key);
      if (generation !== this.#generation) return;
      this.#startKey = null;
      const messages = c.messages || [];
      this.#upsert({ ...c, messages: messages.slice(-1) }, { authoritative: true });
      const hist = { messages: [], before: null, loaded: true };
      this.#histories.set(c.id, hist);
      hist.messages = mergeMessages(hist.messages, messages);
      this.#emit('support-chat-started', { conversation: c });
      this.#showView('conversation', { id: c.id });
      this.#renderUnread();
    } catch (err) {
      if (generation !== this.#generation || this.#view !== 'start') return;
      v.submit.disabled = false;
      v.submit.textContent = this.#strings.send;
      this.#ui.alert.textContent = errorText(err, this.#strings);
      this.#reportError(err);
    }
  }

  // --- a conversation -----------------------------------------------------------------------

  #buildConversation() {
    const s = this.#strings;
    const v = this.#v;
    const id = /** @type {string} */ (this.#current);
    v.earlier = h('button', { class: 'secondary earlier', type: 'button', hidden: true, onclick: () => this.#loadEarlier() }, s.earlier);
    v.statusNote = h('p', { class: 'status-note', hidden: true }, s.resolved);
    v.loading = h('p', { class: 'loading', role: 'status' });
    v.log = h('ol', { class: 'log', role: 'log', 'aria-label': s.messages });
    v.scroll = h('div', { class: 'scroll thread', tabindex: '0', 'aria-label': s.messages }, v.earlier, v.statusNote, v.loading, v.log);
    v.input = h('textarea', { id: 'composer', rows: '1', maxlength: '4000', placeholder: s.composerHint });
    v.input.addEventListener('keydown', (/** @type {KeyboardEvent} */ e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); v.composer.requestSubmit(); }
    });
    v.composer = h('form', { class: 'composer', onsubmit: (/** @type {Event} */ e) => { e.preventDefault(); this.#submitMessage(); } },
      h('label', { class: 'sr-only', for: 'composer' }, s.composer), v.input,
      h('button', { class: 'primary', type: 'submit' }, s.send));
    this.#ui.body.append(v.scroll, v.composer);
    const hist = this.#histories.get(id);
    this.#renderConversation({ scroll: 'bottom' });
    if (!hist?.loaded) this.#loadHistory(id, { newest: true });
    this.#maybeMarkRead();
  }

  /** @param {{scroll?: 'bottom' | 'keep'}} [options] */
  #renderConversation({ scroll } = {}) {
    const v = this.#v;
    const id = this.#current;
    if (this.#view !== 'conversation' || !id || !v.log) return;
    const c = this.#convs.get(id);
    const hist = this.#histories.get(id);
    this.#ui.title.textContent = c?.subject || this.#strings.title;
    v.statusNote.hidden = c?.status !== 'resolved';
    v.earlier.hidden = !hist?.before;
    v.loading.textContent = hist?.loaded ? '' : this.#strings.loading;
    const sc = v.scroll;
    const atBottom = sc.scrollHeight - sc.scrollTop - sc.clientHeight < 48;
    const height = sc.scrollHeight;
    const top = sc.scrollTop;
    const messages = hist ? hist.messages : (c?.messages || []);
    /** @type {Map<string, HTMLElement>} */
    const existing = new Map();
    for (const li of v.log.children) existing.set(/** @type {HTMLElement} */ (li).dataset.key, li);
    /** @type {Element | null} */
    let prev = null;
    /** @type {Message | null} */
    let before = null;
    for (const m of messages) {
      const key = m.local ? `${m.id}:${m.local.state}` : m.id;
      let li = existing.get(key);
      existing.delete(key);
      if (!li) li = this.#messageNode(m, key);
      // A run of messages from one person shows their name once.
      li.classList.toggle('cont', !!before && before.sender.role === m.sender.role && before.sender.id === m.sender.id);
      before = m;
      const at = prev ? prev.nextSibling : v.log.firstChild;
      if (at !== li) v.log.insertBefore(li, at);
      prev = li;
    }
    for (const li of existing.values()) li.remove();
    if (scroll === 'bottom' || (scroll !== 'keep' && atBottom)) sc.scrollTop = sc.scrollHeight;
    else if (scroll === 'keep') sc.scrollTop = top + (sc.scrollHeight - height);
  }

  /**
   * @param {Message} m
   * @param {string} key
   */
  #messageNode(m, key) {
    const s = this.#strings;
    const role = m.sender.role;
    const kind = role === 'system' ? 'system' : role === 'customer' ? 'mine' : 'theirs';
    const li = h('li', { class: `msg ${kind}${m.local?.state === 'failed' ? ' failed' : ''}`, 'data-key': key, 'data-id': m.id });
    if (kind === 'theirs') li.append(h('span', { class: 'who' }, m.sender.name || s.team));
    if (kind === 'mine') li.append(h('span', { class: 'sr-only' }, `${s.you}: `));
    li.append(h('p', { class: 'text', dir: 'auto' }, m.body));
    if (kind === 'system') return li;
    const meta = h('span', { class: 'meta' });
    if (m.local?.state === 'sending') meta.append(s.sending);
    else if (m.local?.state === 'failed') {
      meta.append(`${s.failed} `, h('button', { class: 'link', type: 'button', onclick: () => { this.#deliver(m); this.#v.input?.focus(); } }, s.retry));
    } else meta.append(timeNode(m.created_at, 'clock', this.#lang()));
    li.append(meta);
    return li;
  }

  /**
   * Loads the newest page of a conversation's history, or merges it into what is known.
   * @param {string} id
   * @param {{newest?: boolean}} [options]
   */
  async #loadHistory(id, { newest = false } = {}) {
    if (!this.#client) return;
    const generation = this.#generation;
    let hist = this.#histories.get(id);
    try {
      const page = await this.#client.history(id, {});
      if (generation !== this.#generation) return;
      hist = this.#histories.get(id);
      if (!hist || !hist.loaded || !page.messages.some((m) => hist?.messages.some((k) => k.id === m.id))) {
        // First load, or too much was missed to join the pages: start from this page.
        const locals = hist ? hist.messages.filter((m) => m.local) : [];
        hist = { messages: [], before: page.next_cursor, loaded: true };
        this.#histories.set(id, hist);
        hist.messages = mergeMessages(hist.messages, [...page.messages, ...locals]);
      } else if (newest) {
        hist.messages = mergeMessages(hist.messages, page.messages);
      }
      for (const m of page.messages) this.#seen.add(m.id);
    } catch (err) {
      if (generation !== this.#generation) return;
      this.#reportError(err);
      if (this.#current === id) this.#ui.alert.textContent = errorText(err, this.#strings);
      return;
    }
    if (this.#current === id) {
      this.#renderConversation({ scroll: 'bottom' });
      this.#maybeMarkRead();
    }
  }

  async #loadEarlier() {
    const id = this.#current;
    const hist = id ? this.#histories.get(id) : null;
    if (!this.#client || !id || !hist?.before) return;
    const generation = this.#generation;
    const v = this.#v;
    v.earlier.disabled = true;
    v.log.setAttribute('aria-busy', 'true'); // older messages are not news: keep the log quiet
    try {
      const page = await this.#client.history(id, { before: hist.before });
      if (generation !== this.#generation) return;
      hist.before = page.next_cursor;
      for (const m of page.messages) this.#seen.add(m.id);
      hist.messages = mergeMessages(hist.messages, page.messages);
      this.#renderConversation({ scroll: 'keep' });
    } catch (err) {
      this.#reportError(err);
    } finally {
      v.earlier.disabled = false;
      v.log.removeAttribute('aria-busy');
      if (v.earlier.hidden) v.input?.focus();
    }
  }

  #submitMessage() {
    const v = this.#v;
    const id = this.#current;
    const text = v.input.value.trim();
    if (!text || !id) return;
    v.input.value = '';
    let hist = this.#histories.get(id);
    if (!hist) {
      hist = { messages: [], before: null, loaded: false };
      this.#histories.set(id, hist);
    }
    /** @type {Message} */
    const local = {
      id: `local-${++this.#localSeq}`,
      conversation_id: id,
      sender: { id: '', role: 'customer', name: null },
      body: text,
      created_at: new Date().toISOString(),
      local: { key: newKey(), state: 'sending' },
    };
    hist.messages.push(local);
    this.#renderConversation({ scroll: 'bottom' });
    this.#deliver(local);
  }

  /**
   * Sends a local message, retried with the same Idempotency-Key until it is stored once.
   * @param {Message} local
   */
  async #deliver(local) {
    const client = this.#client;
    if (!client || !local.local) return;
    const generation = this.#generation;
    local.local.state = 'sending';
    this.#renderConversation();
    const id = local.conversation_id;
    try {
      const m = await client.send(id, local.body, local.local.key);
      if (generation !== this.#generation) return;
      const hist = this.#histories.get(id);
      if (hist) {
        hist.messages = hist.messages.filter((x) => x !== local);
        hist.messages = mergeMessages(hist.messages, [m]);
      }
      this.#onMessage(id, m);
    } catch (err) {
      if (generation !== this.#generation) return;
      local.local.state = 'failed';
      local.local.error = /** @type {ApiError} */ (err);
      this.#reportError(err);
    }
    this.#renderList();
    this.#renderUnread();
    if (this.#current === id) this.#renderConversation({ scroll: 'bottom' });
  }

  /** Marks the open conversation read when the shopper can see it and it has unread messages. */
  #maybeMarkRead() {
    clearTimeout(this.#readTimer);
    const id = this.#current;
    const c = id ? this.#convs.get(id) : null;
    if (!c || !(c.unread_count > 0) || this.#view !== 'conversation' || !this.open || document.visibilityState !== 'visible') return;
    const client = this.#client;
    const generation = this.#generation;
    this.#readTimer = setTimeout(async () => {
      const hist = this.#histories.get(c.id);
      const newest = hist?.messages.filter((m) => !m.local).at(-1) || c.messages?.at(-1);
      try {
        const st = await client?.read(c.id, newest?.id);
        if (!st || generation !== this.#generation) return;
        const now = this.#convs.get(c.id);
        if (now) now.unread_count = st.unread_count;
        this.#renderList();
        this.#renderUnread();
      } catch (err) {
        this.#reportError(err);
      }
    }, 250);
  }

  // --- small renderers ----------------------------------------------------------------------

  #renderUnread() {
    let total = 0;
    for (const c of this.#convs.values()) total += c.unread_count || 0;
    const ui = this.#ui;
    ui.badge.hidden = total === 0;
    setBadge(ui.badge, total);
    ui.launcherUnread.textContent = total ? ` (${fill(this.#strings.unreadTotal, { count: total })})` : '';
    if (total !== this.#unreadTotal) {
      this.#unreadTotal = total;
      this.#emit('support-chat-unread', { count: total });
    }
  }

  #lang() {
    const lang = this.getAttribute('lang') || document.documentElement.lang || navigator.language;
    try {
      return Intl.getCanonicalLocales(lang)[0];
    } catch {
      return undefined;
    }
  }

  #refreshTimes() {
    const lang = this.#lang();
    for (const el of this.#root.querySelectorAll('time')) setTime(/** @type {HTMLElement} */ (el), lang);
    if (this.#support && !this.#support.available) this.#renderSupport();
  }

  /** @param {unknown} err */
  #reportError(err) {
    const e = err instanceof ApiError ? err : new ApiError(0, { detail: String(err) });
    this.#emit('support-chat-error', { status: e.status, problem: e.problem });
  }

  /**
   * @param {string} type
   * @param {object} detail
   */
  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

/**
 * Returns the context attributes of a new chat, if any.
 * @param {HTMLElement} el
 * @returns {Partial<ChatContext> | null}
 */
function chatContext(el) {
  /** @type {Partial<ChatContext>} */
  const ctx = {};
  const order = el.getAttribute('order-id');
  const product = el.getAttribute('product-id');
  const page = el.getAttribute('page-url');
  if (order) ctx.order_id = order;
  if (product) ctx.product_id = product;
  if (page) {
    try {
      const url = new URL(page, location.href);
      if (url.protocol === 'https:' || url.protocol === 'http:') ctx.page_url = url.href;
    } catch { /* not a URL: left out */ }
  }
  return Object.keys(ctx).length ? ctx : null;
}

/**
 * A <time> element for iso: relative ("5 minutes ago") or a clock time.
 * @param {string} iso
 * @param {'relative' | 'clock'} style
 * @param {string | undefined} lang
 */
function timeNode(iso, style, lang) {
  const el = h('time', { datetime: iso, 'data-style': style });
  setTime(el, lang);
  return el;
}

/**
 * @param {HTMLElement} el
 * @param {string | undefined} lang
 */
function setTime(el, lang) {
  const iso = el.getAttribute('datetime') || '';
  const d = new Date(iso);
  el.title = d.toLocaleString(lang);
  if (el.dataset.style === 'clock') {
    const today = new Date().toDateString() === d.toDateString();
    el.textContent = new Intl.DateTimeFormat(lang, today ? { timeStyle: 'short' } : { dateStyle: 'medium', timeStyle: 'short' }).format(d);
    return;
  }
  const secs = (d.getTime() - Date.now()) / 1000;
  const abs = Math.abs(secs);
  const rtf = new Intl.RelativeTimeFormat(lang, { numeric: 'auto' });
  if (abs < 45) el.textContent = rtf.format(0, 'second');
  else if (abs < 2700) el.textContent = rtf.format(Math.round(secs / 60), 'minute');
  else if (abs < 79200) el.textContent = rtf.format(Math.round(secs / 3600), 'hour');
  else if (abs < 6 * 86400) el.textContent = rtf.format(Math.round(secs / 86400), 'day');
  else el.textContent = new Intl.DateTimeFormat(lang, { dateStyle: 'medium' }).format(d);
}

/**
 * Returns when support is back: "in 3 hours" within a day, else a weekday and time.
 * @param {string} iso
 * @param {string | undefined} lang
 */
function formatWhen(iso, lang) {
  const d = new Date(iso);
  const secs = (d.getTime() - Date.now()) / 1000;
  if (secs < 3600) return new Intl.RelativeTimeFormat(lang, { numeric: 'auto' }).format(Math.max(1, Math.round(secs / 60)), 'minute');
  if (secs < 86400) return new Intl.RelativeTimeFormat(lang, { numeric: 'auto' }).format(Math.round(secs / 3600), 'hour');
  return new Intl.DateTimeFormat(lang, { weekday: 'long', hour: 'numeric', minute: '2-digit' }).format(d);
}

/**
 * Returns a duration in its largest sensible unit ("20 minutes", "3 hours").
 * @param {number} secs
 * @param {string | undefined} lang
 */
function formatDuration(secs, lang) {
  /** @type {[string, number]} */
  const [unit, n] = secs < 5400 ? ['minute', Math.max(1, Math.round(secs / 60))] : secs < 172800 ? ['hour', Math.round(secs / 3600)] : ['day', Math.round(secs / 86400)];
  return new Intl.NumberFormat(lang, { style: 'unit', unit, unitDisplay: 'long' }).format(n);
}

/**
 * @param {unknown} err
 * @param {Strings} strings
 */
function errorText(err, strings) {
  const e = /** @type {ApiError} */ (err);
  // Problem details of client errors are written to be shown; anything else is generic.
  if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 401 && e.problem?.detail) return e.problem.detail;
  return strings.error;
}
