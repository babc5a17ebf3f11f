import { PlatformError } from '../../core/errors.js';

/** What `exposeTensor` did: the model's bytes to load and the graph output to read. */
export interface ExposedTensor {
  model: Uint8Array;
  output: string;
}

/** The subset of onnx-proto's generated types the patch touches. */
interface Graph {
  node: { input: string[]; output: string[]; opType?: string | null }[];
  input: { name?: string | null }[];
  output: { name?: string | null }[];
  initializer: { name?: string | null }[];
}

const floatElementType = 1;

/**
 * Make an inner tensor of an ONNX model a graph output, in memory, so that an embedder can read features (a pooled
 * layer) rather than the model's final scores. `tensor` names a tensor a node produces. A quantised tensor (the ONNX
 * Runtime quantiser's naming: `X_quantized` with `X_scale` and `X_zero_point`) is read through an added
 * `DequantizeLinear` node, as floats; `X` may name it too.
 *
 * @example
 * // mobilenetv2-12-int8: the 1280-d average-pooled features instead of the 1000 class scores.
 * const { model, output } = await exposeTensor(await readFile('mobilenetv2-12-int8.onnx'), '464');
 */
export async function exposeTensor(modelBytes: Uint8Array, tensor: string): Promise<ExposedTensor> {
  const { onnx } = (await import('onnx-proto')).default;
  let model: InstanceType<typeof onnx.ModelProto>;
  try {
    model = onnx.ModelProto.decode(modelBytes);
  } catch (err) {
    throw new PlatformError('BAD_REQUEST', `the embedding model is not an ONNX model: ${String(err)}`, { cause: err });
  }
  const graph = model.graph as unknown as Graph | null | undefined;
  if (graph === null || graph === undefined) throw new PlatformError('BAD_REQUEST', 'the embedding model has no graph');
  if (graph.output.some((output) => output.name === tensor)) return { model: modelBytes, output: tensor };

  const produced = new Set(graph.node.flatMap((node) => node.output));
  const known = new Set([
    ...produced,
    ...graph.initializer.map((initializer) => initializer.name ?? ''),
    ...graph.input.map((input) => input.name ?? ''),
  ]);
  const base = tensor.endsWith('_quantized') ? tensor.slice(0, -'_quantized'.length) : tensor;
  const quantised = `${base}_quantized`;
  const scale = `${base}_scale`;
  const zeroPoint = `${base}_zero_point`;

  let output: string;
  if (produced.has(quantised) && known.has(scale) && known.has(zeroPoint)) {
    output = uniqueName(`${base}_features`, known);
    graph.node.push(
      onnx.NodeProto.create({
        name: uniqueName(`${base}_features_dequantize`, known),
        opType: 'DequantizeLinear',
        input: [quantised, scale, zeroPoint],
        output: [output],
      }),
    );
  } else if (produced.has(tensor)) {
    output = tensor;
  } else {
    throw new PlatformError(
      'BAD_REQUEST',
      `the embedding model has no tensor "${tensor}" produced by a node (for a quantised model, name the tensor ` +
        'before quantisation or its X_quantized form)',
    );
  }
  graph.output.push(
    onnx.ValueInfoProto.create({
      name: output,
      type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({ elemType: floatElementType }) }),
    }),
  );
  return { model: onnx.ModelProto.encode(model).finish(), output };
}

function uniqueName(wanted: string, taken: ReadonlySet<string>): string {
  let name = wanted;
  for (let i = 1; taken.has(name); i++) name = `${wanted}_${i}`;
  return name;
}
