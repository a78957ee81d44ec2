export {
  E2E_POLICIES,
  E2eError,
  E2eSession,
  type E2eErrorCode,
  type E2ePolicy,
  type E2eSent,
  type E2eSessionOptions,
  type OpenedMessage,
  type PeerKeyInfo,
} from './session.ts';
export {
  FileKeyStore,
  KEY_FILES,
  MemoryKeyStore,
  type E2eKeyStore,
  type Identity,
  type Pin,
} from './keystore.ts';
export { fingerprint, safetyNumber, type Envelope, type FileSecret } from './crypto.ts';
