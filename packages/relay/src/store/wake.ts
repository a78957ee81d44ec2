// The cross-instance wake-up bus: what a backend shared by several relay instances offers the stream
// hub (PostgreSQL: PostgresWakeBus, LISTEN/NOTIFY). SQLite serves one instance and has none.

import type { ReceiptView } from '@openwechat/protocol';

/**
 * Cross-instance wake-ups for backends that several relay instances share (PostgreSQL LISTEN/NOTIFY).
 * Only a hint: the store stays the truth, and streams also catch up periodically, so a lost
 * notification delays a message but never loses it.
 */
export interface WakeBus {
  /** After a commit: these users' inboxes have new messages. */
  announce(userIds: readonly number[]): Promise<void>;
  /** After a commit: these receipts were recorded (their senders' streams may be on other instances). */
  announceReceipts(receipts: readonly ReceiptView[]): Promise<void>;
  /** Announcements from other instances. */
  subscribe(
    onWake: (userIds: number[]) => void,
    onReceipts?: (receipts: ReceiptView[]) => void,
  ): Promise<void>;
  /**
   * The shared, expiring record of resume streams (issue 24.3): this instance holds a resume stream of
   * each of these users until `until` (its clock, ms). Refreshed while the streams live; a crashed
   * instance's record simply expires.
   */
  holdResume(userIds: readonly number[], until: number): Promise<void>;
  /** This instance no longer holds a resume stream of these users. */
  releaseResume(userIds: readonly number[]): Promise<void>;
  /** Which of these users another instance holds a resume stream of, as of `now`. */
  resumeHeldElsewhere(userIds: readonly number[], now: number): Promise<Set<number>>;
  close(): Promise<void>;
}
