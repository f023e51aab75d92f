// The model library: trained models kept in this browser (IndexedDB), never sent anywhere.
import type { Task } from "../../core/task";

/** One saved model: the task it belongs to and its weights as safetensors bytes. */
export interface SavedModel {
  id: string;
  taskId: string;
  taskTitle: string;
  task: Task;
  savedAt: number;
  /** How it was trained, in words ("alone", "with others"). */
  how: string;
  /** Validation or test accuracy when known (0..1). */
  accuracy: number | null;
  /** What `accuracy` was measured on, in words ("on your 100 test samples"); older entries lack it. */
  accuracyNote?: string;
  /** A text model's perplexity on the text kept aside (with `accuracyNote` saying which); else absent. */
  perplexity?: number;
  sizeBytes: number;
  safetensors: Uint8Array;
}

const DB_NAME = "disco";
const STORE = "models";

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => {
      const db = req.result;
      if (!db.objectStoreNames.contains(STORE)) db.createObjectStore(STORE, { keyPath: "id" });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(new Error(`cannot open the model library: ${req.error?.message}`));
  });
}

async function run<T>(
  mode: IDBTransactionMode,
  op: (store: IDBObjectStore) => IDBRequest<T>,
): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = op(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onerror = () => reject(new Error(`model library: ${tx.error?.message ?? "failed"}`));
      tx.onabort = () => reject(new Error(`model library: ${tx.error?.message ?? "aborted"}`));
    });
  } finally {
    db.close();
  }
}

/** Every saved model, newest first. */
export async function listModels(): Promise<SavedModel[]> {
  const all = await run("readonly", (s) => s.getAll() as IDBRequest<SavedModel[]>);
  return all.sort((a, b) => b.savedAt - a.savedAt);
}

/** One saved model, or undefined. */
export async function getModel(id: string): Promise<SavedModel | undefined> {
  return run("readonly", (s) => s.get(id) as IDBRequest<SavedModel | undefined>);
}

/** Save a model; returns its id. */
export async function saveModel(
  entry: Omit<SavedModel, "id" | "savedAt" | "sizeBytes">,
): Promise<SavedModel> {
  const savedAt = Date.now();
  const model: SavedModel = {
    ...entry,
    task: JSON.parse(JSON.stringify(entry.task)) as Task, // a plain copy: IndexedDB clones it
    id: `${entry.taskId}-${savedAt.toString(36)}-${Math.random().toString(36).slice(2, 6)}`,
    savedAt,
    sizeBytes: entry.safetensors.byteLength,
  };
  await run("readwrite", (s) => s.put(model));
  return model;
}

/** Delete a saved model. */
export async function deleteModel(id: string): Promise<void> {
  await run("readwrite", (s) => s.delete(id));
}
