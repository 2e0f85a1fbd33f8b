/**
 * The shared deadline queue behind operation deadlines and holdings' loss deadlines
 * (lib/core/timer-queue.ts): one Node timer for many deadlines, which must still fire each one
 * on time, in order, never a cancelled one, and never keep the process alive when told not to.
 */
import { describe, expect, it, vi } from 'vitest';
import { TimerQueue } from '../../lib/core/timer-queue.js';
import { advance, elapsed, useFakeClock } from './helpers.js';

useFakeClock();

describe('TimerQueue', () => {
  it('fires each deadline at its time, in order, whatever the order they were added in', async () => {
    const queue = new TimerQueue(true);
    const fired: [string, number][] = [];
    const at = (name: string) => () => fired.push([name, elapsed()]);
    queue.add(at('c'), 3_000);
    queue.add(at('a'), 1_000);
    queue.add(at('b'), 2_000);
    queue.add(at('b2'), 2_000);
    await advance(999);
    expect(fired).toEqual([]);
    await advance(3_000);
    expect(fired.map(([name]) => name)).toEqual(['a', 'b', 'b2', 'c']);
    for (const [name, time] of fired) {
      const due = { a: 1_000, b: 2_000, b2: 2_000, c: 3_000 }[name] ?? NaN;
      expect(time).toBeGreaterThanOrEqual(due - 1);
      expect(time).toBeLessThanOrEqual(due + 1);
    }
  });

  it('never fires a cancelled deadline, and still fires the ones after it', async () => {
    const queue = new TimerQueue(true);
    const first = vi.fn();
    const second = vi.fn();
    const third = vi.fn();
    queue.add(first, 1_000).cancel();
    const middle = queue.add(second, 2_000);
    queue.add(third, 3_000);
    middle.cancel();
    middle.cancel(); // twice: no harm
    await advance(5_000);
    expect(first).not.toHaveBeenCalled();
    expect(second).not.toHaveBeenCalled();
    expect(third).toHaveBeenCalledTimes(1);
  });

  it('fires a deadline added after the earliest one was cancelled (the timer stayed armed)', async () => {
    const queue = new TimerQueue(true);
    const late = vi.fn();
    queue.add(() => undefined, 500).cancel();
    queue.add(late, 5_000);
    await advance(4_990);
    expect(late).not.toHaveBeenCalled();
    await advance(20);
    expect(late).toHaveBeenCalledTimes(1);
  });

  it('takes delays beyond setTimeout’s limit (~24.8 days) without firing early', async () => {
    const queue = new TimerQueue(false);
    const fn = vi.fn();
    const thirtyDays = 30 * 24 * 3_600_000;
    queue.add(fn, thirtyDays);
    await advance(2 ** 31 + 1_000);
    expect(fn).not.toHaveBeenCalled();
    await advance(thirtyDays - 2 ** 31);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('keeps the process alive only while a keep-alive deadline is pending', () => {
    const refed = (queue: TimerQueue) => {
      const lane = (queue as unknown as { lane: { timer?: NodeJS.Timeout } }).lane;
      return lane.timer?.hasRef() ?? false;
    };
    const keepAlive = new TimerQueue(true);
    const pending = keepAlive.add(() => undefined, 1_000);
    expect(refed(keepAlive)).toBe(true);
    pending.cancel();
    expect(refed(keepAlive)).toBe(false);
    keepAlive.add(() => undefined, 2_000);
    expect(refed(keepAlive)).toBe(true);

    const background = new TimerQueue(false);
    background.add(() => undefined, 1_000);
    expect(refed(background)).toBe(false);
  });
});
