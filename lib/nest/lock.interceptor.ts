import {
  type CallHandler,
  ConflictException,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { catchError, EMPTY, finalize, type Observable, throwError } from 'rxjs';
import { LockAbortedError } from '../sherlock.js';
import { lockContext } from './lock-context.js';
import { isBusyError } from './lock.service.js';

/** What `LockInterceptor` needs of an HTTP response (Node's, Express's or Fastify's). */
export interface ClosableResponse {
  writableEnded?: boolean;
  once(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
  setHeader?(name: string, value: string): unknown;
  header?(name: string, value: string): unknown;
  raw?: ClosableResponse;
}

/**
 * Connects `@Locked` handlers to their execution context; `@Locked` applies it for you. For
 * HTTP it cancels the wait for a lock when the client disconnects (no lock is taken for a
 * request nobody will read) and answers a busy lock with 409 Conflict, a JSON body naming the
 * lock and, when the lock has an expiry, a `Retry-After` header. The lock itself is taken by the
 * `@Locked` method wrapper, after pipes (so a name function sees the transformed arguments):
 * exactly one lock (or one set of locks) per call. Members are protected so that you can subclass it.
 */
@Injectable()
export class LockInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const response = this.rawResponse(context);
    const controller = new AbortController();
    const onClose = () => {
      if (!response.writableEnded) controller.abort(new Error('the client closed the connection'));
    };
    response.once('close', onClose);
    const store = lockContext.getStore();
    return lockContext
      .run({ held: store?.held ?? new Map(), signal: controller.signal }, () => next.handle())
      .pipe(
        catchError((err: unknown) =>
          // The client is gone and its wait was cancelled: there is nobody to answer.
          controller.signal.aborted && err instanceof LockAbortedError
            ? EMPTY
            : throwError(() => this.mapError(err, context)),
        ),
        finalize(() => response.off('close', onClose)),
      );
  }

  /** The Node response (Express's `res`, Fastify's `reply.raw`). */
  protected rawResponse(context: ExecutionContext): ClosableResponse {
    const response = context.switchToHttp().getResponse<ClosableResponse>();
    return response.raw ?? response;
  }

  /**
   * Maps a busy lock to 409 Conflict with `Retry-After` (whole seconds, rounded up, from the
   * error's `retryAfter`: the holder's remaining time to live, else the lock's expire); other
   * errors pass through. For several names, the body names the lock that was busy.
   */
  protected mapError(err: unknown, context: ExecutionContext): unknown {
    if (!isBusyError(err)) return err;
    const { retryAfter } = err;
    const lock = err.member ?? err.lockName;
    if (typeof retryAfter === 'number') {
      const response = context.switchToHttp().getResponse<ClosableResponse>();
      const seconds = String(Math.max(1, Math.ceil(retryAfter / 1000)));
      if (response.header) response.header('Retry-After', seconds);
      else response.setHeader?.('Retry-After', seconds);
    }
    return new ConflictException({
      statusCode: 409,
      error: 'Conflict',
      message: `Lock '${lock}' is held by another request; try again later`,
      lock,
    });
  }
}
