// Unit tests of how answers and events merge into the widget's list and histories. Run by
// TestModulesInNode (node --test).

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { applyMessage, byActivity, byTime, mergeConversation, mergeMessages } from './merge.js';

/**
 * Returns a message.
 * @param {string} id
 * @param {string} at the seconds of its time
 * @param {'customer' | 'admin' | 'system'} [role]
 * @param {object} [more]
 */
function msg(id, at, role = 'admin', more = {}) {
  return { id, conversation_id: 'c1', sender: { id: role === 'admin' ? 'agent' : 'ada', role, name: null }, body: id, created_at: `2025-01-01T10:00:${at}Z`, ...more };
}

/**
 * Returns a conversation.
 * @param {string} updated the seconds of updated_at
 * @param {object} [more]
 */
function conv(updated, more = {}) {
  return { id: 'c1', status: 'open', subject: 'Order', participants: [], context: null, messages: [], unread_count: 0, created_at: '2025-01-01T09:00:00Z', updated_at: `2025-01-01T10:00:${updated}Z`, ...more };
}

test('messages sort by time, stably, with unsent ones last', () => {
  const away = msg('away', '05', 'system');
  const asked = msg('asked', '05', 'customer');
  const local = msg('local-1', '01', 'customer', { local: { key: 'k', state: 'sending' } });
  const sorted = [local, msg('later', '09'), asked, away, msg('earlier', '02')].sort(byTime);
  assert.deepEqual(sorted.map((m) => m.id), ['earlier', 'asked', 'away', 'later', 'local-1']);
});

test('conversations sort by last activity, newest first, then by id', () => {
  const list = [conv('01', { id: 'a' }), conv('03', { id: 'b' }), conv('01', { id: 'c' })].sort(byActivity);
  assert.deepEqual(list.map((c) => c.id), ['b', 'c', 'a']);
});

test('a conversation not known before is taken as it comes, as a copy', () => {
  const c = conv('01', { messages: [msg('m1', '01')] });
  const merged = mergeConversation(undefined, c, { authoritative: true });
  assert.deepEqual(merged, c);
  assert.notEqual(merged, c);
});

test('an event with an older newest message keeps the newer one known, and the later activity', () => {
  const old = conv('09', { messages: [msg('m2', '09')], unread_count: 1 });
  const event = conv('05', { messages: [msg('m1', '05')], unread_count: 0, status: 'resolved' });
  assert.deepEqual(mergeConversation(old, event, { authoritative: true }),
    { ...event, messages: [msg('m2', '09')], updated_at: old.updated_at });
});

test('an event with a newer message, or none known, takes the event', () => {
  const event = conv('09', { messages: [msg('m2', '09')] });
  assert.deepEqual(mergeConversation(conv('05', { messages: [msg('m1', '05')] }), event, { authoritative: true }), event);
  assert.deepEqual(mergeConversation(conv('05'), event), event);
  const withoutMessages = conv('09', { messages: undefined });
  assert.deepEqual(mergeConversation(conv('05', { messages: [msg('m1', '05')] }), withoutMessages, { authoritative: true }).messages,
    [msg('m1', '05')], 'an event without messages keeps the one known');
});

test('an older conversation that is not authoritative changes nothing', () => {
  assert.equal(mergeConversation(conv('09'), conv('05', { unread_count: 3 })), null);
  assert.equal(mergeConversation(conv('09'), conv('05', { unread_count: 3 }), { authoritative: true }).unread_count, 3);
});

test('a new message of the team counts as unread once; the shopper\'s own clears and reopens', () => {
  const c = conv('01', { messages: [msg('m1', '01', 'customer')], status: 'resolved' });
  applyMessage(c, msg('m2', '05'), true);
  assert.deepEqual([c.messages.map((m) => m.id), c.unread_count, c.updated_at, c.status],
    [['m2'], 1, '2025-01-01T10:00:05Z', 'resolved']);
  applyMessage(c, msg('m2', '05'), false);
  assert.equal(c.unread_count, 1, 'a message seen before does not count again');
  applyMessage(c, msg('m3', '07', 'system'), true);
  assert.equal(c.unread_count, 1, 'system notices do not count');
  applyMessage(c, msg('m4', '08', 'customer'), true);
  assert.deepEqual([c.messages.map((m) => m.id), c.unread_count, c.status], [['m4'], 0, 'open']);
});

test('an older message does not replace the newest or move the activity back', () => {
  const c = conv('09', { messages: [msg('m9', '09')] });
  applyMessage(c, msg('m1', '01'), true);
  assert.deepEqual([c.messages.map((m) => m.id), c.updated_at, c.unread_count], [['m9'], '2025-01-01T10:00:09Z', 1]);
});

test('histories merge by id, the newer copy winning, in time order', () => {
  const local = msg('local-1', '03', 'customer', { local: { key: 'k', state: 'failed' } });
  const history = [msg('m1', '01'), local, msg('m3', '03')];
  const merged = mergeMessages(history, [msg('m3', '03', 'admin', { body: 'edited' }), msg('m2', '02'), msg('m4', '04')]);
  assert.deepEqual(merged.map((m) => [m.id, m.body]), [['m1', 'm1'], ['m2', 'm2'], ['m3', 'edited'], ['m4', 'm4'], ['local-1', 'local-1']]);
  assert.deepEqual(history.map((m) => m.id), ['m1', 'local-1', 'm3'], 'the history merged into is not changed');
});
