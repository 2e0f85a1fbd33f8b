import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import {
  APP_INTERCEPTOR,
  DiscoveryModule,
  DiscoveryService,
  MetadataScanner,
  ModuleRef,
  ModulesContainer,
} from '@nestjs/core';
import { resolveErrorMapping } from './lock-error-mapping.js';
import { LockErrorInterceptor } from './lock-error.interceptor.js';
import { LockService } from './lock.service.js';
import {
  DEFAULT_REGISTRATION,
  getLockServiceToken,
  getSherlockOptionsToken,
} from './sherlock.constants.js';
import { SherlockExplorer } from './sherlock.explorer.js';
import { SherlockHealthIndicator } from './sherlock.health.js';
import { SherlockObserver } from './sherlock.observer.js';
import type {
  SherlockModuleAsyncOptions,
  SherlockModuleOptions,
  SherlockModuleRegistration,
  SherlockOptionsFactory,
} from './sherlock.interfaces.js';
import { nestMessages } from './sherlock.messages.js';
import { createRegistration } from './sherlock.options.js';

/**
 * Distributed locks for a Nest application: provides `LockService` (and makes `@Locked` work)
 * for one backend. Register it once per backend; give extra registrations a `name`.
 *
 * @example
 * @Module({
 *   imports: [
 *     SherlockModule.forRoot({ backend: 'redis', connection: process.env.REDIS_URL, isGlobal: true }),
 *     SherlockModule.forRoot({ name: 'audit', backend: 'etcd', connection: 'http://etcd:2379' }),
 *   ],
 * })
 * export class AppModule {}
 */
@Module({})
export class SherlockModule {
  /** Registers the module with options known up front. */
  static forRoot(options: SherlockModuleOptions & SherlockModuleRegistration): DynamicModule {
    const { name, isGlobal, ...settings } = options;
    return this.build(
      { name, isGlobal },
      [],
      [{ provide: getSherlockOptionsToken(name), useValue: settings }],
    );
  }

  /**
   * Registers the module with options built by a factory or class, typically from
   * `ConfigService`.
   *
   * @example
   * SherlockModule.forRootAsync({
   *   imports: [ConfigModule],
   *   inject: [ConfigService],
   *   useFactory: (config: ConfigService) => ({
   *     backend: config.get('SHERLOCK_BACKEND', 'memory'),
   *     connection: config.get('REDIS_URL'),
   *   }),
   * })
   */
  static forRootAsync(options: SherlockModuleAsyncOptions): DynamicModule {
    const {
      name,
      isGlobal,
      imports = [],
      useFactory,
      inject = [],
      useClass,
      useExisting,
    } = options;
    const ways = [useFactory, useClass, useExisting].filter((way) => way !== undefined);
    if (ways.length !== 1) throw new TypeError(nestMessages.asyncFactory());
    const token = getSherlockOptionsToken(name);
    const providers: Provider[] = [];
    if (useFactory) {
      providers.push({ provide: token, useFactory, inject });
    } else {
      const factoryClass = (useClass ?? useExisting)!;
      if (useClass) providers.push({ provide: factoryClass, useClass });
      providers.push({
        provide: token,
        useFactory: (factory: SherlockOptionsFactory) => factory.createSherlockOptions(),
        inject: [factoryClass],
      });
    }
    return this.build({ name, isGlobal }, imports, providers);
  }

  private static build(
    { name, isGlobal }: SherlockModuleRegistration,
    imports: NonNullable<DynamicModule['imports']>,
    optionProviders: Provider[],
  ): DynamicModule {
    const registration = name ?? DEFAULT_REGISTRATION;
    const serviceToken = getLockServiceToken(name);
    const explorerToken = `SherlockExplorer:${registration}`;
    return {
      module: SherlockModule,
      global: isGlobal ?? false,
      imports: [DiscoveryModule, ...imports],
      providers: [
        ...optionProviders,
        {
          provide: serviceToken,
          useFactory: (options: SherlockModuleOptions) =>
            new LockService(registration, createRegistration(options)),
          inject: [getSherlockOptionsToken(name)],
        },
        {
          // Lock errors of every handler, mapped once for the application (docs/errors.md).
          provide: APP_INTERCEPTOR,
          useFactory: (options: SherlockModuleOptions, modules: ModulesContainer) =>
            new LockErrorInterceptor(
              registration,
              resolveErrorMapping(options.errorMapping),
              options.errorMapping !== undefined,
              modules,
            ),
          inject: [getSherlockOptionsToken(name), ModulesContainer],
        },
        {
          provide: explorerToken,
          useFactory: (discovery: DiscoveryService, scanner: MetadataScanner, ref: ModuleRef) =>
            new SherlockExplorer(discovery, scanner, ref),
          inject: [DiscoveryService, MetadataScanner, ModuleRef],
        },
        {
          provide: `SherlockObserver:${registration}`,
          useFactory: (service: LockService, moduleRef: ModuleRef) =>
            new SherlockObserver(service, moduleRef),
          inject: [serviceToken, ModuleRef],
        },
        SherlockHealthIndicator,
      ],
      exports: [serviceToken, SherlockHealthIndicator],
    };
  }
}
