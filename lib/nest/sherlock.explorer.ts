import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { LockService } from './lock.service.js';
import type { LockedMetadata } from './locked.decorator.js';
import { LOCKED_METADATA, lockServiceProperty } from './sherlock.constants.js';
import { nestMessages } from './sherlock.messages.js';

/**
 * Checks at bootstrap that every `@Locked` method of the application's providers and controllers
 * got the `LockService` of its registration (Nest injects it when it creates the instance), so
 * that a missing or unknown registration fails the start, not the first call; and that what the
 * method will take works on that registration's backend: its options (expiry limits, autoExtend,
 * atLeastFor within expire) and, for a fixed name or fixed names, the names themselves (a key
 * too long, too many names, ...).
 */
@Injectable()
export class SherlockExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
  ) {}

  onModuleInit(): void {
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const instance: unknown = wrapper.instance;
      if (!wrapper.isDependencyTreeStatic() || typeof instance !== 'object' || instance === null)
        continue;
      const prototype = Object.getPrototypeOf(instance) as object | null;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const fn = (prototype as Record<string, unknown> | null)?.[method];
        if (typeof fn !== 'function') continue;
        const metadata = Reflect.getMetadata(LOCKED_METADATA, fn) as LockedMetadata | undefined;
        if (!metadata) continue;
        const property = lockServiceProperty(metadata.registration);
        const service = (instance as Record<symbol, LockService | undefined>)[property];
        if (service === undefined) {
          const name = `${instance.constructor.name}.${method}`;
          throw new Error(nestMessages.notInitialised(metadata.registration, name));
        }
        const { name: _registration, service: _service, ...options } = metadata.options;
        service.checkLocked(metadata.name, options);
      }
    }
  }
}
