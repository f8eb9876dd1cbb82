"""H&E augmentation: flips, 90-degree rotations (with flow vectors rotated), HED stain jitter and
brightness/contrast/saturation jitter. Arrays: image uint8 [H,W,3], flows f32 [2,H,W] (dY,dX),
cellprob/type uint8 [H,W]."""
import copy

import numpy as np

# Ruifrok & Johnston H&E-DAB stain matrix (rows = stains in RGB OD space)
_RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
_RGB_FROM_HED[2] = np.cross(_RGB_FROM_HED[0], _RGB_FROM_HED[1])
_RGB_FROM_HED /= np.linalg.norm(_RGB_FROM_HED, axis=1, keepdims=True)
_HED_FROM_RGB = np.linalg.inv(_RGB_FROM_HED)


def hflip(img, flows, maps):
    flows = flows[:, :, ::-1].copy(); flows[1] *= -1
    return img[:, ::-1], flows, [m[:, ::-1] for m in maps]


def vflip(img, flows, maps):
    flows = flows[:, ::-1, :].copy(); flows[0] *= -1
    return img[::-1], flows, [m[::-1] for m in maps]


def rot90(img, flows, maps):
    """np.rot90 (counter-clockwise): new[i,j] = old[j, W-1-i] -> new dY = -old dX, new dX = old dY."""
    f = np.rot90(flows, 1, axes=(1, 2))
    flows = np.stack([-f[1], f[0]])
    return np.rot90(img, 1, axes=(0, 1)), flows, [np.rot90(m, 1) for m in maps]


def geometric(rng, img, flows, maps):
    for _ in range(rng.integers(4)):
        img, flows, maps = rot90(img, flows, maps)
    if rng.random() < 0.5:
        img, flows, maps = hflip(img, flows, maps)
    return np.ascontiguousarray(img), np.ascontiguousarray(flows), [np.ascontiguousarray(m) for m in maps]


def geometric_with(rng, img, flows, maps, extra_flows=None, extra_maps=()):
    """geometric, and a second set of flows and maps (a teacher's outputs) moved by the very same rotations and flip:
    (img, flows, maps, extra flows, extra maps). The second call replays the generator's draws from a copy."""
    same = copy.deepcopy(rng)
    img, flows, maps = geometric(rng, img, flows, maps)
    if extra_flows is None:
        return img, flows, maps, None, []
    _, extra_flows, extra_maps = geometric(same, np.zeros((1, 1, 1)), extra_flows, list(extra_maps))
    return img, flows, maps, extra_flows, extra_maps


def colour(rng, img, od_scale=(1.0, 1.0)):
    """img uint8 -> float32 0..255. od_scale: range of a global optical-density factor (stain
    amount / section thickness), drawn log-uniformly: slides stained much darker than CoNSeP (CMU-1's
    tissue has ~3x its optical density) otherwise lose their darkest nuclei."""
    x = img.astype(np.float32)
    lo, hi = od_scale
    if hi > lo and rng.random() < 0.8:
        k = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
        od = -np.log((x + 1.0) / 256.0) * k
        x = np.clip(256.0 * np.exp(-od) - 1.0, 0, 255)
    if rng.random() < 0.8:  # HED jitter
        od = -np.log((x + 1.0) / 256.0)
        hed = od @ _HED_FROM_RGB
        alpha = rng.uniform(0.9, 1.1, 3)
        beta = rng.uniform(-0.04, 0.04, 3)
        hed = hed * alpha + beta
        od = hed @ _RGB_FROM_HED
        x = np.clip(256.0 * np.exp(-od) - 1.0, 0, 255)
    if rng.random() < 0.8:  # brightness / contrast / saturation / slight hue-ish channel gain
        m = x.mean()
        x = (x - m) * rng.uniform(0.85, 1.15) + m + rng.uniform(-15, 15)
        g = x.mean(2, keepdims=True)
        x = g + (x - g) * rng.uniform(0.8, 1.2)
        x = x * rng.uniform(0.96, 1.04, 3)
        x = np.clip(x, 0, 255)
    return x.astype(np.float32)


# ---- model v2: invariance to how a client resamples, blurs or compresses the pixels ----
import io  # noqa: E402
from PIL import Image, ImageFilter  # noqa: E402

KERNELS = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS, Image.BOX, Image.HAMMING, Image.NEAREST)
KERNEL_P = (0.3, 0.25, 0.15, 0.1, 0.1, 0.1)


def _nearest_index(n_out, n_in):
    """Pixel-centre nearest sampling (the same grid PIL uses for the image)."""
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1)


def rescale(rng, img40, img, flows, maps, scale_range=(0.75, 1.33), p=0.85):
    """Scale jitter: the tile as it would look at a pixel size 1/s times the model's. The image is
    resampled with a random kernel either from the 40x original (a 40x slide read down) or from the
    0.5 um/px tile (a 20x slide read at a slightly different pixel size: a second resampling);
    labels and flows by nearest neighbour on the same grid (an isotropic scale keeps the flow
    directions). Returns image uint8, flows, maps."""
    n_in = img.shape[0]
    if rng.random() >= p:
        return img, flows, maps
    s = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    n = max(16, int(round(n_in * s)))
    k = KERNELS[rng.choice(len(KERNELS), p=KERNEL_P)]
    src = Image.fromarray(img40 if rng.random() < 0.5 else img)
    out = np.array(src.resize((n, n), k), np.uint8)
    idx = _nearest_index(n, n_in)
    return out, flows[:, idx][:, :, idx], [m[idx][:, idx] for m in maps]


