/**
 * Cheap timers for deadlines that are almost always cancelled before they fire: an operation's
 * `operationTimeout`, a holding's loss deadline. Starting and clearing a Node timer per operation
 * costs more than it seems once the event loop also does I/O (measured: three `setTimeout` +
 * `clearTimeout` pairs per acquire + release cost ~6 µs of CPU and ~5 % of the uncontended Redis
 * throughput): each `clearTimeout` that empties Node's list for that duration tears the list
 * down and the next `setTimeout` builds it again. Here every deadline of a queue shares ONE Node
 * timer, armed for the earliest deadline and left armed when that deadline is cancelled (it then
 * fires once for nothing and re-arms for the next one): adding or cancelling a deadline is a
 * linked-list operation (intrusive-list.ts).
 */
import { IntrusiveList, type ListNode } from './intrusive-list.js';

/** Monotonic milliseconds (timing.ts's `now`, not imported: timing.ts imports this module). */
const now = (): number => performance.now();

/** The longest delay `setTimeout` takes (about 24.8 days). */
const MAX_DELAY = 2 ** 31 - 1;

/** One deadline in a queue; `cancel()` it when the operation it guards ends. */
export interface Deadline {
  cancel(): void;
}

class Entry implements Deadline, ListNode<Entry> {
  prev: Entry | undefined;
  next: Entry | undefined;
  linked = true;

  constructor(
    readonly lane: Lane,
    readonly at: number,
    readonly fn: (arg: unknown) => void,
    /** What `fn` is called with: lets a caller pass a method and its object, no closure. */
    readonly arg: unknown,
  ) {}

  cancel(): void {
    if (this.linked) this.lane.remove(this);
  }
}

/**
 * The deadlines armed with one `setTimeout` function. There is one lane per function (in
 * practice one: the tests' fake timers bring their own, and a deadline armed with one clock must
 * not be fired, or kept from firing, by another).
 */
class Lane extends IntrusiveList<Entry> {
  private timer: NodeJS.Timeout | undefined;
  /** When the Node timer fires (`performance.now()` ms), Infinity when not armed. */
  private armedFor = Infinity;
  private refed = false;
  private readonly clear = globalThis.clearTimeout;

  constructor(
    readonly set: typeof setTimeout,
    private readonly keepAlive: boolean,
  ) {
    super();
  }

  add(at: number, fn: (arg: unknown) => void, arg: unknown): Entry {
    const entry = new Entry(this, at, fn, arg);
    // Same-length deadlines arrive in order: the new one usually goes last (O(1)).
    let after = this.tail;
    while (after !== undefined && after.at > entry.at) after = after.prev;
    entry.prev = after;
    entry.next = after === undefined ? this.head : after.next;
    if (entry.next) entry.next.prev = entry;
    else this.tail = entry;
    if (after) after.next = entry;
    else this.head = entry;
    if (entry.at < this.armedFor) this.arm(entry.at);
    else if (this.keepAlive && !this.refed && this.timer) {
      this.timer.ref();
      this.refed = true;
    }
    return entry;
  }

  remove(entry: Entry): void {
    this.unlink(entry);
    // Nothing pending: the timer stays armed (re-arming costs more) but keeps nobody alive.
    if (this.head === undefined && this.refed && this.timer) {
      this.timer.unref();
      this.refed = false;
    }
  }

  private arm(at: number): void {
    if (this.timer) this.clear(this.timer);
    const delay = Math.min(Math.max(0, Math.ceil(at - now())), MAX_DELAY);
    this.timer = this.set(this.fire, delay);
    this.armedFor = at;
    this.refed = this.keepAlive;
    if (!this.keepAlive) this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.armedFor = Infinity;
    this.refed = false;
    // A Node timer may fire up to a millisecond before performance.now() reaches its deadline
    // (it counts on the event loop's cached clock): allow for that.
    const t = now() + 1;
    const due: Entry[] = [];
    while (this.head !== undefined && this.head.at <= t) {
      const entry = this.head;
      this.remove(entry);
      due.push(entry);
    }
    if (this.head) this.arm(this.head.at);
    for (const entry of due) entry.fn(entry.arg);
  };
}

/**
 * Deadlines sharing one Node timer. `keepAlive`: while a deadline is pending, its timer keeps the
 * process alive (as a plain `setTimeout` would); otherwise it never does (`unref`).
 */
export class TimerQueue {
  private lane: Lane;
  private readonly lanes = new WeakMap<typeof setTimeout, Lane>();

  constructor(private readonly keepAlive: boolean) {
    this.lane = new Lane(globalThis.setTimeout, keepAlive);
    this.lanes.set(this.lane.set, this.lane);
  }

  /** Runs `fn` in `ms` (any delay, even beyond setTimeout's ~24.8 days) unless cancelled first. */
  add(fn: () => void, ms: number): Deadline {
    return this.addAt(now() + Math.max(0, ms), fn, undefined);
  }

  /**
   * Runs `fn(arg)` at `at` (a `performance.now()` time; in the past: at the next tick) unless
   * cancelled first. For the hot paths: the caller's own clock reading and no closure.
   */
  addAt<A>(at: number, fn: (arg: A) => void, arg: A): Deadline {
    const set = globalThis.setTimeout;
    if (this.lane.set !== set) {
      let lane = this.lanes.get(set);
      if (!lane) this.lanes.set(set, (lane = new Lane(set, this.keepAlive)));
      this.lane = lane;
    }
    return this.lane.add(at, fn as (arg: unknown) => void, arg);
  }
}

/** Operation deadlines (settleWithin): keep the process alive while pending, like setTimeout. */
export const operationDeadlines = new TimerQueue(true);
/** Holdings' loss deadlines: never keep the process alive. */
export const lossDeadlines = new TimerQueue(false);
