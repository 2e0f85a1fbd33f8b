/**
 * Observability on real servers: lock events (with their durations and fencing tokens) on every
 * backend, the health round trip (`manager.ping()`) with a server stopped and restarted and a
 * Redlock quorum below its majority, and OpenTelemetry spans and metrics read with the SDK's
 * in-memory exporters. The Nest side (health indicator, event-emitter, logs): test/nest/observability.spec.ts.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { context, type Context, type ContextManager, ROOT_CONTEXT } from '@opentelemetry/api';
import {
  AggregationTemporality,
  type DataPoint,
  type Histogram,
  MeterProvider,
  MetricReader,
} from '@opentelemetry/sdk-metrics';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import {
  instrumentOpenTelemetry,
  LOCK_EVENT_TYPES,
  type LockEvent,
  LockManager,
  LockTimeoutError,
  OTEL_NAMES,
} from 'nestjs-sherlock';
import { afterAll, describe, expect, it } from 'vitest';
import { fixtures, uniqueName } from '../support/backends.js';
import { waitFor } from '../support/helpers.js';
import { getFreePort, type RedisServer, startRedis } from '../support/servers.js';

const ON = ['redis', 'memcached', 'etcd', 'memory', 'redlock', 'threads', 'postgres'];
const backendsUnderTest = fixtures.filter((f) => ON.includes(f.name));

function managerOf(f: (typeof fixtures)[number], options: { expire?: number } = {}): LockManager {
  const connection = f.connection?.();
  return new LockManager({
    backend: f.definition,
    ...(connection === undefined ? {} : { connection }),
    expire: options.expire ?? 10_000,
    retryInterval: 50,
  });
}

function record(manager: LockManager): LockEvent[] {
  const events: LockEvent[] = [];
  for (const type of LOCK_EVENT_TYPES) manager.on(type, (event) => events.push(event));
  return events;
}

describe.concurrent('lock events on the real servers', () => {
  it.for(backendsUnderTest)(
    '$name: acquired, busy, waiting, timeout, extended, released with name, backend, token and durations',
    async (f, { onTestFinished }) => {
      const a = managerOf(f);
      const b = managerOf(f);
      onTestFinished(async () => {
        await a.close();
        await b.close();
      });
      const mine = record(a);
      const theirs = record(b);
      const name = uniqueName('events');
      const holder = a.lock(name);
      await holder.acquire();
      expect(await b.lock(name).acquire(false)).toBe(false);
      const waiter = b.lock(name, { timeout: 300 });
      await expect(waiter.acquire()).rejects.toBeInstanceOf(LockTimeoutError);
      if (f.capabilities.extend) await holder.extend(20_000);
      await holder.release();

      expect(mine.map((e) => e.type)).toEqual(
        f.capabilities.extend ? ['acquired', 'extended', 'released'] : ['acquired', 'released'],
      );
      expect(theirs.map((e) => e.type)).toEqual(['busy', 'waiting', 'timeout']);
      for (const event of [...mine, ...theirs]) {
        expect(event).toMatchObject({ name, backend: f.definition.name });
        expect(event.key).toContain(name);
      }
      const [acquired] = mine;
      const released = mine.at(-1);
      if (f.capabilities.fencing) {
        expect(acquired?.fencingToken).toMatch(/^\d+$/);
        expect(released?.fencingToken).toBe(acquired?.fencingToken);
      }
      expect(released?.held).toBeGreaterThan(0);
      const timeout = theirs[2];
      expect(timeout?.waited).toBeGreaterThanOrEqual(300);
      expect(timeout?.type === 'timeout' && timeout.error).toBeInstanceOf(LockTimeoutError);
    },
  );
});

describe.concurrent('manager.ping(): the health round trip', () => {
  it.for(backendsUnderTest)(
    '$name: up, with a lock held by another (busy is healthy)',
    async (f) => {
      const manager = managerOf(f);
      try {
        const lock = manager.lock(uniqueName('held'));
        await lock.acquire();
        const health = await manager.ping(5_000);
        expect(health).toMatchObject({ up: true, backend: f.definition.name });
        expect(health.up && health.latency).toBeGreaterThanOrEqual(0);
        await lock.release();
      } finally {
        await manager.close();
      }
    },
  );

  it.for(backendsUnderTest.filter((f) => f.deadClient))(
    '$name: down with the reason when nothing listens at the address',
    async (f) => {
      const client = f.deadClient!(await getFreePort());
      const manager = new LockManager({ backend: f.definition, client });
      try {
        const health = await manager.ping(1_000);
        expect(health.up).toBe(false);
        expect(!health.up && health.reason.length).toBeGreaterThan(0);
      } finally {
        await manager.close();
        await f.closeClient?.(client);
      }
    },
  );
});

describe('health with a server stopped and restarted', () => {
  const servers: RedisServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('redis: up, down while the server is stopped (saying why), up again after the restart', async () => {
    const server = await startRedis();
    servers.push(server);
    const manager = new LockManager({ backend: 'redis', connection: server.url });
    try {
      expect((await manager.ping(2_000)).up).toBe(true);
      await server.kill();
      const down = await manager.ping(1_000);
      expect(down.up).toBe(false);
      expect(!down.up && down.reason).toMatch(/ECONNREFUSED|no answer|closed|Connection|max/i);
      await server.start();
      await waitFor(async () => (await manager.ping(1_000)).up, {
        timeout: 20_000,
        what: 'the health to be up again after the restart',
      });
    } finally {
      await manager.close();
    }
  });

  it('redlock: up with a majority (details say how many answered), down below it', async () => {
    const three = await Promise.all([startRedis(), startRedis(), startRedis()]);
    servers.push(...three);
    const manager = new LockManager({
      backend: 'redlock',
      connection: three.map((s) => s.url),
    });
    try {
      expect(await manager.ping(2_000)).toMatchObject({
        up: true,
        details: { servers: 3, answered: 3, quorum: 2 },
      });
      await three[0]!.kill();
      expect(await manager.ping(2_000)).toMatchObject({
        up: true,
        details: { servers: 3, answered: 2, quorum: 2 },
      });
      await three[1]!.kill();
      const down = await manager.ping(2_000);
      expect(down.up).toBe(false);
      expect(!down.up && down.reason).toBe(
        'only 1 of 3 redis servers answered PING; a majority is 2',
      );
      await three[1]!.start();
      await waitFor(async () => (await manager.ping(1_000)).up, {
        timeout: 20_000,
        what: 'the quorum to be up again',
      });
    } finally {
      await manager.close();
    }
  });
});

/** A context manager on AsyncLocalStorage (what @opentelemetry/context-async-hooks does). */
class AlsContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.storage.run(ctx, () => fn.call(thisArg, ...args));
  }
  bind<T>(_ctx: Context, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.storage.disable();
    return this;
  }
}

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

