/**
 * Bounded, abortable waits: every wait in the client and its transports ends when its promise
 * settles, when its `AbortSignal` aborts, or when its time is up, whichever comes first.
 */

import { StoppedError } from "../errors";

/** A bounded wait expired. */
export class WaitTimeout extends Error {
  override name = "WaitTimeout";
}

/** The error a wait rejects with once `signal` is aborted: its reason, or a `StoppedError`. */
export function stopped(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new StoppedError("stopped");
}

/**
 * `promise`, unless `signal` aborts first (rejects with its reason) or `timeoutMs` passes
 * (rejects with `timeoutError()`, by default `new WaitTimeout` naming `what`). Timers and
 * listeners are always cleaned up; a NaN timeout is a `RangeError`, a negative one expires at once.
 */
export function bounded<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  timeoutMs = Infinity,
  what = "wait",
  timeoutError: () => Error = () => new WaitTimeout(`${what}: no answer within ${Math.round(timeoutMs)} ms`),
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (Number.isNaN(timeoutMs)) {
      reject(new RangeError(`${what}: the timeout is NaN`));
      return;
    }
    if (signal?.aborted) {
      reject(stopped(signal));
      return;
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const cleanup = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    const onAbort = (): void => {
      cleanup();
      reject(stopped(signal as AbortSignal));
    };
    signal?.addEventListener("abort", onAbort);
    if (Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        cleanup();
        reject(timeoutError());
      }, Math.max(0, timeoutMs));
    }
    promise.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}

/** Wait `ms` milliseconds, or reject as soon as `signal` aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return bounded(new Promise<void>(() => undefined), signal, ms).catch((exc: unknown) => {
    if (!(exc instanceof WaitTimeout)) throw exc;
  });
}
