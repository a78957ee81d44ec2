// The slice of OpenClaw's plugin SDK (openclaw@2026.9.6, `openclaw/plugin-sdk/*`) this plugin calls,
// typed here because the host is a peer dependency: it is not installed in this repository (Node 24,
// ~800 MB); the bundle leaves these imports to the host's own copy. Shapes follow the SDK's .d.ts files
// and docs/plugins/sdk-channel-*.md; only the fields used are listed.

declare module 'openclaw/plugin-sdk/channel-core' {
  export type OpenClawConfig = {
    channels?: Record<string, unknown>;
    session?: { dmScope?: string };
    [key: string]: unknown;
  };
  export interface ChannelLogSink {
    info?: (msg: string) => void;
    warn?: (msg: string) => void;
    error?: (msg: string) => void;
    debug?: (msg: string) => void;
  }
  export interface ChannelGatewayContext<A> {
    cfg: OpenClawConfig;
    accountId: string;
    account: A;
    abortSignal: AbortSignal;
    log?: ChannelLogSink;
    setStatus: (next: Record<string, unknown>) => void;
    channelRuntime?: ChannelRuntime;
  }
  export interface ChannelRuntime {
    inbound: {
      ingress: { resolveStable: (params: Record<string, unknown>) => Promise<IngressResult> };
      buildContext: (params: Record<string, unknown>) => Record<string, unknown>;
      dispatch: (params: Record<string, unknown>) => Promise<{
        admission: { kind: string };
        dispatched: boolean;
      }>;
    };
  }
  export interface IngressResult {
    ingress: { admission: string; reasonCode?: string };
    [key: string]: unknown;
  }
  export interface ChannelOutboundContext {
    cfg: OpenClawConfig;
    to: string;
    text: string;
    mediaUrl?: string;
    mediaAccess?: unknown;
    mediaLocalRoots?: readonly string[];
    mediaReadFile?: (filePath: string) => Promise<Buffer>;
    accountId?: string | null;
    signal?: AbortSignal;
    deliveryQueueId?: string;
    deliveryPartIndex?: number;
    assertDirectAdapterHandoff?: () => void;
  }
  export function createChatChannelPlugin<_A>(params: Record<string, unknown>): unknown;
  export function buildChannelOutboundSessionRoute(params: Record<string, unknown>): unknown;
  export interface PluginApi {
    registrationMode: string;
    pluginConfig?: Record<string, unknown>;
    runtime?: unknown;
    logger?: ChannelLogSink;
    on: (
      hook: 'before_prompt_build',
      handler: (
        event: { prompt?: string },
        ctx: { channel?: string; messageProvider?: string; accountId?: string; sessionKey?: string },
      ) => { prependContext?: string } | void | Promise<{ prependContext?: string } | void>,
    ) => void;
    /** A gateway RPC method (`openclaw gateway call <method>`); scope e.g. operator.read / operator.admin. */
    registerGatewayMethod: (
      method: string,
      handler: (opts: {
        params: Record<string, unknown>;
        respond: (ok: boolean, payload?: unknown, error?: { code: string; message: string }) => void;
      }) => Promise<void> | void,
      opts?: { scope?: string },
    ) => void;
  }
  export function defineChannelPluginEntry(params: {
    id: string;
    name: string;
    description: string;
    plugin: unknown;
    configSchema?: () => unknown;
    registerFull?: (api: PluginApi) => void;
    registerCapabilities?: (api: PluginApi) => void;
  }): unknown;
  export function defineSetupPluginEntry(plugin: unknown): unknown;
}

declare module 'openclaw/plugin-sdk/channel-inbound' {
  export function resolveChannelInboundRouteEnvelope(params: Record<string, unknown>): {
    route: { agentId: string; accountId?: string; sessionKey: string; dmScope?: string };
    buildEnvelope: (input: { channel: string; from: string; timestamp: number; body: string }) => string;
  };
  export function toInboundMediaFacts(
    entries: Array<{ path?: string; url?: string; contentType?: string; messageId?: string }>,
  ): unknown[];
}

