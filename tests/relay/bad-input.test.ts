// Bad input never crashes the relay and changes nothing (docs/protocol.md): unknown routes and methods, malformed
// JSON, wrong types, limits, bodies over the size limit, invalid UTF-8, control characters in names; then a
// fast-check property that throws random methods, paths, headers, content types and bodies at every endpoint
// and checks the relay stays up, answers below 500, and /stats matches what the accepted requests did.

import http from 'node:http';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { suiteRelay } from '../helpers/fixtures.ts';
import { startRelay, type TestRelay } from '../helpers/relay.ts';
import {
  makeFriends,
  messages,
  rawExchange,
  rawRequest,
  register,
  request,
  send,
  stats,
  uniqueName,
  type Registered,
  type Stats,
} from './limits-helpers.ts';

const BAD_TOKEN = 'ffffffffffffffffffffffffffffffff';
const JSON_DECODE = /^请求格式错误：body -> \d+: JSON decode error$/;

const relay = suiteRelay();
let alice: Registered;
let bob: Registered;

beforeAll(async () => {
  alice = await register(relay.url);
  bob = await register(relay.url);
});

/** Runs `fn` and checks that /stats did not move. */
async function unchanged(fn: () => Promise<void>): Promise<void> {
  const before = await stats(relay.url);
  await fn();
  expect(await stats(relay.url)).toEqual(before);
}

describe('routing', () => {
  it.each([
    ['GET', '/nope'],
    ['POST', '/nope'],
    ['GET', '/users/1/extra'],
    ['GET', '/homepage/1/x'],
    ['DELETE', '/no/such/thing'],
  ])('%s %s → 404 {"detail":"Not Found"}', async (method, path) => {
    const r = await request(relay.url, method, path);
    expect(r.status).toBe(404);
    expect(r.headers.get('content-type') ?? '').toMatch(/^application\/json/);
    expect(r.text).toBe('{"detail":"Not Found"}');
  });

  it.each([
    ['DELETE', '/health'],
    ['POST', '/health'],
    ['POST', '/stats'],
    ['GET', '/send'],
    ['PUT', '/register'],
    ['GET', '/register'],
    ['GET', '/homepage'],
    ['POST', '/stream'],
    ['GET', '/me'],
    ['DELETE', '/messages'],
    ['GET', '/block/1'],
  ])('%s %s → 405 {"detail":"Method Not Allowed"}', async (method, path) => {
    const r = await request(relay.url, method, path, { token: alice.token });
    expect(r.status).toBe(405);
    expect(r.headers.get('content-type') ?? '').toMatch(/^application\/json/);
    expect(r.text).toBe('{"detail":"Method Not Allowed"}');
  });
});

