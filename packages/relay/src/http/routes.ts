// The route table: every endpoint and its guards on one screen.
//   convention — text-mode error style of the path (docs/compat.md): soft = 200 + `错误：…`,
//                hard = real status + `错误 <code>：…`. `Accept: application/json` overrides both.
//   auth       — none | token (X-Token) | admin (X-Admin-Key).
//   touch      — refreshes last-seen (the reference's list, docs/compat.md).
//   uploads    — takes multipart bodies (only these routes parse them).
// Rate limiting is decided by path before routing, as on the reference (see rateLimitExempt).

import * as accounts from './handlers/accounts.ts';
import * as admin from './handlers/admin.ts';
import * as files from './handlers/files.ts';
import * as friends from './handlers/friends.ts';
import * as groups from './handlers/groups.ts';
import * as homepage from './handlers/homepage.ts';
import * as keys from './handlers/keys.ts';
import * as messaging from './handlers/messaging.ts';
import * as ops from './handlers/ops.ts';
import * as receipts from './handlers/receipts.ts';
import * as stream from './handlers/stream.ts';
import { defineRoute as r, type RouteSpec } from './route.ts';

// prettier-ignore
export const ROUTES: RouteSpec[] = [
  r({ method: 'GET', url: '/', convention: 'hard', auth: 'none', handler: ops.root }),
  r({ method: 'GET', url: '/health', convention: 'hard', auth: 'none', handler: accounts.health }),
  r({ method: 'GET', url: '/metrics', convention: 'hard', auth: 'none', handler: ops.metrics }),
  r({ method: 'GET', url: '/livez', convention: 'hard', auth: 'none', handler: ops.livez }),
  r({ method: 'GET', url: '/readyz', convention: 'hard', auth: 'none', handler: ops.readyz }),
  r({ method: 'GET', url: '/openapi.json', convention: 'hard', auth: 'none', handler: ops.openapi }),
  r({ method: 'GET', url: '/stats', convention: 'hard', auth: 'none', handler: accounts.stats }),
  r({ method: 'POST', url: '/register', convention: 'hard', auth: 'none', parse: accounts.parseRegister, handler: accounts.register }),
  r({ method: 'GET', url: '/users', convention: 'soft', auth: 'token', touch: true, parse: accounts.parseDiscover, handler: accounts.discover }),
  r({ method: 'GET', url: '/users/:user_id', convention: 'soft', auth: 'token', touch: true, parse: accounts.parseUserIdPath, handler: accounts.userDetail }),
  r({ method: 'PATCH', url: '/me', convention: 'soft', auth: 'token', touch: true, parse: accounts.parseStatus, handler: accounts.updateMe }),
  r({ method: 'POST', url: '/send', convention: 'soft', auth: 'token', touch: true, parse: messaging.parseSend, handler: messaging.send }),
  r({ method: 'POST', url: '/send/file', convention: 'soft', auth: 'token', touch: true, uploads: true, parse: messaging.parseSendFile, preAuth: messaging.preAuthSendFile, handler: messaging.sendFile, cleanup: messaging.cleanupSendFile }),
  r({ method: 'GET', url: '/messages', convention: 'soft', auth: 'token', touch: true, parse: messaging.parseInbox, handler: messaging.readInbox }),
  r({ method: 'POST', url: '/messages/ack', convention: 'hard', auth: 'token', touch: true, parse: messaging.parseAck, handler: messaging.ack }),
  r({ method: 'GET', url: '/sent/:to_id/:message_id', convention: 'hard', auth: 'token', touch: true, parse: receipts.parseSentPath, handler: receipts.sentReceipt }),
  r({ method: 'GET', url: '/sent', convention: 'hard', auth: 'token', touch: true, parse: receipts.parseSentQuery, handler: receipts.sentByKey }),
  r({ method: 'GET', url: '/friends', convention: 'soft', auth: 'token', touch: true, handler: friends.listFriends }),
  r({ method: 'POST', url: '/block/:user_id', convention: 'soft', auth: 'token', touch: true, parse: accounts.parseUserIdPath, handler: friends.block }),
  r({ method: 'POST', url: '/unblock/:user_id', convention: 'soft', auth: 'token', touch: true, parse: accounts.parseUserIdPath, handler: friends.unblock }),
  r({ method: 'POST', url: '/groups', convention: 'soft', auth: 'token', touch: true, parse: groups.parseCreateGroup, handler: groups.createGroup }),
  r({ method: 'GET', url: '/groups', convention: 'soft', auth: 'token', touch: true, handler: groups.listGroups }),
  r({ method: 'GET', url: '/groups/:group_id', convention: 'soft', auth: 'token', touch: true, parse: groups.parseGroupPath, handler: groups.groupDetail }),
  r({ method: 'PATCH', url: '/groups/:group_id', convention: 'soft', auth: 'token', touch: true, parse: groups.parseUpdateGroup, handler: groups.updateGroup }),
  r({ method: 'DELETE', url: '/groups/:group_id', convention: 'soft', auth: 'token', touch: true, parse: groups.parseGroupPath, handler: groups.dissolve }),
  r({ method: 'POST', url: '/groups/:group_id/members', convention: 'soft', auth: 'token', touch: true, parse: groups.parseAddMembers, handler: groups.addMembers }),
  r({ method: 'DELETE', url: '/groups/:group_id/members/:user_id', convention: 'soft', auth: 'token', touch: true, parse: groups.parseMemberPath, handler: groups.removeMember }),
  r({ method: 'POST', url: '/groups/:group_id/leave', convention: 'soft', auth: 'token', touch: true, parse: groups.parseGroupPath, handler: groups.leave }),
  r({ method: 'POST', url: '/groups/:group_id/send', convention: 'soft', auth: 'token', touch: true, parse: groups.parseGroupSend, handler: groups.groupSend }),
  r({ method: 'POST', url: '/groups/:group_id/send/file', convention: 'soft', auth: 'token', touch: true, uploads: true, parse: groups.parseGroupSendFile, preAuth: groups.preAuthGroupSendFile, handler: groups.groupSendFile, cleanup: messaging.cleanupSendFile }),
  r({ method: 'GET', url: '/files/:file_id', convention: 'hard', auth: 'token', parse: files.parseFileId, handler: files.download }),
  r({ method: 'PUT', url: '/homepage', convention: 'hard', auth: 'token', uploads: true, bodyLimit: homepage.HOMEPAGE_MAX_BYTES, tooLarge: 'homepage_too_large', parse: homepage.parseHomepage, preAuth: homepage.checkHomepage, handler: homepage.putHomepage }),
  r({ method: 'GET', url: '/homepage/:user_id', convention: 'hard', auth: 'none', parse: accounts.parseUserIdPath, handler: homepage.getHomepage }),
  r({ method: 'PUT', url: '/keys', convention: 'hard', auth: 'token', touch: true, parse: keys.parsePutKeys, handler: keys.putKeys }),
  r({ method: 'GET', url: '/keys/:user_id', convention: 'hard', auth: 'token', touch: true, parse: accounts.parseUserIdPath, handler: keys.getKeys }),
  r({ method: 'GET', url: '/stream', convention: 'hard', auth: 'token', touch: true, parse: stream.parseStream, handler: stream.openStream }),
  r({ method: 'GET', url: '/admin/rate-limit', convention: 'hard', auth: 'admin', handler: admin.getRateLimit }),
  r({ method: 'POST', url: '/admin/rate-limit', convention: 'hard', auth: 'admin', parse: admin.parseRateLimit, handler: admin.setRateLimit }),
];

/**
 * The reference's exemptions (docs/compat.md): exact paths and two prefixes; plus our operations endpoints,
 * which monitoring polls. Unknown routes are limited.
 */
export function rateLimitExempt(path: string): boolean {
  return (
    ['/', '/health', '/stats', '/stream', '/homepage', '/register', '/metrics', '/livez', '/readyz'].includes(
      path,
    ) ||
    path.startsWith('/homepage/') ||
    path.startsWith('/admin/')
  );
}

/** Reference convention for a path with no route (404/405 bodies, limiter): prefix rules of the text-mode error convention (docs/compat.md). */
export function conventionOfPath(path: string): 'soft' | 'hard' {
  return ['/health', '/stats', '/stream', '/homepage', '/register'].includes(path) ||
    path.startsWith('/homepage') ||
    path.startsWith('/admin/')
    ? 'hard'
    : 'soft';
}
