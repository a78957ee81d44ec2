import { CreateGroupBody, InboxQuery, RegisterBody, UpdateGroupBody } from '@openwechat/protocol';
import { Type } from '@sinclair/typebox';
import { describe, expect, it } from 'vitest';
import { fromSchema, Issues } from './input.ts';

function run<T extends Parameters<typeof fromSchema>[2]>(schema: T, raw: Record<string, unknown>) {
  const issues = new Issues();
  const value = fromSchema(issues, 'body', schema, raw);
  return { value, issues: issues.list.map((i) => `${i.loc}: ${i.msg}`) };
}

describe('fromSchema', () => {
  it('reports every problem in the order of the schema, in pydantic words', () => {
    const r = run(RegisterBody, { status: 'busy', description: 'x'.repeat(201), name: '' });
    expect(r.issues).toEqual([
      'body -> name: String should have at least 1 character',
      'body -> description: String should have at most 200 characters',
      "body -> status: Input should be 'open', 'friends_only' or 'do_not_disturb'",
    ]);
    expect(r.value).toEqual({});
  });

  it('fills defaults for absent optional fields and leaves other absent ones out', () => {
    expect(run(RegisterBody, { name: 'ann' })).toEqual({
      value: { name: 'ann', status: 'open' },
      issues: [],
    });
    const q = new Issues();
    expect(fromSchema(q, 'query', InboxQuery, { from_id: '3' })).toEqual({ limit: 100, from_id: 3 });
    expect(q.list).toEqual([]);
  });

  it('validates a present optional field as required (null is refused unless nullable)', () => {
    expect(run(UpdateGroupBody, { owner_id: null, name: null, description: null })).toEqual({
      value: { description: null },
      issues: ['body -> name: Input should be a valid string', 'body -> owner_id: Field required'],
    });
  });

  it('checks lists item by item and counts characters as code points', () => {
    expect(run(CreateGroupBody, { name: '😀'.repeat(50), member_ids: [1, 'x', 2.5] }).issues).toEqual([
      'body -> member_ids -> 1: Input should be a valid integer, unable to parse string as an integer',
      'body -> member_ids -> 2: Input should be a valid integer, got a number with a fractional part',
    ]);
  });

  it('refuses a schema it has no field check for, rather than letting anything through', () => {
    expect(() => run(Type.Object({ x: Type.Object({}) }), { x: {} })).toThrow(/no field check.*body -> x/);
  });
});