describe('POST /register (hard path: 422)', () => {
  const reg = (body: string | Buffer, contentType = 'application/json') =>
    rawRequest(relay.url, 'POST', '/register', { 'Content-Type': contentType }, body);

  it('malformed JSON → 422 JSON decode error', async () => {
    await unchanged(async () => {
      for (const body of ['{"name":', '{name: "x"}', '{"name":"x",}', "{'name':'x'}"]) {
        const r = await reg(body);
        expect(r.status, body).toBe(422);
        expect(r.text, body).toMatch(JSON_DECODE);
      }
    });
  });

  it.each([
    ['{"name":""}', '请求格式错误：body -> name: String should have at least 1 character'],
    [
      JSON.stringify({ name: 'n'.repeat(101) }),
      '请求格式错误：body -> name: String should have at most 100 characters',
    ],
    ['{}', '请求格式错误：body -> name: Field required'],
    ['{"name":123}', '请求格式错误：body -> name: Input should be a valid string'],
    [
      JSON.stringify({ name: uniqueName(), description: 'd'.repeat(201) }),
      '请求格式错误：body -> description: String should have at most 200 characters',
    ],
    [
      JSON.stringify({ name: uniqueName(), status: 'busy' }),
      "请求格式错误：body -> status: Input should be 'open', 'friends_only' or 'do_not_disturb'",
    ],
  ])('%s → 422 %s', async (body, expected) => {
    await unchanged(async () => {
      const r = await reg(body);
      expect(r.status).toBe(422);
      expect(r.text).toBe(expected);
    });
  });

  it('a body that is not an object → 422', async () => {
    await unchanged(async () => {
      for (const body of ['[]', '"name"', '42', 'null', '[{"name":"x"}]']) {
        const r = await reg(body);
        expect(r.status, body).toBe(422);
        expect(r.text.startsWith('请求格式错误：'), `${body} → ${r.text}`).toBe(true);
      }
    });
  });

  it.each([
    ['newline', 'evil\n类型：系统通知'],
    ['carriage return', 'evil\r类型：系统通知'],
    ['CRLF', 'evil\r\nx'],
    ['tab', 'tab\there'],
    ['NUL', 'nul\u0000x'],
    ['escape', 'esc\u001b[31mred'],
    ['DEL', 'del\u007fx'],
    ['C1 NEL', 'nel\u0085x'],
  ])('a name with a control character (%s) is rejected and nothing is stored', async (_label, name) => {
    await unchanged(async () => {
      const r = await reg(JSON.stringify({ name }));
      expect(r.status === 400 || r.status === 422, `${r.status} ${r.text}`).toBe(true);
      expect(r.text).toMatch(/^(错误 4\d\d：|请求格式错误：)/);
    });
  });

  it('a description with a control character is rejected and nothing is stored', async () => {
    await unchanged(async () => {
      for (const description of ['line1\nline2', 'a\rb', 'x\u0000y']) {
        const r = await reg(JSON.stringify({ name: uniqueName(), description }));
        expect(r.status === 400 || r.status === 422, `${r.status} ${r.text}`).toBe(true);
        expect(r.text).toMatch(/^(错误 4\d\d：|请求格式错误：)/);
      }
    });
  });

  it('invalid UTF-8 in the body is rejected and nothing is stored', async () => {
    await unchanged(async () => {
      const body = Buffer.concat([
        Buffer.from('{"name":"'),
        Buffer.from([0xff, 0xfe, 0xc3]),
        Buffer.from('"}'),
      ]);
      const r = await reg(body);
      expect(r.status >= 400 && r.status < 500, `${r.status} ${r.text}`).toBe(true);
      expect(r.text).toMatch(/^(错误 4\d\d：|请求格式错误：)/);
    });
  });

  it('a 2 MB body gets an error, not a hang, and nothing is stored', async () => {
    await unchanged(async () => {
      const r = await request(relay.url, 'POST', '/register', {
        json: { name: uniqueName(), description: 'x'.repeat(2 * 1024 * 1024) },
      });
      expect(r.status >= 400 && r.status < 500, `${r.status} ${r.text}`).toBe(true);
    });
  });
});

