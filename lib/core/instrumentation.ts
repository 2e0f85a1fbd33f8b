/**
 * @internal The one hook tracing needs inside the core: a tracer that wraps a blocking acquire
 * and a locked section (`using`, `@Locked`, `LockService.run`) so that a span can be the active
 * one while they run. Unset (the default) it costs one check per acquire; set by
 * `instrumentOpenTelemetry()`. The rest of the telemetry (metrics, logs) reads the lock events.
 */

/** What a tracer is told about the lock (or multi-lock) it wraps. */
export interface TracedLock {
  readonly name: string;
  readonly backend: { readonly name: string } | undefined;
  readonly fencingToken?: string | undefined;
  /** A multi-lock's member names (absent on a lock). */
  readonly names?: readonly string[];
}

/** @internal what `instrumentOpenTelemetry()` installs. */
export interface LockTracer {
  /** Runs a blocking acquire of `lock`. */
  acquire<T>(lock: TracedLock, run: () => Promise<T>): Promise<T>;
  /** Runs the work done while `lock` is held. */
  section<T>(lock: TracedLock, run: () => Promise<T>): Promise<T>;
}

let current: LockTracer | undefined;

/** @internal the installed tracer, if any. */
export function lockTracer(): LockTracer | undefined {
  return current;
}

/** @internal installs (or, with `undefined`, removes) the tracer. */
export function setLockTracer(tracer: LockTracer | undefined): void {
  current = tracer;
}

/** @internal runs `fn` as a locked section of `lock` (traced when a tracer is installed). */
export function runSection<T>(lock: TracedLock, fn: () => T | Promise<T>): T | Promise<T> {
  const tracer = current;
  return tracer ? tracer.section(lock, async () => fn()) : fn();
}
