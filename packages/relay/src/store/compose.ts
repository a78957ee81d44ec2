// Each backend implements the Store area by area (users, messaging, files, groups: one class per file,
// each small enough to read); the relay still holds one Store object. This builds that object from the
// areas' methods, bound to their area.

/** The methods of `part` (its class's and its ancestors'), bound to it, as own properties. */
function methodsOf(part: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const self = part as Record<string, unknown>;
  for (let p = Object.getPrototypeOf(part); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const key of Object.getOwnPropertyNames(p)) {
      const value = self[key];
      if (key === 'constructor' || key in out || typeof value !== 'function') continue;
      out[key] = (value as (...args: unknown[]) => unknown).bind(part);
    }
  }
  return out;
}

/**
 * One object with `base`'s properties and every part's methods. Two parts defining the same method
 * name (a helper shadowing another area's method) is a programming error, refused at open.
 */
export function compose<T>(base: object, parts: readonly object[]): T {
  const out: Record<string, unknown> = { ...base };
  for (const part of parts) {
    for (const [key, fn] of Object.entries(methodsOf(part))) {
      if (key in out) throw new Error(`store areas both define ${key}()`);
      out[key] = fn;
    }
  }
  return out as T;
}
