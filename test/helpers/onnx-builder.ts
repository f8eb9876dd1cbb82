/**
 * Builds small ONNX graphs in tests (onnx-proto), so that end-to-end tests run a real onnxruntime
 * session on a model whose outputs are known exactly.
 */
import { onnx } from 'onnx-proto';

const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT64 = onnx.TensorProto.DataType.INT64;

export class GraphBuilder {
  readonly nodes: onnx.INodeProto[] = [];
  readonly initializers: onnx.ITensorProto[] = [];
  private counter = 0;

  constant(values: number[], dims: number[]): string {
    const name = `c${this.counter++}`;
    this.initializers.push({ name, dataType: FLOAT, dims, floatData: values });
    return name;
  }

  ints(values: number[]): string {
    const name = `i${this.counter++}`;
    this.initializers.push({ name, dataType: INT64, dims: [values.length], int64Data: values });
    return name;
  }

  op(opType: string, inputs: string[], output?: string): string {
    const out = output ?? `t${this.counter++}`;
    this.nodes.push({ opType, input: inputs, output: [out], name: `n${this.counter++}` });
    return out;
  }

  /** Channels [from, to) of an NCHW tensor. */
  sliceChannels(input: string, from: number, to: number, output?: string): string {
    return this.op('Slice', [input, this.ints([from]), this.ints([to]), this.ints([1])], output);
  }

  build(inputName: string, inputChannels: number, outputs: { name: string; channels: number }[]): Uint8Array {
    const vi = (name: string, c: number): onnx.IValueInfoProto => ({
      name,
      type: { tensorType: { elemType: FLOAT, shape: { dim: [{ dimParam: 'B' }, { dimValue: c }, { dimParam: 'H' }, { dimParam: 'W' }] } } },
    });
    const model: onnx.IModelProto = {
      irVersion: 8,
      producerName: 'cellbridge-tests',
      opsetImport: [{ domain: '', version: 17 }],
      graph: {
        name: 'synthetic',
        node: this.nodes,
        initializer: this.initializers,
        input: [vi(inputName, inputChannels)],
        output: outputs.map((o) => vi(o.name, o.channels)),
      },
    };
    return onnx.ModelProto.encode(model).finish();
  }
}
