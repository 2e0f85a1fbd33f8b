// One contender of the local backends' bench rows (bench/lib/local.ts): a worker thread (the
// `threads` backend, on the table whose buffer the parent hands over) or a forked child (the
// `cluster` backend, on the parent's hub over IPC). Plain JavaScript on the built package, so
// that neither a thread nor a child needs a TypeScript loader.
//
// Parent -> worker: { type: 'run', mode: 'uncontended' | 'handoff', key, worker, startAt, endAt,
// holdMs, workMs } (times: process.hrtime.bigint() as strings, one clock for every thread and
// process of the machine), then { type: 'exit' }. Worker -> parent: { type: 'ready' }, then
// { type: 'done', latencies } (uncontended: ms per acquire + release) or { type: 'done',
// sections, errors } (hand-off: the handoffLoop's sections, bigints as strings).
import { parentPort, workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterLock, ClusterLockClient, ThreadLock, ThreadLockTable } from 'nestjs-sherlock/core';

const hr = () => process.hrtime.bigint();
const LONG_TIMEOUT = 120_000;

const threads = parentPort !== null;
const channel = threads
  ? { send: (message) => parentPort.postMessage(message), on: (f) => parentPort.on('message', f) }
  : { send: (message) => process.send(message), on: (f) => process.on('message', f) };
const client = threads ? new ThreadLockTable(workerData.buffer) : ClusterLockClient.toParent();
const lockOf = (key) =>
  threads
    ? new ThreadLock(key, { client, timeout: LONG_TIMEOUT })
    : new ClusterLock(key, { client, timeout: LONG_TIMEOUT });

async function untilStart(startAt) {
  const wait = Number(startAt - hr()) / 1e6;
  if (wait > 0) await sleep(wait);
}

async function uncontended({ key, startAt, endAt }) {
  const lock = lockOf(key);
  for (let i = 0; i < 200; i++) {
    await lock.acquire();
    await lock.release();
  }
  await untilStart(startAt);
  const latencies = [];
  let t = hr();
  while (t < endAt) {
    await lock.acquire();
    await lock.release();
    const next = hr();
    latencies.push(Number(next - t) / 1e6);
    t = next;
  }
  return { latencies };
}

async function handoff({ key, worker, startAt, endAt, holdMs, workMs }) {
  const lock = lockOf(key);
  await untilStart(startAt);
  const sections = [];
  const errors = [];
  while (hr() < endAt) {
    const requested = hr();
    if (!(await lock.acquire().catch((err) => void errors.push(`acquire: ${err}`)))) continue;
    const acquired = hr();
    await sleep(holdMs);
    const releasing = hr();
    await lock.release().catch((err) => errors.push(`release: ${err}`));
    const released = hr();
    sections.push({ worker, pid: process.pid, requested, acquired, releasing, released });
    await sleep(workMs);
  }
  const text = (s) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, String(v)]));
  return { sections: sections.map(text), errors };
}

channel.on(async (message) => {
  if (message.type === 'exit') process.exit(0);
  if (message.type !== 'run') return;
  const run = { ...message, startAt: BigInt(message.startAt), endAt: BigInt(message.endAt) };
  const result = run.mode === 'uncontended' ? await uncontended(run) : await handoff(run);
  channel.send({ type: 'done', ...result });
});
channel.send({ type: 'ready' });
