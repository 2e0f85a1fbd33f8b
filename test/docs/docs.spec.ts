/**
 * README.md and the guides in docs/ say what the code does. Every ```ts block of them is one of:
 *
 * - `<!-- file: path -->` before it: that file of the repository, byte for byte (so an example the
 *   test suite runs is the example the reader sees);
 * - `<!-- fragment -->` before it: an excerpt, not a module; skipped (there must be few of them:
 *   none today);
 * - `<!-- run -->` before it: every other block. It is a module that type-checks, strict, with the
 *   decorator options of a Nest app, importing the built package by its name
 *   (`nestjs-sherlock`, `nestjs-sherlock/core`, ...). And it runs: compiled by TypeScript (with the
 *   decorator metadata Nest needs, as `nest build` does) and run by Node in a child process, with
 *   the test servers' addresses in the environment (REDIS_URL, ETCD_HOSTS, ...). It must exit with
 *   code 0, and every `// prints: text` comment in it is a line its output must contain, in order.
 *
 * The blocks of one page are written side by side (a `file:` block under its base name), so that
 * an example may import the page's own file (`./etcd-http.backend.js`).
 *
 * The README is short (under 400 lines, no table line over 160 characters) and links only to
 * absolute URLs and its own headings: on the npm registry page a relative link is dead. The docs
 * pages link relatively only to files the package ships. Every link into the repository, and every
 * #heading, exists.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, normalize, relative } from 'node:path';
import { promisify } from 'node:util';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const docsDir = join(root, 'docs');
const run = promisify(execFile);

interface PackageJson {
  repository: { url: string };
  homepage: string;
  files: string[];
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as PackageJson;

/** https://github.com/owner/name, from package.json `repository`. */
const repoUrl = pkg.repository.url.replace(/^git\+/, '').replace(/\.git$/, '');

/** The pages checked here, as paths relative to the repository root. */
const pages = [
  'README.md',
  ...readdirSync(docsDir)
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => `docs/${name}`),
];

const EXPECTED_PAGES = [
  'README.md',
  'docs/auth-tls.md',
  'docs/backends-storage.md',
  'docs/core.md',
  'docs/development.md',
  'docs/errors.md',
  'docs/extending.md',
  'docs/guarantees.md',
  'docs/inspection.md',
  'docs/leader-election.md',
  'docs/local-backends.md',
  'docs/multilock.md',
  'docs/nest.md',
  'docs/observability.md',
  'docs/operating.md',
  'docs/performance.md',
  'docs/postgres.md',
  'docs/read-write.md',
  'docs/redlock.md',
  'docs/semaphore.md',
  'docs/testing.md',
  'docs/waiting.md',
  'docs/zookeeper.md',
];

/** A fragment is a snippet that may be wrong: there is none today; raise this only for a reason. */
const MAX_FRAGMENTS = 0;

interface Block {
  page: string;
  index: number;
  /** 1-based line of the opening fence. */
  line: number;
  code: string;
  /** The repository file it must equal, from `<!-- file: path -->`. */
  file?: string;
  fragment: boolean;
  run: boolean;
  /** The `// prints: ...` texts, in order. */
  prints: string[];
}

const read = (page: string) => readFileSync(join(root, page), 'utf8');

function blocksOf(page: string): Block[] {
  const text = read(page);
  const pattern = /(?:<!-- (file: ([^ ]+)|fragment|run) -->\n\n)?```ts\n([\s\S]*?)```/g;
  return [...text.matchAll(pattern)].map((match, index) => {
    const code = match[3] ?? '';
    const fence = (match.index ?? 0) + match[0].indexOf('```ts');
    return {
      page,
      index,
      line: text.slice(0, fence).split('\n').length,
      code,
      ...(match[2] ? { file: match[2] } : {}),
      fragment: match[1] === 'fragment',
      run: match[1] === 'run',
      prints: [...code.matchAll(/\/\/ prints: (.*)$/gm)].map((m) => (m[1] ?? '').trim()),
    };
  });
}

