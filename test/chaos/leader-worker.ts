/**
 * A leader-election chaos candidate (test/chaos/leader.spec.ts): campaigns for one election in a
 * loop and, while it leads, writes to a fenced store every `writeEvery` ms. Bundled by the spec
 * with esbuild (the built package inlined) and started with plain `node`, its settings as JSON
 * in CHAOS_LEADER.
 *
 * The fenced store is a Redis key (on a server no fault touches) holding the highest term that
 * wrote, and a list of the accepted writes in the store's own order: a write carrying a lower
 * term than the last accepted one is refused (Kleppmann's fencing, with the term as the token).
 * A leader checks its signal before each write; after its leadership is lost it still tries one
 * write with its old term (`staleWrite`), as a leader that did not look in time would, so that
 * every run shows what fencing refuses.
 *
 * Every record is one JSON line appended to `recordFile`; times are `crossProcessNow()` (ms of
 * the monotonic clock, comparable across the processes of one machine).
 */
import { appendFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import { Etcd3 } from 'etcd3';
import { Redis } from 'ioredis';
import { LockManager } from 'nestjs-sherlock/core';

import { crossProcessNow } from '../fixtures/counter-workload.js';

export interface LeaderWorkerSettings {
  readonly id: number;
  readonly backend: 'redis' | 'etcd';
  /** The election's server: redis, a URL; etcd, hosts, comma-separated. */
  readonly address: string;
  /** The fenced store's Redis. */
  readonly storeUrl: string;
  /** The store's keys: the last accepted term, the list of accepted writes. */
  readonly termKey: string;
  readonly logKey: string;
  readonly election: string;
  readonly expire: number;
  readonly operationTimeout: number;
  readonly writeEvery: number;
  /** One write with the old term after a lost leadership. */
  readonly staleWrite: boolean;
  /** Epoch ms: campaign no more after this. */
  readonly until: number;
  readonly recordFile: string;
}

/** One line of a record file. */
export type LeaderRecord =
  | {
      readonly kind: 'elected';
      readonly worker: number;
      readonly term: string;
      readonly at: number;
    }
  | {
      readonly kind: 'write';
      readonly worker: number;
      readonly term: string;
      readonly start: number;
      readonly end: number;
      readonly accepted: boolean;
      /** Written after this worker knew its leadership lost. */
      readonly stale?: boolean;
      /** The store could not be reached (neither accepted nor refused as far as it knows). */
      readonly failed?: boolean;
    }
  | {
      readonly kind: 'ended';
      readonly worker: number;
      readonly term: string;
      /** When its signal aborted (or it stopped leading by itself). */
      readonly at: number;
      readonly reason: 'lost' | 'resigned';
    }
  | {
      readonly kind: 'failure';
      readonly worker: number;
      readonly at: number;
      readonly message: string;
    };

/** Accepts ARGV[1] (a term) if it is not below the last accepted one; logs ARGV[2]. */
export const FENCED_WRITE = `
local last = redis.call('GET', KEYS[1])
local term = ARGV[1]
if last and (#term < #last or (#term == #last and term < last)) then return 0 end
redis.call('SET', KEYS[1], term)
redis.call('RPUSH', KEYS[2], ARGV[2])
return 1
`;

async function main(): Promise<void> {
  const settings = JSON.parse(process.env['CHAOS_LEADER'] ?? '') as LeaderWorkerSettings;
  const { id: worker } = settings;
  const record = (line: LeaderRecord) =>
    appendFileSync(settings.recordFile, `${JSON.stringify(line)}\n`);
  const store = new Redis(settings.storeUrl, { maxRetriesPerRequest: 1 });
  store.on('error', () => undefined);
  let close: () => void;
  let manager: LockManager;
  if (settings.backend === 'redis') {
    const client = new Redis(settings.address, { maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    manager = new LockManager({ backend: 'redis', client });
    close = () => client.disconnect();
  } else {
    const client = new Etcd3({ hosts: settings.address.split(',') });
    manager = new LockManager({ backend: 'etcd', client });
    close = () => client.close();
  }
  const election = manager.election(settings.election, {
    expire: settings.expire,
    operationTimeout: settings.operationTimeout,
    retryInterval: 50,
    id: `worker-${worker}`,
  });
  const stop = new AbortController();
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'stop') stop.abort();
  });
  let seq = 0;
  const write = async (term: string, stale: boolean): Promise<void> => {
    const start = crossProcessNow();
    let accepted = false;
    let failed = false;
    try {
      const entry = JSON.stringify({ worker, term, seq: seq++ });
      accepted =
        (await store.eval(FENCED_WRITE, 2, settings.termKey, settings.logKey, term, entry)) === 1;
    } catch {
      failed = true;
    }
    record({
      kind: 'write',
      worker,
      term,
      start,
      end: crossProcessNow(),
      accepted,
      ...(stale ? { stale } : {}),
      ...(failed ? { failed } : {}),
    });
  };
  process.send?.({ type: 'ready' });
  while (!stop.signal.aborted && Date.now() < settings.until) {
    let leadership;
    try {
      leadership = await election.campaign({
        signal: AbortSignal.any([stop.signal, AbortSignal.timeout(settings.until - Date.now())]),
      });
    } catch (err) {
      if (!stop.signal.aborted && Date.now() < settings.until) {
        record({ kind: 'failure', worker, at: crossProcessNow(), message: String(err) });
        await sleep(100);
      }
      continue;
    }
    const { term, signal } = leadership;
    const electedAt = crossProcessNow();
    record({ kind: 'elected', worker, term, at: electedAt });
    process.send?.({ type: 'elected', term, at: electedAt });
    let lostAt: number | undefined;
    signal.addEventListener('abort', () => (lostAt ??= crossProcessNow()), { once: true });
    while (!signal.aborted && !stop.signal.aborted && Date.now() < settings.until) {
      await write(term, false);
      await sleep(settings.writeEvery);
    }
    if (signal.aborted) {
      if (settings.staleWrite) await write(term, true);
      record({ kind: 'ended', worker, term, at: lostAt ?? crossProcessNow(), reason: 'lost' });
    } else {
      await election.resign().catch(() => false);
      record({ kind: 'ended', worker, term, at: crossProcessNow(), reason: 'resigned' });
    }
  }
  await election.close().catch(() => undefined);
  close();
  store.disconnect();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