describe('OpenTelemetry (in-memory exporters), on redis', () => {
  it('spans per blocking acquire and per locked section, nested; metrics with their names and units', async () => {
    const contextManager = new AlsContextManager();
    context.setGlobalContextManager(contextManager);
    const exporter = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const otel = instrumentOpenTelemetry({
      tracerProvider,
      meterProvider,
      metricLockName: (name) => name.split(':')[0],
    });
    const f = fixtures.find((x) => x.name === 'redis')!;
    const manager = managerOf(f);
    const other = managerOf(f);
    try {
      const name = `otel:${uniqueName()}`;
      const outer = tracerProvider.getTracer('test').startSpan('job');
      await context.with(
        (await import('@opentelemetry/api')).trace.setSpan(context.active(), outer),
        () =>
          manager.lock(name).using(async () => {
            // A non-blocking attempt of another owner: busy, and no span.
            expect(await other.lock(name).acquire(false)).toBe(false);
          }),
      );
      outer.end();
      await expect(
        (async () => {
          const holder = other.lock(name);
          await holder.acquire();
          try {
            await manager.lock(name, { timeout: 200 }).acquire();
          } finally {
            await holder.release();
          }
        })(),
      ).rejects.toBeInstanceOf(LockTimeoutError);

      const spans = exporter.getFinishedSpans();
      const acquires = spans.filter((s) => s.name === OTEL_NAMES.acquireSpan);
      const sections = spans.filter((s) => s.name === OTEL_NAMES.sectionSpan);
      // using(): one acquire; the holder's blocking acquire; the one that timed out.
      expect(acquires).toHaveLength(3);
      expect(sections).toHaveLength(1);
      const [first] = acquires;
      expect(first?.attributes).toMatchObject({
        [OTEL_NAMES.nameAttribute]: name,
        [OTEL_NAMES.backendAttribute]: 'redis',
        [OTEL_NAMES.outcomeAttribute]: 'acquired',
      });
      expect(first?.attributes[OTEL_NAMES.fencingTokenAttribute]).toMatch(/^\d+$/);
      const outerId = outer.spanContext().spanId;
      expect(first?.parentSpanContext?.spanId).toBe(outerId);
      expect(sections[0]?.parentSpanContext?.spanId).toBe(outerId);
      const failed = acquires.find((s) => s.status.code === 2);
      expect(failed?.attributes['error.type']).toBe('LockTimeoutError');

      const { resourceMetrics } = await reader.collect();
      const metrics = new Map(
        resourceMetrics.scopeMetrics
          .filter((s) => s.scope.name === 'nestjs-sherlock')
          .flatMap((s) => s.metrics)
          .map((m) => [m.descriptor.name, m]),
      );
      const unitOf = (metric: string) => metrics.get(metric)?.descriptor.unit;
      expect(unitOf(OTEL_NAMES.waitDuration)).toBe('s');
      expect(unitOf(OTEL_NAMES.holdDuration)).toBe('s');
      expect(unitOf(OTEL_NAMES.acquisitions)).toBe('{acquisition}');
      const sum = (metric: string) =>
        (metrics.get(metric)?.dataPoints ?? []).reduce(
          (total, point) => total + Number((point as DataPoint<number>).value),
          0,
        );
      expect(sum(OTEL_NAMES.acquisitions)).toBe(2);
      expect(sum(OTEL_NAMES.timeouts)).toBe(1);
      expect(sum(OTEL_NAMES.held)).toBe(0);
      const waits = (metrics.get(OTEL_NAMES.waitDuration)?.dataPoints ??
        []) as DataPoint<Histogram>[];
      const outcomes = waits.map((p) => p.attributes[OTEL_NAMES.outcomeAttribute]).sort();
      expect(outcomes).toEqual(['acquired', 'busy', 'timeout']);
      for (const point of waits) {
        expect(point.attributes[OTEL_NAMES.nameAttribute]).toBe('otel');
      }
      const holds = (metrics.get(OTEL_NAMES.holdDuration)?.dataPoints ??
        []) as DataPoint<Histogram>[];
      expect(holds.reduce((n, p) => n + p.value.count, 0)).toBe(2);
    } finally {
      otel.disable();
      context.disable();
      await manager.close();
      await other.close();
    }
  });

  it('while a lock is held the held gauge counts it; disable() stops recording', async () => {
    const reader = new TestReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const otel = instrumentOpenTelemetry({ traces: false, meterProvider });
    const manager = new LockManager({ backend: 'memory' });
    try {
      const lock = manager.lock(uniqueName('gauge'));
      await lock.acquire();
      const held = async () => {
        const { resourceMetrics } = await reader.collect();
        const metric = resourceMetrics.scopeMetrics
          .flatMap((s) => s.metrics)
          .find((m) => m.descriptor.name === OTEL_NAMES.held);
        return (metric?.dataPoints ?? []).reduce((n, p) => n + Number(p.value), 0);
      };
      expect(await held()).toBe(1);
      await lock.release();
      expect(await held()).toBe(0);
      otel.disable();
      expect(manager.observes('acquired')).toBe(false);
    } finally {
      otel.disable();
      await manager.close();
    }
  });
});
