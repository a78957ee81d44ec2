import { describe, expect, it } from 'vitest';
import { formatTarget, normalizeTarget, parseTarget } from './targets.ts';

describe('targets', () => {
  it('reads user and group ids in their accepted spellings', () => {
    expect(parseTarget('42')).toEqual({ kind: 'user', id: 42 });
    expect(parseTarget(' openwechat:42 ')).toEqual({ kind: 'user', id: 42 });
    expect(parseTarget('user:42')).toEqual({ kind: 'user', id: 42 });
    expect(parseTarget('group:7')).toEqual({ kind: 'group', id: 7 });
    expect(parseTarget('openwechat:GROUP:7')).toEqual({ kind: 'group', id: 7 });
    expect(formatTarget({ kind: 'group', id: 7 })).toBe('group:7');
    expect(normalizeTarget('openwechat:user:9')).toBe('9');
  });

  it('refuses names, zero and junk', () => {
    for (const bad of ['alice', '0', 'group:', '-1', '1.5', '', 'group:abc', '9'.repeat(20)]) {
      expect(parseTarget(bad), bad).toBeNull();
    }
  });
});
