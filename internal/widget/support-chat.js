// <support-chat>: the Support Chat customer widget, served by chatd at /widget/v1/support-chat.js.
//
// ES modules, no framework and no build step. This entry defines the <support-chat> element
// (element.js) and exports the small API client (api.js) and event stream (stream.js) it is
// built on, which the development inbox (cmd/chatd-dev) reuses.
//
//   <script type="module" src="https://chat.example.com/widget/v1/support-chat.js"></script>
//   <support-chat tenant="demo-shop" order-id="ord-10042"></support-chat>
//   <script type="module">
//     document.querySelector('support-chat').getToken = async () => (await myAuth()).accessToken;
//   </script>
//
// Safety: every piece of text (messages, subjects, names, the away prompt, problem details) is set
// with textContent or as a text node, never parsed as HTML; styles are a constructed stylesheet
// and handlers are added with addEventListener, so the modules run under a strict Content
// Security Policy (no inline scripts or styles, no eval) and Trusted Types.

import { SupportChatElement } from './element.js';
import './dom.js'; // imported here too, so browsers fetch every module at once
import './merge.js'; //

export { ApiError, ChatClient, backoffDelay } from './api.js';
export { EventStream } from './stream.js';
export { DEFAULT_STRINGS, SupportChatElement } from './element.js';

if (!customElements.get('support-chat')) customElements.define('support-chat', SupportChatElement);
