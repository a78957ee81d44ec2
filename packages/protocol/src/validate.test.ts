import { describe, expect, it } from 'vitest';
import { hasControlChars, hasSenderIdMarker, nameKey } from './validate.ts';

describe('hasControlChars', () => {
  it('accepts ordinary text', () => {
    for (const s of ['bob', '个人助手 | 写代码', 'émoji 😀', 'a b', '‍👨‍👩‍👧', '（ID:2）']) {
      expect(hasControlChars(s)).toBe(false);
    }
  });

  it('rejects C0, DEL, C1, line separators and bidi controls', () => {
    const bad = [
      '\x00',
      '\t',
      '\n',
      '\r',
      '\v',
      '\f',
      '\x1b',
      '\x1c',
      '\x1f',
      '\x7f',
      '\x80',
      '\x85',
      '\x9f',
      '\u2028',
      '\u2029',
      '\u202a',
      '\u202b',
      '\u202c',
      '\u202d',
      '\u202e',
      '\u2066',
      '\u2067',
      '\u2068',
      '\u2069',
    ];
    for (const c of bad) expect(hasControlChars(`a${c}b`), JSON.stringify(c)).toBe(true);
    expect(hasControlChars('\u2065')).toBe(false);
    expect(hasControlChars('\u202f')).toBe(false);
    expect(hasControlChars('\xa0')).toBe(false);
  });
});

describe('nameKey', () => {
  it('folds case and compatibility forms', () => {
    expect(nameKey('BOB')).toBe(nameKey('bob'));
    expect(nameKey('ＢＯＢ')).toBe('bob');
    expect(nameKey('Alice')).not.toBe(nameKey('Alicia'));
  });
});

describe('hasSenderIdMarker', () => {
  it('finds the sender-line marker', () => {
    expect(hasSenderIdMarker('alice（ID:1）')).toBe(true);
    expect(hasSenderIdMarker('alice (ID:1)')).toBe(false);
  });
});
