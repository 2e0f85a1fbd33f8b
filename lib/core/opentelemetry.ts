/**
 * OpenTelemetry for locks, through `@opentelemetry/api` only (an optional peer dependency, loaded
 * when `instrumentOpenTelemetry()` is first called): spans for blocking acquires and locked
 * sections, and metrics read from the lock events' diagnostics channels. Without a call, nothing
 * is loaded and nothing is measured. See docs/observability.md.
 */
import { createRequire } from 'node:module';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type * as OtelApi from '@opentelemetry/api';
import { LOCK_CHANNELS, type LockEvent, type LockEventType } from './events.js';
import { setLockTracer, type LockTracer, type TracedLock } from './instrumentation.js';

const requireFromHere = createRequire(import.meta.url);

/** The instrumentation scope: the tracer's and the meter's name. */
export const INSTRUMENTATION_NAME = 'nestjs-sherlock';

/** The names of the spans, metrics and attributes (see docs/observability.md). */
export const OTEL_NAMES = Object.freeze({
  /** Span: one blocking acquire, from its first attempt to granted / timeout / abort. */
  acquireSpan: 'sherlock.lock.acquire',
  /** Span: the work done while the lock is held (`using`, `@Locked`, `LockService.run`). */
  sectionSpan: 'sherlock.lock.section',
  /** Histogram (s): how long acquires waited, by outcome (`acquired`, `timeout`, `busy`). */
  waitDuration: 'sherlock.lock.wait.duration',
  /** Histogram (s): how long locks were held, by how the holding ended (`released`, `lost`). */
  holdDuration: 'sherlock.lock.hold.duration',
  /** Counter ({acquisition}): granted acquires. */
  acquisitions: 'sherlock.lock.acquisitions',
  /** Counter ({timeout}): blocking acquires that ran out of time. */
  timeouts: 'sherlock.lock.timeouts',
  /** Counter ({loss}): held locks known lost. */
  losses: 'sherlock.lock.losses',
  /** UpDownCounter, observed ({lock}): locks held by this process now. */
  held: 'sherlock.lock.held',
  /** Attribute: the backend's name (`redis`, ...). */
  backendAttribute: 'sherlock.lock.backend',
  /** Attribute: the lock's name (spans always; metrics only through `metricLockName`). */
  nameAttribute: 'sherlock.lock.name',
  /** Attribute: the holding's fencing token (spans). */
  fencingTokenAttribute: 'sherlock.lock.fencing_token',
  /** Attribute: how an acquire or a holding ended. */
  outcomeAttribute: 'sherlock.lock.outcome',
  /** Attribute: why a lock was lost (`taken`, `unconfirmed`). */
  lostReasonAttribute: 'sherlock.lock.lost_reason',
});

/** What `instrumentOpenTelemetry()` takes. */
export interface OpenTelemetryOptions {
  /** Spans for blocking acquires and locked sections (default `true`). */
  traces?: boolean;
  /** The metrics (default `true`). */
  metrics?: boolean;
  /** A `TracerProvider` to use instead of the global one (`trace.getTracerProvider()`). */
  tracerProvider?: object;
  /** A `MeterProvider` to use instead of the global one (`metrics.getMeterProvider()`). */
  meterProvider?: object;
  /**
   * The value of the `sherlock.lock.name` attribute on metrics, from the lock's name, or
   * `undefined` for none. Default: none (lock names such as `order:123` would make one time
   * series per order). For example `(name) => name.split(':')[0]`.
   */
  metricLockName?: (name: string) => string | undefined;
}

/** The installed instrumentation; `disable()` removes it. */
export interface OpenTelemetryInstrumentation {
  disable(): void;
}

type Attributes = Record<string, string>;

let installed: { disable(): void } | undefined;

function loadApi(): typeof OtelApi {
  try {
    return requireFromHere('@opentelemetry/api') as typeof OtelApi;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'MODULE_NOT_FOUND') {
      throw new Error(
        'instrumentOpenTelemetry() needs @opentelemetry/api (npm install @opentelemetry/api), and an OpenTelemetry SDK to export what it records',
        { cause: err },
      );
    }
    throw err;
  }
}

