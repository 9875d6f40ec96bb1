// ESLint (flat config): typescript-eslint's strict type-checked rules on everything tsc checks
// (tsconfig.test.json), promises that are neither awaited nor handled as errors, and no import cycles.
// Formatting is Prettier's alone (eslint-config-prettier turns off the rules that would disagree).
import js from '@eslint/js'
import prettier from 'eslint-config-prettier'
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript'
import importX from 'eslint-plugin-import-x'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'node_modules/', 'bench/results/'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      globals: globals.node,
      parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname }
    },
    plugins: { 'import-x': importX },
    settings: {
      // The dependency files are parsed too, to follow the imports they make (no-cycle).
      ...importX.flatConfigs.typescript.settings,
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.test.json' })]
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      'import-x/no-cycle': 'error',
      // Ports, counts and milliseconds are what templates here interpolate; objects and nullish stay refused.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // `(x) => fn(x)` as a callback, and `return end()` inside a void function, pass a call along.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true, ignoreVoidReturningFunctions: true }],
      // An async function that implements a Promise-returning interface (stores, route handlers,
      // Fastify plugins) turns a throw into a rejection; it needs no await for that.
      '@typescript-eslint/require-await': 'off',
      // The same convention as tsc's noUnusedParameters: a leading underscore says "unused on purpose".
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }]
    }
  },
  {
    // Tests read JSON off the wire and assert on its shape: `any` and `!` are how they say "this must be
    // there". Their after-hooks guard what a failed before-hook left unset, which the declared types cannot say.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off'
    }
  },
  {
    // Not in any tsconfig: checked without type information.
    files: ['eslint.config.js', 'src/public/**/*.js'],
    ...tseslint.configs.disableTypeChecked
  },
  { files: ['src/public/**/*.js'], languageOptions: { globals: globals.browser } },
  prettier
)
