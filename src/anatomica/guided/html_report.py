"""report.html of a sampling run: one self-contained page (opens from disk, no network) with the run's
settings, targets against achieved measures per sample and control domain, the mosaic with its legend, and
an interactive 3D view of the samples (NiiVue, vendored under ``anatomica/assets/niivue``) with named labels
in the colours of ``io.colors``.

Everything is inline: the NiiVue bundle, the mosaic as a data URI and each shown sample's ``.nii.gz`` as
base64, so the page can be mailed or archived as one file.
"""

from __future__ import annotations

import base64
import html
import json
from importlib import resources
from pathlib import Path

from anatomica.io.colors import color_hex, color_of
from anatomica.io.files import atomic_write

NIIVUE_VERSION = "0.69.0"
MAX_VIEWER_SAMPLES = 16  # each 32³ sample is a few kB; a cap keeps large runs' pages small


def niivue_bundle() -> str:
    """The vendored NiiVue UMD bundle (defines ``window.niivue``)."""
    return resources.files("anatomica").joinpath("assets/niivue/niivue.umd.js").read_text(encoding="utf-8")


def _labels_of(folder: Path) -> dict[str, int]:
    from anatomica.io.dataset import read_label_table

    return read_label_table(folder / "dataset.json") if (folder / "dataset.json").is_file() else {}


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "—"
    if isinstance(x, (list, tuple)):
        return "(" + ", ".join(_fmt(v, digits) for v in x) + ")"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return html.escape(str(x))


def _legend(labels: dict[str, int]) -> str:
    rows = "".join(f'<li><span class="sw" style="background:{color_hex(n)}"></span>{html.escape(n)} <small>({v})</small></li>'
                   for n, v in sorted(labels.items(), key=lambda kv: kv[1]))
    return f'<ul class="legend" id="legend">{rows}</ul>'


def _settings(summary: dict) -> str:
    keys = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    g = summary.get("guidance")
    if isinstance(g, dict):
        keys.update({f"guidance {k}": v for k, v in g.items() if not isinstance(v, (dict, list))})
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v, 4)}</td></tr>" for k, v in keys.items())
    return f'<table class="kv">{rows}</table>'


def _guided_tables(folder: Path, summary: dict) -> str:
    """Mean errors per domain, then every sample's targets against achieved measures."""
    parts = []
    domains = summary.get("domains") or {}
    if domains:
        order = ["mass_l1", "centroid_l1", "covariance_l1", "betti_accuracy"]
        cols = sorted({k for e in domains.values() for k in e}, key=lambda k: (order.index(k) if k in order else len(order), k))
        head = "".join(f"<th>{html.escape(c.replace('_', ' '))}</th>" for c in cols)
        body = "".join("<tr><th>" + html.escape(name) + "</th>" + "".join(f"<td>{_fmt(e.get(c))}</td>" for c in cols) + "</tr>"
                       for name, e in domains.items())
        parts.append(f"<h3>Mean over {summary.get('n', '?')} samples</h3><table><tr><th>domain</th>{head}</tr>{body}</table>")
    rows = []
    for path in sorted((folder / "reports").glob("sample_*.json")):
        rep = json.loads(path.read_text())
        for d in rep.get("domains", []):
            m, t, err = d.get("measured", {}), d.get("target", {}), d.get("errors", {})
            unit = d.get("mass_unit", "")
            rows.append(
                f"<tr><td>{rep.get('sample')}</td><td>{html.escape(d.get('name', ''))}</td><td>{html.escape(d.get('kind', ''))}</td>"
                f"<td>{_fmt(t.get('mass'))}</td><td>{_fmt(m.get('mass'))}</td><td>{html.escape(unit)}</td>"
                f"<td>{_fmt(t.get('centroid_mm'))}</td><td>{_fmt(m.get('centroid_mm'))}</td>"
                f"<td>{_fmt(t.get('betti'))}</td><td>{_fmt(m.get('betti'))}</td>"
                f"<td>{_fmt(err.get('mass'))}</td><td>{_fmt(err.get('centroid'))}</td><td>{_fmt(err.get('covariance'))}</td>"
                f"<td>{_fmt(rep.get('potential', {}).get('final'))}</td></tr>")
    if rows:
        parts.append("<h3>Per sample: target vs achieved</h3><table><tr><th>sample</th><th>domain</th><th>kind</th>"
                     "<th>target mass</th><th>achieved mass</th><th>unit</th><th>target centroid (mm)</th>"
                     "<th>achieved centroid (mm)</th><th>target Betti</th><th>achieved Betti</th><th>mass L1</th>"
                     "<th>centroid L1</th><th>covariance L1</th><th>final potential</th></tr>" + "".join(rows) + "</table>")
    return "".join(parts)


