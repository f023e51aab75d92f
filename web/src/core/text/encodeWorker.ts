/**
 * The tokenizing worker of `encodeText.ts`: loads a task's tokenizer from its bytes (once per
 * digest) and encodes the texts the page sends, one after the other, off the page's thread.
 */
import type { EncodeReply, EncodeRequest } from "./encodeText";
import { Tokenizer } from "./tokenizer";

interface WorkerScope {
  onmessage: ((event: MessageEvent<EncodeRequest>) => void) | null;
  postMessage(message: EncodeReply, transfer?: Transferable[]): void;
}

const scope = globalThis as unknown as WorkerScope;
const loaded = new Map<string, Promise<Tokenizer>>();

function tokenizerOf(request: EncodeRequest): Promise<Tokenizer> {
  let found = loaded.get(request.digest);
  if (found === undefined) {
    if (request.tokenizer === null) return Promise.reject(new Error("no tokenizer of that digest here"));
    found = Tokenizer.fromBytes(request.tokenizer);
    found.catch(() => loaded.delete(request.digest));
    loaded.set(request.digest, found);
  }
  return found;
}

scope.onmessage = (event) => {
  const request = event.data;
  tokenizerOf(request)
    .then((tokenizer) => {
      const ids = Int32Array.from(tokenizer.encode(request.text));
      scope.postMessage({ id: request.id, ids }, [ids.buffer]);
    })
    .catch((error: unknown) => {
      scope.postMessage({ id: request.id, error: error instanceof Error ? error.message : String(error) });
    });
};
