import js from '@eslint/js';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

// ── Package boundaries (docs/ARCHITECTURE.md draws the same map) ─────────────────────────────────
// protocol ← client ← skill / bridge / openclaw-channel / mcp; protocol ← relay; config ← relay, bridge. A package imports another only
// through its public entry (`@openwechat/<name>`), never a file inside it; tests/ and bench/ may import
// packages, never the reverse (unit tests beside the code may use tests/helpers).
const PACKAGES = ['protocol', 'config', 'client', 'relay', 'skill', 'bridge', 'openclaw-channel', 'mcp'];
const ALLOWED = {
  protocol: [],
  config: [],
  client: ['protocol'],
  relay: ['protocol', 'config'],
  skill: ['protocol', 'client'],
  bridge: ['protocol', 'client', 'config'],
  'openclaw-channel': ['protocol', 'client'],
  mcp: ['protocol', 'client'],
};
const layering = PACKAGES.map((pkg) => ({
  target: `./packages/${pkg}`,
  from: PACKAGES.filter((other) => other !== pkg && !ALLOWED[pkg].includes(other)).map(
    (o) => `./packages/${o}`,
  ),
  message: `packages/${pkg} may import only ${ALLOWED[pkg].map((a) => `@openwechat/${a}`).join(', ') || 'no other package'} (docs/ARCHITECTURE.md).`,
}));

export default tseslint.config(
  { ignores: ['**/node_modules/**', '**/dist/**', 'data/**', 'bench/results/**', 'skill/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-control-regex': 'off',
    },
  },
  {
    files: ['**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
    },
    rules: {
      // Type-only cycles count too: they are the first step to a runtime one and tangle the layering.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
    },
  },
  {
    files: ['packages/**/*.ts'],
    rules: {
      'import-x/no-restricted-paths': ['error', { zones: layering }],
      // Another package's files are its internals: reach them only through `@openwechat/<name>` (and
      // not by a relative path either: no-relative-packages below).
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['@openwechat/*/**'], message: 'Import the package entry, not its files.' }] },
      ],
    },
  },
  {
    // Unit tests beside the code are tests: they may use tests/helpers (the test-to-package direction).
    files: ['packages/**/*.ts'],
    ignores: ['packages/**/*.test.ts'],
    rules: {
      'import-x/no-relative-packages': 'error',
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            ...layering,
            {
              target: './packages',
              from: ['./tests', './bench'],
              message: 'Packages must not import tests/ or bench/.',
            },
          ],
        },
      ],
    },
  },
);
