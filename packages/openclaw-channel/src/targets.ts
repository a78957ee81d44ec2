// What a delivery target names: a relay user (`123`, `openwechat:123`, `user:123`) or a group
// (`group:45`, `openwechat:group:45`). Ids are the relay's numeric ids; names are not targets, because a
// name is neither unique nor stable on a relay.

export type Target = { kind: 'user'; id: number } | { kind: 'group'; id: number };

const TARGET = /^(?:openwechat:)?(?:(user|group):)?(\d{1,15})$/i;

export function parseTarget(raw: string | null | undefined): Target | null {
  const match = TARGET.exec((raw ?? '').trim());
  if (!match) return null;
  const id = Number(match[2]);
  if (!Number.isSafeInteger(id) || id < 1) return null;
  return match[1]?.toLowerCase() === 'group' ? { kind: 'group', id } : { kind: 'user', id };
}

/** The canonical spelling OpenClaw stores and shows (`123`, `group:45`). */
export function formatTarget(target: Target): string {
  return target.kind === 'group' ? `group:${target.id}` : String(target.id);
}

export function normalizeTarget(raw: string): string | undefined {
  const target = parseTarget(raw);
  return target ? formatTarget(target) : undefined;
}

export const TARGET_HINT = '<relay user id> or group:<group id>';