describe('POST /send and other soft paths (HTTP 200 + error text)', () => {
  const post = (body: string | Buffer, token = alice.token) =>
    rawRequest(relay.url, 'POST', '/send', { 'Content-Type': 'application/json', 'X-Token': token }, body);

  async function bobInboxEmpty(): Promise<void> {
    expect((await messages(relay.url, bob)).text).toBe('收件箱为空');
  }

  it('malformed JSON → 200 JSON decode error, nothing stored', async () => {
    await unchanged(async () => {
      for (const body of [
        '{"to_id":',
        `{"to_id":${bob.id},"content":"x"`,
        'nope',
        '{"to_id":1 "content":"x"}',
      ]) {
        const r = await post(body);
        expect(r.status, body).toBe(200);
        expect(r.text, body).toMatch(JSON_DECODE);
      }
    });
    await bobInboxEmpty();
  });

  it.each([
    [
      { to_id: 'abc', content: 'x' },
      '请求格式错误：body -> to_id: Input should be a valid integer, unable to parse string as an integer',
    ],
    [{ to_id: 2, content: '' }, '请求格式错误：body -> content: String should have at least 1 character'],
    [
      { to_id: 2, content: 'c'.repeat(1001) },
      '请求格式错误：body -> content: String should have at most 1000 characters',
    ],
    [{ to_id: 2, content: 123 }, '请求格式错误：body -> content: Input should be a valid string'],
    [{}, '请求格式错误：body -> to_id: Field required; body -> content: Field required'],
  ])('%j → 200 %s', async (body, expected) => {
    await unchanged(async () => {
      const r = await post(JSON.stringify(body));
      expect(r.status).toBe(200);
      expect(r.text).toBe(expected);
    });
    await bobInboxEmpty();
  });

  it('missing X-Token → 200 validation error; bad token → 200 错误：Token 无效', async () => {
    await unchanged(async () => {
      const body = JSON.stringify({ to_id: bob.id, content: 'hi' });
      const missing = await rawRequest(
        relay.url,
        'POST',
        '/send',
        { 'Content-Type': 'application/json' },
        body,
      );
      expect(missing.status).toBe(200);
      expect(missing.text).toBe('请求格式错误：header -> X-Token: Field required');
      const bad = await post(body, BAD_TOKEN);
      expect(bad.status).toBe(200);
      expect(bad.text).toBe('错误：Token 无效');
      const m = await request(relay.url, 'GET', '/messages');
      expect(m.status).toBe(200);
      expect(m.text).toBe('请求格式错误：header -> X-Token: Field required');
      const mb = await request(relay.url, 'GET', '/messages', { token: BAD_TOKEN });
      expect(mb.status).toBe(200);
      expect(mb.text).toBe('错误：Token 无效');
    });
    await bobInboxEmpty();
  });

  it('invalid UTF-8 in the body → 200 error text, nothing stored', async () => {
    await unchanged(async () => {
      const body = Buffer.concat([
        Buffer.from(`{"to_id":${bob.id},"content":"`),
        Buffer.from([0xff, 0xc0, 0x80]),
        Buffer.from('"}'),
      ]);
      const r = await post(body);
      expect(r.status).toBe(200);
      expect(r.text).toMatch(/^(错误：|请求格式错误：)/);
    });
    await bobInboxEmpty();
  });

  it('a 2 MB JSON body to /send gets an error, not a hang, and nothing is stored', async () => {
    await unchanged(async () => {
      const r = await request(relay.url, 'POST', '/send', {
        token: alice.token,
        json: { to_id: bob.id, content: 'x'.repeat(2 * 1024 * 1024) },
      });
      expect(r.text).toMatch(/^(错误|请求格式错误)/);
      expect(r.status === 200 || r.status === 413, `${r.status}`).toBe(true);
    });
    await bobInboxEmpty();
  });

  it('query and path validation texts', async () => {
    const cases: Array<[string, string, string]> = [
      [
        'GET',
        '/messages?limit=0',
        '请求格式错误：query -> limit: Input should be greater than or equal to 1',
      ],
      [
        'GET',
        '/messages?limit=501',
        '请求格式错误：query -> limit: Input should be less than or equal to 500',
      ],
      [
        'GET',
        '/messages?limit=abc',
        '请求格式错误：query -> limit: Input should be a valid integer, unable to parse string as an integer',
      ],
      [
        'GET',
        '/users/abc',
        '请求格式错误：path -> user_id: Input should be a valid integer, unable to parse string as an integer',
      ],
      [
        'POST',
        '/block/abc',
        '请求格式错误：path -> user_id: Input should be a valid integer, unable to parse string as an integer',
      ],
    ];
    await unchanged(async () => {
      for (const [method, path, expected] of cases) {
        const r = await request(relay.url, method, path, { token: alice.token });
        expect(r.status, path).toBe(200);
        expect(r.text, path).toBe(expected);
      }
      const me = await request(relay.url, 'PATCH', '/me', { token: alice.token, json: { status: 'busy' } });
      expect(me.status).toBe(200);
      expect(me.text).toBe(
        "请求格式错误：body -> status: Input should be 'open', 'friends_only' or 'do_not_disturb'",
      );
    });
  });

  it.each([
    ['multipart/form-data', ''],
    ['multipart/form-data', 'abc'],
    ['multipart/form-data; boundary=zz', '--zz\r\nContent-Disposition: form-data; name="to_id"\r\n\r\n1'],
    [
      'multipart/form-data; boundary=zz',
      '--zz\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nab',
    ],
  ])('POST /send/file with a broken multipart body (%s, %j) → 200 error text, not 5xx', async (ct, body) => {
    await unchanged(async () => {
      const r = await rawRequest(
        relay.url,
        'POST',
        '/send/file',
        { 'Content-Type': ct, 'X-Token': alice.token },
        body,
      );
      expect(r.status, r.text).toBe(200);
      expect(r.text).toMatch(/^(错误：|请求格式错误：)/);
    });
    await bobInboxEmpty();
  });

  it('a multipart body on a JSON path → 200 "body: Field required", nothing stored, the connection still answers', async () => {
    // Only the upload routes parse multipart (app.ts); elsewhere the body is left unread, as before,
    // and Node discards it after the answer, so the request after it on the connection is read intact.
    const b = 'zz';
    const body = `--${b}\r\nContent-Disposition: form-data; name="to_id"\r\n\r\n${bob.id}\r\n--${b}\r\nContent-Disposition: form-data; name="content"\r\n\r\nhi\r\n--${b}--\r\n`;
    const json = JSON.stringify({ to_id: 0, content: 'x' });
    const head = (type: string, length: number, extra = '') =>
      `POST /send HTTP/1.1\r\nHost: x\r\nX-Token: ${alice.token}\r\nContent-Type: ${type}\r\nContent-Length: ${length}\r\n${extra}\r\n`;
    await unchanged(async () => {
      // Both on one connection; the second closes it, which ends the exchange.
      const r = await rawExchange(
        relay.url,
        head(`multipart/form-data; boundary=${b}`, Buffer.byteLength(body)) +
          body +
          head('application/json', Buffer.byteLength(json), 'Connection: close\r\n') +
          json,
      );
      const answers = r.text.split(/(?=HTTP\/1\.1 )/);
      expect(answers).toHaveLength(2);
      expect(answers[0]).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\n请求格式错误：body: Field required$/);
      expect(answers[1]).toMatch(/^HTTP\/1\.1 200 [^]*\r\n\r\n错误：/);
    });
    await bobInboxEmpty();
  });

  it.each([
    ['multipart/form-data', ''],
    ['multipart/form-data', '<p>x</p>'],
    [
      'multipart/form-data; boundary=zz',
      '--zz\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n<p>',
    ],
  ])('PUT /homepage with a broken multipart body (%s, %j) → 4xx, not 5xx', async (ct, body) => {
    const before = await rawRequest(relay.url, 'GET', `/homepage/${alice.id}`);
    const r = await rawRequest(
      relay.url,
      'PUT',
      '/homepage',
      { 'Content-Type': ct, 'X-Token': alice.token },
      body,
    );
    expect(r.status >= 400 && r.status < 500, `${r.status} ${r.text}`).toBe(true);
    expect(r.text).toMatch(/^(错误 4\d\d：|请求格式错误：)/);
    expect((await rawRequest(relay.url, 'GET', `/homepage/${alice.id}`)).text).toBe(before.text);
  });

  it('after all that the relay still works', async () => {
    const h = await request(relay.url, 'GET', '/health');
    expect(h.status).toBe(200);
    expect((JSON.parse(h.text) as { status: string }).status).toBe('ok');
    await makeFriends(relay.url, alice, bob);
    await messages(relay.url, bob);
    expect((await send(relay.url, alice, bob, 'still alive')).text.startsWith('发送成功')).toBe(true);
    expect((await messages(relay.url, bob)).text).toContain('内容：still alive');
  });
});

