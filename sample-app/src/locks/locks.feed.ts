import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { type LockInfo, LockService } from 'nestjs-sherlock';
import { Observable } from 'rxjs';

/** One line of the page's "recent" list. */
export interface LockHappening {
  readonly at: string;
  readonly kind: 'acquired' | 'hand-off' | 'released' | 'lost' | 'force-released';
  readonly name: string;
  readonly text: string;
}

/** What the page receives every second over server-sent events. */
export interface LocksSnapshot {
  readonly at: string;
  readonly namespace: string | null;
  readonly backend: string;
  readonly forceRelease: boolean;
  readonly locks: readonly LockInfo[];
  readonly recent: readonly LockHappening[];
  readonly error?: string;
}

const who = (info: LockInfo) => {
  const h = info.holder;
  if (!h) return '?';
  return `${h.app ?? h.host ?? '?'} (pid ${h.pid ?? '?'}, ${h.id})`;
};

/**
 * The live lock feed: polls `LockService.list()` (the app's namespace) once a second while a
 * page listens, and keeps the last 30 things that happened: acquisitions, hand-offs from one
 * holder to another (seen between two polls), releases, and this app's losses and force-releases
 * (from the manager's events).
 */
@Injectable()
export class LocksFeed implements OnModuleDestroy {
  private readonly recent: LockHappening[] = [];
  private last = new Map<string, LockInfo>();
  private primed = false;
  readonly forceReleaseEnabled: boolean;

  constructor(
    private readonly locks: LockService,
    config: ConfigService,
  ) {
    this.forceReleaseEnabled = config.get<string>('LOCKS_PAGE_FORCE_RELEASE', 'false') === 'true';
    locks.manager.on('lost', this.onLost);
    locks.manager.on('forceReleased', this.onForced);
  }

  onModuleDestroy(): void {
    this.locks.manager.off('lost', this.onLost);
    this.locks.manager.off('forceReleased', this.onForced);
  }

  private readonly onLost = ({ name, error }: { name: string; error: Error }) =>
    this.note('lost', name, `this app lost it: ${error.message}`);

  private readonly onForced = ({ name, removed }: { name: string; removed: LockInfo }) =>
    this.note('force-released', name, `force-released from ${who(removed)}`);

  private note(kind: LockHappening['kind'], name: string, text: string): void {
    this.recent.unshift({ at: new Date().toISOString(), kind, name, text });
    this.recent.length = Math.min(this.recent.length, 30);
  }

  /** One snapshot: the held locks now, and what changed since the previous one. */
  async snapshot(): Promise<LocksSnapshot> {
    const base = {
      at: new Date().toISOString(),
      namespace: this.locks.manager.defaults.namespace,
      backend: this.locks.backend,
      forceRelease: this.forceReleaseEnabled,
    };
    try {
      const held = await this.locks.list();
      const now = new Map(held.map((info) => [info.name, info]));
      if (this.primed) {
        for (const [name, info] of now) {
          const before = this.last.get(name);
          if (!before) this.note('acquired', name, `taken by ${who(info)}`);
          else if (before.holder?.id !== info.holder?.id) {
            this.note('hand-off', name, `${who(before)} → ${who(info)}`);
          }
        }
        for (const [name, before] of this.last) {
          if (!now.has(name)) this.note('released', name, `freed by ${who(before)}`);
        }
      }
      this.last = now;
      this.primed = true;
      return { ...base, locks: held, recent: [...this.recent] };
    } catch (err) {
      return { ...base, locks: [], recent: [...this.recent], error: (err as Error).message };
    }
  }

  /** Snapshots every `ms` while subscribed (the first at once). */
  stream(ms = 1_000): Observable<{ data: LocksSnapshot }> {
    return new Observable((subscriber) => {
      let stopped = false;
      let timer: NodeJS.Timeout | undefined;
      const tick = async () => {
        const snapshot = await this.snapshot();
        if (stopped) return;
        subscriber.next({ data: snapshot });
        timer = setTimeout(() => void tick(), ms);
      };
      void tick();
      return () => {
        stopped = true;
        clearTimeout(timer);
      };
    });
  }
}