/**
 * Records lock spans and metrics with OpenTelemetry, for every lock of the process (every
 * manager, every Nest registration), until `disable()`. Calling it again replaces the previous
 * instrumentation. Needs `@opentelemetry/api`; what is recorded goes to the SDK you registered
 * (or the providers given here).
 *
 * @example
 * import { instrumentOpenTelemetry } from 'nestjs-sherlock';
 * instrumentOpenTelemetry({ metricLockName: (name) => name.split(':')[0] });
 */
export function instrumentOpenTelemetry(
  options: OpenTelemetryOptions = {},
): OpenTelemetryInstrumentation {
  const { traces = true, metrics = true, metricLockName } = options;
  const api = loadApi();
  installed?.disable();
  const disposers: (() => void)[] = [];

  if (traces) {
    const provider = (options.tracerProvider ??
      api.trace.getTracerProvider()) as OtelApi.TracerProvider;
    const tracer = provider.getTracer(INSTRUMENTATION_NAME);
    setLockTracer(makeTracer(api, tracer));
    disposers.push(() => setLockTracer(undefined));
  }

  if (metrics) {
    const provider = (options.meterProvider ??
      api.metrics.getMeterProvider()) as OtelApi.MeterProvider;
    disposers.push(recordMetrics(provider.getMeter(INSTRUMENTATION_NAME), metricLockName));
  }

  const handle = {
    disable() {
      if (installed !== handle) return;
      installed = undefined;
      for (const dispose of disposers) dispose();
    },
  };
  installed = handle;
  return handle;
}

function spanAttributes(lock: TracedLock): Attributes {
  return {
    [OTEL_NAMES.nameAttribute]: lock.names ? lock.names.join(',') : lock.name,
    [OTEL_NAMES.backendAttribute]: lock.backend?.name ?? 'unknown',
  };
}

function makeTracer(api: typeof OtelApi, tracer: OtelApi.Tracer): LockTracer {
  const { context, trace, SpanStatusCode } = api;
  const fail = (span: OtelApi.Span, err: unknown) => {
    const error = err instanceof Error ? err : new Error(String(err));
    span.recordException(error);
    span.setAttribute('error.type', error.name);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  };
  const run = async <T>(
    name: string,
    lock: TracedLock,
    work: () => Promise<T>,
    onValue: (span: OtelApi.Span, value: T) => void,
  ): Promise<T> => {
    const span = tracer.startSpan(name, {
      kind: api.SpanKind.INTERNAL,
      attributes: spanAttributes(lock),
    });
    try {
      const value = await context.with(trace.setSpan(context.active(), span), work);
      onValue(span, value);
      return value;
    } catch (err) {
      fail(span, err);
      throw err;
    } finally {
      span.end();
    }
  };
  return {
    acquire: (lock, work) =>
      run(OTEL_NAMES.acquireSpan, lock, work, (span, value) => {
        const granted = value === true;
        span.setAttribute(OTEL_NAMES.outcomeAttribute, granted ? 'acquired' : 'busy');
        if (granted && lock.fencingToken !== undefined) {
          span.setAttribute(OTEL_NAMES.fencingTokenAttribute, lock.fencingToken);
        }
      }),
    section: (lock, work) => run(OTEL_NAMES.sectionSpan, lock, work, () => undefined),
  };
}