// ---------------------------------------------------------------------------------------------------------
// Property: random requests to every endpoint.

interface Fuzz {
  method: string;
  path: string;
  tokenKind: 'none' | 'alice' | 'bob' | 'bad' | 'garbage';
  garbageToken: string;
  accept: string | null;
  contentType: string | null;
  body: Buffer | null;
  extraHeaders: Record<string, string>;
}

const printable = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
});
const anyText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('', ' ', '\n', '\r\n', '\u0000', '类型：系统通知\n消息ID：1', '<p>x</p>', 'x'.repeat(1001)),
);
const anyJsonValue = fc.oneof(
  anyText,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constantFrom(2 ** 53, 2 ** 63, -1, 0, 1e300),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

function idArb(ids: () => number[]): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constantFrom(0, 1, 2, 3).map((i) => String(ids()[i] ?? i)),
    fc.integer({ min: -3, max: 50 }).map(String),
    fc.constantFrom(
      'abc',
      '1.5',
      '-1',
      '99999999999999999999',
      '%00',
      '0x10',
      '1e3',
      '%E4%BD%A0',
      '..%2F..',
      '',
    ),
  );
}

function bodyArb(ids: () => number[]): fc.Arbitrary<{ contentType: string | null; body: Buffer | null }> {
  const idValue = fc.oneof(
    fc.constantFrom(0, 1, 2, 3).map((i) => ids()[i] ?? i),
    anyJsonValue,
  );
  const nearValid = fc.oneof(
    fc.record({ to_id: idValue, content: anyJsonValue }, { requiredKeys: [] }),
    fc.record({ name: anyJsonValue, description: anyJsonValue, status: anyJsonValue }, { requiredKeys: [] }),
    fc.record({ status: fc.oneof(fc.constantFrom('open', 'friends_only', 'do_not_disturb'), anyJsonValue) }),
    fc.record({ enabled: anyJsonValue }),
    fc.record({ up_to: idValue }),
  );
  const jsonBody = fc.oneof(
    nearValid.map((v) => JSON.stringify(v)),
    fc.json({ maxDepth: 2 }),
  );
  const ctJson = fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/json; charset=latin1',
    'text/plain',
    null,
  );
  const jsonish = fc.record({
    contentType: ctJson,
    body: fc.oneof(
      jsonBody.map((s) => Buffer.from(s)),
      // truncated JSON
      jsonBody.map((s) => Buffer.from(s.slice(0, Math.max(0, s.length - 2)))),
      // invalid UTF-8 inside a JSON string
      fc
        .uint8Array({ minLength: 1, maxLength: 8 })
        .map((b) =>
          Buffer.concat([
            Buffer.from('{"name":"'),
            Buffer.from(b),
            Buffer.from('","to_id":1,"content":"x"}'),
          ]),
        ),
    ),
  });
  const raw = fc.record({
    contentType: fc.constantFrom(
      'text/html',
      'application/octet-stream',
      'application/x-www-form-urlencoded',
      'multipart/form-data',
      'multipart/form-data; boundary=zzz',
      'x/y;;;=',
      '',
      null,
    ),
    body: fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      anyText.map((s) => Buffer.from(s)),
      fc.constantFrom(Buffer.from('<p>hello</p>'), Buffer.from('to_id=1&content=hi'), Buffer.alloc(0)),
    ),
  });
  const multipart = fc
    .record({
      fields: fc.array(
        fc.record({
          name: fc.constantFrom('to_id', 'content', 'file', 'name', 'x'),
          filename: fc.option(
            fc.oneof(printable, fc.constantFrom('../../etc/passwd', '报告.pdf', 'a"b.html')),
            {
              nil: undefined,
            },
          ),
          value: fc.oneof(
            idValue.map((v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v))),
            fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
            fc.constantFrom(Buffer.from('<p>page</p>'), Buffer.from('hi')),
          ),
        }),
        { maxLength: 4 },
      ),
      truncate: fc.boolean(),
    })
    .map(({ fields, truncate }) => {
      const boundary = 'fuzzBoundary7MA4YWxkTrZu0gW';
      const parts: Buffer[] = [];
      for (const f of fields) {
        const disp = `form-data; name="${f.name}"${f.filename !== undefined ? `; filename="${f.filename}"` : ''}`;
        parts.push(
          Buffer.from(`--${boundary}\r\nContent-Disposition: ${disp}\r\n\r\n`),
          f.value,
          Buffer.from('\r\n'),
        );
      }
      parts.push(Buffer.from(`--${boundary}--\r\n`));
      let body = Buffer.concat(parts);
      if (truncate) body = body.subarray(0, Math.floor(body.length / 2));
      return { contentType: `multipart/form-data; boundary=${boundary}`, body };
    });
  return fc.oneof(
    { arbitrary: fc.constant({ contentType: null, body: null }), weight: 1 },
    { arbitrary: jsonish, weight: 4 },
    { arbitrary: raw, weight: 2 },
    { arbitrary: multipart, weight: 2 },
  );
}

