const path=require('path');const D='/work/main/dist/bridge/';
const { openDataset, readTile } = require(D+'eval/dataset');
const ort=require('onnxruntime-node');const sharp=require('sharp');
const card=require('/work/main/models/cellbridge-he-v1/card.json');
(async()=>{
 const s=await ort.InferenceSession.create('/work/main/models/cellbridge-he-v1/model.onnx');
 const ds=openDataset('/work/shared/data/consep/test');
 const names=ds.names||ds.tiles; const list=Array.isArray(names)?names:Object.keys(names);
 for (const name of list.slice(0,4)) {
  const t=await readTile(ds,name);
  const W=128; const rgb=await sharp(Buffer.from(t.rgb),{raw:{width:256,height:256,channels:3}}).resize(W,W,{fit:'fill',kernel:'linear'}).raw().toBuffer();
  const x=new Float32Array(3*W*W); const n=card.input.normalization;
  for(let c=0;c<3;c++)for(let i=0;i<W*W;i++)x[c*W*W+i]=(rgb[3*i+c]*n.scale-n.mean[c])/n.std[c];
  const out=await s.run({image:new ort.Tensor('float32',x,[1,3,W,W])});
  const cp=out.cellprob.data, ty=out.type.data, fl=out.flows.data;
  // GT fg at 128
  let inter=0,uni=0,fgP=0,fgG=0, tyAgree=0, tyN=0; const best={};
  for (const [dy,dx] of [[0,0],[3,0],[-3,0],[0,3],[0,-3],[2,0],[-2,0],[1,0],[-1,0]]) {
   let I=0,U=0; for(let y=0;y<W;y++)for(let xx=0;xx<W;xx++){const yy=y+dy,xs=xx+dx; if(yy<0||yy>=W||xs<0||xs>=W)continue; const p=cp[yy*W+xs]>0; const g=t.instances[(2*y)*256+2*xx]>0; if(p&&g)I++; if(p||g)U++;} best[dy+','+dx]=(I/U).toFixed(3);}
  let mag=0; for(let i=0;i<W*W;i++) mag+=Math.hypot(fl[i],fl[W*W+i]); 
  let cpMean=0; for(let i=0;i<W*W;i++) cpMean+=cp[i]>0?1:0;
  console.log(name, JSON.stringify(best), 'fgfrac', (cpMean/W/W).toFixed(3), 'flowmag', (mag/W/W).toFixed(2));
 }
})();
