// End-to-end encryption through the built skill (docs/e2e.md): two accounts opt in with
// `keys policy required`, chat and send a file through their inbox daemons; conversations.md keeps the
// guide's line format and shows the decrypted text; the relay's data folder holds none of it; the safety
// numbers agree; a plaintext peer is refused under `required` and marked under `--e2e preferred`.

import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { folderBytes } from '../helpers/bytes.ts';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { E2E_PLACEHOLDER } from '@openwechat/protocol';
import { newKeyPair, privateKeyOf, sealEnvelope } from '../../packages/client/src/e2e/crypto.ts';
import { cli, readText, startDaemon, waitIncoming, waitUntil } from './helpers.ts';
import { skillSuite } from './fixtures.ts';

const { ws, relay } = skillSuite('owc-e2e-skill-', { sseMaxPerIp: 50 }, { killAfterEach: true });

describe('skill: end-to-end encryption', () => {
  it('two E2E accounts chat and send a file; the relay keeps none of it in clear', async () => {
    const A = join(ws.root, 'alice');
    const B = join(ws.root, 'bob');
    const C = join(ws.root, 'carol');
    const run = async (data: string, args: string[], code = 0) => {
      const r = await cli(ws.skill, [...args, '--json'], { data });
      expect(r.code, r.stdout + r.stderr).toBe(code);
      return r.json!;
    };
    const aId = (await run(A, ['register', '--base-url', relay.url, '--name', 'e2e_alice'])).id as number;
    const bId = (await run(B, ['register', '--base-url', relay.url, '--name', 'e2e_bob'])).id as number;
    const cId = (await run(C, ['register', '--base-url', relay.url, '--name', 'e2e_carol'])).id as number;
    for (const d of [A, B]) expect((await run(d, ['keys', 'policy', 'required'])).policy).toBe('required');
    // The key folder is private; the config keeps the policy.
    expect((await stat(join(A, 'e2e'))).mode & 0o777).toBe(0o700);
    expect((await stat(join(A, 'e2e', 'e2e_identity.json'))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readText(join(A, 'config.json'))).e2e).toBe('required');

    const da = startDaemon(ws.skill, A);
    const db = startDaemon(ws.skill, B);
    void da;
    void db;

    const secret1 = 'SECRET-skill-hello-4f1a';
    const secret2 = 'SECRET-skill-reply-9c2e';
    const secretFile = 'SECRET-skill-file-bytes-77d0';
    const r1 = await run(A, ['send', String(bId), secret1]);
    expect(r1).toMatchObject({ outcome: 'request', encrypted: true });
    await waitIncoming(B, 1);
    expect((await run(B, ['send', String(aId), secret2])).encrypted).toBe(true);
    const file = join(ws.root, 'plan-SECRET.txt');
    await writeFile(file, `${secretFile}\n`.repeat(5000));
    expect((await run(A, ['send-file', String(bId), file, '--content', 'the plan'])).encrypted).toBe(true);

    const bobIn = await waitIncoming(B, 3);
    const aliceIn = await waitIncoming(A, 2);
    const line = /^\[\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z\] from=#\d+\([^)]*\) type=\S+ content=.*$/;
    for (const l of [...bobIn, ...aliceIn]) expect(l).toMatch(line);
    expect(bobIn[0]).toMatch(
      new RegExp(`from=#${aId}\\(e2e_alice\\) type=friend_request content=${secret1}$`),
    );
    expect(aliceIn[0]).toMatch(new RegExp(`from=#${bId}\\(e2e_bob\\) type=chat content=${secret2}$`));
    expect(bobIn[2]).toMatch(/type=chat\.file:files\/[0-9a-f]{8}_plan-SECRET\.txt content=the plan$/);
    const saved = (await readdir(join(B, 'files'))).find((f) => f.endsWith('plan-SECRET.txt'))!;
    expect(await readFile(join(B, 'files', saved), 'utf8')).toBe(`${secretFile}\n`.repeat(5000));

    const stored = await folderBytes(relay.dataDir);
    for (const t of [secret1, secret2, secretFile, 'the plan', 'plan-SECRET'])
      expect(stored.includes(Buffer.from(t)), t).toBe(false);

    const sa = (await run(A, ['keys', 'safety', String(bId)])).safety_number;
    const sb = (await run(B, ['keys', 'safety', String(aId)])).safety_number;
    expect(sa).toMatch(/^(\d{5} ){11}\d{5}$/);
    expect(sa).toBe(sb);
    expect(((await run(B, ['keys', 'list'])).peers as Array<{ id: number }>).map((p) => p.id)).toEqual([aId]);

    // A forged message (Mallory's envelope claiming to be Alice's) reaches Bob's daemon: refused, logged,
    // not stored.
    const mallory = (await (
      await fetch(`${relay.url}/register`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ name: 'e2e_mallory' }),
      })
    ).json()) as { user: { id: number }; token: string };
    const bobKey = (
      (await (
        await fetch(`${relay.url}/keys/${bId}`, {
          headers: { 'X-Token': mallory.token, Accept: 'application/json' },
        })
      ).json()) as { keys: { encryption_key: string } }
    ).keys.encryption_key;
    const forged = sealEnvelope({
      from: aId,
      identityPrivate: privateKeyOf(newKeyPair('ed25519').private),
      recipients: new Map([[bId, bobKey]]),
      group: null,
      body: { text: 'SECRET-forged-pay-me', ts: Date.now() },
    });
    const sentForged = await fetch(`${relay.url}/send`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-Token': mallory.token },
      body: JSON.stringify({ to_id: bId, content: E2E_PLACEHOLDER, e2e: JSON.stringify(forged) }),
    });
    expect(sentForged.status).toBe(200);
    await waitUntil(
      async () =>
        /refused message id=\d+ \(e2e sender_mismatch\)/.test(await readText(join(B, 'sse_channel.log'))),
      'the daemon refuses the forged message',
    );
    expect(await readText(join(B, 'conversations.md'))).not.toContain('forged');
    expect(await readText(join(B, 'conversations.md'))).not.toContain(`#${mallory.user.id}(`);

    // Carol never opted in: `keys` does not publish keys for her behind her back.
    const off = await cli(ws.skill, ['keys', '--json'], { data: C });
    expect(off.code).toBe(2);
    expect(off.stdout + off.stderr).toContain('end-to-end encryption is off');
    // Required refuses to send to her (nothing sent); preferred sends and says so.
    const refused = await cli(ws.skill, ['send', String(cId), 'hello carol', '--json'], { data: A });
    expect(refused.code).toBe(4);
    expect(refused.stdout + refused.stderr).toContain('e2e_no_keys');
    const human = await cli(ws.skill, ['send', String(cId), 'hello carol', '--e2e', 'preferred'], {
      data: A,
    });
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toContain(`[NOT encrypted: user ${cId} has published no end-to-end keys]`);
    const D = join(ws.root, 'dave');
    const dId = (await run(D, ['register', '--base-url', relay.url, '--name', 'e2e_dave'])).id as number;
    const plain = await run(A, ['send', String(dId), 'hello dave', '--e2e', 'preferred']);
    expect(plain).toMatchObject({ encrypted: false, outcome: 'request' });
    expect(String(plain.plaintext_reason)).toContain('published no end-to-end keys');
  }, 120_000);
});