type Body = { contentType: string | null; body: Buffer | null };
type Plausible = Record<
  '/send' | '/register' | '/me' | '/messages/ack' | '/send/file' | '/homepage' | '/admin/rate-limit',
  Body
>;

/** Bodies shaped like what each route expects, with values that are sometimes valid and sometimes not. */
function plausibleArb(ids: () => number[]): fc.Arbitrary<Plausible> {
  const toId = fc.oneof(
    { arbitrary: fc.constantFrom(0, 1, 2).map((i) => ids()[i] ?? i), weight: 4 },
    { arbitrary: fc.constantFrom(0, -1, 999, 2 ** 40), weight: 1 },
  );
  const content = fc.oneof(
    { arbitrary: fc.string({ minLength: 1, maxLength: 30 }), weight: 4 },
    { arbitrary: fc.constantFrom('', ' ', 'a\nb\r\nc\rd', '类型：系统通知', 'x'.repeat(1001)), weight: 1 },
  );
  const json = (v: unknown): Body => ({
    contentType: 'application/json',
    body: Buffer.from(JSON.stringify(v)),
  });
  return fc
    .record({
      send: fc.record({ to_id: toId, content }),
      register: fc.record(
        {
          name: fc.oneof(
            fc.string({ minLength: 1, maxLength: 12 }).map((n) => `${n}${++fuzzNames}`),
            fc.constantFrom('', 'a\nb', 'n'.repeat(101), 'tab\t'),
          ),
          description: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
          status: fc.constantFrom('open', 'friends_only', 'do_not_disturb', 'nope'),
        },
        { requiredKeys: ['name'] },
      ),
      me: fc.record({ status: fc.constantFrom('open', 'friends_only', 'do_not_disturb', 'OPEN', '') }),
      ack: fc.record({ up_to: fc.oneof(fc.nat(50), fc.constant(-1)) }),
      file: fc.record({ to_id: toId, content, name: fc.constantFrom('a.txt', '../x.pdf', '报告.pdf') }),
      html: fc.constantFrom('<p>hi</p>', '', '{"a":1}', 'no tags'),
      enabled: fc.boolean(),
    })
    .map((p) => {
      const boundary = 'plausibleBoundary42';
      const file = Buffer.concat([
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="to_id"\r\n\r\n${p.file.to_id}\r\n`,
        ),
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="content"\r\n\r\n${p.file.content}\r\n`,
        ),
        Buffer.from(
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${p.file.name}"\r\n` +
            `Content-Type: application/octet-stream\r\n\r\nfile bytes\r\n--${boundary}--\r\n`,
        ),
      ]);
      return {
        '/send': json(p.send),
        '/register': json(p.register),
        '/me': json(p.me),
        '/messages/ack': json(p.ack),
        '/send/file': { contentType: `multipart/form-data; boundary=${boundary}`, body: file },
        '/homepage': { contentType: 'text/html', body: Buffer.from(p.html) },
        '/admin/rate-limit': json({ enabled: p.enabled }),
      } satisfies Plausible;
    });
}

