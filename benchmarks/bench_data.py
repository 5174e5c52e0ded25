"""Benchmark: VOC XML -> YOLO labels, voc_yolo's converter vs a single-process ElementTree loop like Ultralytics' VOC script.

Both convert the same N generated annotation files into fresh output folders in the same run; the script prints
median wall times, the speed ratio and whether every label file is byte-identical.
Usage: python benchmarks/bench_data.py [--n 17000] [--repeats 3] [--workers 0]
"""
import argparse
import os
import shutil
import statistics
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from voc_yolo.synthetic import voc_annotation
from voc_yolo.voc import VOC_NAMES, convert_annotations


def generate(folder: Path, n: int, seed: int = 0):
    "n VOC-layout annotation files with 1-6 objects each, ~10% difficult, varied image sizes."
    rng = np.random.default_rng(seed); folder.mkdir(parents=True)
    for i in range(n):
        w, h = int(rng.integers(200, 501)), int(rng.integers(200, 501)); objs = []
        for _ in range(int(rng.integers(1, 7))):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            box = (x0, y0, int(rng.integers(x0 + 5, w + 1)), int(rng.integers(y0 + 5, h + 1)))
            objs.append(dict(name=VOC_NAMES[int(rng.integers(20))], box=box,
                             truncated=bool(rng.random() < .2), difficult=bool(rng.random() < .1)))
        (folder/f'{i:06d}.xml').write_text(voc_annotation(f'{i:06d}.jpg', (w, h), objs, 'VOC2007'))


def reference(ann: Path, out: Path, ids: list):
    "The straightforward loop of Ultralytics' VOC.yaml download script (convert_label), single process."
    names = list(VOC_NAMES)
    for image_id in ids:
        in_file = open(ann/f'{image_id}.xml')
        out_file = open(out/f'{image_id}.txt', 'w')
        root = ET.parse(in_file).getroot()
        size = root.find('size')
        w, h = int(size.find('width').text), int(size.find('height').text)
        for obj in root.iter('object'):
            cls = obj.find('name').text
            if cls in names and int(obj.find('difficult').text) != 1:
                xmlbox = obj.find('bndbox')
                b = [float(xmlbox.find(x).text) for x in ('xmin', 'xmax', 'ymin', 'ymax')]
                dw, dh = 1.0/w, 1.0/h
                x, y, bw, bh = (b[0] + b[1])/2.0 - 1, (b[2] + b[3])/2.0 - 1, b[1] - b[0], b[3] - b[2]
                bb = (x*dw, y*dh, bw*dw, bh*dh)
                out_file.write(' '.join(str(a) for a in (names.index(cls), *bb)) + '\n')
        in_file.close(); out_file.close()


def ours(ann: Path, out: Path, ids: list, workers):
    convert_annotations([(f'{ann}/{i}.xml', f'{out}/{i}.txt') for i in ids], workers=workers, desc=None)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=17000); ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--workers', type=int, default=0, help='processes for voc_yolo (0: all cores)')
    a = ap.parse_args()
    base = '/dev/shm' if os.path.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK) else None  # RAM: less disk noise
    with tempfile.TemporaryDirectory(dir=base) as d:
        d = Path(d); ann = d/'Annotations'; generate(ann, a.n)
        ids = sorted(p.stem for p in ann.glob('*.xml'))
        times = {'reference': [], 'voc_yolo': []}
        for _ in range(a.repeats):
            for name in times:  # alternate, so drift in machine load hits both
                out = d/name; shutil.rmtree(out, ignore_errors=True); out.mkdir()
                t = time.perf_counter()
                reference(ann, out, ids) if name == 'reference' else ours(ann, out, ids, a.workers or None)
                times[name].append(time.perf_counter() - t)
        same = sum((d/'reference'/f'{i}.txt').read_bytes() == (d/'voc_yolo'/f'{i}.txt').read_bytes() for i in ids)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{a.n} VOC XML files on {os.cpu_count()} cores ({'tmpfs' if base else 'disk'}), median of {a.repeats}:")
        for k, v in times.items():
            print(f"  {k:10s} {med[k]:7.3f} s  ({a.n/med[k]:8.0f} files/s)  runs: {', '.join(f'{t:.3f}' for t in v)}")
        print(f"  speed-up  {med['reference']/med['voc_yolo']:.2f}x")
        print(f"  byte-identical: {same}/{len(ids)}")
        return 0 if same == len(ids) else 1


if __name__ == '__main__':
    raise SystemExit(main())
