// How answers and events merge into the conversations and messages the widget shows. Pure.

/**
 * @typedef {import('./api.js').Conversation} Conversation
 * @typedef {import('./api.js').Message} Message
 */

/**
 * Orders messages by time; messages of the same millisecond (a message and the away notice it
 * caused) keep the order the server gave them, as sorting is stable.
 * @param {Message} a
 * @param {Message} b
 */
export function byTime(a, b) {
  if (!!a.local !== !!b.local) return a.local ? 1 : -1; // unsent messages stay last
  return a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0;
}

/**
 * Orders conversations by their last activity, newest first (by id when equal).
 * @param {Conversation} a
 * @param {Conversation} b
 */
export function byActivity(a, b) {
  return a.updated_at > b.updated_at ? -1 : a.updated_at < b.updated_at ? 1 : a.id > b.id ? -1 : a.id < b.id ? 1 : 0;
}

/**
 * Returns c merged with what was known of it (old), or null when c is older and not
 * authoritative. An event carries only the newest message: a newer one known is kept.
 * @param {Conversation | undefined} old
 * @param {Conversation} c
 * @param {{authoritative?: boolean}} [options] authoritative: its unread_count is the server's now
 * @returns {Conversation | null}
 */
export function mergeConversation(old, c, { authoritative = false } = {}) {
  if (old && !authoritative && old.updated_at > c.updated_at) return null;
  const merged = { ...c };
  const oldLast = old?.messages?.[old.messages.length - 1];
  const newLast = c.messages?.[c.messages.length - 1];
  if (oldLast && (!newLast || byTime(oldLast, newLast) > 0)) merged.messages = [oldLast];
  if (old && old.updated_at > merged.updated_at) merged.updated_at = old.updated_at;
  return merged;
}

/**
 * Applies a message to its conversation c, in place: a new team message counts as unread; the
 * shopper's own (from any device) moves their read mark and reopens a resolved conversation.
 * @param {Conversation} c
 * @param {Message} m
 * @param {boolean} isNew whether m was not known before
 */
export function applyMessage(c, m, isNew) {
  const last = c.messages?.[c.messages.length - 1];
  if (!last || byTime(last, m) < 0) c.messages = [m];
  if (m.created_at > c.updated_at) c.updated_at = m.created_at;
  if (m.sender.role === 'customer') {
    c.unread_count = 0;
    if (c.status === 'resolved') c.status = 'open';
  } else if (m.sender.role === 'admin' && isNew) {
    c.unread_count = (c.unread_count || 0) + 1;
  }
}

/**
 * Returns messages and more merged by id (more wins), in time order.
 * @param {Message[]} messages
 * @param {Message[]} more
 */
export function mergeMessages(messages, more) {
  const byId = new Map(messages.map((m) => [m.id, m]));
  for (const m of more) byId.set(m.id, m);
  return [...byId.values()].sort(byTime);
}
