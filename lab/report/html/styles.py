"""The HTML report's stylesheet (inline in the page: it loads nothing)."""

CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: #1b1f24;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 10px; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px; }
.lead, .note { color: #57606a; margin: 4px 0 8px; }
.note { font-size: 12px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 6px 0; }
caption { text-align: left; font-weight: 600; padding: 4px 0; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eaeef2; vertical-align: top; text-align: left; }
thead th { border-bottom: 2px solid #d0d7de; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; white-space: nowrap; }
table.facts th { color: #57606a; font-weight: 500; padding-left: 0; white-space: nowrap; }
table.facts td, table.facts th { border: none; padding-top: 1px; padding-bottom: 1px; }
.table-wrap { overflow-x: auto; }
tr.b td { font-weight: 600; }
tr.not-completed td { background: #fff8f0; }
td.reason { max-width: 420px; overflow-wrap: anywhere; }
td.verdict { min-width: 260px; }
td.variant, td.nowrap { white-space: nowrap; }
.good { color: #116b2f; }
.bad { color: #a40e26; }
.warn { color: #7d4e00; }
.info { color: #0b5cad; }
.dim { color: #6e7781; }
.b { font-weight: 600; }
.i { font-style: italic; }
.status { font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px 24px; }
figure.chart { margin: 0; break-inside: avoid; page-break-inside: avoid; }
figure.chart figcaption { font-weight: 600; margin-bottom: 2px; }
svg.plot { width: 100%; height: auto; display: block; }
svg.plot text { font-family: inherit; fill: #424a53; }
svg.plot .tick { font-size: 11px; }
svg.plot .label { font-size: 12px; fill: #24292f; }
svg.plot .empty { font-size: 14px; fill: #8c959f; }
svg.plot .area { fill: %PLOT_BG%; stroke: none; }
svg.plot .grid { stroke: #e6e9ed; stroke-width: 1; }
svg.plot .axis { stroke: #8c959f; stroke-width: 1; }
svg.plot .shade { fill: #eceef1; }
svg.plot .shade-label { font-size: 11px; fill: #6e7781; }
svg.plot .mark { stroke-width: 1.5; stroke-dasharray: 5 4; }
svg.plot .mark-label { font-size: 11.5px; font-weight: 600; }
svg.plot .line { fill: none; stroke-linejoin: round; stroke-linecap: round; }
.legend { display: flex; flex-wrap: wrap; gap: 2px 14px; font-size: 12px; margin-top: 2px; }
.legend .key { display: inline-flex; align-items: center; gap: 5px; }
footer { margin-top: 32px; color: #6e7781; font-size: 12px; }
@media print {
  main { max-width: none; padding: 0; }
  body { font-size: 11px; }
  h2 { break-after: avoid; }
  section, table { break-inside: auto; }
  tr, figure.chart { break-inside: avoid; }
  .charts { grid-template-columns: 1fr 1fr; }
  .table-wrap { overflow: visible; }
}
@page { margin: 12mm; }
"""


