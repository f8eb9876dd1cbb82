/**
 * Reader and writer for NumPy `.npy` files (format 1.0/2.0/3.0, C order, little-endian float32/
 * float64/uint8/int32/int64/uint16). Used for reference tensors of models and recorded outputs.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export type NpyData = Float32Array | Float64Array | Uint8Array | Int32Array | Uint16Array | BigInt64Array;

export interface NpyArray {
  dtype: string;
  shape: number[];
  data: NpyData;
}

const MAGIC = '\x93NUMPY';

export function parseNpy(buf: Buffer): NpyArray {
  if (buf.length < 10 || buf.toString('latin1', 0, 6) !== MAGIC) throw new Error('not a .npy file (bad magic)');
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const headerStart = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', headerStart, headerStart + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new Error(`unreadable .npy header: ${header}`);
  if (fortran === 'True') throw new Error('.npy in Fortran order is not supported');
  const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const offset = headerStart + headerLen;
  // Copy so the typed array is aligned whatever the header length.
  const bytes = buf.subarray(offset);
  const aligned = new Uint8Array(bytes.length);
  aligned.set(bytes);
  const ab = aligned.buffer;
  let data: NpyData;
  switch (descr) {
    case '<f4': data = new Float32Array(ab, 0, count); break;
    case '<f8': data = new Float64Array(ab, 0, count); break;
    case '|u1': case '<u1': data = new Uint8Array(ab, 0, count); break;
    case '<i4': data = new Int32Array(ab, 0, count); break;
    case '<u2': data = new Uint16Array(ab, 0, count); break;
    case '<i8': data = new BigInt64Array(ab, 0, count); break;
    default: throw new Error(`.npy dtype ${descr} is not supported`);
  }
  return { dtype: descr, shape, data };
}

export function readNpy(path: string): NpyArray {
  return parseNpy(readFileSync(path));
}

export function encodeNpy(data: Float32Array | Uint8Array | Int32Array, shape: number[]): Buffer {
  const descr = data instanceof Float32Array ? '<f4' : data instanceof Int32Array ? '<i4' : '|u1';
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write(MAGIC, 0, 'latin1');
  head[6] = 1; head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

export function writeNpy(path: string, data: Float32Array | Uint8Array | Int32Array, shape: number[]): void {
  writeFileSync(path, encodeNpy(data, shape));
}
