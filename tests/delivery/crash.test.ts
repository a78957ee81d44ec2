// No loss and no duplicates across crashes (docs/protocol.md "Every message is stored before the sender hears
// success", "Idempotent sends"): a relay process under a sustained send load is SIGKILLed at seeded
// random moments and restarted on the same data folder and port. Senders retry every logical message
// with the same Idempotency-Key and body until an HTTP answer arrives. Afterwards the recipient's inbox
// holds every logical message exactly once, in send order per sender.

import { describe, expect, it } from 'vitest';
import { relayProcessSuite } from '../helpers/fixtures.ts';
import { spawnRelay, type RelayProcess } from '../helpers/process.ts';
import { sleep } from '../helpers/sse.ts';
import { befriend, keyedSend, register, type User } from '../relay/client.ts';
import { drainInbox, mulberry32, pageAll, randInt } from './util.ts';

const SENDERS = 4;
const PER_SENDER = 120;
const TOTAL = SENDERS * PER_SENDER;
const KILLS = 5;

const suite = relayProcessSuite('owc-crash-');

interface Answer {
  status: number;
  body: string;
}

/** POSTs until an HTTP answer arrives; connection errors (relay down or killed mid-request) → retry. */
async function sendUntilAnswered(
  base: string,
  from: User,
  toId: number,
  content: string,
  key: string,
  onNetworkError: () => void,
): Promise<Answer> {
  for (;;) {
    try {
      const r = await keyedSend(base, from, toId, content, key, 15_000);
      return { status: r.status, body: r.body };
    } catch {
      onNetworkError();
      await sleep(100);
    }
  }
}

describe('SIGKILL during a send load', () => {
  it('every logical message is stored exactly once, in per-sender send order', async () => {
    const rng = mulberry32(0xdecaf);
    const dataDir = await suite.dataDir();
    let relay: RelayProcess = await spawnRelay({ dataDir });
    const { url: base, port } = relay;

    const recipient = await register(base, 'crash_recipient');
    const senders: User[] = [];
    for (let k = 0; k < SENDERS; k++) {
      const s = await register(base, `crash_sender_${k}`);
      await befriend(base, s, recipient);
      senders.push(s);
    }
    await drainInbox(base, recipient);

    // Kill points: after a seeded random number of answered messages, plus a seeded random delay so the
    // kill lands anywhere in a request (before the commit, between commit and answer, after the answer).
    const killAt = Array.from({ length: KILLS }, () => Math.floor(TOTAL * (0.08 + 0.72 * rng()))).sort(
      (a, b) => a - b,
    );
    const killDelays = killAt.map(() => randInt(rng, 0, 15));
    let answered = 0;
    let networkErrors = 0;
    const kills: { answeredBefore: number; signal: string | null }[] = [];
    let loadDone = false;

    const killer = (async () => {
      for (let k = 0; k < KILLS; k++) {
        while (answered < killAt[k]! && !loadDone) await sleep(2);
        await sleep(killDelays[k]!);
        const answeredBefore = answered;
        const exit = await relay.kill('SIGKILL');
        kills.push({ answeredBefore, signal: exit.signal });
        relay = await spawnRelay({ dataDir, port });
      }
    })();

    /** content → the final answer for it. */
    const answers = new Map<string, Answer>();
    const senderLoop = async (k: number): Promise<void> => {
      const s = senders[k]!;
      for (let i = 0; i < PER_SENDER; i++) {
        const content = `s${k} #${i}`;
        const a = await sendUntilAnswered(base, s, recipient.id, content, `crash-${k}-${i}`, () => {
          networkErrors += 1;
        });
        answers.set(content, a);
        answered += 1;
      }
    };
    try {
      await Promise.all(senders.map((_, k) => senderLoop(k)));
    } finally {
      loadDone = true;
    }
    await killer;

    // The load really was interrupted: every kill happened before the last answer and was a SIGKILL.
    expect(kills).toHaveLength(KILLS);
    for (const k of kills) {
      expect(k.signal).toBe('SIGKILL');
      expect(k.answeredBefore).toBeLessThan(TOTAL);
    }
    expect(networkErrors).toBeGreaterThan(0);

    // Every answer is a success (a replay repeats the original answer).
    for (const [content, a] of answers) {
      expect({ content, status: a.status }).toEqual({ content, status: 200 });
      expect((JSON.parse(a.body) as { result: string }).result).toBe('chat');
    }
    expect(answers.size).toBe(TOTAL);

    const inbox = await pageAll(relay.url, recipient, 100);
    const contents = inbox.map((m) => m.content);
    const expectedAll = senders.flatMap((_, k) =>
      Array.from({ length: PER_SENDER }, (_, i) => `s${k} #${i}`),
    );
    // Exactly once: same multiset, no extras.
    expect([...contents].sort()).toEqual([...expectedAll].sort());
    expect(new Set(contents).size).toBe(TOTAL);
    expect(inbox.every((m) => m.type === 'chat')).toBe(true);
    // Ids are strictly increasing in inbox order.
    for (let j = 1; j < inbox.length; j++) expect(inbox[j]!.id).toBeGreaterThan(inbox[j - 1]!.id);

    // Per sender, in send order, and from the right sender.
    for (let k = 0; k < SENDERS; k++) {
      const mine = inbox.filter((m) => m.from_id === senders[k]!.id).map((m) => m.content);
      expect(mine).toEqual(Array.from({ length: PER_SENDER }, (_, i) => `s${k} #${i}`));
    }
    // The id each sender was told (first answer or replay) is the id the message is stored under.
    const idOf = new Map(inbox.map((m) => [m.content, m.id]));
    for (const [content, a] of answers) {
      expect({ content, id: (JSON.parse(a.body) as { message_id: number }).message_id }).toEqual({
        content,
        id: idOf.get(content),
      });
    }

    // The restarted relay still stops cleanly on SIGTERM.
    const exit = await relay.kill('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
  }, 120_000);
});
