import { fileURLToPath } from 'node:url';
import swc from 'unplugin-swc';
import { configDefaults, defineConfig } from 'vitest/config';

const dist = (file: string) => fileURLToPath(new URL(`./dist/${file}`, import.meta.url));

/**
 * Tests import the built package (`npm test` builds first), exactly as users get it, so that
 * tests, child processes and the sample app share one copy of the library.
 */
const builtPackage = {
  alias: [
    { find: /^nestjs-sherlock$/, replacement: dist('index.js') },
    { find: /^nestjs-sherlock\/core$/, replacement: dist('sherlock.js') },
    { find: /^nestjs-sherlock\/testing$/, replacement: dist('testing.js') },
  ],
};

/** The slow suites: everything under test/chaos (the runs and their checker) and any `*.slow.spec.ts`. */
const SLOW = ['test/chaos/**/*.spec.ts', 'test/**/*.slow.spec.ts'];

export default defineConfig({
  // SWC (not esbuild) compiles the tests so that Nest's decorator metadata is emitted.
  plugins: [swc.vite({ module: { type: 'es6' } })],
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
    // `npm test` runs the unit and integration projects; `npm run test:unit` the unit layer alone;
    // `npm run test:slow` the slow project. A project's global setup runs only when its tests run.
    projects: [
      {
        // The core against a fake backend with fake timers: lib/ sources, no build, no server.
        extends: true,
        test: {
          name: 'unit',
          include: ['test/unit/**/*.spec.ts'],
          testTimeout: 10_000,
          hookTimeout: 10_000,
        },
      },
      {
        extends: true,
        resolve: builtPackage,
        test: {
          name: 'integration',
          include: ['test/**/*.spec.ts'],
          exclude: [...configDefaults.exclude, 'test/unit/**', ...SLOW],
          globalSetup: ['test/setup/global-setup.ts'],
        },
      },
      {
        // The slow suites (chaos runs, failovers, soaks): `npm run test:slow`, its own CI step,
        // kept out of `npm test`'s 10 minutes. Same built package, same servers.
        extends: true,
        resolve: builtPackage,
        test: {
          name: 'slow',
          include: SLOW,
          globalSetup: ['test/setup/global-setup.ts'],
        },
      },
    ],
  },
});
