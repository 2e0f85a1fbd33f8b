import type { LockBackend, LockTarget, PingDetails } from './backend.js';
import { checkDuration } from './options.js';
import type { BackendDefinition } from './registry.js';
import { now, settleWithin } from './timing.js';

/** What `manager.ping()` found: the backend answered a round trip in time, or why not. */
export type BackendHealth =
  | {
      readonly up: true;
      readonly backend: string;
      /** The round trip, in ms. */
      readonly latency: number;
      /** What the backend reported beside "up" (Redlock: `servers`, `answered`, `quorum`). */
      readonly details?: PingDetails;
    }
  | {
      readonly up: false;
      readonly backend: string;
      /** Why, in words: the driver's error, "no answer within N ms", a quorum not reached. */
      readonly reason: string;
      /** The error behind the reason, if any. */
      readonly error?: unknown;
    };

/** The key a backend without `ping` is asked `locked()` about. */
const PROBE = 'nestjs-sherlock:ping';

/**
 * @internal one cheap round trip to `backend` through `client`, within `timeout` ms: its `ping`,
 * else `locked()` of a probe key. Never throws for a server failure: it says so.
 */
export async function pingBackend(
  backend: BackendDefinition,
  client: object,
  timeout: number,
): Promise<BackendHealth> {
  const bound = checkDuration('timeout', timeout, 1);
  const impl = backend.impl as LockBackend<object, unknown, unknown>;
  const started = now();
  const probe: LockTarget = {
    name: PROBE,
    key: impl.formatKey ? impl.formatKey(PROBE, null) : PROBE,
    namespace: null,
    expire: null,
    operationTimeout: bound,
    client,
  };
  const round = Promise.resolve().then(() =>
    impl.ping ? impl.ping(client, bound) : impl.locked(probe).then(() => undefined),
  );
  let settled;
  try {
    settled = await settleWithin(round, bound);
  } catch (error) {
    return { up: false, backend: backend.name, reason: reasonOf(error), error };
  }
  if (settled.kind !== 'value') {
    round.catch(() => undefined);
    return { up: false, backend: backend.name, reason: `no answer within ${bound} ms` };
  }
  const latency = now() - started;
  const details = settled.value;
  return details
    ? { up: true, backend: backend.name, latency, details }
    : { up: true, backend: backend.name, latency };
}

function reasonOf(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const text = error.message || error.name;
    return typeof code === 'string' && !text.includes(code) ? `${code}: ${text}` : text;
  }
  return String(error);
}
