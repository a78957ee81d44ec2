// Import cycles, type-only ones included. ESLint's import-x/no-cycle guards runtime cycles but skips
// `import type` edges by design; a type-only cycle still tangles the layering (the relay's domain and
// store once imported each other's types), so this walks the whole graph with TypeScript's own resolver.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');

/** file → files it imports or re-exports from (project files only, realpaths relative to `root`). */
function importGraph(
  root: string,
  files: readonly string[],
  options: ts.CompilerOptions,
): Map<string, string[]> {
  const host = ts.createCompilerHost(options);
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const source = ts.createSourceFile(file, ts.sys.readFile(file) ?? '', ts.ScriptTarget.ES2022);
    const deps: string[] = [];
    for (const st of source.statements) {
      if (!(ts.isImportDeclaration(st) || ts.isExportDeclaration(st))) continue;
      if (!st.moduleSpecifier || !ts.isStringLiteral(st.moduleSpecifier)) continue;
      const resolved = ts.resolveModuleName(st.moduleSpecifier.text, file, options, host).resolvedModule;
      if (!resolved || resolved.isExternalLibraryImport) continue;
      deps.push(relative(root, ts.sys.realpath!(resolved.resolvedFileName)));
    }
    graph.set(relative(root, file), deps);
  }
  return graph;
}

/** Strongly connected components with more than one file (Tarjan), each sorted. */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

function projectGraph(dir: string): Map<string, string[]> {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(dir, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!config) throw new Error(`no tsconfig.json in ${dir}`);
  return importGraph(dir, config.fileNames, config.options);
}

describe('import cycles', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'owc-cycles-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('finds a cycle made of type-only imports (the kind lint does not see)', () => {
    writeFileSync(
      join(scratch, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { module: 'NodeNext', allowImportingTsExtensions: true, noEmit: true },
        include: ['*.ts'],
      }),
    );
    writeFileSync(join(scratch, 'a.ts'), "import type { B } from './b.ts';\nexport interface A { b: B }\n");
    writeFileSync(join(scratch, 'b.ts'), "import type { A } from './a.ts';\nexport interface B { a: A }\n");
    writeFileSync(join(scratch, 'c.ts'), "import type { A } from './a.ts';\nexport type C = A;\n");
    expect(cycles(projectGraph(scratch))).toEqual([['a.ts', 'b.ts']]);
  });

  it('there are none in packages/, tests/ or bench/', () => {
    const graph = projectGraph(ROOT);
    expect(graph.size).toBeGreaterThan(100);
    expect(cycles(graph)).toEqual([]);
  });
});
