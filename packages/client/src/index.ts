export {
  RelayClient,
  normalizeBaseUrl,
  userToJson,
  type ClientMode,
  type RelayClientOptions,
} from './client.ts';
export {
  ClientError,
  codeOfDetail,
  errorOfFailure,
  errorOfReply,
  GROUP_ERROR_CODES,
  isGroupError,
  type ClientErrorCode,
  type GroupErrorCode,
  type ClientErrorKind,
} from './errors.ts';
export { receiptFromJson } from './receipts.ts';
export { openStream, type OpenStreamOptions, type SseStream, type StreamEvent } from './stream.ts';
export {
  failureOf,
  StreamConsumer,
  type ConsumerEvent,
  type ConsumerState,
  type CursorStore,
  type Delivery,
  type StreamConsumerOptions,
  type StreamFailure,
} from './consumer.ts';
export { writeFileAtomic } from './durable.ts';
export { fetchWithinOrigin } from './http.ts';
export {
  abortableSleep,
  Backoff,
  backoffDelay,
  parseRetryAfter,
  retryDelay,
  type BackoffPolicy,
} from './retry.ts';
export * from './text.ts';
export type * from './types.ts';
export * from './e2e/index.ts';
