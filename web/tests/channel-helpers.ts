/**
 * Helpers shared by the channel tests (channel.test.ts, rtc.test.ts): waiting for promise
 * reactions and conditions, filled frames, and sends whose settling a test can watch.
 */

/** Let every pending promise reaction run. */
export const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Wait until `condition()` holds (at most 2 s). */
export async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met within 2 s");
    await flush();
  }
}

/** A frame of `size` bytes, each `fill`. */
export const bytes = (size: number, fill = 1): Uint8Array => new Uint8Array(size).fill(fill);

/** A send and whether it has settled yet. */
export function track(sending: Promise<void>): { done: () => boolean; result: Promise<unknown> } {
  let settled = false;
  const result = sending.then(
    () => {
      settled = true;
      return "sent";
    },
    (exc: unknown) => {
      settled = true;
      return exc;
    },
  );
  return { done: () => settled, result };
}
