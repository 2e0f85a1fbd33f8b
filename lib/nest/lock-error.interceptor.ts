import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { catchError, from, mergeMap, type Observable, throwError } from 'rxjs';
import { LockError } from '../sherlock.js';
import type { ClosableResponse } from './lock.interceptor.js';
import {
  describeLockError,
  httpExceptionOf,
  type LockErrorDescription,
  LockGraphQLError,
  lockErrorBody,
  type ResolvedLockErrorMapping,
} from './lock-error-mapping.js';
import { nestMessages } from './sherlock.messages.js';

/** The mapping interceptors of one application (one per `SherlockModule` registration). */
interface AppMappings {
  readonly all: LockErrorInterceptor[];
  /** The registration whose `errorMapping` was given explicitly, if one was. */
  explicit: LockErrorInterceptor | undefined;
}

/** Keyed by the application's `ModulesContainer`: one entry per Nest application. */
const apps = new WeakMap<object, AppMappings>();

/**
 * Maps the lock errors of every handler (HTTP on Express or Fastify, GraphQL, microservices,
 * WebSockets) to what the transport expects, wherever the lock was taken (`@Locked`, a
 * `LockService` call in a service the handler called): see docs/errors.md. Other errors, and the
 * exceptions you throw yourself, pass through untouched. Each `SherlockModule` registration
 * installs one as a global interceptor; one of them answers for the application: the
 * registration that set `errorMapping`, else the first one.
 */
@Injectable()
export class LockErrorInterceptor implements NestInterceptor {
  private readonly app: AppMappings;

  /** @internal built by SherlockModule from the validated `errorMapping` option. */
  constructor(
    /** The registration's name. */
    readonly registration: string,
    private readonly mapping: ResolvedLockErrorMapping,
    explicit: boolean,
    /** What identifies the application (its `ModulesContainer`). */
    appKey: object,
  ) {
    let app = apps.get(appKey);
    if (!app) {
      app = { all: [], explicit: undefined };
      apps.set(appKey, app);
    }
    if (explicit) {
      if (app.explicit) {
        throw new TypeError(
          nestMessages.errorMappingTwice(app.explicit.registration, this.registration),
        );
      }
      app.explicit = this;
    }
    app.all.push(this);
    this.app = app;
  }

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const owner = this.app.explicit ?? this.app.all[0];
    if (owner !== this || !this.mapping.enabled) return next.handle();
    return next
      .handle()
      .pipe(
        catchError((err: unknown) =>
          err instanceof LockError
            ? from(this.map(err, context)).pipe(mergeMap((mapped) => throwError(() => mapped)))
            : throwError(() => err),
        ),
      );
  }

  /** What to throw instead of `error`: the custom mapping's answer, else the default one. */
  protected async map(error: LockError, execution: ExecutionContext): Promise<unknown> {
    const transport = execution.getType<string>();
    const description = describeLockError(error, this.mapping.unavailableRetryAfter);
    if (this.mapping.map) {
      const custom = this.mapping.map(error, { transport, execution, description });
      if (custom !== undefined) return custom;
    }
    if (!description) return error;
    switch (transport) {
      case 'http':
        this.setRetryAfter(execution, description);
        return httpExceptionOf(description, error);
      case 'graphql':
        return new LockGraphQLError(description, { cause: error });
      case 'rpc': {
        // Loaded only here: a handler of this transport means the package is installed.
        const { RpcException } = await import('@nestjs/microservices');
        return new RpcException({ status: 'error', ...lockErrorBody(description) });
      }
      case 'ws': {
        const { WsException } = await import('@nestjs/websockets');
        return new WsException({ status: 'error', ...lockErrorBody(description) });
      }
      default:
        return error;
    }
  }

  /** `Retry-After` on the HTTP response (Express's `res`, Fastify's `reply`), when known. */
  private setRetryAfter(execution: ExecutionContext, description: LockErrorDescription): void {
    if (description.retryAfter === undefined) return;
    const response = execution
      .switchToHttp()
      .getResponse<ClosableResponse & { headersSent?: boolean; sent?: boolean }>();
    if (response.headersSent === true || response.sent === true) return;
    const value = String(description.retryAfter);
    if (typeof response.header === 'function') response.header('Retry-After', value);
    else response.setHeader?.('Retry-After', value);
  }
}
