/** Checks a parsed card.json against the ModelCard type and says every problem at once. */
import type { ModelCard } from './model-card';
import { isTtaViews } from './tta';

export class CardError extends Error {}

export function validateCard(raw: unknown, where: string): ModelCard {
  const problems: string[] = [];
  const c = raw as Record<string, any>;
  const need = (cond: boolean, what: string): void => { if (!cond) problems.push(what); };
  const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
  if (typeof c !== 'object' || c === null) throw new CardError(`${where}: not a JSON object`);
  need(c.cardVersion === 1, 'cardVersion must be 1');
  need(isStr(c.name), 'name must be a non-empty string');
  need(isStr(c.file), 'file must name the .onnx file');
  if (c.cpuFile !== undefined) need(isStr(c.cpuFile), 'cpuFile must name an .onnx file (or be absent)');
  const i = c.input ?? {};
  need(isStr(i.name), 'input.name');
  need(i.layout === 'NCHW' || i.layout === 'NHWC', 'input.layout must be NCHW or NHWC');
  need(i.channels === 1 || i.channels === 3, 'input.channels must be 1 or 3');
  need(i.micronsPerPixel === null || (isNum(i.micronsPerPixel) && i.micronsPerPixel > 0), 'input.micronsPerPixel must be > 0 or null');
  need(Number.isInteger(i.readSize) && i.readSize >= 16, 'input.readSize must be an integer >= 16');
  need(Number.isInteger(i.modelSize) && i.modelSize >= 16, 'input.modelSize must be an integer >= 16');
  need(typeof i.dynamicSize === 'boolean', 'input.dynamicSize must be a boolean');
  need(Number.isInteger(i.multipleOf) && i.multipleOf >= 1, 'input.multipleOf must be an integer >= 1');
  need(i.resize === 'bilinear' || i.resize === 'bilinear-antialias', 'input.resize must be bilinear or bilinear-antialias');
  need(isNum(i.padValue) && i.padValue >= 0 && i.padValue <= 255, 'input.padValue must be 0..255');
  if (i.testTimeAugmentation !== undefined) need(isTtaViews(i.testTimeAugmentation), 'input.testTimeAugmentation must be 1, 2, 4 or 8');
  const n = i.normalization ?? {};
  if (n.kind === 'meanstd') {
    need(isNum(n.scale), 'input.normalization.scale');
    need(Array.isArray(n.mean) && n.mean.length === 3 && n.mean.every(isNum), 'input.normalization.mean must be 3 numbers');
    need(Array.isArray(n.std) && n.std.length === 3 && n.std.every((v: unknown) => isNum(v) && v > 0), 'input.normalization.std must be 3 positive numbers');
  } else if (n.kind === 'zscore') {
    need(isNum(n.eps), 'input.normalization.eps');
  } else problems.push('input.normalization.kind must be meanstd or zscore');
  const o = c.outputs ?? {};
  need(isStr(o.flows?.name) && Number.isInteger(o.flows?.dyChannel) && Number.isInteger(o.flows?.dxChannel), 'outputs.flows {name, dyChannel, dxChannel}');
  need(isStr(o.type?.name) && Number.isInteger(o.type?.backgroundChannel) && (o.type?.kind === 'logits' || o.type?.kind === 'probabilities'), 'outputs.type {name, backgroundChannel, kind}');
  if (o.cellProbability !== undefined) {
    need(isStr(o.cellProbability.name) && Number.isInteger(o.cellProbability.channel) && (o.cellProbability.kind === 'logit' || o.cellProbability.kind === 'probability'), 'outputs.cellProbability {name, channel, kind}');
  }
  need(Array.isArray(c.classes) && c.classes.length > 0, 'classes must be a non-empty array');
  for (const [k, cl] of (Array.isArray(c.classes) ? c.classes : []).entries()) {
    need(Number.isInteger(cl?.index) && cl.index >= 1 && isStr(cl?.name) && Array.isArray(cl?.color) && cl.color.length === 3 && cl.color.every((v: unknown) => isNum(v) && v >= 0 && v <= 255), `classes[${k}] needs index >= 1, name and color [r,g,b]`);
  }
  const p = c.postprocess ?? {};
  need(p.mode === 'cellpose' || p.mode === 'seed', 'postprocess.mode must be cellpose or seed');
  for (const k of ['niter', 'flowScale', 'cellprobThreshold', 'seedMinCount', 'claimMinCount', 'growIterations', 'minSize']) need(isNum(p[k]), `postprocess.${k} must be a number`);
  need(typeof p.fillHoles === 'boolean', 'postprocess.fillHoles must be a boolean');
  if (p.outlineThreshold !== undefined && p.outlineThreshold !== null) {
    need(isNum(p.outlineThreshold), 'postprocess.outlineThreshold must be a number or null');
    need(o.cellProbability !== undefined, 'postprocess.outlineThreshold needs outputs.cellProbability');
  }
  if (p.meanCellprobThreshold !== undefined && p.meanCellprobThreshold !== null) {
    need(isNum(p.meanCellprobThreshold), 'postprocess.meanCellprobThreshold must be a number or null');
    need(o.cellProbability !== undefined, 'postprocess.meanCellprobThreshold needs outputs.cellProbability');
  }
  need(Number.isInteger(c.tiling?.overlap) && c.tiling.overlap >= 0 && c.tiling.overlap < (i.readSize ?? 0), 'tiling.overlap must be an integer in [0, readSize)');
  if (problems.length > 0) throw new CardError(`${where}: invalid model card: ${problems.join('; ')}`);
  return c as ModelCard;
}