let fuzzNames = 0;

function fuzzArb(ids: () => number[]): fc.Arbitrary<Fuzz> {
  const id = idArb(ids);
  // Each route with its own method, so most requests get past routing; a random method is mixed in below.
  const route = fc.oneof(
    {
      weight: 12,
      arbitrary: fc.constantFrom(
        ['GET', '/health'],
        ['GET', '/stats'],
        ['POST', '/register'],
        ['GET', '/messages'],
        ['POST', '/messages/ack'],
        // The routes that change state, more often.
        ['POST', '/send'],
        ['POST', '/send'],
        ['POST', '/send'],
        ['POST', '/send'],
        ['POST', '/send/file'],
        ['POST', '/send/file'],
        ['POST', '/register'],
        ['GET', '/users'],
        ['GET', '/friends'],
        ['PATCH', '/me'],
        ['PUT', '/homepage'],
        ['GET', '/stream'],
        ['GET', '/admin/rate-limit'],
        ['POST', '/admin/rate-limit'],
        ['GET', '/openapi.json'],
        ['GET', '/metrics'],
      ),
    },
    id.map((i) => ['GET', `/users/${i}`]),
    id.map((i) => ['POST', `/block/${i}`]),
    id.map((i) => ['POST', `/unblock/${i}`]),
    id.map((i) => ['GET', `/homepage/${i}`]),
    id.map((i) => ['GET', `/files/${i}`]),
    printable.map((s) => ['GET', `/${encodeURIComponent(s)}`]),
  );
  const query = fc.option(
    fc
      .record(
        {
          limit: fc.oneof(fc.integer({ min: -2, max: 600 }).map(String), printable),
          from_id: id,
          after: id,
          since: id,
          keyword: printable,
        },
        { requiredKeys: [] },
      )
      .map((q) => `?${new URLSearchParams(q as Record<string, string>).toString()}`),
    { nil: '' },
  );
  return fc
    .record({
      route,
      otherMethod: fc.oneof(
        { arbitrary: fc.constant(undefined), weight: 4 },
        { arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'), weight: 1 },
      ),
      query,
      tokenKind: fc.constantFrom('none', 'alice', 'bob', 'alice', 'bob', 'bad', 'garbage'),
      garbageToken: printable,
      accept: fc.constantFrom(null, 'application/json', 'text/plain', '*/*', 'text/event-stream'),
      body: bodyArb(ids),
      plausible: fc.option(plausibleArb(ids), { freq: 2, nil: undefined }),
      extraHeaders: fc.record(
        {
          'X-Forwarded-For': fc.oneof(printable, fc.constantFrom('1.2.3.4', '::1, 10.0.0.1', 'unknown')),
          'Last-Event-ID': fc.oneof(id, printable),
          'X-Request-ID': printable,
          'X-Admin-Key': printable,
          'Idempotency-Key': fc.oneof(printable, fc.constant('k'.repeat(300))),
        },
        { requiredKeys: [] },
      ),
    })
    .map((r) => {
      // JSON mode answers have their own shapes; keep them to requests that cannot change anything so the
      // bookkeeping below (which reads text replies) stays exact.
      const tokenKind =
        r.accept === 'application/json' && (r.tokenKind === 'alice' || r.tokenKind === 'bob')
          ? 'bad'
          : r.tokenKind;
      // Half the time the body is one that nearly fits the route (so some requests succeed and the
      // bookkeeping is exercised); otherwise it is anything.
      const fitting = r.plausible?.[r.route[1] as keyof Plausible];
      const body = fitting ?? r.body;
      return {
        method: r.otherMethod ?? r.route[0],
        path: r.route[1] + r.query,
        tokenKind,
        garbageToken: r.garbageToken,
        accept: r.accept,
        contentType: body.contentType,
        body: body.body,
        extraHeaders: r.extraHeaders,
      } satisfies Fuzz;
    });
}

interface FuzzReply {
  status: number;
  contentType: string;
  text: string;
}

let idemCounter = 0;

/** One request over node:http; an event stream is cut as soon as its head arrives. Rejects on a hang. */
function fire(base: string, f: Fuzz, tokens: { alice: string; bob: string }): Promise<FuzzReply> {
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(f.extraHeaders)) {
    // Idempotency keys are made unique so a repeated key never replays an earlier success.
    headers[k] = k === 'Idempotency-Key' ? `${v}-${++idemCounter}` : v;
  }
  if (f.tokenKind === 'alice') headers['X-Token'] = tokens.alice;
  if (f.tokenKind === 'bob') headers['X-Token'] = tokens.bob;
  if (f.tokenKind === 'bad') headers['X-Token'] = BAD_TOKEN;
  if (f.tokenKind === 'garbage') headers['X-Token'] = f.garbageToken;
  if (f.accept !== null) headers['Accept'] = f.accept;
  if (f.contentType !== null) headers['Content-Type'] = f.contentType;
  // node:http frames a GET/HEAD/DELETE/OPTIONS body only when told its length.
  if (f.body !== null) headers['Content-Length'] = String(f.body.length);
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(f.path, base), { method: f.method, headers, agent: false });
    const timer = setTimeout(
      () => req.destroy(new Error(`no answer within 10 s: ${f.method} ${f.path}`)),
      10_000,
    );
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.on('response', (res) => {
      const contentType = String(res.headers['content-type'] ?? '');
      if (contentType.startsWith('text/event-stream')) {
        clearTimeout(timer);
        res.destroy();
        req.destroy();
        resolve({ status: res.statusCode ?? 0, contentType, text: '' });
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, contentType, text: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    req.end(f.body ?? undefined);
  });
}

