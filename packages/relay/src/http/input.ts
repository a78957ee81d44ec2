// Request validation with the reference's error wording (FastAPI + pydantic v2, docs/compat.md): every
// problem in path, query, header and body is collected first, then reported together as
// `请求格式错误：<loc -> parts>: <msg>; …` — before the token is even looked at, as on the reference.
// What is valid comes from the request schemas in @openwechat/protocol (fromSchema); the field checks
// below say it in pydantic's words.

import { RelayError } from '@openwechat/protocol';
import { KindGuard, type Static, type TObject, type TSchema } from '@sinclair/typebox';

export type Loc = 'path' | 'query' | 'header' | 'body';

export interface FieldIssue {
  loc: string;
  msg: string;
}

export class Issues {
  readonly list: FieldIssue[] = [];
  add(loc: string, msg: string): void {
    this.list.push({ loc, msg });
  }
  /** Throws the collected problems as one validation error. */
  throwIfAny(): void {
    if (this.list.length)
      throw new RelayError('validation_failed', this.list.map((i) => `${i.loc}: ${i.msg}`).join('; '));
  }
}

const INT_RE = /^\s*[-+]?\d+\s*$/;

/** pydantic's lax int: integers, integral floats and integer strings. undefined when invalid (issue added). */
export function intField(
  issues: Issues,
  loc: string,
  raw: unknown,
  opts: { required?: boolean; ge?: number; le?: number } = {},
): number | undefined {
  if (raw === undefined || raw === null) {
    if (opts.required !== false) issues.add(loc, 'Field required');
    return undefined;
  }
  let n: number;
  if (typeof raw === 'number' && Number.isInteger(raw)) n = raw;
  else if (typeof raw === 'number') {
    issues.add(loc, 'Input should be a valid integer, got a number with a fractional part');
    return undefined;
  } else if (typeof raw === 'string') {
    if (!INT_RE.test(raw)) {
      issues.add(loc, 'Input should be a valid integer, unable to parse string as an integer');
      return undefined;
    }
    n = Number(raw);
  } else {
    issues.add(loc, 'Input should be a valid integer');
    return undefined;
  }
  if (!Number.isSafeInteger(n)) {
    issues.add(loc, 'Input should be a valid integer, unable to parse string as an integer');
    return undefined;
  }
  if (opts.ge !== undefined && n < opts.ge) {
    issues.add(loc, `Input should be greater than or equal to ${opts.ge}`);
    return undefined;
  }
  if (opts.le !== undefined && n > opts.le) {
    issues.add(loc, `Input should be less than or equal to ${opts.le}`);
    return undefined;
  }
  return n;
}

/** String length as pydantic counts it (code points). */
export function charLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

export function strField(
  issues: Issues,
  loc: string,
  raw: unknown,
  opts: { required?: boolean; nullable?: boolean; min?: number; max?: number } = {},
): string | null | undefined {
  if (raw === undefined || (raw === null && !opts.nullable)) {
    if (raw === null) issues.add(loc, 'Input should be a valid string');
    else if (opts.required !== false) issues.add(loc, 'Field required');
    return undefined;
  }
  if (raw === null) return null;
  if (typeof raw !== 'string') {
    issues.add(loc, 'Input should be a valid string');
    return undefined;
  }
  // A string of n UTF-16 units has between n/2 and n code points: most need no counting.
  const len =
    (opts.max === undefined || raw.length <= opts.max) &&
    (opts.min === undefined || raw.length >= 2 * opts.min)
      ? raw.length
      : charLength(raw);
  if (opts.min !== undefined && len < opts.min) {
    issues.add(loc, `String should have at least ${opts.min} character${opts.min === 1 ? '' : 's'}`);
    return undefined;
  }
  if (opts.max !== undefined && len > opts.max) {
    issues.add(loc, `String should have at most ${opts.max} character${opts.max === 1 ? '' : 's'}`);
    return undefined;
  }
  return raw;
}

/**
 * pydantic's `list[int]`: each item a lax int (problems reported at `<loc> -> <index>`), optionally with
 * a minimum length. Returns undefined when absent or invalid (issue added).
 */
export function intListField(
  issues: Issues,
  loc: string,
  raw: unknown,
  opts: { required?: boolean; minItems?: number } = {},
): number[] | undefined {
  if (raw === undefined || raw === null) {
    if (raw === null) issues.add(loc, 'Input should be a valid list');
    else if (opts.required !== false) issues.add(loc, 'Field required');
    return undefined;
  }
  if (!Array.isArray(raw)) {
    issues.add(loc, 'Input should be a valid list');
    return undefined;
  }
  const before = issues.list.length;
  const out = raw.map((item, i) => intField(issues, `${loc} -> ${i}`, item) ?? 0);
  if (issues.list.length > before) return undefined;
  if (opts.minItems !== undefined && out.length < opts.minItems) {
    const s = opts.minItems === 1 ? '' : 's';
    issues.add(
      loc,
      `List should have at least ${opts.minItems} item${s} after validation, not ${out.length}`,
    );
    return undefined;
  }
  return out;
}

export function enumField<T extends string>(
  issues: Issues,
  loc: string,
  raw: unknown,
  values: readonly T[],
  opts: { required?: boolean } = {},
): T | undefined {
  if (raw === undefined) {
    if (opts.required !== false) issues.add(loc, 'Field required');
    return undefined;
  }
  if (typeof raw === 'string' && (values as readonly string[]).includes(raw)) return raw as T;
  const quoted = values.map((v) => `'${v}'`);
  const list = quoted.length > 1 ? `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}` : quoted.join('');
  issues.add(loc, `Input should be ${list}`);
  return undefined;
}

