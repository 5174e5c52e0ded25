"""The HTML report in a real headless Chromium: it renders from disk with no network, no broken image, no console error,
and the numbers of the metrics files."""
import json

from voc_yolo.core import pipeline


def test_report_opens_from_disk_with_its_numbers(tiny_run, browser, tmp_path):
    repo = tiny_run['repo']
    browser.get((repo/'reports/index.html').as_uri())
    imgs = browser.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
    assert len(imgs) >= 8 and all(ok for _, ok in imgs), imgs
    errors = [e for e in browser.get_log('browser') if e['level'] == 'SEVERE']
    assert not errors, errors
    m = json.loads((repo/'metrics/eval.json').read_text())
    assert browser.find_element('id', 'map50').text == str(m['metrics/mAP50(B)'])
    assert browser.find_element('id', 'deployed').text == json.loads((repo/'models/deploy.json').read_text())['variant']
    assert browser.find_elements('css selector', '.missing') == [], 'every section has its data'
    assert browser.save_screenshot(str(tmp_path/'report.png')) and (tmp_path/'report.png').stat().st_size > 10_000
    links = browser.execute_script("return Array.from(document.querySelectorAll('#stages a')).map(a => a.href)")
    stages = [s for s in pipeline(repo) if s != 'report']  # every stage that ran before the report, from dvc.yaml
    assert [link.rsplit('/', 1)[-1] for link in links] == [f'{s}.html' for s in stages], links
    serve = json.loads((repo/'metrics/serve.json').read_text())
    assert browser.find_element('id', 'serve-rps').text == f"{serve['total']['rps']:.1f}"
    assert browser.find_element('id', 'serve-failures').text == '0'
    assert browser.find_element('css selector', '#serving img').get_attribute('alt') == 'throughput and latency under load'
    serving_links = {a.text: a.get_attribute('href') for a in browser.find_elements('css selector', '#serving a')}
    assert set(serving_links) == {"Evidently's drift report", "Locust's report"}, serving_links
    browser.get(serving_links["Evidently's drift report"])  # Evidently's own page, self-contained: it renders offline
    assert 'brightness' in browser.find_element('tag name', 'body').text
    assert not [e for e in browser.get_log('browser') if e['level'] == 'SEVERE'], 'the drift report needs the network'
    browser.get(links[1])  # a rendered stage notebook: code hidden until asked for
    assert browser.find_element('id', 'toggle-code').text == 'show code'
    assert not [e for e in browser.get_log('browser') if e['level'] == 'SEVERE' and 'file://' in e['message']]
