// Input checks shared by the relay (rejecting names/descriptions) and clients (checking before sending).

// C0 (incl. tab, LF, CR), DEL, C1, U+2028/U+2029, bidi embeddings/overrides (U+202A–U+202E) and
// isolates (U+2066–U+2069). Any of these lets a name or description fake a line or reorder a line's text.
const CONTROL_CHARS = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** True when `s` holds a character that names and descriptions must not contain (W-9 fix). */
export function hasControlChars(s: string): boolean {
  return CONTROL_CHARS.test(s);
}

/**
 * The marker that ends the name in a sender line, `<name>（ID:<id>）`. A name containing it makes the line
 * ambiguous (`A（ID:1） | B（ID:2）` could be user 1 with a description or user 2 named `A（ID:1） | B`), so a
 * client could be fooled about who sent a message. parseMessageBlock() takes the first marker; the relay
 * should reject names for which this returns true.
 */
export function hasSenderIdMarker(name: string): boolean {
  return name.includes('（ID:');
}

/** Uniqueness key of a name: `BOB` collides with `bob` (the reference's utf8mb4_unicode_ci rule). */
export function nameKey(name: string): string {
  return name.normalize('NFKC').toLowerCase();
}
