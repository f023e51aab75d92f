/**
 * Model files checked in the browser (core/models/validate.ts) and the server's 422 problems
 * mapped onto the create-task form (app/composables/taskFormErrors.ts): plain words that name the
 * layer or the path, never the validation library's jargon. Every catalog model passes, as it
 * does in Python (`fixtures/catalog.json`).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { checkModel, summarize } from "../src/core/models/validate";
import type { Task } from "../src/core/task";
import { emptyForm } from "../src/app/composables/taskForm";
import { checkModelFile, modelFit } from "../src/app/composables/taskFormBuild";
import { pathText, plainMessage, serverErrors } from "../src/app/composables/taskFormErrors";

const catalog = (
  JSON.parse(readFileSync(new URL("./fixtures/catalog.json", import.meta.url), "utf8")) as { task: Task }[]
).map((e) => e.task);
const mnist = catalog.find((t) => t.id === "mnist") as Task;

/** The mnist model as a fresh plain document, to break one thing at a time. */
function mnistModel(): Record<string, unknown> & { layers: Record<string, unknown>[] } {
  return JSON.parse(JSON.stringify(mnist.model)) as Record<string, unknown> & { layers: Record<string, unknown>[] };
}

const JARGON = /Field required|Input should|Input tag|discriminator|tuple|undefined|\[object/;

describe("checkModel", () => {
  it.each(catalog.map((t) => [t.id, t] as const))("accepts the catalog model of %s", (_id, task) => {
    const t = task.training;
    const inputShape =
      t.data_type === "image"
        ? [t.image_height as number, t.image_width as number, t.channels]
        : t.data_type === "text"
          ? [t.max_sequence_length as number]
          : [t.input_columns.length];
    expect(checkModel(task.model, { inputShape, labels: t.labels.length || undefined })).toEqual([]);
  });

  it("names the layer and the setting", () => {
    const model = mnistModel();
    model.layers[5] = { ...model.layers[5], units: 0 };
    expect(checkModel(model)).toEqual(["layer 6 (dense_1): units must be a whole number above 0, not 0."]);
  });

  it("explains a file that is not a model at all", () => {
    const problems = checkModel({ layers: "nope" });
    expect(problems).toEqual([
      'The file does not say it is a disco model: add "format": "disco.model/1".',
      "input_shape is missing: write [height, width, channels] for images or [number of columns] for tables.",
      "loss is missing: use one of categorical_crossentropy, binary_crossentropy, mse, next_token_crossentropy.",
      "layers must be a list of layers, [ … ], not 'nope'.",
    ]);
    expect(checkModel([1, 2])).toEqual(["This file is not a disco model: it should hold one JSON object, { … }."]);
  });

  it("lists the known layer types for an unknown one", () => {
    const model = mnistModel();
    model.layers.splice(4, 0, { type: "transformer", heads: 4 });
    expect(checkModel(model)).toEqual([
      "layer 5: unknown layer type 'transformer' (known: dense, conv2d, depthwise_conv2d, max_pool2d, avg_pool2d, global_avg_pool2d, batch_norm, dropout, flatten, activation, token_embedding, transformer_block, layer_norm, tied_output).",
    ]);
  });

  it("reports each broken setting of each layer", () => {
    const model = mnistModel();
    model.layers[0] = { ...model.layers[0], kernel_size: "x", foo: 1 };
    model.layers[1] = { ...model.layers[1], activation: "swish" };
    model.layers[3] = { type: "dropout" };
    model.layers[4] = { type: "flatten", name: "Flat!" };
    const problems = checkModel(model);
    expect(problems).toEqual([
      "layer 1 (conv2d_1): kernel_size must be a whole number above 0, or two of them like [3, 3], not 'x'.",
      "layer 1 (conv2d_1): 'foo' is not a setting of conv2d layers (settings: filters, kernel_size, strides, padding, activation, use_bias).",
      "layer 2 (conv2d_2): activation must be one of linear, relu, relu6, sigmoid, tanh, softmax, gelu, not 'swish'.",
      "layer 4 (dropout_1): rate is missing; it must be a number from 0 up to (but not including) 1.",
      "layer 5 (flatten_1): name must be up to 64 lowercase letters, digits or '_', not 'Flat!'.",
    ]);
    for (const p of problems) expect(p).not.toMatch(JARGON);
  });

  it("follows the shapes through the layers", () => {
    const model = mnistModel();
    model.layers[1] = { ...model.layers[1], kernel_size: [30, 30] };
    expect(checkModel(model)).toEqual([
      "layer 2 (conv2d_2): its 30×30 window is larger than its 24×24 input; use padding 'same' or a smaller window.",
    ]);
    const noFlatten = mnistModel();
    noFlatten.layers.splice(4, 1);
    expect(checkModel(noFlatten)[0]).toMatch(/^layer 5 \(dense_1\): dense needs a flat input but gets \[10, 10, 16\]; add a flatten/);
  });

  it("checks the model against the task: input, answers, loss", () => {
    const model = mnistModel();
    expect(checkModel(model, { inputShape: [32, 32, 3], labels: 3 })).toEqual([
      "input_shape is [28, 28, 1], but this task has 32×32 colour images: use [32, 32, 3].",
      "layer 8 (dense_2): units is 10, but the task has 3 answers: make it 3.",
    ]);
    const sigmoid = { ...model, loss: "binary_crossentropy" };
    expect(checkModel(sigmoid)[0]).toMatch(/^loss binary_crossentropy needs a last layer with activation sigmoid and 1 unit; the last one, layer 8 \(dense_2\)/);
    expect(checkModel({ ...model, loss: "hinge" })).toEqual([
      "loss 'hinge' is not available: use one of categorical_crossentropy, binary_crossentropy, mse, next_token_crossentropy.",
    ]);
  });

  it("sizes a model that passed", () => {
    expect(summarize(mnist.model)).toEqual({ layers: 8, inputShape: [28, 28, 1], outputs: 10 });
  });
});

describe("the create-task form", () => {
  it("checks an uploaded file against what the form says", () => {
    const form = { ...emptyForm(), labels: "a, b, c", image_width: 28, image_height: 28 };
    expect(modelFit(form)).toEqual({ inputShape: [28, 28, 1], labels: 3 });
    const { model, problems } = checkModelFile(JSON.stringify(mnist.model), modelFit(form));
    expect(model).toBeNull();
    expect(problems).toEqual(["layer 8 (dense_2): units is 10, but the task has 3 answers: make it 3."]);
    expect(checkModelFile("{oops").problems[0]).toMatch(/^This file is not valid JSON/);
  });

  it("puts pydantic's words into plain ones", () => {
    expect(plainMessage("Field required")).toBe("is missing");
    expect(plainMessage("Input should be a valid tuple")).toBe("should be a list");
    expect(plainMessage("Input should be greater than 0")).toBe("must be greater than 0");
    expect(plainMessage("Input should be 'adam' or 'sgd'")).toBe("should be 'adam' or 'sgd'");
    expect(plainMessage("Value error, a tabular task needs an output_column")).toBe("a tabular task needs an output_column");
    expect(
      plainMessage(
        "Input tag 'transformer' found using 'type' does not match any of the expected tags: 'dense', 'conv2d', 'flatten'",
      ),
    ).toBe("unknown layer type 'transformer' (known: dense, conv2d, flatten)");
    expect(plainMessage("must be greater than 0")).toBe("must be greater than 0"); // already plain
  });

  it("shows each model problem with its path, and the others on their fields", () => {
    const { errors, rest } = serverErrors([
      { field: "model.input_shape", message: "Field required" },
      { field: "model.layers", message: "Input should be a valid tuple" },
      { field: "model.layers.5.dense.units", message: "Input should be greater than 0" },
      { field: "training.epochs", message: "Input should be a valid integer, unable to parse string" },
      { field: "task", message: "the model has 5 outputs but the task has 10 labels" },
      { field: "training.optimizer", message: "should be 'adam' or 'sgd'" },
    ]);
    expect(errors.model?.split("\n")).toEqual([
      "model → input_shape: is missing",
      "model → layers: should be a list",
      "model → layers → 5 → units: must be greater than 0",
      "The model has 5 outputs but the task has 10 labels",
    ]);
    expect(errors.epochs).toBe("Should be a whole number.");
    expect(rest).toEqual(["training → optimizer: should be 'adam' or 'sgd'"]);
    expect(pathText("model.layers.5.dense.units")).toBe("model → layers → 5 → units");
    for (const text of [...Object.values(errors), ...rest]) expect(text).not.toMatch(JARGON);
  });
});
