/**
 * The guides in docs/ say what the code does:
 * - a ```ts block preceded by `<!-- file: path -->` is that file of the repository, byte for byte
 *   (so an example the test suite runs is the example the reader sees);
 * - every other ```ts block type-checks, as a user's module importing the built package by its
 *   name (blocks marked `<!-- fragment -->` are excerpts, not modules, and are skipped). The
 *   blocks of one page are written side by side, a `file:` block under its base name, so that an
 *   example may import the page's own file (`./etcd-http.backend.js`).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const docsDir = join(root, 'docs');

interface Block {
  page: string;
  index: number;
  code: string;
  /** The repository file it must equal, from `<!-- file: path -->`. */
  file?: string;
  fragment: boolean;
}

function blocksOf(page: string): Block[] {
  const text = readFileSync(join(docsDir, page), 'utf8');
  const pattern = /(?:<!-- (file: ([^ ]+)|fragment) -->\n\n)?```ts\n([\s\S]*?)```/g;
  return [...text.matchAll(pattern)].map((match, index) => ({
    page,
    index,
    code: match[3] ?? '',
    ...(match[2] ? { file: match[2] } : {}),
    fragment: match[1] === 'fragment',
  }));
}

const pages = readdirSync(docsDir).filter((name) => name.endsWith('.md'));
const blocks = pages.flatMap(blocksOf);

describe('docs/', () => {
  it('has the pages and examples this test expects', () => {
    expect(pages).toContain('backends.md');
    expect(blocks.filter((block) => block.file).length).toBeGreaterThan(0);
    expect(blocks.filter((block) => !block.file && !block.fragment).length).toBeGreaterThan(0);
  });

  it.each(blocks.filter((block) => block.file).map((block) => [block.file, block] as const))(
    'shows %s as it is',
    (file, block) => {
      expect(block.code).toBe(readFileSync(join(root, file ?? ''), 'utf8'));
    },
  );

  it('type-checks every example', () => {
    const files: string[] = [];
    for (const page of pages) {
      const dir = join(root, '.tmp', 'docs', page.replace(/\.md$/, ''));
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      for (const block of blocksOf(page)) {
        if (block.fragment) continue;
        const name = block.file ? basename(block.file) : `example-${block.index}.ts`;
        writeFileSync(join(dir, name), block.code);
        files.push(join(dir, name));
      }
    }
    const program = ts.createProgram(files, {
      target: ts.ScriptTarget.ES2022,
      lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'],
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      types: ['node'],
    });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file
        ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}`
        : '';
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    expect(problems).toEqual([]);
  });
});
