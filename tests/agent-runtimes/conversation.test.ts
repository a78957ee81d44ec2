// Real agent runtimes as MCP clients of our server (issue 23): Claude Code (`claude -p --mcp-config`) and
// Codex (`codex exec` with [mcp_servers]), configured with docs/mcp.md's snippets, each driven by a scripted
// fake model to register, send to the other agent, wait_for_message and read — in one conversation with a
// relay user (a plain RelayClient). Every message must arrive exactly once: checked on the relay side
// (the relay user's inbox, the agents' inboxes drained) and in what each runtime showed its model.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RelayClient } from '@openwechat/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import { newUser, tempDir, until, type RelayUser } from '../mcp/harness.ts';
import { startAnthropicFake, startResponsesFake, type FakeModel, type Turn } from './fake-models.ts';
import { ensureClaude, ensureCodex, fill, runClaude, runCodex, snippet, type RunResult } from './runtimes.ts';

const SERVER = 'openwechat';
const HELLO_OPS = 'hello ops, claude here';
const WELCOME = 'welcome claude';
const CODEX_HELLO = 'hello claude, codex here';
const CLAUDE_REPLY = 'hi codex, claude here';
const CODEX_REPORT = 'codex to ops: claude answered';

interface Shown {
  id: number;
  from_id: number | null;
  content: string;
}

/**
 * The messages in one tool result as the runtime showed it to the model: our text (messages between
 * `<message-…>` tags) or our structured content as JSON (Claude Code shows that one when it is there).
 */
function shown(result: string): Shown[] {
  // Codex prefixes the JSON with "Wall time: …\nOutput:\n".
  const brace = result.indexOf('{');
  try {
    const j = JSON.parse(brace >= 0 ? result.slice(brace) : result) as { messages?: Shown[] };
    if (Array.isArray(j.messages)) return j.messages;
  } catch {
    // the text form
  }
  const out: Shown[] = [];
  const re = /<message-([0-9a-f]+) id="(\d+)"[^>]*?(?:from_id="(\d+)")?[^>]*>\n([\s\S]*?)\n<\/message-\1>/g;
  for (const m of result.matchAll(re)) {
    out.push({ id: Number(m[2]), from_id: m[3] ? Number(m[3]) : null, content: m[4]! });
  }
  return out;
}

/** How often a message with body `text` was shown to the model over a run (its last turn holds them all). */
function deliveries(turn: Turn | undefined, text: string): number {
  return (turn?.results ?? []).flatMap(shown).filter((m) => m.content === text).length;
}

function senderOf(results: string[], text: string): { id: number; from: number } | null {
  const m = results.flatMap(shown).find((x) => x.content === text);
  return m && m.from_id !== null ? { id: m.id, from: m.from_id } : null;
}

/** The new account's id from the register result (text or structured). */
function idOf(results: string[]): number {
  const r = results[0] ?? '';
  const m = /user id (\d+)/.exec(r) ?? /"id":(\d+)/.exec(r);
  if (!m) throw new Error(`no user id in the register result: ${r}`);
  return Number(m[1]);
}

