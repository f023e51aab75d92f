// Built-in model architectures for the code-free task form, as portable model documents
// ("disco.model/1"), mirroring src/disco/models/architectures.py: for the same input and number of
// classes each builds the document Python's architecture gives (descriptions included), which
// web/tests/shared-lists.test.ts checks against tests/vectors/shared_lists.json. "dense" is the
// form's own; its documents are pinned there too.

export type Layer = Record<string, unknown> & { type: string };

/** A portable model document, as the server's task schema expects it. */
export interface ModelDoc {
  format: "disco.model/1";
  input_shape: number[];
  layers: Layer[];
  loss: "categorical_crossentropy" | "binary_crossentropy" | "mse";
  description: string;
}

export type ArchitectureId = "mnist_cnn" | "cifar10_cnn" | "lus_covid_cnn" | "dense";

/** The choices offered in the form, with a plain description and the data type they fit. */
export const ARCHITECTURES: { id: ArchitectureId; label: string; fits: "image" | "tabular"; about: string }[] = [
  {
    id: "mnist_cnn",
    label: "Small image network",
    fits: "image",
    about: "Like the MNIST task: two 5×5 convolutions, pooling, a dense layer of 32. Good for small greyscale images.",
  },
  {
    id: "lus_covid_cnn",
    label: "Compact image network",
    fits: "image",
    about: "Like the lung ultrasound task: two 3×3 convolution and pooling blocks. Fast on larger images (e.g. 100×100).",
  },
  {
    id: "cifar10_cnn",
    label: "Mobile image network",
    fits: "image",
    about: "Like the CIFAR-10 task: a MobileNet-style network with batch normalisation. For colour photos.",
  },
  {
    id: "dense",
    label: "Dense network for tables",
    fits: "tabular",
    about: "Fully connected layers 32-16, sized to your columns and answers.",
  },
];

function head(classes: number): { layers: Layer[]; loss: ModelDoc["loss"] } {
  return classes === 2
    ? { layers: [{ type: "dense", units: 1, activation: "sigmoid" }], loss: "binary_crossentropy" }
    : {
        layers: [{ type: "dense", units: classes, activation: "softmax" }],
        loss: "categorical_crossentropy",
      };
}

/** The reference DISCO MNIST CNN: conv 8, conv 16, pool, dropout, dense 32, softmax. */
export function mnistCnn(h: number, w: number, c: number, classes: number): ModelDoc {
  return {
    format: "disco.model/1",
    input_shape: [h, w, c],
    layers: [
      { type: "conv2d", filters: 8, kernel_size: [5, 5], activation: "relu" },
      { type: "conv2d", filters: 16, kernel_size: [5, 5], activation: "relu" },
      { type: "max_pool2d", pool_size: [2, 2] },
      { type: "dropout", rate: 0.25 },
      { type: "flatten" },
      { type: "dense", units: 32, activation: "relu" },
      { type: "dropout", rate: 0.25 },
      { type: "dense", units: classes, activation: "softmax" },
    ],
    loss: "categorical_crossentropy",
    description: "Conv8(5x5)-Conv16(5x5)-MaxPool2-Dropout.25-Dense32-Dropout.25-Dense, softmax.",
  };
}

function separable(filters: number, stride: number): Layer[] {
  return [
    {
      type: "depthwise_conv2d",
      kernel_size: [3, 3],
      strides: [stride, stride],
      padding: "same",
      use_bias: false,
    },
    { type: "batch_norm" },
    { type: "activation", activation: "relu6" },
    { type: "conv2d", filters, kernel_size: [1, 1], use_bias: false },
    { type: "batch_norm" },
    { type: "activation", activation: "relu6" },
  ];
}

/** MobileNet-v1-style CNN of width 0.25, random initialisation. */
export function cifar10Cnn(h: number, w: number, c: number, classes: number): ModelDoc {
  return {
    format: "disco.model/1",
    input_shape: [h, w, c],
    layers: [
      { type: "conv2d", filters: 8, kernel_size: [3, 3], strides: [2, 2], padding: "same", use_bias: false },
      { type: "batch_norm" },
      { type: "activation", activation: "relu6" },
      ...separable(16, 1),
      ...separable(32, 2),
      ...separable(32, 1),
      ...separable(64, 2),
      { type: "global_avg_pool2d" },
      { type: "dropout", rate: 0.25 },
      { type: "dense", units: classes, activation: "softmax" },
    ],
    loss: "categorical_crossentropy",
    description:
      "MobileNet-v1-style CNN, width 0.25: conv 8 stride 2 and four depthwise-separable " +
      "blocks (16, 32, 32, 64) with batch norm and ReLU6, global average pooling, dense " +
      "softmax. Trained from a random initialisation: no pretrained weights are used.",
  };
}

/** Two conv + max-pool blocks, then a dense softmax. */
export function lusCovidCnn(h: number, w: number, c: number, classes: number): ModelDoc {
  return {
    format: "disco.model/1",
    input_shape: [h, w, c],
    layers: [
      { type: "conv2d", filters: 8, kernel_size: [3, 3], activation: "relu" },
      { type: "max_pool2d", pool_size: [2, 2] },
      { type: "conv2d", filters: 16, kernel_size: [3, 3], activation: "relu" },
      { type: "max_pool2d", pool_size: [2, 2] },
      { type: "flatten" },
      { type: "dense", units: classes, activation: "softmax" },
    ],
    loss: "categorical_crossentropy",
    description: "Conv8(3x3)-MaxPool2-Conv16(3x3)-MaxPool2-Dense softmax.",
  };
}

/** A dense network 32-16 for `inputs` columns: sigmoid for two answers, softmax for more. */
export function denseNet(inputs: number, classes: number): ModelDoc {
  const out = head(classes);
  return {
    format: "disco.model/1",
    input_shape: [inputs],
    layers: [
      { type: "dense", units: 32, activation: "relu" },
      { type: "dense", units: 16, activation: "relu" },
      ...out.layers,
    ],
    loss: out.loss,
    description: `MLP 32-16-${classes === 2 ? 1 : classes} with ReLU.`,
  };
}

/** The model document of a built-in architecture for the given input and number of classes. */
export function buildArchitecture(
  id: ArchitectureId,
  input: { height: number; width: number; channels: number; columns: number },
  classes: number,
): ModelDoc {
  const { height: h, width: w, channels: c } = input;
  switch (id) {
    case "mnist_cnn":
      return mnistCnn(h, w, c, classes);
    case "cifar10_cnn":
      return cifar10Cnn(h, w, c, classes);
    case "lus_covid_cnn":
      return lusCovidCnn(h, w, c, classes);
    case "dense":
      return denseNet(input.columns, classes);
  }
}
