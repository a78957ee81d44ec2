// WAL checkpoints off the event loop. SQLite's automatic checkpoint runs inside whichever commit crosses
// the threshold, and its fsync (milliseconds) then stalls every request and stream. Instead a worker
// thread with its own connection checkpoints PASSIVE once a second; the automatic checkpoint stays as a
// safety net at a much larger threshold (so the WAL cannot grow without bound if the worker stalls).

import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { timeout: 5000 });
const timer = setInterval(() => {
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch (err) { parentPort.postMessage(String(err)); }
}, workerData.intervalMs);
parentPort.on('message', (m) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  try { db.pragma('wal_checkpoint(PASSIVE)'); } catch {}
  db.close();
  parentPort.close();
});
`;

/** Pages after which the writer checkpoints by itself anyway (~16 MB at 4 KiB pages). */
export const SAFETY_NET_PAGES = 4000;

export interface Checkpointer {
  stop(): Promise<void>;
}

export function startCheckpointer(
  file: string,
  intervalMs = 1000,
  onError: (msg: string) => void = () => {},
): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { file, intervalMs, driver } });
  worker.on('message', (m: string) => onError(m));
  worker.on('error', (err) => onError(String(err)));
  worker.unref();
  return {
    async stop() {
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage('stop');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      await worker.terminate();
    },
  };
}
