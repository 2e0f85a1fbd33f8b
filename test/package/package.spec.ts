/**
 * The built package as consumers get it: imported by ESM and CommonJS consumers through its
 * package.json "exports", packed with `npm pack` and installed where no driver exists, type-checked
 * by a TypeScript consumer, and its metadata (optional peer drivers, engines).
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { uniqueName } from '../support/backends.js';
import { redisUrl } from '../support/env.js';
import { redisCommand } from '../support/servers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DIST = join(ROOT, 'dist');

const DRIVERS = [
  { library: 'ioredis', backend: 'redis', lockClass: 'RedisLock' },
  { library: 'memjs', backend: 'memcached', lockClass: 'MemcachedLock' },
  { library: 'etcd3', backend: 'etcd', lockClass: 'EtcdLock' },
  { library: 'pg', backend: 'postgres', lockClass: 'PostgresLock' },
] as const;

/** Exports consumers rely on (the full list may grow). */
const PUBLIC_API = [
  'BaseLock',
  'DriverMissingError',
  'EtcdLock',
  'Lock',
  'LockAbortedError',
  'LockBackendError',
  'LockError',
  'LockReleaseError',
  'LockTimeoutError',
  'MCLock',
  'MemcachedLock',
  'MemoryLock',
  'MemoryStore',
  'RedisLock',
  'backends',
  'configure',
  'getConfiguration',
  'resetConfiguration',
  'shutdown',
];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (killed after `timeoutMs`) and returns its output. */
function run(
  command: string,
  args: readonly string[],
  {
    cwd,
    env = {},
    timeoutMs = 30_000,
  }: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      stderr += `\n[killed after ${timeoutMs} ms]`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `node <args>` and parses the JSON report the script prints as its last line. */
async function nodeReport<T>(
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv = {},
): Promise<T> {
  const result = await run(process.execPath, args, { cwd, env });
  const detail = `exit code ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`;
  expect(result.code, detail).toBe(0);
  const last = result.stdout.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as T;
}

/** Every file under `dir`, as paths relative to it. */
function walk(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)));
}

/** The module specifiers a .d.ts file imports or re-exports (comments ignored). */
function moduleSpecifiers(declarations: string): string[] {
  const code = declarations.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/(?!\/).*$/gm, '');
  const patterns = [
    /\b(?:import|export)\b[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g, // import x from 'm', export * from 'm'
    /\bimport\s*['"]([^'"]+)['"]/g, // import 'm'
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, // import('m').Type
    /\brequire\(\s*['"]([^'"]+)['"]\s*\)/g, // import x = require('m')
    /\/\/\/\s*<reference\s+types=['"]([^'"]+)['"]/g, // /// <reference types="m" />
  ];
  return patterns.flatMap((pattern) => [...code.matchAll(pattern)].map((match) => match[1] ?? ''));
}

const isDriver = (specifier: string): boolean =>
  DRIVERS.some(({ library }) => specifier === library || specifier.startsWith(`${library}/`));

