// The one faked part of the OpenClaw tests: an OpenAI-compatible chat-completions server on loopback
// (docs/openclaw-channel.md). Deterministic and scriptable: a test installs a `script` that sees the
// real user text of each call and answers with prose or one tool call; every request is logged. Without a
// script a tool result is answered in prose, and no script gets more than MAX_TOOL_STEPS tool calls per
// user message, so OpenClaw cannot loop on tool calls.

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ChatMessage {
  role: string;
  content?: unknown;
  tool_calls?: Array<{ id: string; function: { name: string; arguments: string } }>;
  tool_call_id?: string;
}

export interface ModelCall {
  at: number;
  messages: ChatMessage[];
  tools: string[];
  /** The last real user text (internal-context blocks skipped), unwrapped from OpenClaw's envelope. */
  userText: string;
  /** Everything the model was shown, flattened (system prompt, context, history). */
  promptText: string;
  /** Tool results that follow the last user message, in order. */
  toolResults: string[];
}

export type ModelAnswer =
  | { text: string }
  | { tool: string; args: Record<string, unknown> }
  /** Hold the answer until `release` resolves (a turn that is "running"). */
  | { hold: Promise<void>; then: ModelAnswer };

export type ModelScript = (call: ModelCall) => ModelAnswer | null;

export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => (part && typeof part === 'object' && 'text' in part ? String(part.text) : ''))
      .join('\n');
  }
  return '';
}

const INTERNAL = '<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>';

function analyse(messages: ChatMessage[], tools: string[]): ModelCall {
  let lastUser = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!;
    if (m.role === 'user' && !contentText(m.content).includes(INTERNAL)) {
      lastUser = i;
      break;
    }
  }
  const raw = lastUser >= 0 ? contentText(messages[lastUser]!.content) : '';
  const toolResults = messages
    .slice(lastUser + 1)
    .filter((m) => m.role === 'tool')
    .map((m) => contentText(m.content));
  return {
    at: Date.now(),
    messages,
    tools,
    userText: raw,
    promptText: messages.map((m) => contentText(m.content)).join('\n\n'),
    toolResults,
  };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export interface FakeModel {
  baseUrl: string;
  calls: ModelCall[];
  script: ModelScript;
  close(): Promise<void>;
}

let idCounter = 0;
/** Tool calls allowed after one user message before the fake answers in prose regardless. */
export const MAX_TOOL_STEPS = 6;

export async function startFakeModel(): Promise<FakeModel> {
  const model: FakeModel = {
    baseUrl: '',
    calls: [],
    script: () => null,
    close: async () => {},
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(await readBody(req)) as {
        messages: ChatMessage[];
        tools?: Array<{ function?: { name?: string } }>;
      };
      const call = analyse(
        body.messages ?? [],
        (body.tools ?? []).map((t) => t.function?.name ?? ''),
      );
      model.calls.push(call);
      // A script may chain tool calls (read, then exec…) but never more than MAX_TOOL_STEPS per user
      // message; without a script, any tool result is answered in prose. Either way OpenClaw cannot loop.
      const scripted = call.toolResults.length < MAX_TOOL_STEPS ? model.script(call) : null;
      let answer: ModelAnswer = scripted ?? { text: call.toolResults.length > 0 ? 'Done.' : 'OK.' };
      while ('hold' in answer) {
        await answer.hold;
        answer = answer.then;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const id = `chatcmpl-${++idCounter}`;
      const chunk = (delta: unknown, finish: string | null): string =>
        `data: ${JSON.stringify({
          id,
          object: 'chat.completion.chunk',
          created: Math.floor(Date.now() / 1000),
          model: 'fake-1',
          choices: [{ index: 0, delta, finish_reason: finish }],
        })}\n\n`;
      if ('tool' in answer) {
        res.write(
          chunk(
            {
              role: 'assistant',
              tool_calls: [
                {
                  index: 0,
                  id: `call_${idCounter}`,
                  type: 'function',
                  function: { name: answer.tool, arguments: JSON.stringify(answer.args) },
                },
              ],
            },
            null,
          ),
        );
        res.write(chunk({}, 'tool_calls'));
      } else {
        res.write(chunk({ role: 'assistant', content: answer.text }, null));
        res.write(chunk({}, 'stop'));
      }
      res.end('data: [DONE]\n\n');
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500);
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  model.baseUrl = `http://127.0.0.1:${port}/v1`;
  model.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return model;
}
