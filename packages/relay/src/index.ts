export { createRelay, type Relay, type RelayDeps } from './app.ts';
export {
  ConfigError,
  DEFAULT_CONFIG,
  loadConfig,
  resolveConfig,
  SETTING_NAMES,
  type RelayConfig,
} from './config.ts';
export type { Store } from './store/types.ts';