interface PackageJson {
  name: string;
  type?: string;
  engines?: Record<string, string>;
  exports?: Record<string, string | Record<string, string>>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

const packageJson = (): PackageJson =>
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as PackageJson;

// -------------------------------------------------------------------------------------------------

describe('package.json', () => {
  it.each(DRIVERS)('$library is an optional peer dependency, never a dependency', ({ library }) => {
    const pkg = packageJson();
    expect(pkg.peerDependencies?.[library]).toEqual(expect.any(String));
    expect(pkg.peerDependenciesMeta?.[library]?.optional).toBe(true);
    expect(pkg.dependencies?.[library]).toBeUndefined();
    expect(pkg.optionalDependencies?.[library]).toBeUndefined();
  });

  it('needs a Node that require()s ES modules without a flag, which runs these tests', () => {
    // Node 21 and 22.0-22.11 cannot require() an ES module without --experimental-require-module
    // (23 can, but is end-of-life). The README's Requirements say so.
    const range = '^20.19.0 || ^22.12.0 || >=24.0.0';
    expect(packageJson().engines?.node).toBe(range);
    const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
    const inRange = (major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major >= 24;
    expect(inRange, process.versions.node).toBe(true);
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain(`Node.js \`${range}\``);
  });

  it('exports "." and "./core" as built files with their types', () => {
    const { exports: entries = {}, type } = packageJson();
    expect(type).toBe('module');
    for (const subpath of ['.', './core']) {
      const target = entries[subpath];
      expect(target, subpath).toEqual({ types: expect.any(String), default: expect.any(String) });
      if (typeof target !== 'object') continue;
      for (const file of [target.types, target.default]) {
        expect(file, `${subpath} -> ${file}`).toMatch(/^\.\/dist\//);
        expect(existsSync(join(ROOT, file ?? '')), `${file} exists`).toBe(true);
      }
    }
  });
});

describe('dist/', () => {
  it('has dist/index.d.ts and a .d.ts next to every .js', () => {
    const files = walk(DIST);
    expect(files).toContain('index.d.ts');
    const scripts = files.filter((file) => file.endsWith('.js'));
    expect(scripts.length).toBeGreaterThan(10);
    const missing = scripts.filter((file) => !files.includes(file.replace(/\.js$/, '.d.ts')));
    expect(missing).toEqual([]);
  });

  it('declarations never import a driver (ioredis, memjs, etcd3): they are optional peers', () => {
    const declarations = walk(DIST).filter((file) => file.endsWith('.d.ts'));
    const imported = declarations.flatMap((file) =>
      moduleSpecifiers(readFileSync(join(DIST, file), 'utf8')).map((spec) => `${file}: ${spec}`),
    );
    // The parser does find imports (the files re-export each other), so an empty result below
    // cannot come from a broken parser.
    expect(imported).toContain('index.d.ts: ./sherlock.js');
    expect(imported.filter((entry) => isDriver(entry.split(': ')[1] ?? ''))).toEqual([]);
  });
});

// -------------------------------------------------------------------------------------------------

interface EsmReport {
  rootKeys: string[];
  coreKeys: string[];
  coreIsSameModule: boolean;
  key: string;
  acquired: boolean;
  stored: string | null;
  lockedWhileHeld: boolean;
  lockedAfter: boolean;
}

interface CjsReport {
  keys: string[];
  coreKeys: string[];
  sameAsImport: boolean;
  coreIsSameModule: boolean;
  acquired: boolean;
  lockedAfter: boolean;
  releaseErrorIsLockError: boolean;
}

describe('consumers of the package, from the repository root (package self-reference)', () => {
  it('an ES module consumer imports nestjs-sherlock and nestjs-sherlock/core and locks in Redis', async () => {
    const script = `
      import { Redis } from 'ioredis';
      import * as root from 'nestjs-sherlock';
      import { Lock, RedisLock, backends, configure } from 'nestjs-sherlock';
      import * as core from 'nestjs-sherlock/core';

      const client = new Redis(process.env.REDIS_URL);
      configure({ backend: backends.REDIS, client, namespace: 'pkg' });
      const lock = new Lock(process.env.LOCK_NAME, { expire: 10_000 });
      const acquired = await lock.acquire(false);
      const stored = await client.get(lock.key);
      const lockedWhileHeld = await new RedisLock(process.env.LOCK_NAME, { client, namespace: 'pkg' }).locked();
      await lock.release();
      const lockedAfter = await lock.locked();
      await client.quit();
      console.log(JSON.stringify({
        rootKeys: Object.keys(root).sort(),
        coreKeys: Object.keys(core).sort(),
        coreIsSameModule: Object.keys(core).every((name) => core[name] === root[name]),
        key: lock.key, acquired, stored, lockedWhileHeld, lockedAfter,
      }));`;
    const name = uniqueName('esm-consumer');
    const report = await nodeReport<EsmReport>(['--input-type=module', '-e', script], ROOT, {
      LOCK_NAME: name,
    });

    expect(report.rootKeys).toEqual(expect.arrayContaining(PUBLIC_API));
    expect(report.coreKeys).toEqual(expect.arrayContaining(PUBLIC_API));
    expect(report.coreIsSameModule).toBe(true);
    expect(report).toMatchObject({
      key: `pkg_${name}`,
      acquired: true,
      stored: expect.stringMatching(/^[0-9a-f]{32}\|\d+\|\d+\|[^|]*\|[^|]*$/),
      lockedWhileHeld: true,
      lockedAfter: false,
    });
    // The Nest part is in the root entry only: /core never loads @nestjs/*.
    expect(report.rootKeys).toContain('SherlockModule');
    expect(report.coreKeys).not.toContain('SherlockModule');
    const url = new URL(redisUrl());
    const password = url.password ? decodeURIComponent(url.password) : undefined;
    const target = { host: url.hostname, port: Number(url.port || 6379), password };
    expect(await redisCommand(target, ['EXISTS', report.key])).toBe(0);
  });

  it('a CommonJS consumer require()s the same module (Node >= 20.19 loads ES modules with require)', async () => {
    const script = `
      const sherlock = require('nestjs-sherlock');
      const core = require('nestjs-sherlock/core');
      (async () => {
        const imported = await import('nestjs-sherlock');
        const lock = new sherlock.MemoryLock('cjs-consumer');
        const acquired = await lock.acquire(false);
        await lock.release();
        const lockedAfter = await lock.locked();
        const releaseError = await lock.release().catch((err) => err);
        const keys = Object.keys(sherlock).sort();
        console.log(JSON.stringify({
          keys,
          coreKeys: Object.keys(core).sort(),
          sameAsImport: keys.length === Object.keys(imported).length && keys.every((k) => imported[k] === sherlock[k]),
          coreIsSameModule: Object.keys(core).every((k) => core[k] === sherlock[k]),
          acquired, lockedAfter,
          releaseErrorIsLockError: releaseError instanceof sherlock.LockError,
        }));
      })().catch((err) => { console.error(err); process.exit(1); });`;
    const report = await nodeReport<CjsReport>(['--input-type=commonjs', '-e', script], ROOT);

    expect(report.keys).toEqual(expect.arrayContaining(PUBLIC_API));
    expect(report.keys).not.toContain('default');
    expect(report).toMatchObject({
      sameAsImport: true,
      coreIsSameModule: true,
      acquired: true,
      lockedAfter: false,
      releaseErrorIsLockError: true,
    });
  });
});

// -------------------------------------------------------------------------------------------------

interface Outcome {
  ok: boolean;
  name?: string;
  message?: string;
  isDriverMissing?: boolean;
  library?: string;
  backend?: string;
}

interface DriverChecks {
  nonBlockingAcquire: Outcome;
  blockingAcquire: Outcome & { ms: number };
  locked: Outcome;
  genericLockAcquire: Outcome;
  constructorWithClient: Outcome;
  configureBackend: Outcome;
  configureBackendWithForeignClient: Outcome;
}

interface NoDriverReport {
  resolvableDrivers: string[];
  memory: { acquired: boolean; lockedWhileHeld: boolean; lockedAfter: boolean };
  drivers: Record<string, DriverChecks>;
  configureUnknownClient: Outcome;
  configureMemoryStore: Outcome & { backendIsMemory: boolean };
  shutdown: Outcome;
}

/** An ES module importing `entry` where no driver is installed; prints a NoDriverReport. */
const noDriverConsumer = (entry: string) => `
import { createRequire } from 'node:module';
import * as sherlock from '${entry}';
const { DriverMissingError, Lock, MemoryLock, MemoryStore, backends, configure, getConfiguration,
  resetConfiguration, shutdown } = sherlock;

const require = createRequire(import.meta.url);
const resolvableDrivers = ['ioredis', 'memjs', 'etcd3'].filter((name) => {
  try { require.resolve(name); return true; } catch { return false; }
});

async function outcome(fn) {
  try {
    await fn();
    return { ok: true };
  } catch (err) {
    return { ok: false, name: err?.name, message: err?.message,
      isDriverMissing: err instanceof DriverMissingError, library: err?.library, backend: err?.backend };
  }
}

const memoryLock = new MemoryLock('no-driver');
const memory = { acquired: await memoryLock.acquire(false), lockedWhileHeld: await memoryLock.locked() };
await memoryLock.release();
memory.lockedAfter = await memoryLock.locked();

const drivers = {};
for (const { lockClass, backend } of ${JSON.stringify(DRIVERS)}) {
  resetConfiguration();
  const LockClass = sherlock[lockClass];
  const started = performance.now();
  const blockingAcquire = await outcome(() => new LockClass('x', { timeout: 8_000 }).acquire());
  blockingAcquire.ms = performance.now() - started;
  drivers[backend] = {
    nonBlockingAcquire: await outcome(() => new LockClass('x').acquire(false)),
    blockingAcquire,
    locked: await outcome(() => new LockClass('x').locked()),
    constructorWithClient: await outcome(() => new LockClass('x', { client: {} })),
    configureBackend: await outcome(() => configure({ backend })),
    genericLockAcquire: await outcome(() => new Lock('x').acquire(false)),
    configureBackendWithForeignClient: await outcome(() => configure({ backend, client: {} })),
  };
}

resetConfiguration();
const configureUnknownClient = await outcome(() => configure({ client: { get() {}, set() {} } }));
const configureMemoryStore = await outcome(() => configure({ client: new MemoryStore() }));
configureMemoryStore.backendIsMemory = getConfiguration().backend === backends.MEMORY;

console.log(JSON.stringify({
  resolvableDrivers, memory, drivers, configureUnknownClient, configureMemoryStore,
  shutdown: await outcome(() => shutdown()),
}));
`;

/** What a consumer of `entry` writes, type-checked without any driver installed. */
const typescriptConsumer = (entry: string) => `
import {
  BaseLock, DriverMissingError, EtcdLock, Lock, LockReleaseError, MemcachedLock, MemoryLock,
  MemoryStore, RedisLock, backends, configure, getConfiguration, shutdown,
  type DistributedLock, type LockOptions, type ShutdownReport,
} from '${entry}';

class CounterLock extends BaseLock<MemoryStore> {
  protected async _acquire(token: string): Promise<boolean> {
    return this.client.setIfAbsent(this.key, token, this.expire) !== false;
  }
  protected async _release(token: string): Promise<boolean> {
    return this.client.deleteIfOwner(this.key, token);
  }
  protected async _locked(): Promise<boolean> {
    return this.client.get(this.key) !== undefined;
  }
}

const options: LockOptions = { expire: 5_000, namespace: 'app', timeout: 1_000 };
configure({ backend: backends.MEMORY, ...options });
const locks: DistributedLock[] = [
  new Lock('a'), new MemoryLock('b'), new RedisLock('c', { client: {} }),
  new MemcachedLock('d'), new EtcdLock('e'), new CounterLock('f', { client: new MemoryStore() }),
];

export async function main(): Promise<number> {
  const held = await Promise.all(locks.map((lock) => lock.acquire(false)));
  const total = await new MemoryLock('g').using(async (lock) => lock.name.length);
  try {
    await new MemoryLock('h').release();
  } catch (err) {
    if (err instanceof LockReleaseError && err.reason === 'not-acquired') return -1;
    if (err instanceof DriverMissingError) return err.library.length;
  }
  const report: ShutdownReport = await shutdown();
  return held.length + total + report.released.length + (getConfiguration().expire ?? 0);
}
`;

const NEST_PEERS = ['@nestjs/common', '@nestjs/core', 'reflect-metadata', 'rxjs'];

/** Links packages of this repository's node_modules into a consumer's node_modules. */
function linkPackages(consumer: string, packages: readonly string[]): void {
  for (const name of packages) {
    const target = join(consumer, 'node_modules', name);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(join(ROOT, 'node_modules', name), target, 'dir');
  }
}

/**
 * Runs the repository's tsc on `file` in `cwd`: strict, and checking the package's declarations
 * (skipLibCheck off: with it on, an import of a missing module in a .d.ts silently becomes `any`).
 * The declarations use AbortSignal and AsyncDisposable, which a Node app gets from @types/node;
 * here the DOM and ESNext.Disposable libs declare them, as checking @types/node takes seconds.
 */
function typecheck(cwd: string, file: string): Promise<Run> {
  writeFileSync(
    join(cwd, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'ES2022',
        lib: ['ES2022', 'ESNext.Disposable', 'DOM'],
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        types: [],
        skipLibCheck: false,
        skipDefaultLibCheck: true,
      },
      files: [file],
    }),
  );
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  return run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd });
}

