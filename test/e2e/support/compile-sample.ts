/**
 * Compiles the sample app (and the e2e fixtures that import it) with SWC into a directory under
 * the repository's .tmp/, for child processes: plain `node` runs the output, with decorator
 * metadata emitted as `tsc` would (Nest's dependency injection needs it; tsx/esbuild does not
 * emit it). Inside the repository, 'nestjs-sherlock' still resolves to dist/ through the
 * package's self-reference, and the dependencies to its node_modules.
 */
import { transformFile } from '@swc/core';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** The folders compiled, relative to the repository root. */
const SOURCES = ['sample-app/src', 'test/e2e/fixtures'];

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return tsFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** A compiled copy of the sample app: `file('sample-app/src/main.ts')` is its entry point. */
export interface CompiledSample {
  readonly dir: string;
  /** The compiled `.js` of a source file given relative to the repository root. */
  file(source: string): string;
  remove(): void;
}

export async function compileSample(): Promise<CompiledSample> {
  mkdirSync(join(ROOT, '.tmp'), { recursive: true });
  const dir = mkdtempSync(join(ROOT, '.tmp', 'e2e-sample-'));
  const files = SOURCES.flatMap((source) => tsFiles(join(ROOT, source)));
  await Promise.all(
    files.map(async (file) => {
      const { code } = await transformFile(file, {
        swcrc: false,
        configFile: false,
        jsc: {
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
          target: 'es2022',
          keepClassNames: true,
        },
        module: { type: 'es6' },
      });
      const out = join(dir, relative(ROOT, file)).replace(/\.ts$/, '.js');
      mkdirSync(dirname(out), { recursive: true });
      writeFileSync(out, code);
    }),
  );
  return {
    dir,
    file: (source) => join(dir, source).replace(/\.ts$/, '.js'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
