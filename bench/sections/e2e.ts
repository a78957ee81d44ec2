// End-to-end encryption's cost (issue 27, docs/e2e.md): the same sends with and without E2E in one run,
// against one relay (SQLite). Plaintext and encrypted rounds alternate, so drift on a shared machine
// falls on both alike. Measured where the user waits: `send()` until the relay answered (encryption and
// the key lookup included, the peer's keys cached as in a running client), sequential (latency) and with
// 8 senders at once (sends/s); the receiver's `open()` (decrypt + verify + replay record); and the
// ciphertext overhead in bytes for private and group messages and for files.

import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { E2eSession, RelayClient } from '@openwechat/client';
import { newKeyPair, privateKeyOf, sealEnvelope } from '../../packages/client/src/e2e/crypto.ts';
import type { BenchContext } from '../lib/context.ts';
import { namePrefix } from '../lib/client.ts';
import { startRelay } from '../lib/procs.ts';
import { round, summarize, type Summary } from '../lib/stats.ts';

const SENDERS = 8;
const TEXT = '今天下午三点开会，议程见附件。Meeting at 3pm, agenda attached.';

export interface E2eModeResult {
  sequential: { sends: number; latencyMs: Summary; sendsPerSec: number };
  concurrent: { senders: number; sends: number; sendsPerSec: number };
}

export interface E2eResult {
  plain: E2eModeResult;
  e2e: E2eModeResult;
  /** e2e ÷ plain, per figure. */
  ratio: { latencyP50: number; sequentialSendsPerSec: number; concurrentSendsPerSec: number };
  /** Receiver: open() per encrypted message (decrypt, verify, record the nonce), ms. */
  openMs: Summary;
  /** Bytes on the wire and in the store beyond the plaintext (the `e2e` field minus the UTF-8 text). */
  overheadBytes: {
    private: Record<string, number>;
    group: Record<string, number>;
    /** A file: 16 bytes per 64 KiB chunk (+ the envelope's file entry, in the message). */
    filePerMiB: number;
  };
}

interface Peer {
  id: number;
  client: RelayClient;
  session: E2eSession;
}

function overhead(text: string, recipients: number): number {
  const me = { identity: newKeyPair('ed25519') };
  const keys = new Map(Array.from({ length: recipients }, (_, i) => [1000 + i, newKeyPair('x25519').public]));
  const env = sealEnvelope({
    from: 1,
    identityPrivate: privateKeyOf(me.identity.private),
    recipients: keys,
    group: recipients > 1 ? 7 : null,
    body: { text, ts: Date.now() },
  });
  return JSON.stringify(env).length - Buffer.byteLength(text);
}

