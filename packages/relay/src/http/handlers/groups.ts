// Group chats (docs/groups-api.md): create, list, details, members, leave, update, dissolve, send and
// send a file. Soft text convention, like /send. The rules live in domain/groups.ts and run inside the
// store's transactions; a group the caller does not belong to is `group_not_found` everywhere.
// Every change commits first (with its system notices), then the recipients' streams are woken.

import {
  AddMembersBody,
  CreateGroupBody,
  GroupIdPath,
  GroupSendBody,
  MemberPath,
  UpdateGroupBody,
  formatGroupCreated,
  formatGroupDetail,
  formatGroupDissolved,
  formatGroupLeft,
  formatGroupList,
  formatGroupMemberRemoved,
  formatGroupMembersAdded,
  formatGroupSendSuccess,
  formatGroupUpdated,
  formatSendReply,
  groupJson,
  groupMemberJson,
  hasControlChars,
  RelayError,
  type AttachmentView,
} from '@openwechat/protocol';
import type { FastifyRequest } from 'fastify';
import type { GroupLimits } from '../../domain/groups.ts';
import type { FileStore, GroupStore, MessagingStore, UserRecord, UserStore } from '../../store/types.ts';
import { fromSchema, intField, jsonBody, strField, type Issues } from '../input.ts';
import type { UploadedFile } from '../multipart.ts';
import { sha256Hex, type Ctx, type Output, type StoreCtx } from '../route.ts';
import {
  checkSendFile,
  e2eContent,
  multipartE2e,
  deliverUpload,
  IDEMPOTENCY_WINDOW_MS,
  idempotencyKey,
  PREVIEW_SIZE,
  readUpload,
} from './messaging.ts';
import { groupSendResultJson } from './send-results.ts';

type AuthedCtx = StoreCtx<GroupStore & FileStore & UserStore & MessagingStore> & { user: UserRecord };

const OK = { ok: true } as const;

function limits(ctx: StoreCtx<unknown>): GroupLimits {
  const { config } = ctx.services;
  return { maxMembers: config.maxGroupMembers, maxGroupsPerUser: config.maxGroupsPerUser };
}

/** W-9: group names and descriptions are inserted into line-oriented text, like user names. */
function checkTexts(name: string | undefined, description: string | null | undefined): void {
  if (name !== undefined && hasControlChars(name)) throw new RelayError('invalid_group_name');
  if (description != null && hasControlChars(description)) throw new RelayError('invalid_description');
}

// ── Paths ─────────────────────────────────────────────────────────────────────────────────────────

export interface GroupPath {
  groupId: number;
}

export function parseGroupPath(req: { params: unknown }, issues: Issues): GroupPath {
  return {
    groupId: fromSchema(issues, 'path', GroupIdPath, req.params as Record<string, unknown>).group_id ?? 0,
  };
}

// ── Create, list, details ─────────────────────────────────────────────────────────────────────────

export interface CreateGroupInput {
  name: string;
  description: string | null;
  memberIds: number[];
}

export function parseCreateGroup(req: { body: unknown }, issues: Issues): CreateGroupInput {
  const body = jsonBody(issues, req.body);
  if (!body) return { name: '', description: null, memberIds: [] };
  const { name, description, member_ids: memberIds } = fromSchema(issues, 'body', CreateGroupBody, body);
  return { name: name ?? '', description: description ?? null, memberIds: memberIds ?? [] };
}

export async function createGroup(ctx: AuthedCtx, input: CreateGroupInput): Promise<Output> {
  checkTexts(input.name, input.description);
  const r = await ctx.services.store.createGroup({
    ownerId: ctx.user.id,
    name: input.name,
    description: input.description,
    memberIds: input.memberIds,
    now: ctx.services.now(),
    limits: limits(ctx),
  });
  return { text: formatGroupCreated(r.group, r.group.memberCount), json: { group: groupJson(r.group) } };
}

export async function listGroups(ctx: AuthedCtx): Promise<Output> {
  const groups = await ctx.services.store.listGroups(ctx.user.id);
  return { text: formatGroupList(groups), json: { groups: groups.map(groupJson) } };
}

export async function groupDetail(ctx: AuthedCtx, input: GroupPath): Promise<Output> {
  const found = await ctx.services.store.getGroup(input.groupId, ctx.user.id);
  if (!found) throw new RelayError('group_not_found');
  return {
    text: formatGroupDetail(found.group, found.members),
    json: { group: groupJson(found.group), members: found.members.map(groupMemberJson) },
  };
}

