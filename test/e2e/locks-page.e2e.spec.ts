/**
 * The live lock page (`GET /locks`) as a person sees it: two replicas of the sample app on Redis,
 * some contention (a long job holding a lock with two waiters on the other replica, a report
 * being generated), the page opened in headless Chromium (Debian's, through playwright-core):
 * the table shows the held locks with their holders, time left and waiters; the force-release
 * button frees the job's lock, the waiter takes it (a hand-off in the recent list) and the
 * evicted holder learns at its next renewal (a loss). Screenshots are kept under .tmp/.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type BaseLock, LockLostError, LockService } from 'nestjs-sherlock';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import {
  backendEnv,
  closeAll,
  type SampleApp,
  startSampleApp,
  uniqueNamespace,
} from './support/sample-app.js';

const SHOTS = resolve(import.meta.dirname, '../../.tmp');
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

describe('the live lock page, two replicas on Redis, in headless Chromium', () => {
  const namespace = uniqueNamespace('page');
  let replicas: SampleApp[] = [];
  let context: BrowserContext | undefined;
  let profile = '';

  beforeAll(async () => {
    const env = { ...backendEnv('redis'), SHERLOCK_NAMESPACE: namespace };
    replicas = [
      await startSampleApp({
        env: { ...env, SHERLOCK_APP_NAME: 'replica-a', LOCKS_PAGE_FORCE_RELEASE: 'true' },
      }),
      await startSampleApp({
        env: { ...env, SHERLOCK_APP_NAME: 'replica-b', LOCKS_PAGE_FORCE_RELEASE: undefined },
      }),
    ];
    profile = mkdtempSync(join(tmpdir(), 'sherlock-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1100, height: 640 },
    });
    mkdirSync(SHOTS, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await closeAll(replicas);
  });

  /** The visible text of the table row of lock `name`. */
  const rowText = (page: Page, name: string) =>
    page.locator(`tr[data-lock="${name}"]`).innerText({ timeout: 20_000 });

  it('shows holders, time left and waiters live; force-release hands the lock to the waiter and the holder loses it', async () => {
    const [a, b] = replicas;
    if (!a || !b || !context) throw new Error('not started');
    const locksA = a.app.get(LockService);
    const locksB = b.app.get(LockService);

    // Contention: replica A runs a long export (renewed every second); replica B waits for it
    // twice; a report is being generated on replica B through its HTTP endpoint.
    const holder: BaseLock = locksA.create('nightly-export', { expire: 30_000, autoExtend: 1_000 });
    expect(await holder.acquire(false)).toBe(true);
    const waiters = [locksB.create('nightly-export'), locksB.create('nightly-export')];
    const waiting = waiters.map((w) => w.acquire({ timeout: 90_000 }));
    const report = request(b.url)
      .post('/reports?ms=8000')
      .then((r) => r.status);

    const page = await context.newPage();
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(`${a.url}/locks`);
    await expect
      .poll(() => page.locator('#status').innerText(), { timeout: 20_000 })
      // The two locks, and the lock of the digest job's leader election (sample-app/src/digest).
      .toContain('3 held');
    await expect
      .poll(() => rowText(page, 'nightly-export'), { timeout: 20_000 })
      .toMatch(/replica-a · .+ pid \d+\s+\d+ s\s+\d+\.\d s\s+2\s/u);
    expect(await rowText(page, 'reports:monthly')).toContain('replica-b');
    expect(await page.locator('#status').innerText()).toContain(`redis · namespace ${namespace}`);
    await page.screenshot({ path: join(SHOTS, 'locks-page.png'), fullPage: true });

    // Replica B's page has no force-release button, and its endpoint refuses.
    const pageB = await context.newPage();
    await pageB.goto(`${b.url}/locks`);
    await expect
      .poll(() => rowText(pageB, 'nightly-export'), { timeout: 20_000 })
      .toContain('replica-a');
    expect(await pageB.locator('button').count()).toBe(0);
    await request(b.url).post('/locks/nightly-export/force-release').expect(403);
    await pageB.close();

    // Force-release from A's page: the first waiter on B gets it, A's holder loses it.
    await page.locator('tr[data-lock="nightly-export"] button').click();
    await Promise.race(waiting);
    await expect
      .poll(() => page.locator('#recent').innerText(), { timeout: 20_000 })
      .toMatch(/hand-off.*nightly-export: replica-a .* → replica-b/u);
    expect(await page.locator('#recent').innerText()).toMatch(/force-released.*nightly-export/u);
    await expect.poll(() => holder.signal.aborted, { timeout: 20_000 }).toBe(true);
    expect(holder.signal.reason).toBeInstanceOf(LockLostError);
    await expect
      .poll(() => page.locator('#recent').innerText(), { timeout: 20_000 })
      .toMatch(/lost.*nightly-export: this app lost it/u);
    await expect
      .poll(() => rowText(page, 'nightly-export'), { timeout: 20_000 })
      .toMatch(/replica-b · .+\s1\s/u);
    await page.screenshot({ path: join(SHOTS, 'locks-page-after.png'), fullPage: true });

    // The report finishes; the job's lock goes to the second waiter, then is freed.
    expect(await report).toBe(201);
    const first = waiters.find((w) => w.isAcquired);
    await first?.release();
    await Promise.all(waiting);
    for (const w of waiters) if (w.isAcquired) await w.release();
    await holder.release().catch(() => undefined);
    await expect
      .poll(() => page.locator('#status').innerText(), { timeout: 20_000 })
      // The leader election's lock stays held.
      .toContain('1 held');
    await page.close();
  }, 180_000);
});
