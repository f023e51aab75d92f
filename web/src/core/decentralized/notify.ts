/**
 * Small helpers of the peer code: a `Notifier` that wakes whoever waits on it (Python's
 * `asyncio.Event` as the peer uses it: clear, then wait for the next change), a `Deferred`
 * promise, and peer-id order (Python's `<` on strings: by code points).
 */

/** Wakes every waiter at the next `notify()`; a wait started after it waits for the one after. */
export class Notifier {
  private wake: (() => void) | null = null;
  private woken: Promise<void> | null = null;

  /** Wake everyone waiting now. */
  notify(): void {
    const wake = this.wake;
    this.wake = null;
    this.woken = null;
    wake?.();
  }

  /** Resolves at the next `notify()`. */
  wait(): Promise<void> {
    this.woken ??= new Promise<void>((resolve) => (this.wake = resolve));
    return this.woken;
  }
}

/** A promise with its resolve and reject at hand. */
export class Deferred<T> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (error: Error) => void;
  /** Whether it has been resolved or rejected. */
  settled = false;

  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = (value) => {
        this.settled = true;
        resolve(value);
      };
      this.reject = (error) => {
        this.settled = true;
        reject(error);
      };
    });
    this.promise.catch(() => undefined); // a rejection nobody waits for is not an error
  }
}

/**
 * Order of two peer ids as Python compares strings (by Unicode code points; JavaScript's `<`
 * compares UTF-16 units, which differs for characters beyond U+FFFF): negative, 0 or positive.
 */
export function compareIds(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a.codePointAt(i) as number;
    const y = b.codePointAt(j) as number;
    if (x !== y) return x < y ? -1 : 1;
    i += x > 0xffff ? 2 : 1;
    j += y > 0xffff ? 2 : 1;
  }
  return (i < a.length ? 1 : 0) - (j < b.length ? 1 : 0);
}

/** `ids` sorted as Python's `sorted()` sorts strings (a new array). */
export function sortedIds(ids: Iterable<string>): string[] {
  return [...ids].sort(compareIds);
}
