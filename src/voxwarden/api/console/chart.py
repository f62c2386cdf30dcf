"""The room timeline as inline SVG, drawn on the server (no chart library, works without JavaScript).

Only presentation attributes are used (no ``style=``), so the console's Content-Security-Policy can forbid
inline styles. Every text value is escaped.
"""

from __future__ import annotations

from html import escape

from voxwarden.api.console.queries import Timeline

PALETTE = ("#c0392b", "#2471a3", "#1e8449", "#b9770e", "#7d3c98", "#117a65", "#a04000", "#2e4053",
           "#cb4335", "#2874a6", "#239b56", "#9a7d0a")
WIDTH, HEIGHT = 900, 280
# watermark check results on the timeline: an AI label found stands out, no label is quiet
CHECK_COLOURS = {"present": "#7d3c98", "absent": "#bdc3c7", "error": "#e67e22", "skipped": "#f7dc6f"}
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 14, 40


def _nice_step(duration: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400):
        if duration / step <= 10:
            return float(step)
    return 86400.0 * max(1, round(duration / 86400 / 10))


def _fmt_t(t: float) -> str:
    t = int(round(t))
    h, rem = divmod(t, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def render_timeline(tl: Timeline) -> str:
    """SVG markup of the per-speaker probability curves, the threshold and the alert's span."""
    dur = max(tl.duration, 1.0)
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: float) -> float:
        return LEFT + pw * min(max(t, 0.0), dur) / dur

    def y(p: float) -> float:
        return TOP + ph * (1.0 - min(max(p, 0.0), 1.0))

    out: list[str] = []
    span_attrs = ""
    if tl.span is not None:
        x0, x1 = x(tl.span[0]), x(tl.span[1])
        span_attrs = f' data-span-x0="{x0:.1f}" data-span-x1="{x1:.1f}"'
    out.append(f'<svg id="timeline" class="timeline" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
               f'height="{HEIGHT}" role="img" aria-label="Score per speaker over time"{span_attrs} '
               f'xmlns="http://www.w3.org/2000/svg">')
    if tl.span is not None:
        x0, x1 = x(tl.span[0]), x(tl.span[1])
        out.append(f'<rect id="alert-span" x="{x0:.1f}" y="{TOP}" width="{max(x1 - x0, 2.0):.1f}" height="{ph}" '
                   f'fill="#f5b041" fill-opacity="0.35"><title>alert span {_fmt_t(tl.span[0])}–'
                   f'{_fmt_t(tl.span[1])}</title></rect>')
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(p):.1f}" y2="{y(p):.1f}" stroke="#ddd"/>'
                   f'<text x="{LEFT - 6}" y="{y(p) + 4:.1f}" text-anchor="end" font-size="11">{p:.2f}</text>')
    step = _nice_step(dur)
    t = 0.0
    while t <= dur + 1e-9:
        out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{TOP + ph}" y2="{TOP + ph + 4}" stroke="#555"/>'
                   f'<text x="{x(t):.1f}" y="{TOP + ph + 16}" text-anchor="middle" font-size="11">{_fmt_t(t)}</text>')
        t += step
    out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + ph}" y2="{TOP + ph}" stroke="#555"/>')
    if tl.threshold is not None and 0.0 <= tl.threshold <= 1.0:
        yt = y(tl.threshold)
        out.append(f'<line id="threshold" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yt:.1f}" y2="{yt:.1f}" '
                   f'stroke="#555" stroke-dasharray="6 4"><title>threshold {tl.threshold:.2f}</title></line>')
    for i, sr in enumerate(tl.series):
        colour = PALETTE[i % len(PALETTE)]
        name = escape(sr.speaker)
        if sr.points:
            pts = " ".join(f"{x(t):.1f},{y(p):.1f}" for t, p in sr.points)
            width = "2.5" if sr.flagged else "1.5"
            out.append(f'<polyline class="curve" data-speaker="{name}" points="{pts}" fill="none" '
                       f'stroke="{colour}" stroke-width="{width}"><title>{name}</title></polyline>')
            if len(sr.points) <= 300:  # hover targets with the exact values
                for t, p in sr.points:
                    out.append(f'<circle cx="{x(t):.1f}" cy="{y(p):.1f}" r="2.5" fill="{colour}">'
                               f'<title>{name} {_fmt_t(t)} p={p:.3f}</title></circle>')
        for a, b, result in sr.checks:  # watermark checks: a tick row at the top, one colour per result
            xa, xb = x(a), x(b)
            out.append(f'<rect class="wm-check" data-result="{escape(result)}" x="{xa:.1f}" y="{TOP + 1}" '
                       f'width="{max(xb - xa - 1.0, 1.0):.1f}" height="4" fill="{CHECK_COLOURS.get(result, "#999")}">'
                       f'<title>{name}: watermark {escape(result)} {_fmt_t(a)}–{_fmt_t(b)}</title></rect>')
        ly = HEIGHT - 8
        lx = LEFT + 150 * i
        if lx < WIDTH - 100:
            out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colour}"/>'
                       f'<text x="{lx + 14}" y="{ly}" font-size="11">{name}{" (alert)" if sr.flagged else ""}</text>')
    if tl.span is not None:
        xs = x(tl.span[0])
        out.append(f'<line id="playhead" x1="{xs:.1f}" x2="{xs:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#000" '
                   f'stroke-width="1.5" visibility="hidden"/>')
    if not any(sr.points for sr in tl.series):
        out.append(f'<text x="{WIDTH / 2}" y="{TOP + ph / 2}" text-anchor="middle" font-size="13">'
                   f'no window scores stored for this room</text>')
    out.append("</svg>")
    return "".join(out)
