/**
 * What `@Locked` lets through and what it refuses, at compile time. Checked by types.spec.ts:
 * this file compiles with no error, and each `// @ts-expect-error: text` line marks the next line
 * as one that fails with an error whose message contains `text`.
 */
import { Injectable } from '@nestjs/common';
import { Locked } from 'nestjs-sherlock';

interface TransferDto {
  from: string;
  to: string;
  amount: number;
}

@Injectable()
export class Accepted {
  // A fixed name, an array of names, no name function: any async method.
  @Locked('nightly')
  async nightly(): Promise<void> {}

  @Locked(['a', 'b'], { timeout: 1_000 })
  async both(id: number): Promise<number> {
    return id;
  }

  // A name function of the method's first arguments (it may take fewer than the method).
  @Locked((from: string, to: string) => [`account:${from}`, `account:${to}`])
  async transfer(from: string, to: string, amount: number): Promise<number> {
    return from.length + to.length + amount;
  }

  // A wider parameter type than the method's is fine (a string is a string | number).
  @Locked((id: string | number) => `order:${id}`)
  async order(id: string): Promise<string> {
    return id;
  }

  // An object parameter, a rest parameter, an optional one.
  @Locked((dto: TransferDto) => `account:${dto.from}`)
  async transferDto(dto: TransferDto): Promise<void> {
    void dto;
  }

  @Locked((...ids: string[]) => ids)
  async many(first: string, second: string): Promise<void> {
    void [first, second];
  }

  @Locked((id?: string) => `maybe:${id ?? 'none'}`)
  async optional(id?: string): Promise<void> {
    void id;
  }

  // A name function without annotations gets `unknown` parameters: it accepts anything.
  @Locked((id) => `loose:${String(id)}`)
  async loose(id: number): Promise<number> {
    return id;
  }

  // onBusy 'skip' resolves undefined when busy: fine for void and for T | undefined.
  @Locked('cron', { wait: false, onBusy: 'skip', atLeastFor: 1_000 })
  async cron(): Promise<void> {}

  @Locked((id: string) => `report:${id}`, { wait: false, onBusy: 'skip' })
  async report(id: string): Promise<string | undefined> {
    return id;
  }

  // onBusy 'throw' (the default) resolves only what the method does.
  @Locked('strict', { onBusy: 'throw' })
  async strict(): Promise<number> {
    return 1;
  }

  // A static method too.
  @Locked('static')
  static async once(): Promise<void> {}
}

@Injectable()
export class Refused {
  // @ts-expect-error: the name function must accept the arguments of the method, which are
  @Locked((id: number) => `order:${id}`)
  async wrongType(id: string): Promise<string> {
    return id;
  }

  // @ts-expect-error: the name function must accept the arguments of the method, which are
  @Locked((from: string, to: string) => [from, to])
  async tooFewArguments(from: string): Promise<string> {
    return from;
  }

  // @ts-expect-error: the name function must accept the arguments of the method, which are
  @Locked((dto: TransferDto) => dto.from)
  async wrongShape(dto: { from: number }): Promise<number> {
    return dto.from;
  }

  // @ts-expect-error: Type 'number' is not assignable to type 'Promise<unknown>'
  @Locked('sync')
  notAsync(): number {
    return 1;
  }

  // @ts-expect-error: Type 'string' is not assignable to type 'Promise<unknown>'
  @Locked((id: string) => `sync:${id}`)
  notAsyncEither(id: string): string {
    return id;
  }

  // @ts-expect-error: resolves undefined when busy: declare the method Promise<T | undefined>
  @Locked('skipped', { wait: false, onBusy: 'skip' })
  async skipsButSaysNumber(): Promise<number> {
    return 1;
  }

  // @ts-expect-error: Type '"later"' is not assignable to type 'OnBusy | undefined'
  @Locked('bad-option', { onBusy: 'later' })
  async badOption(): Promise<void> {}

  // @ts-expect-error: Object literal may only specify known properties
  @Locked('bad-key', { retry_interval: 100 })
  async badKey(): Promise<void> {}

  // A name function must return a name or names.
  // @ts-expect-error: is not assignable to type 'string | readonly string[]'
  @Locked((id: string) => id.length)
  async badName(id: string): Promise<void> {
    void id;
  }
}