// ── Members ───────────────────────────────────────────────────────────────────────────────────────

export function parseAddMembers(req: FastifyRequest, issues: Issues): GroupPath & { userIds: number[] } {
  const path = parseGroupPath(req, issues);
  const body = jsonBody(issues, req.body);
  const userIds = body ? fromSchema(issues, 'body', AddMembersBody, body).user_ids : undefined;
  return { ...path, userIds: userIds ?? [] };
}

export async function addMembers(ctx: AuthedCtx, input: GroupPath & { userIds: number[] }): Promise<Output> {
  const r = await ctx.services.store.addGroupMembers({
    groupId: input.groupId,
    actorId: ctx.user.id,
    userIds: input.userIds,
    now: ctx.services.now(),
    limits: limits(ctx),
  });
  return { text: formatGroupMembersAdded(r.added), json: { added: r.added } };
}

export function parseMemberPath(req: { params: unknown }, issues: Issues): GroupPath & { userId: number } {
  const p = fromSchema(issues, 'path', MemberPath, req.params as Record<string, unknown>);
  return { groupId: p.group_id ?? 0, userId: p.user_id ?? 0 };
}

/** The owner removes a member; a member naming itself leaves (and is answered as a leave). */
export async function removeMember(ctx: AuthedCtx, input: GroupPath & { userId: number }): Promise<Output> {
  const r = await ctx.services.store.removeGroupMember({
    groupId: input.groupId,
    actorId: ctx.user.id,
    userId: input.userId,
    now: ctx.services.now(),
  });
  return { text: r.left ? formatGroupLeft(r.group) : formatGroupMemberRemoved(r.removed), json: OK };
}

export async function leave(ctx: AuthedCtx, input: GroupPath): Promise<Output> {
  const r = await ctx.services.store.leaveGroup({
    groupId: input.groupId,
    userId: ctx.user.id,
    now: ctx.services.now(),
  });
  return { text: formatGroupLeft(r.group), json: OK };
}

// ── Update, dissolve ──────────────────────────────────────────────────────────────────────────────

export interface UpdateGroupInput extends GroupPath {
  name?: string;
  description?: string | null;
  ownerId?: number;
}

export function parseUpdateGroup(req: FastifyRequest, issues: Issues): UpdateGroupInput {
  const input: UpdateGroupInput = parseGroupPath(req, issues);
  const body = jsonBody(issues, req.body);
  if (!body) return input;
  const { name, description, owner_id: ownerId } = fromSchema(issues, 'body', UpdateGroupBody, body);
  if (name !== undefined) input.name = name;
  if (description !== undefined) input.description = description;
  if (ownerId !== undefined) input.ownerId = ownerId;
  return input;
}

export async function updateGroup(ctx: AuthedCtx, input: UpdateGroupInput): Promise<Output> {
  checkTexts(input.name, input.description);
  const group = await ctx.services.store.updateGroup({
    groupId: input.groupId,
    actorId: ctx.user.id,
    ...(input.name !== undefined ? { name: input.name } : {}),
    ...(input.description !== undefined ? { description: input.description } : {}),
    ...(input.ownerId !== undefined ? { ownerId: input.ownerId } : {}),
    now: ctx.services.now(),
  });
  return { text: formatGroupUpdated(group), json: { group: groupJson(group) } };
}

export async function dissolve(ctx: AuthedCtx, input: GroupPath): Promise<Output> {
  const r = await ctx.services.store.dissolveGroup({
    groupId: input.groupId,
    actorId: ctx.user.id,
    now: ctx.services.now(),
  });
  return { text: formatGroupDissolved(r.group), json: OK };
}

// ── Send ──────────────────────────────────────────────────────────────────────────────────────────

/**
 * Commits one copy per other member (store.sendToGroup), then wakes their streams. With a refusal in
 * hand (upload quota) the store only replays an earlier send with the same Idempotency-Key, else refuses.
 */
