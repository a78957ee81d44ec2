// Text that PostgreSQL cannot store as is. PostgreSQL text cannot hold U+0000, which message content,
// attachment names and homepages may contain (SQLite keeps them): those columns go through a small
// reversible escape. U+0000 → U+E000 U+E001 and U+E000 → U+E000 U+E000: a no-op for every other string.

const NUL = '\u0000';
const ESC = '\ue000';

export function encodeText(s: string): string {
  if (!s.includes(NUL) && !s.includes(ESC)) return s;
  return s.replace(/[\u0000\ue000]/g, (c) => (c === NUL ? `${ESC}\ue001` : `${ESC}${ESC}`));
}

export function decodeText(s: string): string {
  if (!s.includes(ESC)) return s;
  return s.replace(/\ue000([\ue000\ue001])/g, (_, c: string) => (c === ESC ? ESC : NUL));
}

export function decodeNullable(s: string | null): string | null {
  return s === null ? null : decodeText(s);
}
