/**
 * What bounds a Redis hand-off's gap on this machine, below any lock code: how long it takes to
 * reach ANOTHER process that sleeps in its event loop (as a waiter does), by a UDP datagram
 * (no server) and by a Redis PUBLISH (through the server), against the same PUBLISH to a
 * subscriber in the sending process and a PING. Each probe is sent 5 ms after the last one, so
 * that the receiver is asleep when it comes. `process.hrtime` is the machine's monotonic clock,
 * the same in both processes.
 *
 *   node --import tsx bench/wake-floor.ts      # one table to stdout, load averages included
 */
import { fork } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startRedis } from '../test/support/servers.js';
import { fmt, percentile } from './lib/stats.js';

const PROBES = 400;
const SPACING_MS = 5;
const hr = (): bigint => process.hrtime.bigint();
const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

if (process.argv[2] === 'receiver') {
  // The receiver: records, for each probe, its arrival less its sending (µs).
  const url = process.argv[3] as string;
  const udp: number[] = [];
  const published: number[] = [];
  const socket = createSocket('udp4');
  socket.on('message', (msg) => udp.push(Number(hr() - BigInt(msg.toString())) / 1_000));
  socket.bind(0, '127.0.0.1', () => {
    const subscriber = new Redis(url);
    subscriber.on('message', (_channel: string, msg: string) =>
      published.push(Number(hr() - BigInt(msg)) / 1_000),
    );
    void subscriber.subscribe('wake-floor').then(() => {
      process.send?.({ port: socket.address().port });
    });
    process.on('message', () => {
      process.send?.({ udp, published }, () => process.exit(0));
    });
  });
} else {
  const server = await startRedis();
  const load = [loadavg()[0]];
  try {
    const child = fork(fileURLToPath(import.meta.url), ['receiver', server.url], {
      execArgv: process.execArgv,
    });
    const ready = await new Promise<{ port: number }>((resolve) =>
      child.once('message', (m) => resolve(m as { port: number })),
    );
    const client = new Redis(server.url);
    const local = new Redis(server.url);
    const sameProcess: number[] = [];
    const ping: number[] = [];
    local.on('message', (_channel: string, msg: string) =>
      sameProcess.push(Number(hr() - BigInt(msg)) / 1_000),
    );
    await local.subscribe('wake-floor-local');
    const socket = createSocket('udp4');
    for (let i = 0; i < PROBES; i++) {
      await pause(SPACING_MS);
      socket.send(String(hr()), ready.port, '127.0.0.1');
      await pause(SPACING_MS);
      await client.publish('wake-floor', String(hr()));
      await pause(SPACING_MS);
      await client.publish('wake-floor-local', String(hr()));
      await pause(SPACING_MS);
      const sent = hr();
      await client.ping();
      ping.push(Number(hr() - sent) / 1_000);
    }
    // The same PING sent back to back: nobody sleeps in between.
    const hotPing: number[] = [];
    for (let i = 0; i < PROBES; i++) {
      const sent = hr();
      await client.ping();
      hotPing.push(Number(hr() - sent) / 1_000);
    }
    await pause(50);
    child.send('report');
    const other = await new Promise<{ udp: number[]; published: number[] }>((resolve) =>
      child.once('message', (m) => resolve(m as { udp: number[]; published: number[] })),
    );
    load.push(loadavg()[0]);
    socket.close();
    client.disconnect();
    local.disconnect();
    const rows: [string, number[]][] = [
      ['UDP datagram → another, sleeping process', other.udp],
      ['PUBLISH → message in another, sleeping process', other.published],
      ['PUBLISH → message in the sending process', sameProcess],
      ['PING round trip, 5 ms after the last message', ping],
      ['PING round trip, back to back', hotPing],
    ];
    process.stdout.write(
      `load average ${fmt(load[0] ?? 0, 2)} → ${fmt(load[1] ?? 0, 2)}, ${PROBES} probes each\n\n` +
        '| one message (µs) | p50 | p90 | p99 |\n| --- | --: | --: | --: |\n' +
        rows
          .map(([label, values]) => {
            const sorted = [...values].sort((a, b) => a - b);
            const [p50, p90, p99] = [50, 90, 99].map((p) => fmt(percentile(sorted, p), 0));
            return `| ${label} | ${p50} | ${p90} | ${p99} |`;
          })
          .join('\n') +
        '\n',
    );
  } finally {
    await server.stop();
  }
}
