// The loader's two errors, in their own module so the process helpers (service.ts) need not import the
// loader.

/** A setting's problem, named with the setting and where its value came from: one line, exit 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A raw value's problem, worded without the setting's name (the loader prefixes it). */
export class Invalid extends Error {
  override name = 'Invalid';
}
