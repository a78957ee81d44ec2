export { Agent, NoIdentityError, type AgentEvents, type InboxPage } from './agent.ts';
export { renderMessages, messageOut, type MessageOut } from './format.ts';
export { startHttp, MCP_PATH, type HttpHandle } from './http.ts';
export { parseOptions, OptionsError, USAGE, type McpOptions } from './options.ts';
export {
  createSession,
  offeredTools,
  conversationUri,
  CHANNEL_CAPABILITY,
  CHANNEL_METHOD,
  INBOX_URI,
} from './server.ts';
export { TOOLS, checkArgs, jsonSchema, type ToolDef } from './tools.ts';
export { VERSION } from './version.ts';
