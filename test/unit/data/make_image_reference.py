"""Reference outputs for test/unit/image.test.ts: Pillow's resize and a Hugging Face image
processor's steps (PIL resize, centre crop, rescale in float64 -> float32, normalise in float32),
on synthetic images given by a formula the test repeats. Run once with /usr/bin/python3 (numpy,
Pillow); the tests read imageReference.json and need no Python.
    /usr/bin/python3 test/unit/data/make_image_reference.py
"""
import json
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

HERE = Path(__file__).parent


def synthetic(w, h):
    """uint8 [h, w, 3]: a deterministic pattern with edges and gradients."""
    y, x, c = np.mgrid[0:h, 0:w, 0:3]
    v = (x * 37 + y * 91 + c * 53 + ((x * y) % 17) * 7 + ((x // 3 + y // 4) % 2) * 100) % 256
    return v.astype(np.uint8)


def resize(arr, w, h, resample):
    return np.asarray(Image.fromarray(arr, mode='RGB').resize((w, h), resample=resample, reducing_gap=None))


def hf(arr, cfg):
    """Hugging Face's CLIPImageProcessor / ViTImageProcessor on a uint8 RGB array."""
    h, w = arr.shape[:2]
    size = cfg['size']
    if 'shortest_edge' in size:
        s = size['shortest_edge']
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = s, int(s * long / short)
        nh, nw = (new_long, new_short) if w <= h else (new_short, new_long)
    else:
        nh, nw = size['height'], size['width']
    x = resize(arr, nw, nh, cfg['resample'])
    if cfg.get('do_center_crop'):
        ch, cw = cfg['crop_size']['height'], cfg['crop_size']['width']
        top, left = (x.shape[0] - ch) // 2, (x.shape[1] - cw) // 2
        x = x[top:top + ch, left:left + cw]
    x = (x.astype(np.float64) * cfg['rescale_factor']).astype(np.float32)
    mean = np.array(cfg['image_mean'], dtype=np.float32)
    std = np.array(cfg['image_std'], dtype=np.float32)
    x = (x - mean) / std
    return x.transpose(2, 0, 1)


def main():
    cases = []
    for (w, h, ow, oh, rs) in [(37, 23, 16, 10, 3), (7, 5, 12, 9, 3), (29, 31, 8, 13, 2), (40, 40, 32, 32, 3),
                               (33, 17, 11, 19, 1), (21, 22, 9, 7, 5), (25, 19, 10, 6, 4)]:
        cases.append({'width': w, 'height': h, 'outWidth': ow, 'outHeight': oh, 'resample': rs,
                      'pixels': resize(synthetic(w, h), ow, oh, rs).reshape(-1).tolist()})
    clip_cfg = json.loads((HERE / '../../fixtures/clip-vision/preprocessor_config.json').read_text())
    vit_cfg = json.loads((HERE / '../../fixtures/vit/preprocessor_config.json').read_text())
    pipelines = []
    for name, cfg in (('clip-vision', clip_cfg), ('vit', vit_cfg)):
        for (w, h) in [(45, 38), (30, 52)]:
            pv = hf(synthetic(w, h), cfg)
            pipelines.append({'processor': name, 'width': w, 'height': h, 'dims': list(pv.shape),
                              'pixelValues': [round(float(v), 6) for v in pv.reshape(-1)]})
    out = {'pillow': PIL.__version__, 'formula': '(x*37 + y*91 + c*53 + ((x*y) % 17)*7 + ((x//3 + y//4) % 2)*100) % 256',
           'resize': cases, 'pipelines': pipelines}
    (HERE / 'imageReference.json').write_text(json.dumps(out, separators=(',', ':')) + '\n')


if __name__ == '__main__':
    main()
