// Scripted stand-ins for the language model (spec/agent-runtimes.md): a loopback HTTP server speaking the
// Anthropic Messages streaming API (for Claude Code) or the OpenAI Responses streaming API (for Codex).
// A script decides each turn from the tool results the runtime sent back; every request is logged, so a
// test checks independently what the runtime showed the model (the tools offered, our tools' results).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Action = { tool: string; args: Record<string, unknown> } | { text: string };

/** One turn of the conversation the runtime holds with the model. */
export interface Turn {
  /** Texts of the tool results so far, oldest first (what our MCP server answered). */
  results: string[];
  /** The tool names the runtime offered the model (as the model sees them). */
  tools: string[];
  body: Record<string, unknown>;
}

/** Returns the next action; `results.length` is the number of tool calls answered so far. */
export type Script = (turn: Turn) => Action;

export interface FakeModel {
  url: string;
  /** Every request: path and body, in order. */
  requests: Array<{ path: string; body: Record<string, unknown> }>;
  /** The turns answered by the script (requests that offered our tools). */
  turns: Turn[];
  /** Tool calls the fake made, in order. */
  calls: Array<{ tool: string; args: Record<string, unknown> }>;
  setScript(s: Script): void;
  close(): Promise<void>;
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((c: { text?: unknown }) => (typeof c?.text === 'string' ? c.text : ''))
      .filter(Boolean)
      .join('\n');
  }
  return '';
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

function sse(res: ServerResponse, events: Array<[string, Record<string, unknown>]>): void {
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  for (const [event, data] of events) res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  res.end();
}

async function serve(
  handle: (path: string, body: Record<string, unknown>, res: ServerResponse) => void,
  log: FakeModel['requests'],
): Promise<{ server: Server; url: string }> {
  const server = createServer((req, res) => {
    readBody(req).then(
      (body) => {
        const path = req.url ?? '/';
        log.push({ path, body });
        handle(path, body, res);
      },
      () => {
        res.writeHead(400).end();
      },
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function closer(server: Server): () => Promise<void> {
  return () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
}

// ── Anthropic Messages (Claude Code) ───────────────────────────────────────────────────────────────

/** Tool results in an Anthropic `messages` array (tool_result blocks of user turns). */
function anthropicResults(body: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const m of (body.messages as Array<{ role: string; content: unknown }>) ?? []) {
    if (m.role !== 'user' || !Array.isArray(m.content)) continue;
    for (const b of m.content as Array<{ type: string; content?: unknown }>) {
      if (b.type === 'tool_result') out.push(textOf(b.content));
    }
  }
  return out;
}

export async function startAnthropicFake(server: string): Promise<FakeModel> {
  const requests: FakeModel['requests'] = [];
  const turns: Turn[] = [];
  const calls: FakeModel['calls'] = [];
  let script: Script = () => ({ text: 'no script' });
  let n = 0;
  const prefix = `mcp__${server}__`;
  const { server: http, url } = await serve((path, body, res) => {
    if (!path.startsWith('/v1/messages') || path.includes('count_tokens')) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: 'fake' } }));
      return;
    }
    const tools = ((body.tools as Array<{ name: string }>) ?? []).map((t) => t.name);
    const ours = tools.filter((t) => t.startsWith(prefix));
    // Side requests (titles, summaries) offer none of our tools: answered with plain text.
    let action: Action = { text: 'ok' };
    if (ours.length) {
      const turn: Turn = {
        results: anthropicResults(body),
        tools: ours.map((t) => t.slice(prefix.length)),
        body,
      };
      turns.push(turn);
      action = script(turn);
    }
    const id = `msg_fake_${++n}`;
    const events: Array<[string, Record<string, unknown>]> = [
      [
        'message_start',
        {
          type: 'message_start',
          message: {
            id,
            type: 'message',
            role: 'assistant',
            model: (body.model as string) ?? 'fake',
            content: [],
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: 10, output_tokens: 1 },
          },
        },
      ],
    ];
    if ('tool' in action) {
      calls.push({ tool: action.tool, args: action.args });
      events.push(
        [
          'content_block_start',
          {
            type: 'content_block_start',
            index: 0,
            content_block: {
              type: 'tool_use',
              id: `toolu_fake_${n}`,
              name: `${prefix}${action.tool}`,
              input: {},
            },
          },
        ],
        [
          'content_block_delta',
          {
            type: 'content_block_delta',
            index: 0,
            delta: { type: 'input_json_delta', partial_json: JSON.stringify(action.args) },
          },
        ],
      );
    } else {
      events.push(
        [
          'content_block_start',
          { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
        ],
        [
          'content_block_delta',
          { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: action.text } },
        ],
      );
    }
    events.push(
      ['content_block_stop', { type: 'content_block_stop', index: 0 }],
      [
        'message_delta',
        {
          type: 'message_delta',
          delta: { stop_reason: 'tool' in action ? 'tool_use' : 'end_turn', stop_sequence: null },
          usage: { output_tokens: 5 },
        },
      ],
      ['message_stop', { type: 'message_stop' }],
    );
    sse(res, events);
  }, requests);
  return { url, requests, turns, calls, setScript: (s) => (script = s), close: closer(http) };
}

// ── OpenAI Responses (Codex) ───────────────────────────────────────────────────────────────────────

