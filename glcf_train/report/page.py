"""The HTML page of the report: one Jinja2 template, figures embedded as data URIs, no network."""

from __future__ import annotations

import base64

import jinja2

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{ title }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1280px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; } td.ci { color: #666; font-size: .9em; }
tr.kind td { font-weight: 600; } .note { color: #555; max-width: 60em; }
.warning { background: #fff4d6; border-left: 4px solid #d99a00; padding: .5em .8em; max-width: 60em; }
img { max-width: 100%; border: 1px solid #eee; } pre { background: #f7f7f7; padding: .8em; overflow: auto; }
</style></head><body>
<h1>{{ title }}</h1>
<p class="note">{{ subtitle }}</p>
{% for n in notes %}<p class="warning"><b>Note:</b> {{ n }}</p>{% endfor %}

<h2 id="operating-point">Operating point at the calibrated threshold</h2>
<p class="note">An image is flagged when its score reaches the threshold. The first row is the
false-alarm rate on the good test images; the others are the share of anomalies caught.</p>
<table>
<tr><th>test images</th>{% for d in detectors %}<th>{{ d.name }}<br>threshold {{ "%.4g"|format(d.threshold) }}</th>{% endfor %}</tr>
{% for row in operating %}<tr class="{{ row.css }}"><td>{{ row.group }}</td>
{% for cell in row.cells %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% for d in detectors %}<p class="note"><b>{{ d.name }}</b>: {{ d.threshold_note }}</p>{% endfor %}

<h2 id="metrics">Detection and localisation</h2>
<p class="note">Image AUROC and {{ localisation_name }} of each group of anomalous test images against
the good ones, with bootstrap 95 % intervals (images resampled with replacement:
{{ n_boot }} resamples for AUROC{% if n_boot_localisation %}, {{ n_boot_localisation }} for
{{ localisation_name }} of the logical and structural rows{% endif %}).</p>
<table>
<tr><th rowspan="2">group</th><th rowspan="2">images</th>{% for d in detectors %}<th colspan="4">{{ d.name }}</th>{% endfor %}</tr>
<tr>{% for d in detectors %}<th>image AUROC</th><th>95 %</th><th>{{ localisation_name }}</th><th>95 %</th>{% endfor %}</tr>
{% for row in metrics %}<tr class="{{ row.css }}"><td>{{ row.group }}</td><td>{{ row.images }}</td>
{% for cell in row.cells %}<td{% if loop.index is even %} class="ci"{% endif %}>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>

<h2 id="roc">ROC curves per defect kind</h2>
<img id="fig-roc" alt="ROC curves" src="{{ figures['roc.svg'] }}">
<h2 id="histograms">Score histograms</h2>
<img id="fig-histograms" alt="score histograms" src="{{ figures['histograms.svg'] }}">

<h2 id="gallery">Gallery ({{ gallery_owner }})</h2>
{% for g in galleries %}<h3>{{ g.title }}</h3><p class="note">{{ g.note }}</p>
{% if g.file %}<img id="fig-{{ g.key }}" alt="{{ g.title }}" src="{{ figures[g.file] }}">{% else %}<p>none</p>{% endif %}
{% endfor %}

<h2 id="run">Run</h2>
<table>{% for key, value in about.items() %}<tr><td>{{ key }}</td><td style="text-align:left">{{ value }}</td></tr>{% endfor %}</table>
<h3>Configuration</h3>
<pre>{{ config }}</pre>
</body></html>
"""


def data_uri(name: str, payload: bytes) -> str:
    mime = {"svg": "image/svg+xml", "png": "image/png"}[name.rsplit(".", 1)[-1]]
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def render_page(**context: object) -> str:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(TEMPLATE).render(**context)