/**
 * `npm pack`, then two consumer projects with the tarball unpacked into node_modules:
 * - `bare`: nothing else: no driver, no Nest;
 * - `nestApp`: the Nest peers (linked from this repository), still no driver.
 */
describe('the packed package, installed where no driver exists', () => {
  let work: string;
  let packed: string[];
  const consumers = { bare: '', nestApp: '' };

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'sherlock-package-'));
    const pack = await run('npm', ['pack', '--json', '--pack-destination', work], { cwd: ROOT });
    expect(pack.code, pack.stderr).toBe(0);
    const [info] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    if (!info) throw new Error(`npm pack printed no package:\n${pack.stdout}`);
    packed = info.files.map((file) => file.path);

    for (const kind of ['bare', 'nestApp'] as const) {
      const consumer = join(work, kind);
      const installed = join(consumer, 'node_modules', 'nestjs-sherlock');
      mkdirSync(installed, { recursive: true });
      const tarball = join(work, info.filename);
      const untar = await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1'], {
        cwd: work,
      });
      expect(untar.code, untar.stderr).toBe(0);
      writeFileSync(
        join(consumer, 'package.json'),
        JSON.stringify({ name: `consumer-${kind}`, private: true, type: 'module' }),
      );
      if (kind === 'nestApp') linkPackages(consumer, NEST_PEERS);
      consumers[kind] = consumer;
    }
  });

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('the tarball holds the built files, their TypeScript sources (for source maps), package.json, the documents and docs/ only', () => {
    const documents = ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md'];
    // Every file under docs/, pictures (docs/images/) included.
    const guides = readdirSync(join(ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
      .filter((name) => statSync(join(ROOT, 'docs', name)).isFile())
      .map((name) => `docs/${name}`);
    expect(guides).toEqual(expect.arrayContaining(['docs/core.md', 'docs/nest.md']));
    expect(packed).toEqual(
      expect.arrayContaining([
        ...documents,
        ...guides,
        'dist/index.js',
        'dist/index.d.ts',
        'dist/sherlock.js',
        'dist/sherlock.d.ts',
        'dist/backend.js',
        'dist/backend.d.ts',
      ]),
    );
    expect(packed).toEqual(expect.arrayContaining(['lib/index.ts', 'lib/core/base-lock.ts']));
    const unexpected = packed.filter(
      (file) =>
        !file.startsWith('dist/') &&
        !(file.startsWith('lib/') && file.endsWith('.ts')) &&
        !documents.includes(file) &&
        !guides.includes(file),
    );
    expect(unexpected).toEqual([]);
  });

  it.each([
    { entry: 'nestjs-sherlock/core', consumer: 'bare' as const, without: 'Nest or any driver' },
    { entry: 'nestjs-sherlock', consumer: 'nestApp' as const, without: 'any driver' },
  ])(
    '$entry imports without $without; MemoryLock works; each server backend names its driver',
    async ({ entry, consumer }) => {
      const dir = consumers[consumer];
      writeFileSync(join(dir, 'no-driver.mjs'), noDriverConsumer(entry));
      const report = await nodeReport<NoDriverReport>(['no-driver.mjs'], dir);

      // Otherwise this test would prove nothing.
      expect(report.resolvableDrivers).toEqual([]);
      expect(report.memory).toEqual({ acquired: true, lockedWhileHeld: true, lockedAfter: false });

      for (const { library, backend } of DRIVERS) {
        const checks = report.drivers[backend];
        const missing = {
          ok: false,
          name: 'DriverMissingError',
          isDriverMissing: true,
          message: `install ${library} to use the ${backend} backend (npm install ${library})`,
          library,
          backend,
        };
        expect(checks?.nonBlockingAcquire, `${backend}: acquire(false)`).toEqual(missing);
        expect(checks?.blockingAcquire, `${backend}: acquire()`).toMatchObject(missing);
        // Promptly, not after retrying a missing module for the whole timeout (8 s).
        expect(checks?.blockingAcquire.ms, `${backend}: acquire() took`).toBeLessThan(4_000);
        expect(checks?.locked, `${backend}: locked()`).toEqual(missing);
        expect(checks?.constructorWithClient, `${backend}: new ({ client })`).toEqual(missing);
        expect(checks?.configureBackend, `${backend}: configure({ backend })`).toEqual({
          ok: true,
        });
        expect(checks?.genericLockAcquire, `${backend}: Lock.acquire(false)`).toEqual(missing);
        expect(
          checks?.configureBackendWithForeignClient,
          `${backend}: configure({ backend, client })`,
        ).toEqual(missing);
      }

      expect(report.configureUnknownClient).toMatchObject({ ok: false, name: 'TypeError' });
      expect(report.configureUnknownClient.message).toContain('not a client of any known backend');
      expect(report.configureMemoryStore).toEqual({ ok: true, backendIsMemory: true });
      expect(report.shutdown).toEqual({ ok: true });
    },
  );

  it.each([
    { entry: 'nestjs-sherlock/core', consumer: 'bare' as const },
    { entry: 'nestjs-sherlock', consumer: 'nestApp' as const },
  ])('a CommonJS consumer require()s $entry without any driver', async ({ entry, consumer }) => {
    const script = `
      const { MemoryLock, backends } = require('${entry}');
      const lock = new MemoryLock('cjs');
      lock.acquire(false).then(async (acquired) => {
        await lock.release();
        console.log(JSON.stringify({ acquired, backends: backends.names() }));
      });`;
    const report = await nodeReport<{ acquired: boolean; backends: string[] }>(
      ['--input-type=commonjs', '-e', script],
      consumers[consumer],
    );
    expect(report.acquired).toBe(true);
    expect(report.backends).toEqual(
      expect.arrayContaining(['redis', 'memcached', 'etcd', 'memory']),
    );
  });

  it('a strict TypeScript consumer of nestjs-sherlock/core type-checks with neither driver nor Nest', async () => {
    writeFileSync(join(consumers.bare, 'index.ts'), typescriptConsumer('nestjs-sherlock/core'));
    const result = await typecheck(consumers.bare, 'index.ts');
    expect(result.stdout + result.stderr).toBe('');
    expect(result.code).toBe(0);
  });
});
