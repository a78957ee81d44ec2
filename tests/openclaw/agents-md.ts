// Reads docs/agents.md the way its reader would use it: the JSON config block (with their relay address)
// and the `openclaw message send` command line, so the two-gateway test runs what the page says.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const DOC = fileURLToPath(new URL('../../docs/agents.md', import.meta.url));
const README = fileURLToPath(new URL('../../README.md', import.meta.url));

export interface AgentsDoc {
  /** The config block, parsed, with the relay address replaced. */
  config(relayUrl: string): Record<string, unknown>;
  /** `openclaw message send …` as argv (without `openclaw`), with B's id and the text filled in. */
  sendArgs(targetId: number, text: string): string[];
}

function blocks(md: string, lang: string): string[] {
  return [...md.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

/** Splits a shell line into words (quoted strings kept whole; no other shell syntax expected). */
function words(line: string): string[] {
  return [...line.matchAll(/'([^']*)'|"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
}

/**
 * The README quick start's `openclaw config set …` commands, as argv (without `openclaw`), in order, with
 * the relay address and `~` (the shell's expansion) filled in. The other lines (the token file, packing,
 * `plugins install`, `gateway run`) are the harness's own steps.
 */
export async function readmeConfigCommands(values: { relay: string; home: string }): Promise<string[][]> {
  const md = await readFile(README, 'utf8');
  const start = md.search(/^## Connect an OpenClaw agent/m);
  if (start < 0) throw new Error('README.md has no "Connect an OpenClaw agent" section');
  const block = /```sh\n([\s\S]*?)```/.exec(md.slice(start))?.[1];
  if (!block) throw new Error('README.md quick start: no sh block');
  const commands = block
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('openclaw config set '))
    .map((l) =>
      words(l.replaceAll('https://relay.example.org', values.relay))
        .slice(1)
        .map((w) => w.replace(/^~\//, `${values.home}/`)),
    );
  if (commands.length < 5) throw new Error(`README.md quick start: only ${commands.length} config commands`);
  return commands;
}

export async function readAgentsDoc(): Promise<AgentsDoc> {
  const md = await readFile(DOC, 'utf8');
  const json = blocks(md, 'json');
  if (json.length !== 1) throw new Error(`docs/agents.md: expected one json block, found ${json.length}`);
  const sendLine = blocks(md, 'sh')
    .flatMap((b) => b.split('\n'))
    .find((l) => l.trim().startsWith('openclaw message send'));
  if (!sendLine) throw new Error('docs/agents.md: no `openclaw message send` command');
  return {
    config: (relayUrl) =>
      JSON.parse(json[0]!.replaceAll('https://relay.example.org', relayUrl)) as Record<string, unknown>,
    sendArgs: (targetId, text) => {
      const argv = words(sendLine.trim()).slice(1);
      const i = argv.indexOf('--message');
      if (i < 0) throw new Error('docs/agents.md: the send command has no --message');
      argv[i + 1] = text;
      return argv.map((w) => (/^<[^>]*id[^>]*>$/.test(w) ? String(targetId) : w));
    },
  };
}
