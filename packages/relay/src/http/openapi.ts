// The OpenAPI 3.1 document, generated: paths, methods and guards from the route table; summaries, request
// and response shapes from @openwechat/protocol's ENDPOINTS (the same TypeBox schemas that validate
// requests and type the JSON mode). buildOpenApi() refuses to build if a route has no entry, so the
// document cannot drift from the table, and it has no shapes of its own to drift from the wire.

import {
  COMPONENTS,
  ENDPOINTS,
  IdempotencyKeyHeader,
  PATH_PARAMS,
  type Endpoint,
} from '@openwechat/protocol';
import type { TSchema } from '@sinclair/typebox';
import type { RouteSpec } from './route.ts';

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });

/**
 * A TypeBox schema as plain JSON Schema: TypeBox's symbol keys dropped, and a union of string literals
 * (how TypeBox spells an enum) written as `enum`, the way OpenAPI readers show it best.
 */
function plain(schema: TSchema): Schema {
  return tidy(JSON.parse(JSON.stringify(schema)) as unknown) as Schema;
}

function tidy(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(tidy);
  if (typeof node !== 'object' || node === null) return node;
  const { anyOf, ...rest } = node as Schema;
  if (
    Array.isArray(anyOf) &&
    anyOf.length > 0 &&
    anyOf.every(
      (s: Schema) => typeof s.const === 'string' && Object.keys(s).length === 2 && s.type === 'string',
    )
  ) {
    return { type: 'string', enum: anyOf.map((s: Schema) => s.const), ...rest };
  }
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, tidy(v)]));
}

/** The named shapes, and a function that writes any copy of one of them as a `$ref` to it. */
function components(): { schemas: Record<string, Schema>; refer: (s: Schema, self?: string) => Schema } {
  const byJson = new Map<string, string>();
  const plainOnes = Object.entries(COMPONENTS).map(([name, s]) => [name, plain(s)] as const);
  for (const [name, s] of plainOnes) byJson.set(JSON.stringify(s), name);
  const refer = (node: Schema, self?: string): Schema => {
    const walk = (n: unknown, root: boolean): unknown => {
      if (Array.isArray(n)) return n.map((x) => walk(x, false));
      if (typeof n !== 'object' || n === null) return n;
      const name = byJson.get(JSON.stringify(n));
      if (name && !(root && name === self)) return ref(name);
      return Object.fromEntries(Object.entries(n).map(([k, v]) => [k, walk(v, false)]));
    };
    return walk(node, true) as Schema;
  };
  const schemas = Object.fromEntries(plainOnes.map(([name, s]) => [name, refer(s, name)]));
  return { schemas, refer };
}

const TEXT = { 'text/plain': { schema: { type: 'string' } } };
const BODY_TYPES = { json: 'application/json', multipart: 'multipart/form-data', html: 'text/html' } as const;
const SENDS = ['/send', '/send/file', '/groups/:group_id/send', '/groups/:group_id/send/file'];

/** A declared shape; else any JSON, or a string for text, HTML, SSE and files. */
function producedSchema(p: NonNullable<Endpoint['produces']>, schema: (s: TSchema) => Schema): Schema {
  if (p.schema) return schema(p.schema);
  return p.type === 'application/json' ? {} : { type: 'string' };
}

function operation(route: RouteSpec, doc: Endpoint, refer: (s: Schema) => Schema): Schema {
  const schema = (s: TSchema): Schema => refer(plain(s));
  const parameters: Schema[] = [];
  for (const m of route.url.matchAll(/:([a-z_]+)/g)) {
    const name = m[1] as keyof typeof PATH_PARAMS;
    const param = PATH_PARAMS[name];
    if (!param) throw new Error(`openapi: no schema for the path parameter :${name} of ${route.url}`);
    parameters.push({ name, in: 'path', required: true, schema: schema(param) });
  }
  if (doc.query) {
    const q = plain(doc.query) as { properties: Record<string, Schema>; required?: string[] };
    for (const [name, s] of Object.entries(q.properties)) {
      const required = q.required?.includes(name) ?? false;
      parameters.push({ name, in: 'query', ...(required ? { required } : {}), schema: refer(s) });
    }
  }
  if (route.auth === 'token')
    parameters.push({ name: 'X-Token', in: 'header', required: true, schema: { type: 'string' } });
  if (route.auth === 'admin')
    parameters.push({ name: 'X-Admin-Key', in: 'header', required: true, schema: { type: 'string' } });
  if (SENDS.includes(route.url))
    parameters.push({ name: 'Idempotency-Key', in: 'header', schema: schema(IdempotencyKeyHeader) });
  if (route.url === '/stream')
    parameters.push({ name: 'Last-Event-ID', in: 'header', schema: { type: 'string' } });

  const ok: Schema = doc.produces
    ? {
        description: 'OK',
        content: { [doc.produces.type]: { schema: producedSchema(doc.produces, schema) } },
      }
    : {
        description: 'OK (text layout by default; JSON with Accept: application/json)',
        content: { ...TEXT, 'application/json': { schema: doc.json ? schema(doc.json) : {} } },
      };
  const errorContent = { ...TEXT, 'application/json': { schema: ref('Error') } };
  const responses: Record<string, Schema> = { 200: ok };
  if (route.convention === 'soft') {
    responses[200] = {
      ...ok,
      description: `${ok.description as string}. In text mode refusals also answer 200: 错误：… / 请求格式错误：…`,
    };
  }
  responses['4XX'] = {
    description: 'Refused (real status on hard paths and in JSON mode)',
    content: errorContent,
  };
  responses['5XX'] = { description: 'Server error', content: errorContent };

  const op: Schema = {
    summary: doc.summary,
    tags: [doc.tag],
    operationId: `${route.method.toLowerCase()}${route.url.replace(/[/:](\w)/g, (_, c: string) => c.toUpperCase())}`,
    parameters,
    responses,
  };
  if (doc.body) {
    op.requestBody = {
      required: true,
      content: { [BODY_TYPES[doc.body.type]]: { schema: schema(doc.body.schema) } },
    };
  }
  return op;
}

export function buildOpenApi(routes: readonly RouteSpec[], version: string): Schema {
  const { schemas, refer } = components();
  const endpoints: Record<string, Endpoint> = ENDPOINTS;
  const paths: Record<string, Record<string, Schema>> = {};
  for (const route of routes) {
    const doc = endpoints[`${route.method} ${route.url}`];
    if (!doc) throw new Error(`openapi: no documentation for ${route.method} ${route.url}`);
    const path = route.url.replace(/:([a-z_]+)/g, '{$1}');
    (paths[path] ??= {})[route.method.toLowerCase()] = operation(route, doc, refer);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'openwechat relay',
      version,
      description:
        'Wire-compatible with the openwechat-claw relay (plain-text API, SSE), plus JSON mode, message ids, resumable streams, idempotent sends and stored files. See docs/protocol.md.',
    },
    paths,
    components: { schemas },
  };
}
