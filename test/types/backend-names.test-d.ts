/**
 * The `backend` option is a union of the registered backends' names, extended by declaration
 * merging; checked by types.spec.ts (see locked.test-d.ts for the `@ts-expect-error: text`
 * convention).
 */
import {
  backends,
  type BackendName,
  configure,
  LockManager,
  LockService,
  SherlockModule,
  type SherlockModuleOptions,
} from 'nestjs-sherlock';
import { expectTypeOf } from 'vitest';

// A backend registered by the application, made known to the types:
declare module 'nestjs-sherlock' {
  interface SherlockBackends {
    typesDemoBackend: true;
  }
}

expectTypeOf<'redis'>().toExtend<BackendName>();
expectTypeOf<'memcached' | 'memcache' | 'etcd' | 'memory'>().toExtend<BackendName>();
expectTypeOf<'redlock' | 'threads' | 'cluster'>().toExtend<BackendName>();
expectTypeOf<'typesDemoBackend'>().toExtend<BackendName>();
expectTypeOf<'rediss'>().not.toExtend<BackendName>();

// LockService names its backend with the same union (not any string).
expectTypeOf<LockService['backend']>().toEqualTypeOf<BackendName>();
declare const locks: LockService;
export const onRedis: boolean = locks.backend === 'redis';
// @ts-expect-error: This comparison appears to be unintentional
export const misspelt: boolean = locks.backend === 'reddis';

export const ok: SherlockModuleOptions[] = [
  { backend: 'redis', connection: 'redis://127.0.0.1:6379' },
  { backend: 'memory' },
  { backend: 'typesDemoBackend' },
  // A definition is always accepted.
  { backend: backends.REDIS },
];
export const manager = () => new LockManager({ backend: 'etcd' });
export const configured = () => configure({ backend: 'memcached' });

export const refused = [
  // @ts-expect-error: Type '"reddis"' is not assignable to type
  SherlockModule.forRoot({ backend: 'reddis' }),
  // @ts-expect-error: Type '"Redis"' is not assignable to type
  () => new LockManager({ backend: 'Redis' }),
  // @ts-expect-error: Type '"consul"' is not assignable to type
  () => configure({ backend: 'consul' }),
];

// A name read from the environment is a string: check it (here against the registry) first.
const fromEnv: string = process.env['SHERLOCK_BACKEND'] ?? 'memory';
const isBackendName = (name: string): name is BackendName => backends.names().includes(name);
export const checked: SherlockModuleOptions = isBackendName(fromEnv)
  ? { backend: fromEnv }
  : { backend: 'memory' };
// @ts-expect-error: Type 'string' is not assignable to type
export const unchecked: SherlockModuleOptions = { backend: fromEnv };
