/**
 * `npm run demo`'s core, as the demo runs it: two replicas of the sample app, two Node processes
 * (compiled as `nest build` would, with decorator metadata), keeping their locks and their
 * accounts in one real Redis; concurrent transfers spread over both, through the locked and the
 * unlocked endpoint. With the lock the books are exact; without it money is lost.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { describeDemo, type DemoResult, runDemo } from '../../sample-app/demo.js';
import { redisUrl } from '../support/env.js';
import { type CompiledSample, compileSample } from './support/compile-sample.js';
import { uniqueNamespace } from './support/sample-app.js';

const TRANSFERS = 40;

describe('npm run demo: two replicas on Redis', () => {
  let compiled: CompiledSample | undefined;
  let result: DemoResult;
  const output: string[] = [];

  beforeAll(async () => {
    compiled = await compileSample();
    result = await runDemo({
      main: compiled.file('sample-app/src/main.ts'),
      redisUrl: redisUrl(),
      namespace: uniqueNamespace('demo'),
      transfers: TRANSFERS,
      log: (line) => output.push(line),
    });
    console.log(describeDemo(result).join('\n'));
  }, 120_000);

  afterAll(() => {
    compiled?.remove();
  });

  it('ran two replicas, on two ports', () => {
    expect(result.replicas).toHaveLength(2);
    expect(new Set(result.replicas).size).toBe(2);
    // Both replicas said where their locks are.
    expect(output.filter((line) => line.includes("locks on the 'redis' backend"))).toHaveLength(2);
  });

  it('conserves the books exactly through the locked endpoint', () => {
    const { locked } = result;
    expect(locked.failed).toEqual([]);
    expect(locked.fromBalance).toBe(1_000 - TRANSFERS * locked.amount);
    expect(locked.toBalance).toBe(1_000 + TRANSFERS * locked.amount);
    expect(locked.fromBalance + locked.toBalance).toBe(2_000);
    expect(locked.lost).toBe(0);
  });

  it('loses money through the unlocked endpoint, although every transfer answered 201', () => {
    const { unlocked } = result;
    expect(unlocked.failed).toEqual([]);
    expect(unlocked.lost).toBeGreaterThan(0);
    expect(unlocked.toBalance).toBeLessThan(unlocked.expectedTo);
    // What was paid out of carol is partly still in carol: her debits were overwritten too.
    expect(unlocked.fromBalance).toBeGreaterThan(unlocked.expectedFrom);
  });

  it('prints the totals: money lost without the lock, none with it', () => {
    const lines = describeDemo(result);
    expect(lines.find((line) => line.includes('with the lock '))).toMatch(/nothing lost$/);
    expect(lines.find((line) => line.includes('without the lock'))).toMatch(
      new RegExp(`${result.unlocked.lost} of ${TRANSFERS * 10} paid to dave LOST$`),
    );
  });
});