def _quality_table(summary: dict) -> str:
    """Unguided runs: per-label volumes of the samples against the training data."""
    samples = (summary.get("samples") or {}).get("labels") or {}
    training = (summary.get("training") or {}).get("labels") or {}
    if not samples:
        return ""
    rows = []
    for name, s in samples.items():
        t = training.get(name)
        rows.append(f'<tr><th><span class="sw" style="background:{color_hex(name)}"></span>{html.escape(name)}</th>'
                    f"<td>{_fmt(t['mean_ml'])} ± {_fmt(t['sd_ml'])}</td>" if t else
                    f'<tr><th><span class="sw" style="background:{color_hex(name)}"></span>{html.escape(name)}</th><td>—</td>')
        rows[-1] += f"<td>{_fmt(s['mean_ml'])} ± {_fmt(s['sd_ml'])}</td><td>{_fmt(100 * s['present'])} %</td></tr>"
    return ("<h3>Per-label volume (mL): samples against the training data</h3><table><tr><th>label</th><th>training</th>"
            "<th>samples</th><th>samples present</th></tr>" + "".join(rows) + "</table>")


def _lut(labels: dict[str, int]) -> dict:
    """NiiVue's label colour map: R, G, B, A and the values I with their names."""
    table = sorted(labels.items(), key=lambda kv: kv[1])
    lut = {"R": [0], "G": [0], "B": [0], "A": [0], "I": [0], "labels": ["background"]}
    for name, value in table:
        r, g, b = color_of(name)
        for key, c in zip("RGBA", (r, g, b, 255)):
            lut[key].append(c)
        lut["I"].append(int(value))
        lut["labels"].append(name)
    return lut


def report_html(folder: Path, summary: dict, sample: int = 0, title: str | None = None, preamble: str = "") -> str:
    """The page for a finished sample folder (labelsTr/, dataset.json, mosaic.png, reports/); ``preamble`` is HTML
    placed before the tables (the demo's comparison of unguided and guided runs)."""
    folder = Path(folder)
    labels = _labels_of(folder)
    files = sorted((folder / "labelsTr").glob("*.nii.gz"))
    if files:
        sample = min(max(sample, 0), len(files) - 1)
        start = max(0, min(sample, len(files) - MAX_VIEWER_SAMPLES))
        shown = files[start:start + MAX_VIEWER_SAMPLES]
    else:
        shown = []
    volumes = {p.name[: -len(".nii.gz")]: base64.b64encode(p.read_bytes()).decode() for p in shown}
    first = files[sample].name[: -len(".nii.gz")] if files else ""
    mosaic = folder / "mosaic.png"
    mosaic_html = (f'<img class="mosaic" alt="mid-slice mosaic" src="data:image/png;base64,{base64.b64encode(mosaic.read_bytes()).decode()}">'
                   if mosaic.is_file() else "<p>(no mosaic)</p>")
    task = summary.get("task")
    title = title or (f"anatomica: task {task!r}" if task else "anatomica: samples")
    tables = _guided_tables(folder, summary) if task else _quality_table(summary)
    options = "".join(f'<option value="{k}"{" selected" if k == first else ""}>{k}</option>' for k in volumes)
    data = json.dumps({"volumes": volumes, "first": first, "lut": _lut(labels)})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1em 2em; color: #222; }}
