import { Injectable, type OnModuleInit, type OnApplicationShutdown } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import type { LockService } from './lock.service.js';
import { LOCKED_METADATA } from './sherlock.constants.js';
import { sherlockHost } from './sherlock.host.js';

/**
 * Finds, at bootstrap, the providers and controllers with `@Locked` methods and attaches this
 * registration's LockService to them, so each application's methods use its own module.
 */
@Injectable()
export class SherlockExplorer implements OnModuleInit, OnApplicationShutdown {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly service: LockService,
  ) {}

  onModuleInit(): void {
    sherlockHost.started(this.service);
    for (const wrapper of [...this.discovery.getProviders(), ...this.discovery.getControllers()]) {
      const instance: unknown = wrapper.instance;
      if (!wrapper.isDependencyTreeStatic() || typeof instance !== 'object' || instance === null)
        continue;
      const prototype = Object.getPrototypeOf(instance) as object | null;
      const hasLocked = this.scanner.getAllMethodNames(prototype).some((method) => {
        const fn = (prototype as Record<string, unknown> | null)?.[method];
        return typeof fn === 'function' && Reflect.hasMetadata(LOCKED_METADATA, fn);
      });
      if (hasLocked) sherlockHost.attach(instance, this.service);
    }
  }

  onApplicationShutdown(): void {
    sherlockHost.stopped(this.service);
  }
}
