// Runtime checks of what a relay answered, against the same schemas the relay's JSON mode is typed by
// (schema.ts). A client calls checkJson() once per response instead of casting: a relay that answers
// something else fails loudly, naming the first field that is wrong, instead of deep inside a caller.

import { FormatRegistry, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ProtocolParseError } from './parse.ts';

/** TypeBox checks formats only when told how; ISO-8601 times are what the relay writes. */
function registerFormats(): void {
  if (!FormatRegistry.Has('date-time'))
    FormatRegistry.Set('date-time', (v) => /^\d{4}-\d{2}-\d{2}T/.test(v) && !Number.isNaN(Date.parse(v)));
}

/**
 * `value` typed by `schema`, or a ProtocolParseError naming `what` and the first mismatch
 * (`GET /friends: /friends/0/id: Expected integer`). Unknown extra fields are allowed (newer relays).
 */
export function checkJson<T extends TSchema>(schema: T, value: unknown, what: string): Static<T> {
  registerFormats();
  if (Value.Check(schema, value)) return value;
  const first = Value.Errors(schema, value).First();
  const where = first ? `${first.path || '/'}: ${first.message}` : 'does not match its schema';
  throw new ProtocolParseError(`${what}: ${where}`);
}

/** For clients that pass schemas around without depending on TypeBox themselves. */
export type { Static, TSchema } from '@sinclair/typebox';
