# nbdev's standard setup.py: every setting lives in settings.ini; edit it there, not here.
from configparser import ConfigParser
import setuptools, shlex

config = ConfigParser(delimiters=['='])
config.read('settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o: cfg[o] for o in cfg_keys}

licenses = {'apache2': 'Apache-2.0'}  # SPDX expressions (license classifiers are deprecated)
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive']
py_versions = ['3.11']  # what CI installs with the lock and tests (tests.yaml); a version is added with its leg

requirements = shlex.split(cfg.get('requirements', ''))
dev_requirements = shlex.split(cfg.get('dev_requirements', ''))
pipeline_requirements = shlex.split(cfg.get('pipeline_requirements', ''))
serve_requirements = shlex.split(cfg.get('serve_requirements', ''))
remote_requirements = shlex.split(cfg.get('remote_requirements', ''))  # DVC remotes: S3 and GCS
# the pipeline runs the service too (its loadtest stage), and dev gets everything; OpenCV comes from Ultralytics'
# opencv-python there (a second, headless copy of cv2 would clash)
pipeline_all = pipeline_requirements + [r for r in serve_requirements if not r.startswith('opencv-python-headless')]
dev_all = dev_requirements + pipeline_all + remote_requirements
min_python = cfg['min_python']
lic = licenses.get(cfg['license'].lower(), cfg['license'])

setuptools.setup(
    name=cfg['lib_name'],
    license=lic,
    classifiers=['Development Status :: ' + statuses[int(cfg['status'])],
                 'Intended Audience :: ' + cfg['audience'].title(),
                 'Natural Language :: ' + cfg['language'].title()]
                + ['Programming Language :: Python :: ' + o for o in py_versions[py_versions.index(min_python):]]
                + ['Operating System :: POSIX :: Linux'],  # the lock's platform (Linux x86_64), the one CI tests
    url=cfg['git_url'],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'pipeline': pipeline_all, 'serve': serve_requirements, 'remote': remote_requirements, 'dev': dev_all},
    python_requires='>=' + cfg['min_python'],
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    zip_safe=False,
    entry_points={'console_scripts': cfg.get('console_scripts', '').split(),
                  'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d']},
    **setup_cfg)
