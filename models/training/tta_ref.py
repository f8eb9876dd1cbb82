"""Test-time augmentation as the daemon does it (bridge/inference/tta.ts): the same views (2 = the tile and
the tile rotated 180 degrees, 4 = every mirroring, 8 = mirrorings of the tile and of its transpose), each
output brought back to the tile's frame (flow components mirrored / swapped back) and averaged."""
import numpy as np

from train import predict


def views(n):
    """(transpose, flipX, flipY) per view, in the daemon's order."""
    four = [(False, False, False), (False, True, False), (False, False, True), (False, True, True)]
    return {1: four[:1], 2: [four[0], four[3]], 4: four, 8: four + [(True,) + v[1:] for v in four]}[n]


def _view_images(x, v):
    t, fx, fy = v  # x: [N, H, W, 3]
    if t:
        x = x.transpose(0, 2, 1, 3)
    if fx:
        x = x[:, :, ::-1]
    if fy:
        x = x[:, ::-1]
    return np.ascontiguousarray(x)


def _unview_maps(fl, cp, ty, v):
    """fl [N,2,H,W] (dY, dX), cp [N,H,W], ty [N,C,H,W] in the view's frame -> the tile's frame."""
    t, fx, fy = v
    fl = fl.copy()
    if fy:
        fl, cp, ty = fl[:, :, ::-1], cp[:, ::-1], ty[:, :, ::-1]
        fl[:, 0] *= -1
    if fx:
        fl, cp, ty = fl[:, :, :, ::-1], cp[:, :, ::-1], ty[:, :, :, ::-1]
        fl[:, 1] *= -1
    if t:
        fl = fl.transpose(0, 1, 3, 2)[:, ::-1]  # swap the axes and the (dY, dX) components
        cp, ty = cp.transpose(0, 2, 1), ty.transpose(0, 1, 3, 2)
    return np.ascontiguousarray(fl), np.ascontiguousarray(cp), np.ascontiguousarray(ty)


def predict_views(model, images_u8, mean, std, n=1):
    """train.predict averaged over n views (n = 1: train.predict itself)."""
    if n == 1:
        return predict(model, images_u8, mean, std)
    acc = None
    for v in views(n):
        out = _unview_maps(*predict(model, _view_images(images_u8, v), mean, std), v)
        acc = [o.astype(np.float64) for o in out] if acc is None else [a + o for a, o in zip(acc, out)]
    return [(a / n).astype(np.float32) for a in acc]
