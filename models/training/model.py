"""Compact U-Net with three heads (flows, cellprob, type) for the Cell Bridge default model."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Block(nn.Sequential):
    def __init__(self, cin, cout):
        super().__init__(conv_bn_relu(cin, cout), conv_bn_relu(cout, cout))


class CellUNet(nn.Module):
    """Encoder 16-32-64-128 + bottleneck 128 at 1/16 (4 poolings: spatial size must be a multiple of 16).
    Decoder with nearest upsampling + skip concatenation. Heads: 1x1 convs on a shared 16-channel map; with
    type_branch, the type head reads its own copy of the last decoder block (dec_type), so that the class head can
    be trained on a frozen trunk without moving the outlines (flows and cellprob keep reading dec[-1])."""

    def __init__(self, ch=(16, 32, 64, 128, 128), n_types=5, type_branch=False, fine_input=False, fine_output=0):
        super().__init__()
        # fine_output (needs fine_input): the maps too come at the image's resolution (0.25 um/px). A light top of
        # `fine_output` channels reads the fine image and the body's last map upsampled; its 1x1 heads add a
        # correction to the body's own maps upsampled bilinearly. The correction starts at zero, so the network
        # starts as the body (a trained 0.5 um/px network) and learns what the finer grid adds: thin and small
        # nuclei that the 0.5 um/px grid merges or loses (models/README "A 0.25 um/px output").
        if fine_output and not fine_input:
            raise ValueError('fine_output needs fine_input')
        self.fine_output = fine_output
        # fine_input: the image comes at twice the maps' resolution (0.25 um/px for maps at 0.5) and is folded
        # into 12 channels (2x2 space-to-depth) before the first convolution: the network sees the 40x detail at
        # the cost of a wider first layer, and everything after it runs on the same grid as without.
        self.fine_input = fine_input
        self.enc = nn.ModuleList()
        cin = 12 if fine_input else 3
        for c in ch:
            self.enc.append(Block(cin, c))
            cin = c
        self.dec = nn.ModuleList()
        for i in range(len(ch) - 2, -1, -1):
            self.dec.append(Block(cin + ch[i], ch[i]))
            cin = ch[i]
        self.dec_type = Block(ch[1] + ch[0], ch[0]) if type_branch else None
        self.flows = nn.Conv2d(cin, 2, 1)
        self.cellprob = nn.Conv2d(cin, 1, 1)
        self.type_head = nn.Conv2d(cin, n_types, 1)
        if fine_output:
            self.top_enc = conv_bn_relu(3, fine_output)
            self.top_dec = Block(cin + fine_output, fine_output)
            self.top_heads = nn.Conv2d(fine_output, 3 + n_types, 1)
            nn.init.zeros_(self.top_heads.weight)
            nn.init.zeros_(self.top_heads.bias)

    def forward(self, x):
        fine = x
        if self.fine_input:
            x = F.pixel_unshuffle(x, 2)
        skips = []
        for i, blk in enumerate(self.enc):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = blk(x)
            skips.append(x)
        skips.pop()
        for blk in self.dec:
            s = skips.pop()
            x = F.interpolate(x, scale_factor=2.0, mode='nearest')
            last_in = torch.cat([x, s], 1)
            x = blk(last_in)
        t = x if self.dec_type is None else self.dec_type(last_in)
        maps = (self.flows(x), self.cellprob(x), self.type_head(t))
        if not self.fine_output:
            return maps
        y = self.top_dec(torch.cat([F.interpolate(x, scale_factor=2.0, mode='nearest'), self.top_enc(fine)], 1))
        delta = self.top_heads(y)
        up = [F.interpolate(m, scale_factor=2.0, mode='bilinear', align_corners=False) for m in maps]
        return up[0] + delta[:, :2], up[1] + delta[:, 2:3], up[2] + delta[:, 3:]


def fine_input_weights(sd):
    """A network's weights for its fine_input twin: the first convolution's kernel spread over the 4 sub-pixels of
    each colour channel (pixel_unshuffle orders them c*4 + 2*dy + dx) and divided by 4, so that at the start the
    twin computes exactly the original network on the 2x2 box average of the fine image."""
    out = dict(sd)
    k = 'enc.0.0.0.weight'
    out[k] = sd[k].repeat_interleave(4, dim=1) / 4.0
    return out


def count_params(m):
    return sum(p.numel() for p in m.parameters())


if __name__ == '__main__':
    import time
    torch.set_num_threads(2)
    m = CellUNet()
    print('params', count_params(m))
    x = torch.randn(8, 3, 128, 128)
    opt = torch.optim.AdamW(m.parameters(), 1e-3)
    for it in range(4):
        t = time.time()
        f, c, ty = m(x)
        loss = f.square().mean() + c.mean() + ty.mean()
        opt.zero_grad(); loss.backward(); opt.step()
        print('train step b8', f'{time.time()-t:.3f}s')
