// The dead-letter CLI: `npm run bridge -- dead-letters <list|show|replay|delete> …`. It opens the outbox
// directly (SQLite WAL: safe while the bridge runs); a running bridge picks replayed rows up within a second.

import { Outbox, type OutboxRow } from './outbox.ts';

export const DEAD_LETTER_USAGE = `Usage: openwechat-bridge dead-letters <command>
  list [--json]            dead letters, oldest first
  show <seq>               one dead letter with its exact body
  replay <seq>... | --all  queue again (attempts and retry horizon restart)
  delete <seq>... | --all  forget them
The outbox is $BRIDGE_DATA_DIR/bridge.sqlite (default ./data/bridge).`;

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

function summary(r: OutboxRow): Record<string, unknown> {
  return {
    seq: r.seq,
    eventId: r.eventId,
    source: r.source,
    conversationId: r.conversation,
    sender: r.sender,
    attempts: r.attempts,
    lastStatus: r.lastStatus,
    reason: r.deadReason,
    enqueuedAt: new Date(r.enqueuedAt).toISOString(),
    deadAt: r.finishedAt === null ? null : new Date(r.finishedAt).toISOString(),
    bytes: r.body.length,
  };
}

function seqArgs(args: string[]): number[] | 'all' | null {
  if (args.length === 1 && args[0] === '--all') return 'all';
  if (!args.length || !args.every((a) => /^\d+$/.test(a))) return null;
  return args.map(Number);
}

/** Runs one dead-letter command; returns the process exit code. */
export function runDeadLetterCli(args: string[], dataDir: string, io: CliIo, now = Date.now): number {
  const [command, ...rest] = args;
  if (!command || command === '--help' || command === 'help') {
    io.out(DEAD_LETTER_USAGE);
    return command ? 0 : 2;
  }
  const outbox = Outbox.open(dataDir);
  try {
    switch (command) {
      case 'list': {
        const rows = outbox.list('dead').map(summary);
        if (rest.includes('--json')) io.out(JSON.stringify(rows, null, 2));
        else if (!rows.length) io.out('no dead letters');
        else
          for (const r of rows)
            io.out(
              `#${r.seq}  event ${r.eventId}  ${r.conversationId}  attempts=${r.attempts}  last=${r.lastStatus}  ${r.reason}  (dead since ${r.deadAt})`,
            );
        return 0;
      }
      case 'show': {
        const seq = Number(rest[0]);
        const row = Number.isInteger(seq) ? outbox.get(seq) : null;
        if (!row || row.state !== 'dead') {
          io.err(`no dead letter #${rest[0] ?? ''}`);
          return 1;
        }
        io.out(JSON.stringify({ ...summary(row), body: row.body.toString('utf8') }, null, 2));
        return 0;
      }
      case 'replay':
      case 'delete': {
        const seqs = seqArgs(rest);
        if (seqs === null) {
          io.err(`${command} needs sequence numbers or --all\n\n${DEAD_LETTER_USAGE}`);
          return 2;
        }
        const n = command === 'replay' ? outbox.replayDead(seqs, now()) : outbox.deleteDead(seqs);
        io.out(`${command === 'replay' ? 'queued again' : 'deleted'}: ${n}`);
        return 0;
      }
      default:
        io.err(`unknown command ${command}\n\n${DEAD_LETTER_USAGE}`);
        return 2;
    }
  } finally {
    outbox.close();
  }
}
