import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkSignature,
  decryptStream,
  encryptStream,
  fingerprint,
  newKeyPair,
  openEnvelope,
  parseEnvelope,
  privateKeyOf,
  safetyNumber,
  sealEnvelope,
} from './crypto.ts';

async function collect(it: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(p);
  return Buffer.concat(parts);
}

async function* pieces(b: Buffer, size: number): AsyncIterable<Buffer> {
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
}

function party() {
  return { identity: newKeyPair('ed25519'), encryption: newKeyPair('x25519') };
}

describe('message envelope', () => {
  const alice = party();
  const bob = party();
  const carol = party();
  const seal = (group: number | null = null) =>
    sealEnvelope({
      from: 1,
      identityPrivate: privateKeyOf(alice.identity.private),
      recipients: new Map([
        [2, bob.encryption.public],
        [3, carol.encryption.public],
      ]),
      group,
      body: { text: '你好 secret', ts: 1000 },
    });

  it('opens for each recipient and verifies with the sender identity key', () => {
    const env = parseEnvelope(JSON.stringify(seal(7)))!;
    expect(env.to).toEqual([2, 3]);
    for (const [id, p] of [
      [2, bob],
      [3, carol],
    ] as const) {
      const r = openEnvelope(env, id, [p.encryption]);
      if (!r.ok) throw new Error(r.why);
      expect(r.body).toEqual({ text: '你好 secret', ts: 1000 });
      expect(checkSignature(alice.identity.public, r)).toBe(true);
      expect(checkSignature(bob.identity.public, r)).toBe(false);
    }
  });

  it('is not readable by anyone else, and any changed field fails', () => {
    const env = seal();
    expect(openEnvelope(env, 4, [party().encryption])).toEqual({ ok: false, why: 'not_a_recipient' });
    // Bob's wrap presented as if addressed to someone else's key.
    expect(openEnvelope(env, 2, [carol.encryption])).toEqual({ ok: false, why: 'tampered' });
    const ct = Buffer.from(env.ct, 'base64');
    ct[3]! ^= 1;
    expect(openEnvelope({ ...env, ct: ct.toString('base64') }, 2, [bob.encryption])).toEqual({
      ok: false,
      why: 'tampered',
    });
    // The header is bound: another group, sender or nonce breaks the AEAD or the wrap.
    expect(openEnvelope({ ...env, group: 9 }, 2, [bob.encryption]).ok).toBe(false);
    expect(openEnvelope({ ...env, from: 5 }, 2, [bob.encryption]).ok).toBe(false);
    expect(openEnvelope({ ...env, n: randomBytes(16).toString('base64') }, 2, [bob.encryption]).ok).toBe(
      false,
    );
    // Dropping a recipient's wrap changes the header hash too.
    const { ['3']: _dropped, ...keys } = env.keys;
    expect(openEnvelope({ ...env, keys, to: [2] }, 2, [bob.encryption])).toEqual({
      ok: false,
      why: 'tampered',
    });
  });

  it('an older key still opens what was sent to it', () => {
    const env = seal();
    const r = openEnvelope(env, 2, [newKeyPair('x25519'), bob.encryption]);
    expect(r.ok).toBe(true);
  });

  it('refuses what is not an envelope', () => {
    expect(parseEnvelope('hello')).toBeNull();
    expect(parseEnvelope('{"v":1}')).toBeNull();
    expect(parseEnvelope(JSON.stringify({ ...seal(), epk: 'AAAA' }))).toBeNull();
  });
});

describe('file STREAM', () => {
  const key = randomBytes(32);
  const CH = 1024;

  it.each([0, 1, CH - 1, CH, CH + 1, 3 * CH, 3 * CH + 17])(
    'round-trips %i bytes in any piece sizes',
    async (n) => {
      const plain = randomBytes(n);
      const sealed = await collect(encryptStream(key, pieces(plain, 333), CH));
      expect(sealed.length).toBe(n + 16 * Math.max(1, Math.ceil(n / CH)));
      expect(await collect(decryptStream(key, pieces(sealed, 700), CH))).toEqual(plain);
    },
  );

  it('detects a flipped bit, a cut, a dropped or reordered chunk', async () => {
    const plain = randomBytes(3 * CH + 5);
    const sealed = await collect(encryptStream(key, pieces(plain, 4096), CH));
    const S = CH + 16;
    const flipped = Buffer.from(sealed);
    flipped[S + 5]! ^= 1;
    const cut = sealed.subarray(0, 3 * S); // ends on a chunk boundary: the last flag is missing
    const dropped = Buffer.concat([sealed.subarray(0, S), sealed.subarray(2 * S)]);
    const swapped = Buffer.concat([sealed.subarray(S, 2 * S), sealed.subarray(0, S), sealed.subarray(2 * S)]);
    for (const bad of [flipped, cut, dropped, swapped]) {
      await expect(collect(decryptStream(key, pieces(bad, 999), CH))).rejects.toThrow('tampered');
    }
    await expect(collect(decryptStream(randomBytes(32), pieces(sealed, 999), CH))).rejects.toThrow(
      'tampered',
    );
  });
});

describe('fingerprints', () => {
  it('the safety number is the same from both sides and changes with either key', () => {
    const a = { id: 1, key: newKeyPair('ed25519').public };
    const b = { id: 2, key: newKeyPair('ed25519').public };
    const n = safetyNumber(a, b);
    expect(n).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(safetyNumber(b, a)).toBe(n);
    expect(safetyNumber(a, { ...b, key: newKeyPair('ed25519').public })).not.toBe(n);
    expect(fingerprint(1, a.key)).toBe(n.slice(0, 35));
  });
});
