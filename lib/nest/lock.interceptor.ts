import {
  type CallHandler,
  type ExecutionContext,
  Injectable,
  type NestInterceptor,
} from '@nestjs/common';
import { catchError, EMPTY, finalize, type Observable, throwError } from 'rxjs';
import { LockAbortedError } from '../sherlock.js';
import { lockContext } from './lock-context.js';

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
 * request nobody will read). Lock errors are answered by the module's `LockErrorInterceptor`, on
 * every transport (409 for a busy lock, 503 for a server that is down: see docs/errors.md). The
 * lock itself is taken by the `@Locked` method wrapper, after pipes (so a name function sees the
 * transformed arguments): exactly one lock (or one set of locks) per call. Members are protected
 * so that you can subclass it.
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
   * What a `@Locked` HTTP handler's error becomes before the module's `LockErrorInterceptor`
   * answers it: the error itself. Override it to answer some errors your own way; to change the
   * mapping of every handler, use the module's `errorMapping` option instead.
   */
  protected mapError(err: unknown, _context: ExecutionContext): unknown {
    return err;
  }
}