declare module 'openclaw/plugin-sdk/secret-input-runtime' {
  export function resolveConfiguredSecretInputWithFallback(params: {
    config: unknown;
    env: NodeJS.ProcessEnv;
    value: unknown;
    path: string;
    readFallback?: () => string | undefined;
  }): Promise<{ value?: string; unresolvedRefReason?: string; secretRefConfigured: boolean }>;
}

declare module 'openclaw/plugin-sdk/state-paths' {
  export function resolveStateDir(env?: NodeJS.ProcessEnv): string;
}

declare module 'openclaw/plugin-sdk/outbound-media' {
  export function loadOutboundMediaFromUrl(
    mediaUrl: string,
    options?: {
      maxBytes?: number;
      mediaAccess?: unknown;
      mediaLocalRoots?: readonly string[];
      mediaReadFile?: (filePath: string) => Promise<Buffer>;
    },
  ): Promise<{ buffer: Buffer; contentType?: string; fileName?: string }>;
}

declare module 'openclaw/plugin-sdk/media-store' {
  export function saveMediaBuffer(
    buffer: Buffer,
    contentType?: string,
    subdir?: string,
    maxBytes?: number,
    originalFilename?: string,
  ): Promise<{ path: string; contentType?: string }>;
}

declare module 'openclaw/plugin-sdk/reply-payload' {
  export function isReplyPayloadTerminalContent(payload: unknown): boolean;
}

declare module 'openclaw/plugin-sdk/channel-outbound' {
  import type { OpenClawConfig } from 'openclaw/plugin-sdk/channel-core';
  export interface MessageReceipt {
    primaryPlatformMessageId?: string;
    platformMessageIds: string[];
    parts: unknown[];
    sentAt: number;
  }
  export function createMessageReceiptFromOutboundResults(params: {
    results: ReadonlyArray<{ channel?: string; messageId?: string; conversationId?: string }>;
    kind?: 'text' | 'media';
    sentAt?: number;
  }): MessageReceipt;
  export interface ChannelMessageUnknownSendContext {
    cfg: OpenClawConfig;
    queueId: string;
    channel: string;
    to: string;
    accountId?: string | null;
    enqueuedAt: number;
    retryCount: number;
    platformSendStartedAt?: number;
    payloads: ReadonlyArray<Record<string, unknown>>;
  }
  export type ChannelMessageUnknownSendReconciliationResult =
    | { status: 'sent'; receipt: MessageReceipt; messageId?: string }
    | { status: 'not_sent' }
    | { status: 'unresolved'; error?: string; retryable?: boolean };
  export interface ChannelMessageAdapter {
    id?: string;
    durableFinal?: { capabilities?: Record<string, boolean> };
    send?: Record<string, unknown>;
    receive?: unknown;
  }
  export function createChannelMessageAdapterFromOutbound(params: {
    id?: string;
    outbound: Record<string, unknown>;
    capabilities?: Record<string, boolean>;
  }): ChannelMessageAdapter;
}

declare module 'openclaw/plugin-sdk/inbound-reply-dispatch' {
  export interface ChannelBotLoopProtectionFacts {
    scopeId: string;
    conversationId: string;
    senderId: string;
    receiverId: string;
    eventId?: string;
    config?: {
      enabled?: boolean;
      maxEventsPerWindow?: number;
      windowSeconds?: number;
      cooldownSeconds?: number;
    };
    defaultsConfig?: {
      enabled?: boolean;
      maxEventsPerWindow?: number;
      windowSeconds?: number;
      cooldownSeconds?: number;
    };
    defaultEnabled: boolean;
    nowMs?: number;
  }
  export function recordChannelBotPairLoopAndCheckSuppression(
    params: ChannelBotLoopProtectionFacts,
  ): { suppressed: false } | { suppressed: true; cooldownUntilMs: number };
}
