// The skill's version (packages/skill/package.json), inlined by esbuild into the bundles.
import pkg from '../package.json' with { type: 'json' };

export const SKILL_VERSION: string = pkg.version;
