// One contender process of the ZooKeeper bench rows (bench/lib/zookeeper.ts): a forked child
// with its own ZooKeeper session. Plain JavaScript on the built package (no TypeScript loader).
//
// Two contenders:
// - 'ours': this library's ZooKeeperLock (Curator's recipe, expire deadline in the node, czxid token);
// - 'raw': the floor, node-zookeeper-client by hand: create an EPHEMERAL_SEQUENTIAL node under the
//   lock's node, getChildren, the lowest holds; otherwise watch the node right ahead (exists) and
//   look again when it goes; release = remove the node.
//
// Parent -> child: { type: 'run', contender, mode: 'uncontended' | 'handoff', key, worker,
// startAt, endAt, holdMs, workMs } (times: process.hrtime.bigint() as strings), then
// { type: 'exit' }. Child -> parent: { type: 'ready' }, then { type: 'done', latencies } or
// { type: 'done', sections, errors } (as bench/lib/local-worker.mjs).
import { setTimeout as sleep } from 'node:timers/promises';
import zookeeper from 'node-zookeeper-client';
import { ZooKeeperClient, ZooKeeperLock } from 'nestjs-sherlock/core';

const servers = process.env['BENCH_ZOOKEEPER_SERVERS'];
const hr = () => process.hrtime.bigint();
const LONG_TIMEOUT = 120_000;

const ours = new ZooKeeperClient(servers, { sessionTimeout: 10_000 });
const raw = zookeeper.createClient(servers, { sessionTimeout: 10_000 });
const rawConnected = new Promise((resolve) => raw.once('connected', resolve));
raw.connect();

const call = (f) =>
  new Promise((resolve, reject) => f((err, r) => (err ? reject(err) : resolve(r))));

/** The hand-written recipe on the raw client. */
function rawLock(key) {
  const parent = `/bench-raw/${key}`;
  let made = false;
  let mine;
  return {
    async acquire() {
      if (!made) {
        await call((cb) => raw.mkdirp(parent, cb));
        made = true;
      }
      const path = await call((cb) =>
        raw.create(
          `${parent}/lock-`,
          Buffer.alloc(0),
          zookeeper.CreateMode.EPHEMERAL_SEQUENTIAL,
          cb,
        ),
      );
      const name = path.slice(parent.length + 1);
      mine = path;
      for (;;) {
        const children = (await call((cb) => raw.getChildren(parent, cb))).sort();
        const at = children.indexOf(name);
        if (at === 0) return;
        const ahead = `${parent}/${children[at - 1]}`;
        let woken;
        const gone = new Promise((resolve) => (woken = resolve));
        const stat = await call((cb) => raw.exists(ahead, () => woken(), cb));
        if (stat) await gone;
      }
    },
    async release() {
      await call((cb) => raw.remove(mine, -1, cb));
    },
  };
}

const lockOf = (contender, key) =>
  contender === 'ours'
    ? new ZooKeeperLock(key, { client: ours, timeout: LONG_TIMEOUT })
    : rawLock(key);

async function untilStart(startAt) {
  const wait = Number(startAt - hr()) / 1e6;
  if (wait > 0) await sleep(wait);
}

async function uncontended({ contender, key, startAt, endAt }) {
  const lock = lockOf(contender, key);
  for (let i = 0; i < 100; i++) {
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

async function handoff({ contender, key, worker, startAt, endAt, holdMs, workMs }) {
  const lock = lockOf(contender, key);
  await untilStart(startAt);
  const sections = [];
  const errors = [];
  while (hr() < endAt) {
    const requested = hr();
    const got = await lock.acquire().then(
      () => true,
      (err) => void errors.push(`acquire: ${err}`),
    );
    if (!got) continue;
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

process.on('message', async (message) => {
  if (message.type === 'exit') {
    ours.close();
    raw.close();
    void sleep(100).then(() => process.exit(0));
    return;
  }
  if (message.type !== 'run') return;
  const run = { ...message, startAt: BigInt(message.startAt), endAt: BigInt(message.endAt) };
  const result = run.mode === 'uncontended' ? await uncontended(run) : await handoff(run);
  process.send({ type: 'done', ...result });
});
await rawConnected;
process.send({ type: 'ready' });
