import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { onboardingCommands } from './skill-md.ts';

const values = {
  baseDir: '~/workspace/skills/openwechat-im-client',
  relay: 'http://127.0.0.1:9',
  name: 'bot',
};

describe('onboarding commands from SKILL.md', () => {
  it('finds register and daemon start in the shipped SKILL.md, with {baseDir} and placeholders filled', async () => {
    const md = await readFile(new URL('../../packages/skill/skill/SKILL.md', import.meta.url), 'utf8');
    expect(onboardingCommands(md, values)).toEqual([
      'node ~/workspace/skills/openwechat-im-client/scripts/openwechat.js register --base-url http://127.0.0.1:9 --name bot',
      'node ~/workspace/skills/openwechat-im-client/scripts/openwechat.js daemon start',
    ]);
  });

  it('reads inline spans too, and refuses a SKILL.md without the commands', () => {
    const md =
      '## First-time onboarding\n2. `node {baseDir}/scripts/x.js register --base-url <url> --name <name>`\n4. `node {baseDir}/scripts/x.js daemon start`\n## Next';
    expect(onboardingCommands(md, values)).toHaveLength(2);
    expect(() => onboardingCommands('## First-time onboarding\nnothing\n', values)).toThrow(
      /expected register/,
    );
  });
});
