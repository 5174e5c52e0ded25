"JupyterLab smoke test: the server starts headless on loopback, lists the notebooks, and runs `import voc_yolo` in the project kernel."
import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

from helpers import ROOT, free_port

TOKEN = uuid.uuid4().hex




def get(url, method='GET', body=None):
    req = urllib.request.Request(url, method=method, data=body, headers={'Authorization': f'token {TOKEN}'})
    with urllib.request.urlopen(req, timeout=30) as r: return r.status, r.read().decode()


async def execute(ws_url, code):
    "Send one execute_request over the kernel's websocket; return what it printed."
    from tornado.websocket import websocket_connect
    from tornado.httpclient import HTTPRequest
    ws = await websocket_connect(HTTPRequest(ws_url, headers={'Authorization': f'token {TOKEN}'}))
    msg_id = uuid.uuid4().hex
    header = {'msg_id': msg_id, 'msg_type': 'execute_request', 'username': 't', 'session': uuid.uuid4().hex, 'version': '5.3'}
    content = {'code': code, 'silent': False, 'store_history': False, 'user_expressions': {}, 'allow_stdin': False}
    ws.write_message(json.dumps({'header': header, 'parent_header': {}, 'metadata': {}, 'channel': 'shell', 'content': content}))
    out, status, idle = '', None, False
    while status is None or not idle:  # the reply (shell) may come before the output (iopub): the kernel's idle ends the outputs
        m = json.loads(await asyncio.wait_for(ws.read_message(), 60))
        if m.get('parent_header', {}).get('msg_id') != msg_id: continue
        if m['msg_type'] == 'stream': out += m['content']['text']
        if m['msg_type'] == 'error': out += '\n'.join(m['content']['traceback'])
        if m['msg_type'] == 'execute_reply': status = m['content']['status']
        if m['msg_type'] == 'status' and m['content']['execution_state'] == 'idle': idle = True
    ws.close()
    return status, out


def test_lab_lists_notebooks_and_runs_the_project_kernel(tmp_path):
    port = free_port()
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp_path)}
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--ip=127.0.0.1', f'--port={port}', f'--IdentityProvider.token={TOKEN}',
           f'--ServerApp.root_dir={ROOT}', *(['--allow-root'] if os.geteuid() == 0 else [])]  # CI runs as root
    lab = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f'http://127.0.0.1:{port}'
    try:
        for _ in range(120):
            try:
                status, page = get(f'{base}/lab'); break
            except OSError: time.sleep(0.5)
        else: raise AssertionError('jupyter lab did not answer within 60 s')
        assert status == 200 and 'JupyterLab' in page
        names = {f['name'] for f in json.loads(get(f'{base}/api/contents/nbs')[1])['content']}
        assert {'00_core.ipynb', '03_train.ipynb', 'index.ipynb', 'stages'} <= names
        specs = json.loads(get(f'{base}/api/kernelspecs')[1])
        assert 'voc_yolo' in specs['kernelspecs'], f"the project kernel is not registered: {list(specs['kernelspecs'])}"
        kernel = json.loads(get(f'{base}/api/kernels', 'POST', json.dumps({'name': 'voc_yolo'}).encode())[1])
        status, out = asyncio.run(execute(f'ws://127.0.0.1:{port}/api/kernels/{kernel["id"]}/channels',
                                          'import sys, voc_yolo; print(voc_yolo.__version__, sys.prefix)'))
        assert status == 'ok' and out.split()[0] == voc_yolo_version(), out
        get(f'{base}/api/kernels/{kernel["id"]}', 'DELETE')
    finally:
        lab.terminate(); lab.wait(30)


def voc_yolo_version():
    import voc_yolo
    return voc_yolo.__version__
