// Reads SKILL.md the way a model told to follow it would: the onboarding commands as written, with the
// skill folder for `{baseDir}` and the user's values for the placeholders.

/**
 * The onboarding commands as SKILL.md writes them: the inline `node …` commands of the "First-time
 * onboarding" section that register and start the daemon, in order. Placeholders become real values;
 * optional `[…]` parts are dropped.
 */
export function onboardingCommands(
  skillMd: string,
  values: { baseDir: string; relay: string; name: string },
): string[] {
  const start = skillMd.search(/^##\s+First-time onboarding/m);
  if (start < 0) throw new Error('SKILL.md has no "First-time onboarding" section');
  const rest = skillMd.slice(start + 3);
  const section = rest.slice(0, rest.search(/^##\s/m) >= 0 ? rest.search(/^##\s/m) : undefined);
  // Commands in fenced blocks (one per line) and in inline code spans, in document order.
  const found: Array<{ at: number; command: string }> = [];
  for (const block of section.matchAll(/```[^\n]*\n([\s\S]*?)```/g)) {
    for (const line of block[1]!.split('\n')) {
      if (line.trim().startsWith('node ')) found.push({ at: block.index!, command: line.trim() });
    }
  }
  const inline = section.replace(/```[\s\S]*?```/g, (b) => ' '.repeat(b.length));
  for (const m of inline.matchAll(/`(node [^`]+)`/g)) found.push({ at: m.index!, command: m[1]! });
  const spans = found.sort((a, b) => a.at - b.at).map((f) => f.command);
  const wanted = spans.filter((c) => /\bregister\b/.test(c) || /\bdaemon start\b/.test(c));
  if (wanted.length < 2)
    throw new Error(`SKILL.md onboarding: expected register and daemon start, found ${spans.join(' | ')}`);
  return wanted.map((c) =>
    c
      .replace(/\s*\[[^\]]*\]/g, '')
      .replaceAll('{baseDir}', values.baseDir)
      .replace(/<[^>]*(relay|url)[^>]*>/gi, values.relay)
      .replace(/<[^>]*name[^>]*>/gi, values.name),
  );
}
