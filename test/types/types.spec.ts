/**
 * The type tests (test/types/*.test-d.ts) run inside `npm test`: each file is compiled with the
 * repository's tsconfig (strict, legacy decorators, importing the built package's declarations
 * as a user's code does), twice:
 *
 * - as written, it must compile with no error at all (an `@ts-expect-error` line whose next line
 *   compiles is itself an error, TS2578: an expectation that stopped holding turns this red);
 * - with every `// @ts-expect-error: text` directive removed, the line after each must fail with
 *   an error whose message contains `text` (so the line fails for the reason it is there for,
 *   not a typo), and no other line may fail.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const DIR = import.meta.dirname;
const FILES = readdirSync(DIR)
  .filter((name) => name.endsWith('.test-d.ts'))
  .sort()
  .map((name) => join(DIR, name));

const DIRECTIVE = /^(\s*)\/\/ @ts-expect-error: (.+)$/;

/** The compiler options of tsconfig.json (what `npm run typecheck` uses). */
function compilerOptions(): ts.CompilerOptions {
  const parsed = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.json'), undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    },
  });
  if (!parsed) throw new Error('tsconfig.json could not be read');
  return { ...parsed.options, noEmit: true };
}

interface Failure {
  file: string;
  /** 1-based */
  line: number;
  message: string;
}

/** Compiles `files` (with their text replaced by `texts`, if given) and returns every error. */
function compile(files: readonly string[], texts: ReadonlyMap<string, string>): Failure[] {
  const options = compilerOptions();
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  host.readFile = (file) => texts.get(file) ?? read(file);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (file, language, onError, create) => {
    const text = texts.get(file);
    return text === undefined
      ? getSourceFile(file, language, onError, create)
      : ts.createSourceFile(file, text, language);
  };
  const program = ts.createProgram({ rootNames: files, options, host });
  return ts.getPreEmitDiagnostics(program).map((diagnostic) => {
    const { file, start = 0 } = diagnostic;
    return {
      file: file?.fileName ?? '(global)',
      line: file ? file.getLineAndCharacterOfPosition(start).line + 1 : 0,
      message: ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'),
    };
  });
}

interface Expectation {
  file: string;
  /** 1-based line that must fail. */
  line: number;
  text: string;
}

/** The file with its directives blanked (lines kept in place), and what each expected. */
function withoutDirectives(file: string): { text: string; expected: Expectation[] } {
  const expected: Expectation[] = [];
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .map((line, index) => {
      const match = DIRECTIVE.exec(line);
      if (!match) return line;
      expected.push({ file, line: index + 2, text: match[2]!.trim() });
      return `${match[1]}// (expected error)`;
    });
  return { text: lines.join('\n'), expected };
}

const show = (failures: readonly Failure[]) =>
  failures.map(({ file, line, message }) => `${file.slice(ROOT.length + 1)}:${line}: ${message}`);

describe('type tests (test/types/*.test-d.ts)', () => {
  it('finds the type test files', () => {
    expect(FILES.map((file) => file.slice(DIR.length + 1))).toEqual([
      'backend-names.test-d.ts',
      'locked.test-d.ts',
      'run.test-d.ts',
    ]);
  });

  it('compile with no error as written (every @ts-expect-error is used)', () => {
    expect(show(compile(FILES, new Map()))).toEqual([]);
  });

  it('fail where marked, with the expected message, and nowhere else', () => {
    const texts = new Map<string, string>();
    const expected: Expectation[] = [];
    for (const file of FILES) {
      const stripped = withoutDirectives(file);
      texts.set(file, stripped.text);
      expected.push(...stripped.expected);
    }
    expect(expected.length).toBeGreaterThanOrEqual(15);
    const failures = compile(FILES, texts);
    const missing = expected
      .filter(
        ({ file, line, text }) =>
          !failures.some(
            (failure) =>
              failure.file === file && failure.line === line && failure.message.includes(text),
          ),
      )
      .map(({ file, line, text }) => {
        const found = failures.filter((failure) => failure.file === file && failure.line === line);
        return `${file.slice(ROOT.length + 1)}:${line}: expected "${text}", got ${JSON.stringify(show(found))}`;
      });
    expect(missing).toEqual([]);
    const unexpected = failures.filter(
      (failure) =>
        !expected.some(({ file, line }) => failure.file === file && failure.line === line),
    );
    expect(show(unexpected)).toEqual([]);
  });
});