/** Outputs of our tools' calls (not of the fake's own built-in calls, whose ids start with `wait_`). */
function responsesResults(body: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const item of (body.input as Array<{ type?: string; output?: unknown; call_id?: string }>) ?? []) {
    if (item.type === 'function_call_output' && !item.call_id?.startsWith('wait_'))
      out.push(textOf(item.output));
  }
  return out;
}

/** Our tools as Codex offers them: a namespace `mcp__<server>` holding the tools. */
function responsesTools(body: Record<string, unknown>, namespace: string): string[] {
  const out: string[] = [];
  for (const t of (body.tools as Array<{ type: string; name?: string; tools?: Array<{ name: string }> }>) ??
    []) {
    if (t.type === 'namespace' && t.name === namespace) out.push(...(t.tools ?? []).map((x) => x.name));
  }
  return out;
}

export async function startResponsesFake(server: string): Promise<FakeModel> {
  const requests: FakeModel['requests'] = [];
  const turns: Turn[] = [];
  const calls: FakeModel['calls'] = [];
  let script: Script = () => ({ text: 'no script' });
  let n = 0;
  const namespace = `mcp__${server}`;
  let builtinCalls = 0;
  const { server: http, url } = await serve((path, body, res) => {
    if (!path.endsWith('/responses')) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: { message: 'fake: not found', type: 'invalid_request_error' } }));
      return;
    }
    const ours = responsesTools(body, namespace);
    let action: Action = { text: 'ok' };
    // Codex asks the model before its MCP servers finished starting (measured: up to 8 requests without
    // our tools on a busy machine). A model would look around first: the built-in list_mcp_resources,
    // answered a little later each time, until a request offers our tools. Not counted as a turn or a
    // call of ours.
    let builtin: string | null = null;
    if (ours.length) {
      const turn: Turn = { results: responsesResults(body), tools: ours, body };
      turns.push(turn);
      action = script(turn);
    } else if (builtinCalls < 150) {
      builtinCalls++;
      builtin = 'list_mcp_resources';
      action = { tool: builtin, args: {} };
    }
    const rid = `resp_fake_${++n}`;
    const base = {
      id: rid,
      object: 'response',
      created_at: Math.floor(Date.now() / 1000),
      model: 'fake-model',
    };
    let item: Record<string, unknown>;
    const events: Array<[string, Record<string, unknown>]> = [
      [
        'response.created',
        { type: 'response.created', response: { ...base, status: 'in_progress', output: [] } },
      ],
      [
        'response.in_progress',
        { type: 'response.in_progress', response: { ...base, status: 'in_progress', output: [] } },
      ],
    ];
    if ('tool' in action) {
      if (!builtin) calls.push({ tool: action.tool, args: action.args });
      const args = JSON.stringify(action.args);
      const fc = {
        type: 'function_call',
        id: `fc_fake_${n}`,
        call_id: `${builtin ? 'wait' : 'call'}_fake_${n}`,
        name: action.tool,
        ...(builtin ? {} : { namespace }),
      };
      item = { ...fc, arguments: args, status: 'completed' };
      events.push(
        [
          'response.output_item.added',
          {
            type: 'response.output_item.added',
            output_index: 0,
            item: { ...fc, arguments: '', status: 'in_progress' },
          },
        ],
        [
          'response.function_call_arguments.delta',
          { type: 'response.function_call_arguments.delta', item_id: fc.id, output_index: 0, delta: args },
        ],
        [
          'response.function_call_arguments.done',
          { type: 'response.function_call_arguments.done', item_id: fc.id, output_index: 0, arguments: args },
        ],
      );
    } else {
      const mid = `msg_fake_${n}`;
      const part = { type: 'output_text', text: action.text, annotations: [] };
      item = { type: 'message', id: mid, role: 'assistant', status: 'completed', content: [part] };
      events.push(
        [
          'response.output_item.added',
          {
            type: 'response.output_item.added',
            output_index: 0,
            item: { ...item, status: 'in_progress', content: [] },
          },
        ],
        [
          'response.content_part.added',
          {
            type: 'response.content_part.added',
            item_id: mid,
            output_index: 0,
            content_index: 0,
            part: { ...part, text: '' },
          },
        ],
        [
          'response.output_text.delta',
          {
            type: 'response.output_text.delta',
            item_id: mid,
            output_index: 0,
            content_index: 0,
            delta: action.text,
          },
        ],
        [
          'response.output_text.done',
          {
            type: 'response.output_text.done',
            item_id: mid,
            output_index: 0,
            content_index: 0,
            text: action.text,
          },
        ],
        [
          'response.content_part.done',
          { type: 'response.content_part.done', item_id: mid, output_index: 0, content_index: 0, part },
        ],
      );
    }
    events.push(
      ['response.output_item.done', { type: 'response.output_item.done', output_index: 0, item }],
      [
        'response.completed',
        {
          type: 'response.completed',
          response: {
            ...base,
            status: 'completed',
            output: [item],
            usage: {
              input_tokens: 10,
              input_tokens_details: { cached_tokens: 0 },
              output_tokens: 5,
              output_tokens_details: { reasoning_tokens: 0 },
              total_tokens: 15,
            },
          },
        },
      ],
    );
    if (builtin) setTimeout(() => sse(res, events), 200);
    else sse(res, events);
  }, requests);
  return { url, requests, turns, calls, setScript: (s) => (script = s), close: closer(http) };
}