export function boolField(issues: Issues, loc: string, raw: unknown): boolean | undefined {
  if (raw === undefined) {
    issues.add(loc, 'Field required');
    return undefined;
  }
  if (typeof raw === 'boolean') return raw;
  if (raw === 0 || raw === 1) return raw === 1;
  if (typeof raw === 'string') {
    if (/^(true|1|yes|on|t|y)$/i.test(raw)) return true;
    if (/^(false|0|no|off|f|n)$/i.test(raw)) return false;
  }
  issues.add(loc, 'Input should be a valid boolean');
  return undefined;
}

/**
 * Parses a JSON request body. Returns the object, or records the reference's message
 * (`body -> <offset>: JSON decode error`, or a "valid dictionary" error for non-objects).
 */
/** Refuses malformed UTF-8; one decoder for every body (decode() without `stream` keeps no state). */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

export function jsonBody(issues: Issues, raw: unknown): Record<string, unknown> | undefined {
  if (raw === undefined || (Buffer.isBuffer(raw) && raw.length === 0)) {
    issues.add('body', 'Field required');
    return undefined;
  }
  let value: unknown = raw;
  if (Buffer.isBuffer(raw)) {
    let text: string;
    try {
      text = UTF8.decode(raw);
    } catch {
      issues.add('body -> 0', 'JSON decode error');
      return undefined;
    }
    try {
      value = JSON.parse(text);
    } catch (err) {
      const m = /position (\d+)/.exec((err as Error).message);
      issues.add(`body -> ${m ? m[1] : text.length}`, 'JSON decode error');
      return undefined;
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    issues.add('body', 'Input should be a valid dictionary or object to extract fields from');
    return undefined;
  }
  return value as Record<string, unknown>;
}

/**
 * Validates `raw` (a parsed body, the query or the path parameters) against a request schema from
 * @openwechat/protocol, property by property in the schema's order, each with the field check for its
 * type (lax ints, code-point lengths, enums, int lists, booleans, nullable strings). An Optional property
 * that is absent takes its default or stays absent; one that is present is validated as required (so
 * `"owner_id": null` is refused, as before). Invalid properties are left out of the result.
 */
export function fromSchema<T extends TObject>(
  issues: Issues,
  loc: Loc,
  schema: T,
  raw: Record<string, unknown>,
): Partial<Static<T>> {
  const out: Record<string, unknown> = {};
  for (const f of compiled(schema, loc)) {
    const value = raw[f.key];
    if (value === undefined && f.optional) {
      if (f.fallback !== undefined) out[f.key] = f.fallback;
      continue;
    }
    const checked = f.check(issues, f.loc, value);
    if (checked !== undefined) out[f.key] = checked;
  }
  return out as Partial<Static<T>>;
}

interface CompiledField {
  key: string;
  /** `<loc> -> <key>`: where an issue with this property is reported. */
  loc: string;
  check: FieldCheck;
  optional: boolean;
  fallback: unknown;
}

/** A schema's properties as fromSchema walks them, worked out once per schema and location. */
const COMPILED = new WeakMap<TObject, Map<Loc, CompiledField[]>>();

function compiled(schema: TObject, loc: Loc): CompiledField[] {
  let byLoc = COMPILED.get(schema);
  if (!byLoc) COMPILED.set(schema, (byLoc = new Map()));
  let fields = byLoc.get(loc);
  if (!fields) {
    fields = (Object.entries(schema.properties) as [string, TSchema][]).map(([key, prop]) => {
      const at = `${loc} -> ${key}`;
      return {
        key,
        loc: at,
        check: fieldCheck(prop, at),
        optional: KindGuard.IsOptional(prop),
        fallback: prop.default,
      };
    });
    byLoc.set(loc, fields);
  }
  return fields;
}

/** The string values of a union of string literals, or null when `schema` is not one. */
function stringEnum(schema: TSchema): string[] | null {
  if (!KindGuard.IsUnion(schema) || !schema.anyOf.every((s) => KindGuard.IsLiteralString(s))) return null;
  return schema.anyOf.map((s) => s.const as string);
}

type FieldCheck = (issues: Issues, loc: string, raw: unknown) => unknown;

/** The field check for a property's schema, chosen once (compiled). */
function fieldCheck(schema: TSchema, loc: string): FieldCheck {
  if (KindGuard.IsInteger(schema)) {
    const opts = { ge: schema.minimum, le: schema.maximum };
    return (issues, at, raw) => intField(issues, at, raw, opts);
  }
  if (KindGuard.IsString(schema)) {
    const opts = { min: schema.minLength, max: schema.maxLength };
    return (issues, at, raw) => strField(issues, at, raw, opts);
  }
  if (KindGuard.IsBoolean(schema)) return boolField;
  if (KindGuard.IsArray(schema) && KindGuard.IsInteger(schema.items)) {
    const opts = { minItems: schema.minItems };
    return (issues, at, raw) => intListField(issues, at, raw, opts);
  }
  const values = stringEnum(schema);
  if (values) return (issues, at, raw) => enumField(issues, at, raw, values);
  // `T | null`: only nullable strings occur in requests.
  if (KindGuard.IsUnion(schema) && schema.anyOf.length === 2 && KindGuard.IsNull(schema.anyOf[1])) {
    const inner = schema.anyOf[0];
    if (KindGuard.IsString(inner)) {
      const opts = { nullable: true, min: inner.minLength, max: inner.maxLength };
      return (issues, at, raw) => strField(issues, at, raw, opts);
    }
  }
  throw new Error(`fromSchema: no field check for the schema of ${loc}`);
}
