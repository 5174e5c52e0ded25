"Every kind of bad input gets counted with its decision (or a clear error); nothing is dropped silently."
import json
import re
import shutil
from pathlib import Path

import pytest

from voc_yolo.core import load_params, ParamsError
from voc_yolo.prepare import PrepareParams, convert_devkit, quality_report, dataset_stats, prepare
from voc_yolo.voc import yolo_line


def edit(path: Path, fn):
    path.write_bytes(fn(path.read_bytes()))


@pytest.fixture
def broken_devkit(small_devkit, tmp_path):
    "The small devkit with one distinct fault in each of the first 11 trainval images."
    dk = tmp_path/'VOCdevkit'; shutil.copytree(small_devkit, dk)
    v = dk/'VOCsynthetic'; A, J = v/'Annotations', v/'JPEGImages'
    edit(A/'000000.xml', lambda b: b[:-30])                                                   # malformed_xml
    edit(A/'000001.xml', lambda b: re.sub(rb'\s*<size>.*?</size>', b'', b, flags=re.S))       # missing_size
    edit(A/'000002.xml', lambda b: re.sub(rb'<bndbox>.*?</bndbox>', b'', b, count=1, flags=re.S))  # missing_bndbox
    edit(A/'000003.xml', lambda b: re.sub(rb'<xmax>\d+</xmax>', b'<xmax>5000</xmax>', b, count=1))  # box_outside_image
    edit(A/'000004.xml', lambda b: re.sub(rb'<xmax>\d+</xmax>', b'<xmax>1</xmax>', b, count=1))     # zero_area_box
    edit(A/'000005.xml', lambda b: re.sub(rb'<name>\w+</name>', b'<name>unicorn</name>', b, count=1))  # unknown_class
    (J/'000006.jpg').unlink()                                                                 # missing_image
    (J/'000007.jpg').write_bytes(b'this is not a jpeg')                                       # not_an_image
    edit(J/'000008.jpg', lambda b: b[:len(b)//2])                                             # truncated_image
    edit(A/'000009.xml', lambda b: re.sub(rb'<width>\d+</width>', b'<width>999</width>', b))  # size_mismatch
    (A/'000010.xml').unlink()                                                                 # missing_annotation
    return dk


def test_every_problem_is_counted_with_its_decision(broken_devkit, tmp_path):
    res = convert_devkit(broken_devkit, tmp_path/'out', workers=1)
    q = quality_report(res)
    counts = {k: v['count'] for k, v in q['issues'].items()}
    assert counts == dict(malformed_xml=1, missing_annotation=1, missing_image=1, not_an_image=1, truncated_image=1,
                          missing_size=1, size_mismatch=1, missing_bndbox=1, unknown_class=1, zero_area_box=1,
                          box_outside_image=1)
    assert (q['images_listed'], q['images_skipped']) == (18, 5)
    assert q['issues']['unknown_class']['decision'] == 'object dropped'
    assert q['issues']['size_mismatch']['examples'][0].startswith('train/000009: XML says 999x')
    rows = {i: (txt, iss) for i, txt, iss in res['train']}
    for skipped in ('000000', '000006', '000007', '000008', '000010'):  # no label, no image: not in the dataset
        assert rows[skipped][0] is None
        assert not (tmp_path/f'out/labels/train/{skipped}.txt').exists() and not (tmp_path/f'out/images/train/{skipped}.jpg').exists()
    stats = dataset_stats(res)
    assert stats['train']['images'] == 12 - 5
    assert len(list((tmp_path/'out/images/train').glob('*.jpg'))) == 7


def test_clipped_box_label_is_inside_the_image(broken_devkit, tmp_path):
    res = convert_devkit(broken_devkit, tmp_path/'out', workers=1)
    txt = dict((i, t) for i, t, _ in res['train'])['000003']
    for line in txt.splitlines():
        _, x, y, w, h = map(float, line.split())
        assert 0 <= x - w/2 + 1e-9 and x + w/2 <= 1 + 1e-9


def test_stage_fails_when_too_many_images_are_unusable(broken_devkit, tmp_path):
    (tmp_path/'settings.ini').touch()
    with pytest.raises(RuntimeError, match=r'5 of 18 images were skipped .* see reports/data_quality.json'):
        prepare(PrepareParams(source=str(broken_devkit), workers=1, max_skipped=0.1), tmp_path)
    report = json.loads((tmp_path/'reports/data_quality.json').read_text())  # the report is written before failing
    assert report['images_skipped'] == 5
    prepare(PrepareParams(source=str(broken_devkit), workers=1, max_skipped=0.5), tmp_path)


def test_params_file_errors_name_file_and_key(tmp_path):
    f = tmp_path/'data.yaml'
    f.write_text('n_train: many\n')
    with pytest.raises(ParamsError, match=rf"{f}: key 'n_train' must be int, got str 'many'"): load_params(f, PrepareParams)
    f.write_text('n_trian: 5\n')
    with pytest.raises(ParamsError, match=r"unknown key\(s\) \['n_trian'\]"): load_params(f, PrepareParams)


def test_hand_computed_labels_for_real_voc_layout(tmp_path):
    "VOC2007 000001.xml-like: non-square 353x500, 1-based coordinates, a difficult object."
    (tmp_path/'VOC2007/Annotations').mkdir(parents=True); (tmp_path/'VOC2007/JPEGImages').mkdir()
    (tmp_path/'VOC2007/ImageSets/Main').mkdir(parents=True)
    xml = ("<annotation><folder>VOC2007</folder><filename>000001.jpg</filename><size><width>353</width><height>500</height>"
           "<depth>3</depth></size><object><name>dog</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>"
           "<bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox></object><object><name>person</name>"
           "<pose>Left</pose><truncated>1</truncated><difficult>0</difficult><bndbox><xmin>8</xmin><ymin>12</ymin><xmax>352</xmax>"
           "<ymax>498</ymax></bndbox></object><object><name>cat</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
           "<xmax>10</xmax><ymax>10</ymax></bndbox></object></annotation>")
    (tmp_path/'VOC2007/Annotations/000001.xml').write_text(xml)
    from PIL import Image
    Image.new('RGB', (353, 500)).save(tmp_path/'VOC2007/JPEGImages/000001.jpg')
    for s in ('trainval', 'test'): (tmp_path/f'VOC2007/ImageSets/Main/{s}.txt').write_text('000001\n')
    convert_devkit(tmp_path, tmp_path/'out', workers=1)
    got = (tmp_path/'out/labels/test/000001.txt').read_text().splitlines()
    # dog: centre ((48+195)/2-1, (240+371)/2-1) = (120.5, 304.5) px; size 147x131 px. person: (179, 254) px; 344x486 px.
    expected = [[11, 120.5/353, 304.5/500, 147/353, 131/500], [14, 179/353, 254/500, 344/353, 486/500]]
    assert len(got) == 2  # the difficult cat is dropped (VOC convention)
    for line, exp in zip(got, expected):
        vals = list(map(float, line.split()))
        assert vals[0] == exp[0] and all(abs(a - b) < 1e-12 for a, b in zip(vals[1:], exp[1:]))
    assert got[0] + '\n' == yolo_line(11, (48., 195., 240., 371.), 353, 500)
