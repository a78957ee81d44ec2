// Uploads are streamed, never buffered whole (docs/protocol.md "Files that arrive", fix of reference W-17):
// eight concurrent 24 MB uploads to a relay running as its own process, then eight concurrent downloads,
// while the child's resident memory (VmRSS from /proc/<pid>/status) is sampled every 20 ms. Buffering
// each upload whole would cost at least 8 × 24 MB = 192 MB; the assertion is deliberately loose.
// Why 24 MB and not 10: RSS also holds garbage and freed memory the allocator keeps, which plateaus
// (measured on Node 24: 67 MB of growth for 2 × 10 MB, 86 MB for 4 × 10 MB, 85 MB for 8 × 10 MB; Node 20
// ~55 MB). With 192 MB in flight a buffering relay is still far above that plateau.

import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnRelay, stopAllRelays, type RelayProcess } from '../helpers/process.ts';
import { sleep } from '../helpers/sse.ts';
import { befriend, messages, postFile, register, req, type Reply, type User } from '../relay/client.ts';
import { seededBytes, sha256 } from '../helpers/bytes.ts';

const MB = 1024 * 1024;
const UPLOADS = 8;
const FILE_BYTES = 24 * MB;

let relay: RelayProcess;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'owc-files-mem-'));
  relay = await spawnRelay({
    dataDir,
    env: {
      RATE_LIMIT_ENABLED: 'false',
      LOG_LEVEL: 'warn',
      MAX_UPLOAD_MB: String(FILE_BYTES / MB),
      UPLOAD_QUOTA_MB: String((UPLOADS * 2 * FILE_BYTES) / MB),
    },
  });
});

afterAll(async () => {
  await stopAllRelays();
  await rm(dataDir, { recursive: true, force: true });
});

interface Rss {
  /** VmRSS: what the assertion is about. */
  total: number;
  /** RssAnon (heap, buffers) and RssFile (mapped files), reported for diagnosis. */
  anon: number;
  file: number;
}

/** The child's resident memory in bytes, from /proc/<pid>/status. */
function rssOf(pid: number): Rss {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+)\\s+kB$`, 'm').exec(status);
    if (!m) throw new Error(`no ${name} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { total: field('VmRSS'), anon: field('RssAnon'), file: field('RssFile') };
}

/** Samples a process's RSS every 20 ms until stopped. */
function sampler(pid: number): { stop(): Rss[] } {
  const samples = [rssOf(pid)];
  const timer = setInterval(() => samples.push(rssOf(pid)), 20);
  return {
    stop() {
      clearInterval(timer);
      samples.push(rssOf(pid));
      return samples;
    },
  };
}

/** The sample with the largest VmRSS. */
const peakOf = (samples: Rss[]): Rss => samples.reduce((a, b) => (b.total > a.total ? b : a));

const mb = (n: number): string => (n / MB).toFixed(1);

function sendFile(
  base: string,
  from: User,
  toId: number,
  bytes: Uint8Array<ArrayBuffer>,
  name: string,
): Promise<Reply> {
  return postFile(base, from, '/send/file', { to_id: String(toId), content: name }, { bytes, name });
}

async function download(
  base: string,
  user: User,
  fileId: string,
): Promise<{ status: number; bytes: Buffer }> {
  const res = await fetch(`${base}/files/${fileId}`, { headers: { 'X-Token': user.token } });
  return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
}

describe('upload memory', () => {
  it(`${UPLOADS} concurrent ${FILE_BYTES / MB} MB uploads and downloads keep the relay's RSS growth small`, async () => {
    const base = relay.url;
    const pid = relay.child.pid!;
    const alice = await register(base, 'mem_alice');
    const bob = await register(base, 'mem_bob');
    await befriend(base, alice, bob);
    for (const u of [alice, bob]) await messages(base, u); // empty inboxes: replies are bare `发送成功`

    // Warm-up: load and compile the upload and download paths once.
    const warm = seededBytes(256 * 1024, 99);
    expect((await sendFile(base, alice, bob.id, warm, 'warm.bin')).body).toBe('发送成功');
    const warmId = /^附件下载：\/files\/([0-9a-f]{32})$/m.exec((await messages(base, bob)).body)?.[1] ?? '';
    expect(sha256((await download(base, bob, warmId)).bytes)).toBe(sha256(warm));

    const files = Array.from({ length: UPLOADS }, (_, i) => seededBytes(FILE_BYTES, i + 1));
    await sleep(300);
    const baselineSampler = sampler(pid);
    await sleep(200);
    const baseline = peakOf(baselineSampler.stop());

    const up = sampler(pid);
    const replies = await Promise.all(files.map((b, i) => sendFile(base, alice, bob.id, b, `f${i}.bin`)));
    const upSamples = up.stop();
    expect(replies.map((r) => [r.status, r.body])).toEqual(files.map(() => [200, '发送成功']));

    const inbox = await req(base, 'GET', '/messages', { token: bob.token, jsonMode: true });
    const list = (
      JSON.parse(inbox.body) as { messages: { content: string; attachment: { file_id: string } | null }[] }
    ).messages;
    expect(list.map((m) => m.content).sort()).toEqual(files.map((_, i) => `f${i}.bin`).sort());

    // The downloads are measured from where the uploads left the process: the garbage of the uploads
    // (collected whenever V8 gets to it) is not the downloads' doing.
    const downStart = rssOf(pid);
    const down = sampler(pid);
    const got = await Promise.all(
      list.map(async (m) => ({ name: m.content, ...(await download(base, bob, m.attachment!.file_id)) })),
    );
    const downSamples = down.stop();
    const after = rssOf(pid);

    for (const g of got) {
      const i = Number(g.name.slice(1, -4));
      expect({ name: g.name, status: g.status, size: g.bytes.length, sha256: sha256(g.bytes) }).toEqual({
        name: g.name,
        status: 200,
        size: FILE_BYTES,
        sha256: sha256(files[i]!),
      });
    }

    const upPeak = peakOf(upSamples);
    const downPeak = peakOf(downSamples);
    const show = (r: Rss): string =>
      `${mb(r.total)} MB (+${mb(r.total - baseline.total)}; anon ${mb(r.anon)}, file ${mb(r.file)})`;
    const upGrowth = upPeak.total - baseline.total;
    const downGrowth = downPeak.total - downStart.total;
    console.log(
      [
        `relay RSS, ${UPLOADS} × ${FILE_BYTES / MB} MB up then down, ${upSamples.length + downSamples.length} samples:`,
        `  baseline      ${show(baseline)}`,
        `  upload peak   ${show(upPeak)}`,
        `  download start ${show(downStart)}`,
        `  download peak ${show(downPeak)}`,
        `  after         ${show(after)}`,
        `  growth: uploads ${mb(upGrowth)} MB, downloads ${mb(downGrowth)} MB (limit ${mb(UPLOADS * FILE_BYTES)} MB each)`,
      ].join('\n'),
    );
    // Holding the files whole would take all 8 × 10 MB at once in either phase.
    expect(upGrowth).toBeLessThan(UPLOADS * FILE_BYTES);
    expect(downGrowth).toBeLessThan(UPLOADS * FILE_BYTES);
  });
});
