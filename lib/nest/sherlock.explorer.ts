import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, ModuleRef } from '@nestjs/core';
import type { LockService } from './lock.service.js';
import type { LockedMetadata } from './locked.decorator.js';
import { getLockServiceToken, LOCKED_METADATA, lockServiceProperty } from './sherlock.constants.js';
import { nestMessages } from './sherlock.messages.js';

/**
 * Checks at bootstrap that every `@Locked` method of the application's providers and controllers
 * got the `LockService` of its registration (Nest injects it when it creates the instance), so
 * that a missing or unknown registration fails the start, not the first call; and that what the
 * method will take works on that registration's backend: its options (expiry limits, autoExtend,
 * atLeastFor within expire) and, for a fixed name or fixed names, the names themselves (a key
 * too long, too many names, ...). A request-scoped or transient provider, whose instances Nest
 * makes after the start, is checked the same way against its registration's `LockService`.
 */
@Injectable()
export class SherlockExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly moduleRef?: ModuleRef,
  ) {}

  /** The `LockService` of `registration` anywhere in the application, if it exists. */
  private findService(registration: string): LockService | undefined {
    try {
      return this.moduleRef?.get<LockService>(getLockServiceToken(registration), {
        strict: false,
      });
    } catch {
      return undefined;
    }
  }

  onModuleInit(): void {
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const instance: unknown = wrapper.instance;
      const isStatic = wrapper.isDependencyTreeStatic();
      // Not made yet (request-scoped, transient): its class's methods, checked by registration.
      const metatype: unknown = wrapper.metatype;
      const prototype = isStatic
        ? typeof instance === 'object' && instance !== null
          ? (Object.getPrototypeOf(instance) as object | null)
          : null
        : typeof metatype === 'function' && wrapper.inject === undefined
          ? (metatype.prototype as object | null)
          : null;
      if (!prototype) continue;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const fn = (prototype as Record<string, unknown> | null)?.[method];
        if (typeof fn !== 'function') continue;
        const metadata = Reflect.getMetadata(LOCKED_METADATA, fn) as LockedMetadata | undefined;
        if (!metadata) continue;
        const service = isStatic
          ? (instance as Record<symbol, LockService | undefined>)[
              lockServiceProperty(metadata.registration)
            ]
          : this.findService(metadata.registration);
        if (service === undefined) {
          const name = `${prototype.constructor.name}.${method}`;
          throw new Error(nestMessages.notInitialised(metadata.registration, name));
        }
        const { name: _registration, service: _service, ...options } = metadata.options;
        service.checkLocked(metadata.name, options);
      }
    }
  }
}