UPSAMPLERS = (Image.NEAREST, Image.BILINEAR, Image.BICUBIC)


def rescale_fine(rng, img40, img, flows, maps, scale_range=(0.75, 1.33), p=0.85, p_20x=0.35):
    """As rescale, for a network that reads the image at twice the maps' resolution (model.CellUNet fine_input):
    maps of n x n come with an image of 2n x 2n. Mostly that image is the 40x original resampled (a 40x slide:
    real detail); with probability p_20x it is the 0.5 um/px tile (a 20x slide) resampled to n and then
    upsampled 2x with nearest, bilinear or bicubic (what a reader does to a 20x slide: no new detail), so that
    20x slides stay in the training distribution."""
    n_in = img.shape[0]
    s = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1])))) if rng.random() < p else 1.0
    n = max(16, int(round(n_in * s)))
    k = KERNELS[rng.choice(len(KERNELS), p=KERNEL_P)]
    if rng.random() < p_20x:
        src = Image.fromarray(img)
        if n != n_in:
            src = src.resize((n, n), k)
        out = np.array(src.resize((2 * n, 2 * n), UPSAMPLERS[rng.integers(len(UPSAMPLERS))]), np.uint8)
    elif 2 * n == img40.shape[0]:
        out = img40
    else:
        out = np.array(Image.fromarray(img40).resize((2 * n, 2 * n), k), np.uint8)
    if n == n_in:
        return out, flows, maps
    idx = _nearest_index(n, n_in)
    return out, flows[:, idx][:, :, idx], [m[idx][:, idx] for m in maps]


def rescale_native(rng, img40, flows, maps, scale_range=(0.75, 1.33), p=0.85, p_20x=0.35):
    """As rescale, for a network whose image and maps are both at 0.25 um/px (model.CellUNet fine_output): the
    40x tile and its 40x targets. Mostly the image is the 40x original resampled with a random kernel (a 40x slide);
    with probability p_20x it is first brought to 0.5 um/px (antialiased) and upsampled 2x with nearest, bilinear or
    bicubic (a 20x slide read at 0.25 um/px: no detail beyond 0.5 um/px), so that 20x slides stay in the training
    distribution. Targets by nearest neighbour on the same grid."""
    n_in = img40.shape[0]
    s = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1])))) if rng.random() < p else 1.0
    n = max(32, 2 * int(round(n_in * s / 2)))
    k = KERNELS[rng.choice(len(KERNELS), p=KERNEL_P)]
    src = Image.fromarray(img40)
    if rng.random() < p_20x:
        src = src.resize((n // 2, n // 2), Image.BILINEAR if k == Image.NEAREST else k)
        out = np.array(src.resize((n, n), UPSAMPLERS[rng.integers(len(UPSAMPLERS))]), np.uint8)
    elif n == n_in:
        out = img40
    else:
        out = np.array(src.resize((n, n), k), np.uint8)
    if n == n_in:
        return out, flows, maps
    idx = _nearest_index(n, n_in)
    return out, flows[:, idx][:, :, idx], [m[idx][:, idx] for m in maps]


def degrade(rng, x):
    """float 0..255 image -> blur or sharpen, JPEG re-compression, sensor noise (each sometimes)."""
    u = rng.random()
    if u < 0.3 or u > 0.85:
        im = Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8))
        if u < 0.3:
            im = im.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
        else:
            im = im.filter(ImageFilter.UnsharpMask(radius=float(rng.uniform(0.5, 2.0)),
                                                   percent=int(rng.integers(30, 150)), threshold=0))
        x = np.array(im, np.float32)
    if rng.random() < 0.3:
        im = Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8))
        buf = io.BytesIO()
        im.save(buf, 'JPEG', quality=int(rng.integers(35, 95)))
        x = np.array(Image.open(io.BytesIO(buf.getvalue())).convert('RGB'), np.float32)
    if rng.random() < 0.2:
        x = np.clip(x + rng.normal(0, rng.uniform(1, 5), x.shape), 0, 255).astype(np.float32)
    return x


def contact_pixels(ins, reach=2):
    """Pixels of a nucleus that have another nucleus within `reach` pixels (a (2 reach + 1)^2 window): where touching
    neighbours must be told apart by their flows pointing away from each other (merged neighbours are one of the
    two largest errors, models/README "Where the missed nuclei go"). float32 0/1."""
    from scipy.ndimage import maximum_filter, minimum_filter  # only the contact-weighted loss needs scipy
    ins = ins.astype(np.int64)
    w = 2 * reach + 1
    hi = maximum_filter(ins, w, mode='nearest')
    lo = minimum_filter(np.where(ins > 0, ins, ins.max() + 1), w, mode='nearest')
    return ((ins > 0) & ((hi != ins) | (lo != ins))).astype(np.float32)
