"""The seed project's serving pattern, for `benchmarks/bench_serve.py` only:
FastAPI calling `ultralytics.YOLO(weights).predict` per request.
Run: SEED_MODEL=<.onnx or *_openvino_model> SEED_IMGSZ=128 python -m uvicorn --app-dir benchmarks bench_serve_seed:app --port 8001"""
import os

import cv2
import numpy as np
from fastapi import FastAPI, File, UploadFile

from voc_yolo.core import offline_setup

offline_setup()
from ultralytics import YOLO  # noqa: E402 - after offline_setup

model, imgsz = YOLO(os.environ['SEED_MODEL'], task='detect'), int(os.environ['SEED_IMGSZ'])
app = FastAPI()


@app.post('/predict/{name}')
def predict(name: str, file: UploadFile = File(...)):
    img = cv2.imdecode(np.frombuffer(file.file.read(), np.uint8), cv2.IMREAD_COLOR)
    b = model.predict(img, imgsz=imgsz, conf=0.25, verbose=False)[0].boxes
    return {'detections': [{'class_id': int(c), 'confidence': float(s), 'box': xyxy}
                           for c, s, xyxy in zip(b.cls.tolist(), b.conf.tolist(), b.xyxy.tolist())]}
