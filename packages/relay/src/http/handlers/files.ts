// GET /files/{file_id}: attachments that really arrive (docs/protocol.md, fix of W-15). Only the sender and the
// recipient may fetch a file — for a group attachment, the sender and every current member of the group;
// anyone else gets the same 404 as for a file that does not exist.

import { Readable } from 'node:stream';
import { contentDisposition, RelayError } from '@openwechat/protocol';
import type { FastifyRequest } from 'fastify';
import type { FileStore, GroupStore, UserRecord } from '../../store/types.ts';
import type { Issues } from '../input.ts';
import type { Output, StoreCtx } from '../route.ts';

const FILE_ID_RE = /^[0-9a-f]{32}$/;

export function parseFileId(req: FastifyRequest, _issues: Issues): { fileId: string } {
  return { fileId: String((req.params as Record<string, unknown>).file_id ?? '') };
}

export async function download(
  ctx: StoreCtx<FileStore & GroupStore> & { user: UserRecord },
  input: { fileId: string },
): Promise<Output> {
  const { store, now } = ctx.services;
  const file = FILE_ID_RE.test(input.fileId) ? await store.getFile(input.fileId) : null;
  let allowed = !!file && (file.senderId === ctx.user.id || file.recipientId === ctx.user.id);
  if (file && !allowed && file.groupId !== null)
    allowed = await store.isGroupMember(file.groupId, ctx.user.id);
  if (!file || !allowed || file.expiresAt <= now()) throw new RelayError('file_not_found');

  // Who collects it: the recipient, or any member but the sender for a group attachment.
  const collector = file.groupId === null ? file.recipientId === ctx.user.id : file.senderId !== ctx.user.id;
  const reply = ctx.reply;
  reply.raw.once('finish', () => {
    // A complete download by a recipient: once every copy of its message is acknowledged the file can go.
    if (!collector) return;
    void store
      .markFileDownloaded(file.id, now())
      .then(() => store.collectFile(file.id, now()))
      .catch((err) => ctx.req.log.error({ err }, 'file bookkeeping failed'));
  });
  reply
    .code(200)
    .header('content-type', file.contentType)
    .header('content-length', String(file.size))
    .header('content-disposition', contentDisposition(file.name))
    .header('x-content-type-options', 'nosniff')
    .header('content-security-policy', "sandbox; default-src 'none'")
    .header('cache-control', 'private, no-store');
  await reply.send(Readable.from(store.readFile(file.id)));
  return { raw: true };
}
