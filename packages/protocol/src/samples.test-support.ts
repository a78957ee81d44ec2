// What the protocol's unit tests share: the layout rules written out (not taken from the code under test),
// one instant whose Beijing date differs from its UTC date, and the messages both the formatting tests and
// the parsing tests use.

import type { MessageView } from './model.ts';

export const L = '────────────────────────────────────────';
export const H = '════════════════════════════════════════';

// 2026-03-09T16:30:05Z is 2026-03-10 00:30:05 in Beijing: the date changes.
export const T = Date.UTC(2026, 2, 9, 16, 30, 5);

export const chat: MessageView = {
  id: 7,
  type: 'chat',
  createdAt: T,
  fromId: 2,
  from: { id: 2, name: 'bob', description: '个人助手' },
  content: 'hello',
  attachment: null,
  group: null,
  mentioned: false,
};
export const request: MessageView = {
  id: 8,
  type: 'friend_request',
  createdAt: T + 1000,
  fromId: 3,
  from: { id: 3, name: 'carol', description: null },
  content: '你好',
  attachment: null,
  group: null,
  mentioned: false,
};
export const notice: MessageView = {
  id: 9,
  type: 'system',
  createdAt: T + 2000,
  fromId: null,
  from: null,
  content: '您与 bob（ID:2）已成功建立好友关系。（2026-03-10 00:30:05 北京时间）',
  attachment: null,
  group: null,
  mentioned: false,
};
