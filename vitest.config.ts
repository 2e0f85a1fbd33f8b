import { fileURLToPath } from 'node:url';
import swc from 'unplugin-swc';
import { configDefaults, defineConfig } from 'vitest/config';

const dist = (file: string) => fileURLToPath(new URL(`./dist/${file}`, import.meta.url));

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
    // `vitest run` (npm test) runs both projects; `vitest run --project unit` (npm run test:unit)
    // runs the unit layer alone. A project's global setup runs only when its tests run.
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
        // Tests import the built package (`npm test` builds first), exactly as users get it, so
        // that tests, child processes and the sample app share one copy of the library.
        resolve: {
          alias: [
            { find: /^nestjs-sherlock$/, replacement: dist('index.js') },
            { find: /^nestjs-sherlock\/core$/, replacement: dist('sherlock.js') },
            { find: /^nestjs-sherlock\/testing$/, replacement: dist('testing.js') },
          ],
        },
        test: {
          name: 'integration',
          include: ['test/**/*.spec.ts'],
          exclude: [...configDefaults.exclude, 'test/unit/**'],
          globalSetup: ['test/setup/global-setup.ts'],
        },
      },
    ],
  },
});
