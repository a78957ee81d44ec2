// Reading the data folder's line formats: conversations.md and sse_channel.log. The one parser for both
// the CLI/daemon (through formats.ts, which writes these lines) and the demo UI, which bundles this module
// for the browser — so it imports nothing (no node: modules, no packages).
//
// conversations.md, the guide's grammar (docs/skill-data.md):
//   [<UTC>Z] from=#<id>(<name>) type=<kind>[.<flag>…] content=<text>
// What files written by older versions contain is read too (decided in docs/skill-data.md, "Reading"):
//   - skill 0.x: `[group=#g7(team) ](from|to)=#…(…) type=… [id=…][ mentioned=yes][ file=…][ attachment=…]`;
//   - the guide's Python skill, whose lines an agent wrote by hand after the guide's "minimum record format":
//     extra ` key=value` fields before `content=` (in any order; unknown ones ignored), names with an
//     unescaped `)`, CRLF line ends, and its own messages as `from=#<my id>` without `.out` (outgoing when
//     the reader says who "my id" is).
// Not read: timestamps other than the guide's UTC `…Z`, lines without `type=` or `content=`.

export interface ConversationLine {
  /** `2026-03-09T10:00:00Z` */
  time: string;
  direction: 'in' | 'out';
  /** The sender (`from=`): the other user on incoming lines, this user on outgoing ones, 0 for system. */
  fromId: number;
  fromName: string;
  /** The other user: the sender of an incoming line, the recipient of an outgoing one (0: a group or unknown). */
  peerId: number;
  peerName: string;
  /** The kind: chat, friend_request, system. */
  type: string;
  /** Relay message id, from old lines that carried `id=` (current lines keep ids in conversations.idx). */
  id: number | null;
  /** `files/<saved name>` of a downloaded attachment. */
  file: string | null;
  /** Name of an attachment that was not saved. */
  attachment: string | null;
  content: string;
  /** The group of a group message (`g7`); its name is in groups.json (old lines carried it: kept here). */
  group: { id: string; name: string } | null;
  /** An incoming group message that mentioned this user. */
  mentioned: boolean;
}

/** Undoes escapeField/escapeName: `\\`, `\n`, `\r`, `\)`. Other backslashes stay (no writer escaped them). */
export function unescapeField(text: string): string {
  return text.replace(/\\([\\nr)])/g, (_m, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c));
}

const TIME = String.raw`(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)`;
/** A name inside `#id(…)`: `\x` pairs are one unit, so an escaped `\)` never ends it; an unescaped `)` does
 *  only where the grammar continues (lazy), so a hand-written `bob (work)` still reads. */
const NAME = String.raw`((?:\\.|[^\\])*?)`;
/** Extra ` key=value` fields between the type token and `content=` (skill 0.x, hand-written lines). */
const FIELDS = String.raw`((?: (?!content=)[a-z_]+=\S*)*)`;
const LINE_RE = new RegExp(
  String.raw`^\[${TIME}\](?: group=#([^(\s]+)\(${NAME}\))? (from|to)=#(\d+|g\d+)\(${NAME}\) type=(\S+)${FIELDS} content=(.*)$`,
);

/** Reads one conversations.md line; null for anything else (blank lines, notes, damaged lines). */
export function parseConversationLine(raw: string): ConversationLine | null {
  return parseLine(raw, null);
}

/** A non-blank line of conversations.md: read, or null when it is not a message line. */
export interface ReadLine {
  raw: string;
  line: ConversationLine | null;
}

/**
 * Reads a whole conversations.md (blank lines skipped). `myId` is this user's id (profile.json `my_id`): a
 * `from=` line of this user without `.out` — how the Python skill's files record what the agent sent — is
 * then read as outgoing (recipient unknown).
 */
export function parseConversations(text: string, myId: number | null = null): ReadLine[] {
  const out: ReadLine[] = [];
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    out.push({ raw: raw.endsWith('\r') ? raw.slice(0, -1) : raw, line: parseLine(raw, myId) });
  }
  return out;
}

function parseLine(raw: string, myId: number | null): ConversationLine | null {
  const m = LINE_RE.exec(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
  if (!m) return null;
  const [, time, groupId, groupName, key, who, whoName, typeToken, extra, content] = m;
  const fields = new Map<string, string>();
  // ` k=v k=v` (the first of a repeated key wins).
  if (extra) {
    for (const f of extra.slice(1).split(' ')) {
      const eq = f.indexOf('=');
      const k = f.slice(0, eq);
      if (!fields.has(k)) fields.set(k, f.slice(eq + 1));
    }
  }

  let token = typeToken!;
  let file = fields.get('file') || null;
  let attachment = fields.get('attachment') ? unescapeField(fields.get('attachment')!) : null;
  const tail = /\.(file|attachment):(.*)$/.exec(token);
  if (tail) {
    token = token.slice(0, tail.index);
    if (tail[1] === 'file') file = tail[2]!;
    else attachment = unescapeField(tail[2]!);
  }
  const [kind = '', ...flags] = token.split('.');
  let out = key === 'to';
  let to: number | null = null;
  let group = groupId ? { id: groupId, name: unescapeField(groupName ?? '') } : null;
  let mentioned = fields.get('mentioned') === 'yes';
  for (const f of flags) {
    if (f === 'out') out = true;
    else if (f === 'mention') mentioned = true;
    else if (/^to\d+$/.test(f)) to = Number(f.slice(2));
    else if (/^g\d+$/.test(f)) group ??= { id: f, name: '' };
    // Unknown flags (a newer skill's) are ignored.
  }
  const name = unescapeField(whoName ?? '');
  // Only a group can be addressed as `#g<gid>`, and only by an outgoing line of that group (skill 0.x).
  const groupPeer = who!.startsWith('g');
  if (groupPeer && (key !== 'to' || group?.id !== who)) return null;
  const id = Number(who);
  if (key === 'from' && !out && myId !== null && id === myId) out = true;
  const idField = fields.get('id');
  // skill 0.x's `to=` named the recipient; the sender (this user) is not in the line. One object literal
  // (no spread): this runs once per line of a file that only grows.
  const sent = key === 'to';
  return {
    time: time!,
    direction: sent || out ? 'out' : 'in',
    fromId: sent ? 0 : id,
    fromName: sent ? '' : name,
    peerId: sent ? (groupPeer ? 0 : id) : out ? (to ?? 0) : id,
    peerName: sent || !out ? name : '',
    type: kind,
    id: idField && /^\d+$/.test(idField) ? Number(idField) : null,
    file,
    attachment,
    content: unescapeField(content ?? ''),
    group,
    mentioned: group !== null && mentioned,
  };
}

export interface ChannelLine {
  /** `<UTC ISO>` as written. */
  time: string;
  /** A ChannelState, or `server` for the relay's `event: log` lines. */
  state: string;
  details: string;
}

export const CHANNEL_LINE_RE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z) (\S+)(?: (.*))?$/;

/** Reads one sse_channel.log line; null for anything else. */
export function parseChannelLine(raw: string): ChannelLine | null {
  const m = CHANNEL_LINE_RE.exec(raw.endsWith('\r') ? raw.slice(0, -1) : raw);
  return m ? { time: m[1]!, state: m[2]!, details: m[3] ?? '' } : null;
}