const blocks = pages.flatMap(blocksOf);
const runnable = blocks.filter((block) => block.run);
const slug = (page: string) => page.replace(/\.md$/, '').replace(/\//g, '-');

/** TypeScript's options for the examples: those of a Nest app (and of this repository). */
const compilerOptions: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'],
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  experimentalDecorators: true,
  emitDecoratorMetadata: true,
  esModuleInterop: true,
  skipLibCheck: true,
  types: ['node'],
};

describe('the pages and their blocks', () => {
  it('are the pages this test expects, all shipped in the package', () => {
    expect(pages).toEqual(EXPECTED_PAGES);
    expect(pkg.files).toEqual(expect.arrayContaining(['README.md', 'docs']));
  });

  it('every ts block is a file, a fragment, or a module that type-checks; few are fragments', () => {
    const fences = pages.flatMap((page) => [...read(page).matchAll(/^```ts$/gm)]).length;
    expect(blocks.length).toBe(fences);
    const fragments = blocks.filter((block) => block.fragment);
    expect(fragments.length).toBeLessThanOrEqual(MAX_FRAGMENTS);
    // Every example that is not a repository file runs (a file block is run by the suite, or
    // imported by a block that runs); so every `// prints:` claim is checked.
    const notRun = blocks.filter((block) => !block.file && !block.fragment && !block.run);
    expect(notRun.map((b) => `${b.page}:${b.line}`)).toEqual([]);
    expect(runnable.length).toBeGreaterThanOrEqual(25);
  });

  it.each(blocks.filter((block) => block.file).map((block) => [block.file, block] as const))(
    'shows %s as it is',
    (file, block) => {
      expect(block.code).toBe(readFileSync(join(root, file ?? ''), 'utf8'));
    },
  );

  it('type-checks every example, strict, against the built package', () => {
    const files: string[] = [];
    for (const page of pages) {
      const dir = join(root, '.tmp', 'docs', slug(page));
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      for (const block of blocksOf(page)) {
        if (block.fragment) continue;
        const name = block.file ? basename(block.file) : `example-${block.index}.ts`;
        writeFileSync(join(dir, name), block.code);
        files.push(join(dir, name));
      }
    }
    const program = ts.createProgram(files, { ...compilerOptions, noEmit: true });
    const problems = ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file
        ? `${relative(root, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}`
        : '';
      return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
    });
    expect(problems).toEqual([]);
    // Each example is a module of its own (its names do not clash with another example's).
    const scripts = files.filter((file) => !ts.isExternalModule(program.getSourceFile(file)!));
    expect(scripts.map((file) => relative(root, file))).toEqual([]);
  });
});

describe('the runnable examples', () => {
  it.each(runnable.map((block) => ({ ...block, where: `${block.page}:${block.line}` })))(
    '$where runs and prints what it says',
    async (block) => {
      // Inside the repository, so that 'nestjs-sherlock' resolves to this package (its dist/) by
      // self-reference, as a user's code resolves it from node_modules. The page's `file:` blocks
      // are compiled next to it, so that it may import them.
      const dir = join(root, '.tmp', 'docs-run', slug(block.page));
      mkdirSync(dir, { recursive: true });
      const compile = (code: string, file: string) =>
        writeFileSync(
          file,
          ts.transpileModule(code, {
            compilerOptions: { ...compilerOptions, module: ts.ModuleKind.ES2022 },
            fileName: file.replace(/\.m?js$/, '.mts'),
          }).outputText,
        );
      for (const sibling of blocks.filter((b) => b.page === block.page && b.file)) {
        compile(sibling.code, join(dir, basename(sibling.file ?? '').replace(/\.ts$/, '.js')));
      }
      const file = join(dir, `example-${block.index}.mjs`);
      compile(block.code, file);
      // The servers of the test setup; no SHERLOCK_* left over from the caller's shell.
      const env = Object.fromEntries(
        Object.entries(process.env).filter(([name]) => !name.startsWith('SHERLOCK_')),
      );
      const { stdout } = await run(process.execPath, [file], {
        cwd: root,
        env,
        timeout: 30_000,
      }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
        throw new Error(
          `${block.page}:${block.line} failed: ${err.message}\n${err.stdout ?? ''}${err.stderr ?? ''}`,
        );
      });
      const lines = stdout.split('\n').map((line) => line.trim());
      let from = 0;
      for (const expected of block.prints) {
        const at = lines.indexOf(expected, from);
        expect(at, `"${expected}" in the output, in order:\n${stdout}`).toBeGreaterThanOrEqual(0);
        from = at + 1;
      }
    },
  );
});

