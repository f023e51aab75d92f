/**
 * Tokenising off the page's thread. Encoding a text file of a few megabytes takes seconds (a
 * play of 130 kB about 0.2 s on a laptop, several times that on a phone), and a page that encodes
 * on its own thread is frozen meanwhile: no progress shown, no button answers, and a phone may
 * offer to close the page. `encodeText` hands the work to one Web Worker (`encodeWorker.ts`) that
 * loads the same tokenizer from the same bytes with the same code (`Tokenizer.fromBytes`), so the
 * ids are exactly those of `Tokenizer.encode` (tests/vectors/tokenizer.json; the browser tests
 * check that a browser and Python participants end with the same model).
 *
 * Text that is not valid Unicode is refused here, before any work is sent, with
 * `Tokenizer.encode`'s `DataError`. Where no worker can run (Node, the unit tests) or the worker
 * fails to start, the text is encoded on this thread, as before: slower for the page, the same ids.
 */
import { checkText, type Tokenizer } from "./tokenizer";

/** What the page asks of the worker: encode `text` with the tokenizer of these bytes. */
export interface EncodeRequest {
  id: number;
  /**
   * The tokenizer.json bytes (`Tokenizer.bytes`), sent with the first text of each tokenizer
   * only (null after: the worker keeps what it loaded), and their SHA-256.
   */
  tokenizer: Uint8Array | null;
  digest: string;
  text: string;
}

/** The worker's answer: the ids, or why it could not (the page then encodes the text itself). */
export type EncodeReply = { id: number; ids: Int32Array } | { id: number; error: string };

interface Waiting {
  resolve: (ids: Int32Array) => void;
  /** Encode on this thread instead (the worker failed). */
  here: () => void;
}

/** The worker: undefined until first needed, null where none can run. */
let worker: Worker | null | undefined;
/** The tokenizers (by digest) whose bytes the worker was sent. */
const sent = new Set<string>();
const waiting = new Map<number, Waiting>();
let nextId = 0;

/** Give up on the worker: every text it holds is encoded here, and later ones too. */
function abandon(): void {
  worker?.terminate();
  worker = null;
  const left = [...waiting.values()];
  waiting.clear();
  for (const w of left) w.here();
}

function theWorker(): Worker | null {
  if (worker !== undefined) return worker;
  if (typeof Worker === "undefined") return (worker = null);
  try {
    const w = new Worker(new URL("./encodeWorker.ts", import.meta.url), { type: "module", name: "disco-tokenizer" });
    w.onmessage = (event: MessageEvent<EncodeReply>) => {
      const reply = event.data;
      const asked = waiting.get(reply.id);
      if (asked === undefined) return;
      waiting.delete(reply.id);
      if ("ids" in reply) asked.resolve(reply.ids);
      else asked.here(); // this thread says what is wrong, with the error's own type
    };
    w.onerror = (event) => {
      event.preventDefault(); // the script could not load or run: encode here from now on
      abandon();
    };
    worker = w;
  } catch {
    worker = null; // workers forbidden here (a sandboxed page): encode on this thread
  }
  return worker;
}

/** The token ids of `text` (`tokenizer.encode`), computed in a Web Worker where there is one. */
export function encodeText(tokenizer: Tokenizer, text: string): Promise<Int32Array> {
  return new Promise((resolve, reject) => {
    checkText(text); // thrown here, it rejects the promise
    const here = () => {
      try {
        resolve(Int32Array.from(tokenizer.encode(text)));
      } catch (error) {
        reject(error);
      }
    };
    const w = theWorker();
    if (w === null) {
      here();
      return;
    }
    const id = nextId++;
    const bytes = sent.has(tokenizer.digest) ? null : tokenizer.bytes;
    const request: EncodeRequest = { id, tokenizer: bytes, digest: tokenizer.digest, text };
    try {
      w.postMessage(request);
    } catch {
      here(); // the text could not be sent (too large to copy?): encode it here
      return;
    }
    sent.add(tokenizer.digest);
    waiting.set(id, { resolve, here });
  });
}