export async function measureE2e(ctx: BenchContext): Promise<E2eResult> {
  const quick = ctx.settings.quick;
  const perRound = quick ? 25 : 150;
  const rounds = quick ? 2 : 4;
  const dataDir = join(ctx.tmpDir, 'e2e');
  const keyRoot = await mkdtemp(join(ctx.tmpDir, 'e2e-keys-'));
  const relay = await startRelay({ dataDir });
  try {
    const prefix = namePrefix();
    const peer = async (i: number): Promise<Peer> => {
      const reg = new RelayClient({ baseUrl: relay.url });
      const { user, token } = await reg.register({ name: `${prefix}e${i}` });
      const client = new RelayClient({ baseUrl: relay.url, token });
      const session = new E2eSession({
        client,
        userId: user.id,
        store: join(keyRoot, String(i)),
        policy: 'required',
      });
      await session.init();
      return { id: user.id, client, session };
    };
    // SENDERS pairs; each sender befriends its receiver (in plaintext, outside the measurement).
    const pairs: Array<[Peer, Peer]> = [];
    for (let i = 0; i < SENDERS; i++) {
      const a = await peer(2 * i);
      const b = await peer(2 * i + 1);
      await a.client.send(b.id, 'hi');
      await b.client.send(a.id, 'hello');
      await a.session.send(b.id, 'warm-up'); // pins b's keys: later sends use the cache, as a client does
      pairs.push([a, b]);
    }

    const sendOnce = (mode: 'plain' | 'e2e', [a, b]: [Peer, Peer]) =>
      mode === 'plain' ? a.client.send(b.id, TEXT) : a.session.send(b.id, TEXT);

    const seq = { plain: [] as number[], e2e: [] as number[] };
    const seqWall = { plain: 0, e2e: 0 };
    const conc = { plain: { sends: 0, ms: 0 }, e2e: { sends: 0, ms: 0 } };
    for (let r = 0; r < rounds; r++) {
      for (const mode of r % 2 ? (['e2e', 'plain'] as const) : (['plain', 'e2e'] as const)) {
        const t0 = performance.now();
        for (let i = 0; i < perRound; i++) {
          const t = performance.now();
          await sendOnce(mode, pairs[0]!);
          seq[mode].push(performance.now() - t);
        }
        seqWall[mode] += performance.now() - t0;
        const c0 = performance.now();
        await Promise.all(
          pairs.map(async (p) => {
            for (let i = 0; i < perRound / 2; i++) await sendOnce(mode, p);
          }),
        );
        conc[mode].ms += performance.now() - c0;
        conc[mode].sends += pairs.length * Math.floor(perRound / 2);
      }
      ctx.log(`  round ${r + 1}/${rounds} done`);
    }

    // Receiver side: open what the first receiver holds (encrypted ones), one at a time.
    const [, recv] = pairs[0]!;
    const opens: number[] = [];
    let after = 0;
    while (opens.length < perRound) {
      const page = await recv.client.readInbox({ after, limit: 200 });
      if (!page.messages.length) break;
      for (const m of page.messages) {
        after = Math.max(after, m.id ?? after);
        if (!m.e2e || opens.length >= perRound) continue;
        const t = performance.now();
        await recv.session.open(m);
        opens.push(performance.now() - t);
      }
    }

    const mode = (m: 'plain' | 'e2e'): E2eModeResult => ({
      sequential: {
        sends: seq[m].length,
        latencyMs: summarize(seq[m]),
        sendsPerSec: round((seq[m].length / seqWall[m]) * 1000, 0),
      },
      concurrent: {
        senders: SENDERS,
        sends: conc[m].sends,
        sendsPerSec: round((conc[m].sends / conc[m].ms) * 1000, 0),
      },
    });
    const plain = mode('plain');
    const e2e = mode('e2e');
    const result: E2eResult = {
      plain,
      e2e,
      ratio: {
        latencyP50: round(e2e.sequential.latencyMs.p50 / plain.sequential.latencyMs.p50, 2),
        sequentialSendsPerSec: round(e2e.sequential.sendsPerSec / plain.sequential.sendsPerSec, 2),
        concurrentSendsPerSec: round(e2e.concurrent.sendsPerSec / plain.concurrent.sendsPerSec, 2),
      },
      openMs: summarize(opens),
      overheadBytes: {
        private: {
          '10 chars': overhead('0123456789', 1),
          [`${[...TEXT].length} chars`]: overhead(TEXT, 1),
          '1000 chars': overhead('字'.repeat(1000), 1),
        },
        group: {
          '3 members': overhead(TEXT, 2),
          '10 members': overhead(TEXT, 9),
          '100 members': overhead(TEXT, 99),
          '500 members': overhead(TEXT, 499),
        },
        filePerMiB: 16 * 16,
      },
    };
    ctx.log(
      `  sequential p50: plain ${plain.sequential.latencyMs.p50} ms, e2e ${e2e.sequential.latencyMs.p50} ms; ` +
        `sends/s with ${SENDERS} senders: plain ${plain.concurrent.sendsPerSec}, e2e ${e2e.concurrent.sendsPerSec}`,
    );
    return result;
  } finally {
    await relay.stop();
    await rm(keyRoot, { recursive: true, force: true });
  }
}