async function deliverToGroup(
  ctx: AuthedCtx,
  groupId: number,
  content: string,
  mentionIds: readonly number[],
  attachment: AttachmentView | null,
  attachmentHash: string | null,
  refusal: RelayError | null = null,
  e2e: string | null = null,
): Promise<{ output: Output; replayed: boolean }> {
  const { store, now, metrics } = ctx.services;
  const key = idempotencyKey(ctx);
  // `group` keeps a key reused across /send and a group send from matching either's fingerprint.
  const fingerprint = sha256Hex(
    JSON.stringify([
      'group',
      groupId,
      content,
      [...new Set(mentionIds)].sort((a, b) => a - b),
      attachment?.name ?? null,
      // An encrypted retry is encrypted afresh: compared by kind, not by ciphertext (as on /send).
      e2e ? 'e2e' : attachmentHash,
    ]),
  );
  const result = await store.sendToGroup(
    { fromId: ctx.user.id, groupId, content, attachment, mentionIds, e2e, now: now() },
    {
      previewLimit: PREVIEW_SIZE,
      idempotency: key ? { key, fingerprint, windowMs: IDEMPOTENCY_WINDOW_MS } : undefined,
    },
    refusal
      ? () => {
          throw refusal;
        }
      : undefined,
  );
  if (!result.replayed) {
    metrics.groupSends.inc();
    metrics.groupFanout.observe(result.recipients);
  }
  const preview = result.preview ?? { total: 0, messages: [] };
  const output: Output = {
    text: formatSendReply(formatGroupSendSuccess(result.group, result.recipients), preview),
    json: groupSendResultJson(result),
    headers: result.replayed ? { 'idempotent-replayed': 'true' } : {},
  };
  return { output, replayed: result.replayed };
}

export interface GroupSendInput extends GroupPath {
  content: string;
  mentionIds: number[];
  e2e: string | null;
}

export function parseGroupSend(req: FastifyRequest, issues: Issues): GroupSendInput {
  const path = parseGroupPath(req, issues);
  const body = jsonBody(issues, req.body);
  if (!body) return { ...path, content: '', mentionIds: [], e2e: null };
  const { content, mention_ids: mentionIds, e2e } = fromSchema(issues, 'body', GroupSendBody, body);
  return { ...path, content: content ?? '', mentionIds: mentionIds ?? [], e2e: e2e ?? null };
}

export async function groupSend(ctx: AuthedCtx, input: GroupSendInput): Promise<Output> {
  const content = input.e2e ? e2eContent(input.content) : input.content;
  return (await deliverToGroup(ctx, input.groupId, content, input.mentionIds, null, null, null, input.e2e))
    .output;
}

export interface GroupSendFileInput extends GroupPath {
  content: string;
  mentionIds: number[];
  file: UploadedFile | null;
  e2e: string | null;
}

/** Multipart `content`, `file`, optional `mention_ids` (comma-separated ids), streamed like /send/file. */
export async function parseGroupSendFile(
  req: FastifyRequest,
  issues: Issues,
  ctx: Ctx,
): Promise<GroupSendFileInput> {
  const path = parseGroupPath(req, issues);
  if (!req.isMultipart()) {
    issues.add('body -> content', 'Field required');
    return { ...path, content: '', mentionIds: [], file: null, e2e: null };
  }
  const { fields, file } = await readUpload(req, ctx);
  const content = strField(issues, 'body -> content', fields.content ?? '') ?? '';
  const mentionIds = (fields.mention_ids ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s, i) => intField(issues, `body -> mention_ids -> ${i}`, s) ?? 0);
  return { ...path, content, mentionIds, file, e2e: multipartE2e(issues, fields.e2e) };
}

/** Content and file problems come before an invalid token, as on /send/file. */
export function preAuthGroupSendFile(input: GroupSendFileInput, ctx: Ctx): void {
  checkSendFile(input, ctx.services.config.maxUploadMb);
}

export async function groupSendFile(ctx: AuthedCtx, input: GroupSendFileInput): Promise<Output> {
  const checked = checkSendFile(input, ctx.services.config.maxUploadMb);
  const e2e = input.e2e;
  const content = e2e ? e2eContent(input.content, { emptyAllowed: true }) : checked;
  const upload = input.file;
  if (!upload?.path) {
    return (await deliverToGroup(ctx, input.groupId, content, input.mentionIds, null, null, null, e2e))
      .output;
  }
  // Checked again inside the send; here so that no file is stored for a group the sender is not in.
  if (!(await ctx.services.store.isGroupMember(input.groupId, ctx.user.id))) {
    throw new RelayError('group_not_found');
  }
  return deliverUpload(
    ctx,
    upload,
    { recipientId: ctx.user.id, groupId: input.groupId },
    (attachment, refusal) =>
      deliverToGroup(ctx, input.groupId, content, input.mentionIds, attachment, upload.sha256, refusal, e2e),
  );
}
