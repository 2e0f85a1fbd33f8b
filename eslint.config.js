// @ts-check
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'dist.next/**',
      'sample-app/dist/**',
      'node_modules/**',
      'coverage/**',
      '.tmp/**',
      'bench/results/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    // The core never depends on Nest or rxjs: it must stay usable without them.
    files: ['lib/core/**/*.ts', 'lib/backends/**/*.ts', 'lib/sherlock.ts', 'lib/backend.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@nestjs/*', 'rxjs', 'rxjs/*'],
              message: 'The core must not import Nest or rxjs.',
            },
            {
              group: ['../nest/*', '../../nest/*', '../../../nest/*', './nest/*'],
              message: 'The core must not import the Nest glue.',
            },
          ],
        },
      ],
    },
  },
);
