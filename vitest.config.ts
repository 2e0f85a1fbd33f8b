import { fileURLToPath } from 'node:url';
import swc from 'unplugin-swc';
import { defineConfig } from 'vitest/config';

const dist = (file: string) => fileURLToPath(new URL(`./dist/${file}`, import.meta.url));

export default defineConfig({
  // Tests import the built package (`npm test` builds first), exactly as users get it, so that
  // tests, child processes and the sample app share one copy of the library.
  resolve: {
    alias: [
      { find: /^nestjs-sherlock$/, replacement: dist('index.js') },
      { find: /^nestjs-sherlock\/core$/, replacement: dist('sherlock.js') },
    ],
  },
  // SWC (not esbuild) compiles the tests so that Nest's decorator metadata is emitted.
  plugins: [swc.vite({ module: { type: 'es6' } })],
  test: {
    include: ['test/**/*.spec.ts'],
    globalSetup: ['test/setup/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
  },
});