describe('Claude Code and Codex talk through openwechat-mcp', () => {
  let relay: TestRelay;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let claudeBin: string;
  let codexBin: string;
  let anthropic: FakeModel;
  let openai: FakeModel;
  let ops: RelayUser;

  beforeAll(async () => {
    [claudeBin, codexBin] = await Promise.all([ensureClaude(), ensureCodex()]);
    relay = await startRelay();
    dir = await tempDir('owc-agents-');
    anthropic = await startAnthropicFake(SERVER);
    openai = await startResponsesFake(SERVER);
    ops = await newUser(relay.url, 'ops');
  }, 600_000);
  afterAll(async () => {
    await anthropic?.close();
    await openai?.close();
    await relay?.close();
    await dir?.remove();
  });

  it('register, send, wait_for_message, read: every message once', async () => {
    const claudeData = join(dir.dir, 'claude-data');
    const codexData = join(dir.dir, 'codex-data');
    const claudeJson = fill(await snippet('claude-mcp-json'), { relay: relay.url, dataDir: claudeData });
    const codexToml = fill(await snippet('codex-config-toml'), { relay: relay.url, dataDir: codexData });
    const claudeName = `claude${process.pid}`;
    const codexName = `codex${process.pid}`;
    const runs: Array<{ who: string; r: RunResult }> = [];

    // 1. Claude Code joins and greets the relay user.
    anthropic.setScript(({ results }) => {
      if (results.length === 0)
        return { tool: 'register', args: { name: claudeName, description: 'Claude Code' } };
      if (results.length === 1) {
        return {
          tool: 'send_message',
          args: { to_id: ops.id, content: HELLO_OPS, client_id: 'claude-hello-ops' },
        };
      }
      return { text: 'Registered and greeted ops.' };
    });
    const c1 = await runClaude({
      bin: claudeBin,
      home: join(dir.dir, 'claude-home'),
      modelUrl: anthropic.url,
      mcpJson: claudeJson,
      prompt: `Join openwechat as ${claudeName} and say hello to user ${ops.id}.`,
      tools: ['register', 'whoami', 'send_message', 'read_inbox', 'wait_for_message'],
    });
    runs.push({ who: 'claude#1', r: c1 });
    expect(c1.code, c1.stderr + c1.stdout).toBe(0);
    const c1Turns = anthropic.turns.length;
    expect(anthropic.turns[0]!.tools).toEqual(expect.arrayContaining(['register', 'whoami']));
    expect(JSON.stringify(anthropic.turns[0]!.body.messages)).toContain(`say hello to user ${ops.id}`);
    const claudeId = idOf(anthropic.turns[1]!.results);
    // The register result never shows the token (it is in the data folder's config.json, 0600).
    const claudeToken = (
      JSON.parse(await readFile(join(claudeData, 'config.json'), 'utf8')) as { token: string }
    ).token;
    expect(JSON.stringify(anthropic.requests)).not.toContain(claudeToken);
    expect(anthropic.turns[2]!.results[1]).toMatch(/^Sent:|"outcome":"request"/);

    const opsInbox1 = await ops.client.readInbox({ after: 0 });
    expect(opsInbox1.messages.filter((m) => m.content === HELLO_OPS && m.fromId === claudeId)).toHaveLength(
      1,
    );
    await ops.client.ack(opsInbox1.messages.at(-1)!.id!);
    await ops.client.send(claudeId, WELCOME); // accepts Claude's request

    // 2. Codex joins, writes to Claude and waits for the answer (concurrently with Claude's second run).
    let codexWaits = 0;
    openai.setScript(({ results }) => {
      if (results.length === 0) return { tool: 'register', args: { name: codexName, description: 'Codex' } };
      if (results.length === 1) {
        return {
          tool: 'send_message',
          args: { to_id: claudeId, content: CODEX_HELLO, client_id: 'codex-hello' },
        };
      }
      const replied = results.flatMap(shown).some((m) => m.content === CLAUDE_REPLY);
      const made = openai.calls.map((c) => c.tool);
      if (!replied) {
        if (++codexWaits > 6) return { text: 'Claude did not answer.' };
        return { tool: 'wait_for_message', args: { timeout_seconds: 30 } };
      }
      if (!made.includes('read_inbox')) return { tool: 'read_inbox', args: {} };
      if (!made.slice(2).includes('send_message')) {
        return {
          tool: 'send_message',
          args: { to_id: ops.id, content: CODEX_REPORT, client_id: 'codex-report' },
        };
      }
      return { text: 'Claude answered; ops informed.' };
    });
    const codexRun = runCodex({
      bin: codexBin,
      home: join(dir.dir, 'codex-home'),
      modelUrl: openai.url,
      mcpToml: codexToml,
      prompt: `Join openwechat as ${codexName}, greet agent ${claudeId}, wait for the answer, then tell user ${ops.id}.`,
    });
    // Claude's second run starts once Codex's greeting was sent (its result went back to the model).
    let codexDone: RunResult | null = null;
    void codexRun.then((r) => (codexDone = r)).catch(() => {});
    await until(
      () => {
        if (codexDone)
          throw new Error(
            `codex ended before greeting: ${codexDone.stdout}\n${codexDone.stderr}\n` +
              openai.requests.map((q) => JSON.stringify(q.body.tools).slice(0, 2000)).join('\n'),
          );
        return openai.turns.some((t) => t.results.length >= 2);
      },
      120_000,
      "codex's greeting",
    );

    let claudeWaits = 0;
    anthropic.setScript(({ results }) => {
      const got = senderOf(results, CODEX_HELLO);
      const made = anthropic.calls.map((c) => c.tool).slice(2);
      if (!got) {
        if (++claudeWaits > 6) return { text: 'Nothing from codex.' };
        return { tool: 'wait_for_message', args: { timeout_seconds: 30 } };
      }
      if (!made.includes('send_message')) {
        return {
          tool: 'send_message',
          args: { to_id: got.from, content: CLAUDE_REPLY, client_id: `reply-to-${got.id}` },
        };
      }
      if (!made.includes('read_inbox')) return { tool: 'read_inbox', args: {} };
      return { text: 'Answered codex.' };
    });
    const c2 = await runClaude({
      bin: claudeBin,
      home: join(dir.dir, 'claude-home'),
      modelUrl: anthropic.url,
      mcpJson: claudeJson,
      prompt: 'Check openwechat for messages and answer the agent that wrote.',
      tools: ['whoami', 'send_message', 'read_inbox', 'wait_for_message'],
    });
    runs.push({ who: 'claude#2', r: c2 });
    expect(c2.code, c2.stderr + c2.stdout).toBe(0);
    const cx = await codexRun;
    runs.push({ who: 'codex', r: cx });
    expect(cx.code, cx.stderr + cx.stdout).toBe(0);

    // What each model was shown: every message exactly once.
    const claudeLast = anthropic.turns.at(-1);
    const codexLast = openai.turns.at(-1);
    expect(anthropic.turns[c1Turns]!.tools).not.toContain('register'); // registered: the list changed
    expect(openai.turns[0]!.tools).toEqual(expect.arrayContaining(['register', 'whoami']));
    expect(deliveries(claudeLast, CODEX_HELLO)).toBe(1);
    expect(deliveries(claudeLast, WELCOME)).toBe(1);
    expect(deliveries(codexLast, CLAUDE_REPLY)).toBe(1);
    expect(anthropic.calls.map((c) => c.tool)).toEqual(
      expect.arrayContaining(['register', 'send_message', 'wait_for_message', 'read_inbox']),
    );
    expect(openai.calls.map((c) => c.tool)).toEqual(
      expect.arrayContaining(['register', 'send_message', 'wait_for_message', 'read_inbox']),
    );

    // The relay side: ops got each agent's message once; both agents' inboxes are drained (acknowledged).
    const opsInbox2 = await ops.client.readInbox({ after: 0 });
    expect(opsInbox2.messages.filter((m) => m.content === HELLO_OPS)).toHaveLength(0);
    const codexId = idOf(openai.turns[1]!.results);
    expect(opsInbox2.messages.filter((m) => m.content === CODEX_REPORT && m.fromId === codexId)).toHaveLength(
      1,
    );
    for (const data of [claudeData, codexData]) {
      const token = (JSON.parse(await readFile(join(data, 'config.json'), 'utf8')) as { token: string })
        .token;
      const left = await new RelayClient({ baseUrl: relay.url, token }).readInbox({ after: 0 });
      expect(left.messages.map((m) => m.content)).toEqual([]);
    }

    const delivered = {
      toOps: 2,
      toClaude: deliveries(claudeLast, CODEX_HELLO) + deliveries(claudeLast, WELCOME),
      toCodex: deliveries(codexLast, CLAUDE_REPLY),
    };
    console.log(
      `[agent-runtimes] claude code ${anthropic.turns.length} model turns, ${anthropic.calls.length} tool calls ` +
        `(${anthropic.calls.map((c) => c.tool).join(', ')}); codex ${openai.turns.length} turns, ` +
        `${openai.calls.length} tool calls (${openai.calls.map((c) => c.tool).join(', ')}); messages delivered ` +
        `once each: ops ${delivered.toOps}, claude ${delivered.toClaude}, codex ${delivered.toCodex}; ` +
        runs.map(({ who, r }) => `${who} ${(r.ms / 1000).toFixed(1)} s`).join(', '),
    );
  }, 600_000);
});
