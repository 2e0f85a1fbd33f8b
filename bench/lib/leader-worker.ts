/**
 * A candidate process of the leader hand-over benchmark (bench/lib/leader.ts): campaigns for
 * one election (in the background, again after each loss), tells the parent `elected` with the
 * time on the system's monotonic clock, and on `resign` resigns (telling the time it called
 * resign) and campaigns again.
 */
import { LockManager } from 'nestjs-sherlock/core';

const [backend, connection, name, expire] = process.argv.slice(2) as [
  'redis' | 'etcd',
  string,
  string,
  string,
];
const clock = (): number => Number(process.hrtime.bigint()) / 1e6;
const manager = new LockManager({ backend, connection, operationTimeout: 1_000 });
const election = manager.election(name, { expire: Number(expire) });
election.on('elected', () => process.send?.({ type: 'elected', at: clock() }));
process.on('message', (message: { type: string }) => {
  if (message.type !== 'resign') return;
  const at = clock();
  void election.resign().then(() => {
    process.send?.({ type: 'resigned', at });
    election.start();
  });
});
election.start();
process.send?.({ type: 'ready' });
