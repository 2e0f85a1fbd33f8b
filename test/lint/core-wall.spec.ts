/**
 * `npm run lint` keeps the core free of Nest: ESLint refuses an import of `@nestjs/*`, `rxjs` or
 * the Nest glue from any file of the core (lib/core, lib/backends at any depth, the core and
 * backend entry points), and allows them in lib/nest. Checked with ESLint's own API on the
 * project's config, so a rule that stops matching (a moved folder) turns this red.
 */
import { ESLint } from 'eslint';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const eslint = new ESLint({ cwd: root });

async function importErrors(file: string, specifier: string): Promise<string[]> {
  const [result] = await eslint.lintText(`import '${specifier}';\nexport {};\n`, {
    filePath: join(root, file),
  });
  return (result?.messages ?? [])
    .filter((m) => m.ruleId === 'no-restricted-imports')
    .map((m) => m.message);
}

describe('the lint wall between the core and Nest', () => {
  const coreFiles = [
    'lib/core/manager.ts',
    'lib/core/errors/lock.error.ts',
    'lib/backends/redis/index.ts',
    'lib/backends/etcd/queue.ts',
    'lib/sherlock.ts',
    'lib/backend.ts',
  ];
  const forbidden = ['@nestjs/common', '@nestjs/core', 'rxjs', 'rxjs/operators'];

  it.each(coreFiles.flatMap((file) => forbidden.map((specifier) => ({ file, specifier }))))(
    '$file may not import $specifier',
    async ({ file, specifier }) => {
      expect(await importErrors(file, specifier)).toHaveLength(1);
    },
  );

  it.each([
    { file: 'lib/core/manager.ts', specifier: '../nest/lock.service.js' },
    { file: 'lib/backends/redis/index.ts', specifier: '../../nest/lock.service.js' },
    { file: 'lib/backends/etcd/queue.ts', specifier: '../../nest/index.js' },
  ])('$file may not import the Nest glue ($specifier)', async ({ file, specifier }) => {
    expect(await importErrors(file, specifier)).toHaveLength(1);
  });

  it('the Nest glue may import Nest (the control case)', async () => {
    expect(await importErrors('lib/nest/lock.service.ts', '@nestjs/common')).toEqual([]);
    expect(await importErrors('lib/nest/lock.interceptor.ts', 'rxjs')).toEqual([]);
  });
});