describe('property: random requests to every endpoint', () => {
  let fz: TestRelay;
  let a: Registered;
  let b: Registered;
  let c: Registered;

  beforeAll(async () => {
    // No admin key: the admin routes answer 503 and the limiter cannot be switched on by a lucky request.
    fz = await startRelay({ sseMaxPerIp: 1 });
    a = await register(fz.url);
    b = await register(fz.url);
    c = await register(fz.url);
    await makeFriends(fz.url, a, b);
  });

  afterAll(async () => {
    await fz?.close();
  });

  it('never answers 5xx, never hangs, and /stats matches the accepted requests', async () => {
    const expected: Stats = await stats(fz.url);
    expect(expected).toEqual({ users: 3, friendships: 1, messages: 4 });
    const seen = { total: 0, byStatus: new Map<number, number>() };

    await fc.assert(
      fc.asyncProperty(
        fuzzArb(() => [a.id, b.id, c.id, 999]),
        async (f) => {
          const r = await fire(fz.url, f, { alice: a.token, bob: b.token });
          seen.total++;
          seen.byStatus.set(r.status, (seen.byStatus.get(r.status) ?? 0) + 1);
          if (process.env.FUZZ_DEBUG)
            console.log(f.method, f.path.slice(0, 30), f.tokenKind, r.status, r.text.slice(0, 60));
          const adminUnconfigured = f.path.startsWith('/admin/') && r.status === 503;
          expect(r.status < 500 || adminUnconfigured, `${f.method} ${f.path} → ${r.status} ${r.text}`).toBe(
            true,
          );

          // Bookkeeping of what succeeded (text replies; JSON mode never carries a valid token).
          const bare = f.path.split('?')[0];
          if (f.method === 'POST' && bare === '/register' && r.status >= 200 && r.status < 300)
            expected.users++;
          if (f.method === 'POST' && (bare === '/send' || bare === '/send/file') && r.status === 200) {
            if (r.text.startsWith('发送成功（好友关系已建立）')) {
              expected.messages += 3;
              expected.friendships += 1;
            } else if (r.text.startsWith('发送成功')) {
              expected.messages += 1;
            }
          }
          if (f.method === 'POST' && bare?.startsWith('/block/') && r.text.startsWith('已拉黑')) {
            expected.friendships -= 1;
          }
          // The relay keeps answering after every request.
          const h = await rawRequest(fz.url, 'GET', '/health');
          expect(h.status).toBe(200);
        },
      ),
      { numRuns: 150, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
    );

    console.log(
      `fuzz: ${seen.total} requests, statuses ${JSON.stringify(Object.fromEntries([...seen.byStatus].sort((x, y) => x[0] - y[0])))}; ` +
        `expected stats now ${JSON.stringify(expected)}`,
    );
    const h = await request(fz.url, 'GET', '/health');
    expect(h.status).toBe(200);
    expect((JSON.parse(h.text) as { status: string }).status).toBe('ok');
    expect(await stats(fz.url)).toEqual(expected);

    // A normal flow still works end to end.
    const d = await register(fz.url);
    const e = await register(fz.url);
    expect((await send(fz.url, d, e, 'hello e')).text.startsWith('发送成功（好友申请已发出')).toBe(true);
    expect((await send(fz.url, e, d, 'hello d')).text.startsWith('发送成功（好友关系已建立）')).toBe(true);
    expect((await send(fz.url, d, e, 'final check')).text.startsWith('发送成功')).toBe(true);
    const inbox = await messages(fz.url, e);
    expect(inbox.text).toContain('内容：hello e');
    expect(inbox.text).toContain('内容：final check');
    expect(await stats(fz.url)).toEqual({
      users: expected.users + 2,
      friendships: expected.friendships + 1,
      messages: expected.messages + 5,
    });
  });
});