// -------------------------------------------------------------------------------------------------

interface Link {
  page: string;
  target: string;
}

/** The text of a page without its code (fenced blocks and inline code spans). */
const prose = (text: string) => text.replace(/^```[\s\S]*?^```$/gm, '').replace(/`[^`\n]*`/g, '');

function linksOf(page: string): Link[] {
  return [...prose(read(page)).matchAll(/\]\(([^)\s]+)\)/g)].map((match) => ({
    page,
    target: match[1] ?? '',
  }));
}

/** GitHub's anchors for the headings of a markdown text (code spans keep their text). */
function anchorsOf(text: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  const headings = text.replace(/^```[\s\S]*?^```$/gm, '').matchAll(/^#{1,6} (.+)$/gm);
  for (const [, heading = ''] of headings) {
    const base = heading
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .trim()
      .replace(/\s/g, '-');
    const count = seen.get(base) ?? 0;
    seen.set(base, count + 1);
    anchors.add(count === 0 ? base : `${base}-${count}`);
  }
  return anchors;
}

/** A problem with a link to `path#anchor` in the repository, or undefined. */
function checkTarget(path: string, anchor: string | undefined): string | undefined {
  const file = join(root, path);
  if (!existsSync(file)) return `${path} does not exist`;
  if (anchor && !anchorsOf(readFileSync(file, 'utf8')).has(anchor)) {
    return `${path} has no heading #${anchor}`;
  }
  return undefined;
}

const shipped = (path: string) =>
  pkg.files.some((entry) => path === entry || path.startsWith(`${entry}/`));

const links = pages.flatMap(linksOf);

describe('links', () => {
  it('the README is short, with narrow tables', () => {
    const lines = read('README.md').split('\n');
    expect(lines.length).toBeLessThan(400);
    const longest = Math.max(...lines.filter((l) => l.startsWith('|')).map((l) => l.length));
    expect(longest).toBeLessThanOrEqual(160);
  });

  it('the README links only to absolute URLs and its own headings (no relative link)', () => {
    const relativeLinks = links
      .filter((link) => link.page === 'README.md')
      .filter((link) => !/^(https?:|mailto:|#)/.test(link.target));
    expect(relativeLinks).toEqual([]);
    expect(links.filter((link) => link.page === 'README.md').length).toBeGreaterThan(10);
  });

  it('links into the repository point at files and headings that exist', () => {
    const problems: string[] = [];
    const prefix = new RegExp(
      `^${repoUrl.replace(/[.]/g, '\\.')}/(?:blob|tree)/main/([^#]+)(?:#(.+))?$`,
    );
    for (const { page, target } of links) {
      let problem: string | undefined;
      const inRepo = prefix.exec(target);
      if (target.startsWith('#')) {
        if (!anchorsOf(read(page)).has(target.slice(1))) problem = `no heading ${target}`;
      } else if (inRepo) {
        problem = checkTarget(inRepo[1] ?? '', inRepo[2]);
      } else if (target.startsWith(repoUrl)) {
        problem = target === repoUrl ? undefined : 'link into the repository not at blob/main';
      } else if (!/^(https?:|mailto:)/.test(target)) {
        const [path = '', anchor] = target.split('#');
        const resolved = normalize(join(dirname(page), path));
        problem = shipped(resolved)
          ? checkTarget(resolved, anchor)
          : `${resolved} is not shipped in the package: link it as ${repoUrl}/blob/main/${resolved}`;
      }
      if (problem) problems.push(`${page}: ${target}: ${problem}`);
    }
    expect(problems).toEqual([]);
  });

  it('package.json names the repository the links use', () => {
    expect(repoUrl).toMatch(/^https:\/\/github\.com\/[^/]+\/[^/]+$/);
    expect(pkg.homepage.startsWith(repoUrl)).toBe(true);
  });
});
