// How the CLI reports: human-readable text by default, one JSON object with `--json`; errors become a
// message, a hint and an exit code that scripts can test (EXIT in daemon.ts, listed in SKILL.md).

import { ClientError, E2eError } from '@openwechat/client';
import { DataFileError } from './data/atomic.ts';
import { ConfigProblem } from './data/config.ts';
import { LockTimeoutError } from './data/lock.ts';
import { DataTooNewError } from './data/migrate.ts';
import { EXIT } from './daemon.ts';

export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    readonly code: string,
    message: string,
    readonly hint: string | null = null,
    readonly status = 0,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usageError = (message: string, hint: string | null = null): CliError =>
  new CliError(EXIT.usage, 'usage', message, hint);

/** What to tell the user next, for the refusals they can act on. */
const HINTS: Record<string, string> = {
  invalid_token:
    'The relay does not accept the token in config.json. Check base_url/token, or register again (openwechat register --force …).',
  rate_limited: 'The relay asks us to slow down; wait a few seconds and retry.',
  sse_limit:
    'The relay refused another SSE stream from this host or account (its per-IP / per-account limit). Do not stop daemons of other accounts: check only this data folder (openwechat daemon status); the daemon polls GET /messages meanwhile and reconnects by itself. On your own relay, raise SSE_MAX_PER_IP.',
  network_error:
    'The relay could not be reached. Check base_url in config.json and that the relay is running (openwechat doctor).',
  timeout: 'The relay did not answer in time. Check the network and the relay (openwechat doctor).',
  stream_idle: 'The relay stopped sending on the stream. It reconnects on its own.',
  bad_response: 'The address answered, but not like an openwechat-claw relay. Check base_url.',
  user_not_found: 'No user has this id. Find people with: openwechat users [--keyword …].',
  request_pending:
    'A friend request to this user is waiting for their reply; only one message is allowed before they answer.',
  recipient_friends_only: 'This user accepts messages from friends only.',
  recipient_dnd: 'This user does not accept any messages (do not disturb).',
  blocked_by_recipient: 'This user has blocked you.',
  you_blocked_recipient: 'You blocked this user. Unblock first: openwechat unblock <id>.',
  not_friends: 'Only accepted friends can be blocked.',
  no_block_record: 'You have not blocked this user.',
  name_taken: 'Choose another name.',
  registration_closed:
    'This relay does not accept new users. Use another relay or self-host one (see SERVER.md).',
  file_too_large: 'The file is over the relay’s upload limit.',
  upload_quota_exceeded: 'Too many of your files are still waiting for their recipients; try again later.',
  file_not_found: 'The file does not exist any more (files expire after some days) or is not yours.',
  cannot_message_self: 'You cannot message yourself.',
  content_too_long: 'Messages are limited to 1000 characters.',
  group_not_found: 'You are not a member of a group with this id. List your groups: openwechat group list.',
  not_group_owner: 'Only the group owner can do this.',
  not_friends_of_owner:
    'Only accepted friends of the group owner can be added; become friends first (openwechat send <id> …).',
  already_member: 'This user is already in the group.',
  not_group_member: 'This user is not a member of the group (see: openwechat group show <gid>).',
  group_full: 'The group has as many members as the relay allows.',
  too_many_groups: 'The user already belongs to as many groups as the relay allows.',
  owner_cannot_leave:
    'Hand the group over first (openwechat group transfer <gid> <member id>) or dissolve it (openwechat group dissolve <gid>).',
  invalid_group_name: 'Group names cannot contain line breaks or other control characters.',
};

/** Any failure → CliError with exit code and hint. */
export function toCliError(err: unknown): CliError {
  if (err instanceof CliError) return err;
  if (err instanceof ClientError) {
    const hint = HINTS[err.code] ?? null;
    let exit: number = EXIT.refused;
    if (err.kind === 'network' || err.kind === 'timeout' || err.kind === 'protocol') exit = EXIT.network;
    else if (err.code === 'invalid_token' || err.status === 401) exit = EXIT.invalidToken;
    else if (err.status === 429 || err.code === 'rate_limited' || err.code === 'sse_limit')
      exit = EXIT.rateLimited;
    return new CliError(exit, err.code, err.message, hint, err.status);
  }
  if (err instanceof E2eError) {
    // A refusal by this client (nothing was sent): a changed key, a peer without keys under `required`.
    const hint =
      err.code === 'key_changed' && err.peerId !== null
        ? `Compare the safety number with them (openwechat keys safety ${err.peerId}), then: openwechat keys accept ${err.peerId}`
        : err.code === 'no_keys'
          ? 'The peer has not enabled end-to-end encryption (openwechat keys policy preferred), or use --e2e preferred to send in plaintext.'
          : null;
    return new CliError(EXIT.refused, `e2e_${err.code}`, err.message, hint);
  }
  if (err instanceof ConfigProblem) {
    return new CliError(
      EXIT.notConfigured,
      err.reason === 'missing' ? 'not_configured' : 'config_invalid',
      err.message,
      err.reason === 'missing'
        ? 'Register first: openwechat register --base-url <your relay> --name <name>. Get a relay address from the openwechat-claw project (demo site or self-hosted); none is built in.'
        : 'Fix config.json (or register again with --force).',
    );
  }
  if (err instanceof DataTooNewError) return new CliError(EXIT.dataFolder, 'data_too_new', err.message);
  if (err instanceof DataFileError) return new CliError(EXIT.dataFolder, 'data_file_invalid', err.message);
  if (err instanceof LockTimeoutError) return new CliError(EXIT.failure, 'busy', err.message);
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'EACCES' || e?.code === 'EPERM' || e?.code === 'ENOSPC' || e?.code === 'EROFS') {
    return new CliError(EXIT.dataFolder, 'data_folder', e.message);
  }
  return new CliError(EXIT.failure, 'internal', (err as Error)?.stack ?? String(err));
}

export interface Out {
  json: boolean;
  /** Human text (ignored with --json). */
  say(text: string): void;
  /** The result object (printed with --json; merged into {"ok":true,…}). */
  result(data: Record<string, unknown>): void;
  /** Emits what was collected (`ok` is false when the command ran but reports a problem). */
  flush(ok?: boolean): void;
  fail(err: CliError): void;
}

export function makeOut(
  json: boolean,
  write = (s: string) => process.stdout.write(s),
  writeErr = (s: string) => process.stderr.write(s),
): Out {
  const lines: string[] = [];
  let data: Record<string, unknown> = {};
  return {
    json,
    say(text) {
      lines.push(text);
    },
    result(d) {
      data = { ...data, ...d };
    },
    flush(ok = true) {
      if (json) write(`${JSON.stringify({ ok, ...data })}\n`);
      else if (lines.length) write(`${lines.join('\n')}\n`);
    },
    fail(err) {
      if (json) {
        write(
          `${JSON.stringify({
            ok: false,
            error: {
              code: err.code,
              message: err.message,
              status: err.status || null,
              hint: err.hint,
              exit: err.exitCode,
            },
          })}\n`,
        );
      } else {
        writeErr(`error (${err.code}): ${err.message}\n${err.hint ? `hint: ${err.hint}\n` : ''}`);
      }
    },
  };
}