table {{ border-collapse: collapse; margin: .5em 0 1.5em; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; }}
th {{ background: #f4f4f4; text-align: left; }}
.viewer {{ display: flex; gap: 1.5em; align-items: flex-start; }}
#glbox {{ width: 480px; height: 480px; border: 1px solid #ccc; }}
#gl {{ width: 100%; height: 100%; display: block; }}
.legend {{ list-style: none; padding: 0; margin: 0; font-size: 14px; }}
.legend li {{ margin: 3px 0; }}
.sw {{ display: inline-block; width: 14px; height: 14px; margin-right: 6px; vertical-align: middle; border: 1px solid #888; }}
.mosaic {{ max-width: 100%; }}
#where {{ font-size: 13px; min-height: 1.2em; color: #444; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<section class="viewer">
<div><div id="glbox"><canvas id="gl"></canvas></div>
<div id="where">drag to rotate, scroll to zoom; hover a label to see its name</div></div>
<div><label>sample <select id="pick">{options}</select></label>
<p><button id="render" type="button">3D</button> <button id="slices" type="button">slices</button></p>
<h3>Labels</h3>{_legend(labels)}
<p id="status">loading</p></div>
</section>
{preamble}
<h2>{"Targets and achieved measures" if task else "Label volumes"}</h2>
{tables or "<p>(no measures)</p>"}
<h2>Mosaic</h2>
{mosaic_html}
<h2>Run settings</h2>
{_settings(summary)}
<p><small>Files: labelsTr/*.nii.gz (label maps, world mm), dataset.json (label table), summary.json, reports/.
3D viewer: NiiVue {NIIVUE_VERSION} (BSD-2-Clause), embedded.</small></p>
<script>
// every error the page meets ends in #status (the headless browser test reads it)
window.__errors = [];
window.addEventListener("error", e => {{ window.__errors.push(String(e.message)); }});
window.addEventListener("unhandledrejection", e => {{ window.__errors.push(String(e.reason)); }});
const __consoleError = console.error.bind(console);
console.error = (...args) => {{ window.__errors.push(args.map(String).join(" ")); __consoleError(...args); }};
</script>
<script>{niivue_bundle()}</script>
<script id="report-data" type="application/json">{data}</script>
<script>
(async () => {{
  const status = document.getElementById("status");
  try {{
    const DATA = JSON.parse(document.getElementById("report-data").textContent);
    const bytes = s => {{ const b = atob(s), u = new Uint8Array(b.length); for (let i = 0; i < b.length; i++) u[i] = b.charCodeAt(i); return u.buffer; }};
    const nv = new niivue.Niivue({{ backColor: [1, 1, 1, 1], show3Dcrosshair: false, isColorbar: false, logLevel: "error" }});
    await nv.attachToCanvas(document.getElementById("gl"));
    nv.onLocationChange = d => {{ document.getElementById("where").textContent = d && d.string ? d.string : ""; }};
    const show = async name => {{
      while (nv.volumes.length) nv.removeVolume(nv.volumes[0]);
      await nv.loadFromArrayBuffer(bytes(DATA.volumes[name]), name + ".nii.gz");
      nv.volumes[0].setColormapLabel(DATA.lut);
      nv.setSliceType(nv.sliceTypeRender);
      nv.setRenderAzimuthElevation(120, 15);
      nv.updateGLVolume();
    }};
    document.getElementById("pick").addEventListener("change", e => show(e.target.value));
    document.getElementById("render").addEventListener("click", () => nv.setSliceType(nv.sliceTypeRender));
    document.getElementById("slices").addEventListener("click", () => nv.setSliceType(nv.sliceTypeMultiplanar));
    if (DATA.first) await show(DATA.first);
    status.textContent = window.__errors.length ? "error: " + window.__errors.join("; ") : "ready";
  }} catch (e) {{
    status.textContent = "error: " + e;
  }}
}})();
</script>
</body></html>
"""


def write_report(folder: Path, summary: dict, sample: int = 0, path: Path | None = None, title: str | None = None,
                 preamble: str = "") -> Path:
    """Write ``folder/report.html`` (or ``path``) atomically."""
    path = Path(path) if path is not None else Path(folder) / "report.html"
    text = report_html(Path(folder), summary, sample, title, preamble)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path


def viewer_files(folder: Path, target: Path | None = None) -> list[Path]:
    """Slicer and ITK-SNAP files for every label map of a dataset/sample folder: ``viewer/<case>.seg.nrrd``,
    ``viewer/anatomica.ctbl`` and ``viewer/itksnap_labels.txt`` (ITK-SNAP opens labelsTr/<case>.nii.gz with it)."""
    from anatomica.io.nifti import load_label_map
    from anatomica.io.slicer import write_seg_nrrd, write_tables

    folder = Path(folder)
    target = Path(target) if target is not None else folder / "viewer"
    labels = _labels_of(folder)
    written = []
    for p in sorted((folder / "labelsTr").glob("*.nii*")):
        stem = p.name.split(".nii")[0]
        written.append(write_seg_nrrd(load_label_map(p, labels), target / f"{stem}.seg.nrrd", overwrite=True))
    return written + write_tables(labels, target)


def sample_meshes(folder: Path, fmt: str, smooth: int = 0) -> list[Path]:
    """``meshes/<sample>/<label>.<fmt>`` for every label map of a sample folder (world mm)."""
    from anatomica.io.mesh import export_label_map_meshes
    from anatomica.io.nifti import load_label_map

    folder = Path(folder)
    labels = _labels_of(folder)
    written = []
    for p in sorted((folder / "labelsTr").glob("*.nii*")):
        written += export_label_map_meshes(load_label_map(p, labels), folder / "meshes" / p.name.split(".nii")[0], fmt, smooth=smooth)
    return written


def sample_extras(mesh: str | None = None, viewer: bool = False, report_sample: int = 0):
    """The ``SamplingRun.extras`` hook of ``anatomica sample``: meshes (``--mesh``), Slicer/ITK-SNAP files
    (``--viewer-files``) and report.html, written into the staged folder before it is swapped in."""

    def extras(folder: Path, summary: dict) -> None:
        if mesh:
            sample_meshes(folder, mesh)
        if viewer:
            viewer_files(folder)
        write_report(folder, summary, report_sample)

    return extras