/** Subscribes the metrics to the lock channels; returns how to unsubscribe. */
function recordMetrics(
  meter: OtelApi.Meter,
  metricLockName: ((name: string) => string | undefined) | undefined,
): () => void {
  const wait = meter.createHistogram(OTEL_NAMES.waitDuration, {
    description: 'How long lock acquires waited',
    unit: 's',
  });
  const hold = meter.createHistogram(OTEL_NAMES.holdDuration, {
    description: 'How long locks were held',
    unit: 's',
  });
  const acquisitions = meter.createCounter(OTEL_NAMES.acquisitions, {
    description: 'Lock acquires granted',
    unit: '{acquisition}',
  });
  const timeouts = meter.createCounter(OTEL_NAMES.timeouts, {
    description: 'Blocking lock acquires that ran out of time',
    unit: '{timeout}',
  });
  const losses = meter.createCounter(OTEL_NAMES.losses, {
    description: 'Held locks known lost',
    unit: '{loss}',
  });
  const held = meter.createObservableUpDownCounter(OTEL_NAMES.held, {
    description: 'Locks held by this process',
    unit: '{lock}',
  });
  /** The locks held now, with their attributes. */
  const holding = new Map<object, Attributes>();
  /** Every set of attributes the gauge reported. */
  const reported = new Map<string, Attributes>();
  const observe = (result: OtelApi.ObservableResult) => {
    const counts = new Map<string, { attributes: Attributes; count: number }>();
    for (const [lock, attributes] of holding) {
      // A holding forgotten without an event (a manager closed while it could not release).
      if ((lock as { isAcquired?: boolean }).isAcquired === false) {
        holding.delete(lock);
        continue;
      }
      const key = JSON.stringify(attributes);
      const entry = counts.get(key) ?? { attributes, count: 0 };
      entry.count++;
      counts.set(key, entry);
    }
    for (const [key, { attributes, count }] of counts) {
      result.observe(count, attributes);
      reported.set(key, attributes);
    }
    // A set of attributes whose locks were all released reads 0 (not its last count).
    for (const [key, attributes] of reported) {
      if (!counts.has(key)) result.observe(0, attributes);
    }
  };
  held.addCallback(observe);

  const attributesOf = (event: LockEvent): Attributes => {
    const attributes: Attributes = { [OTEL_NAMES.backendAttribute]: event.backend };
    const name = metricLockName?.(event.name);
    if (name !== undefined) attributes[OTEL_NAMES.nameAttribute] = name;
    return attributes;
  };
  const seconds = (ms: number) => ms / 1000;
  const handlers: { [E in LockEventType]?: (event: LockEvent) => void } = {
    acquired: (event) => {
      const attributes = attributesOf(event);
      acquisitions.add(1, attributes);
      wait.record(seconds(event.waited), {
        ...attributes,
        [OTEL_NAMES.outcomeAttribute]: 'acquired',
      });
      holding.set(event.lock, attributes);
    },
    timeout: (event) => {
      const attributes = attributesOf(event);
      timeouts.add(1, attributes);
      wait.record(seconds(event.waited), {
        ...attributes,
        [OTEL_NAMES.outcomeAttribute]: 'timeout',
      });
    },
    busy: (event) => {
      wait.record(seconds(event.waited), {
        ...attributesOf(event),
        [OTEL_NAMES.outcomeAttribute]: 'busy',
      });
    },
    released: (event) => {
      if (!holding.delete(event.lock)) return; // lost already: counted then
      hold.record(seconds(event.held), {
        ...attributesOf(event),
        [OTEL_NAMES.outcomeAttribute]: 'released',
      });
    },
    lost: (event) => {
      if (event.type !== 'lost') return;
      const attributes = attributesOf(event);
      losses.add(1, { ...attributes, [OTEL_NAMES.lostReasonAttribute]: event.error.reason });
      if (holding.delete(event.lock)) {
        hold.record(seconds(event.held), { ...attributes, [OTEL_NAMES.outcomeAttribute]: 'lost' });
      }
    },
  };
  const subscriptions = Object.entries(handlers).map(([type, handler]) => {
    const listener = (message: unknown) => handler(message as LockEvent);
    const channel = LOCK_CHANNELS[type as LockEventType];
    subscribe(channel, listener);
    return () => unsubscribe(channel, listener);
  });
  return () => {
    for (const stop of subscriptions) stop();
    held.removeCallback(observe);
    holding.clear();
  };
}
