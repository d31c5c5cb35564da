"""The server-rendered pages: Live, Events, Visitors, People, Status (HTML, escaped)."""

from __future__ import annotations

import time
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

PAGES = (("/", "Live"), ("/events", "Events"), ("/visitors", "Visitors"), ("/people", "People"), ("/status", "Status"))  # fmt: skip


def _u(text: str) -> str:
    """One URL path segment."""
    return quote(text, safe="")


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"


def layout(path: str, title: str, body: str, refresh_s: int = 0) -> str:
    """A whole page: head, navigation, the message line and `body`."""
    nav = "".join(
        f'<a href="{href}"{" class=here" if href == path else ""}>{name}</a>'
        for href, name in PAGES
    )
    refresh = f' data-refresh="{refresh_s}"' if refresh_s else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - edge-faces</title>
<link rel="stylesheet" href="/static/style.css"><script src="/static/app.js" defer></script>
</head><body{refresh}><nav>{nav}</nav><div id="msg" role="status"></div>
<h1>{escape(title)}</h1>
{body}
</body></html>
"""


def live() -> str:
    """The annotated stream."""
    body = (
        '<img class="live" src="/live.mjpeg" alt="live camera view">'
        '<p class="muted">Green: named, red: unknown (with the closest person), yellow: '
        'deciding. <a href="/snapshot.jpg">one frame</a></p>'
    )
    return layout("/", "Live", body)


def _check(value: float | None, limit: float | None, below: bool) -> str:
    if value is None or limit is None:
        return "-"
    ok = value <= limit if below else value >= limit
    sign = "&le;" if below else "&ge;"
    mark = "ok" if ok else "no"
    return f'<span class="{mark}">{value:.2f}</span> {sign} {limit:.2f}'


def _why(why: dict[str, Any]) -> str:
    rows = []
    if "votes" in why:
        rows.append(
            f"votes {why['votes']} (need {why['votes_needed']} of up to {why['max_crops']})"
        )
    if "probability" in why:
        rows.append("probability " + _check(why["probability"], why["min_probability"], False))
        rows.append(
            f"distance to {escape(why['closest'])} "
            + _check(why["distance"], why["max_distance"], True)
        )
    w, h = why["face_px"]
    size = "ok" if min(w, h) >= why["min_face_px"] else "no"
    rows.append(f'face <span class="{size}">{w}x{h}</span> px (min {why["min_face_px"]})')
    return "<br>".join(rows)


def _select(name: str, values: list[str], chosen: str) -> str:
    options = "".join(
        f'<option value="{escape(v)}"{" selected" if v == chosen else ""}>{escape(v)}</option>'
        for v in ["", *values]
    )
    return f'<label>{name} <select name="{name}" data-autosubmit>{options}</select></label>'


def events(
    items: list[dict[str, Any]],
    filters: dict[str, Any],
    names: list[str],
    cameras: list[str],
    page: int,
) -> str:
    """The timeline with each decision's reasons; filtered by person, day and camera (when
    there are several), a page at a time."""
    rows = []
    for e in items:
        img = (
            f'<img src="/api/events/{e["id"]}/snapshot.jpg" alt="" loading="lazy">'
            if e["snapshot"]
            else ""
        )
        who = escape(e["name"] or f"unknown visitor {e['visit']}")
        where = f", {escape(e['camera'])}" if len(cameras) > 1 else ""
        rows.append(
            f'<tr class="event" data-type="{escape(e["type"])}"><td>{img}</td>'
            f"<td><b>{escape(e['type'])}</b> {who}<br><small>{_when(e['time'])}{where}, visit "
            f"{e['visit']}, track {e['track']}</small></td><td>{_why(e['why'])}</td></tr>"
        )
    table = (
        f"<table><tr><th></th><th>event</th><th>why</th></tr>{''.join(rows)}</table>"
        if rows
        else "<p>No events.</p>"
    )
    keep = {k: v for k, v in filters.items() if v and k != "before"}
    older = (
        f'<p><a id="older" href="/events?{escape(urlencode({**keep, "before": items[-1]["id"]}))}">older events</a></p>'
        if len(items) == page
        else ""
    )
    day = escape(filters.get("day") or "")
    body = (
        '<form method="get" class="row">'
        + _select("person", ["unknown", *names], filters.get("person") or "")
        + f'<label>day <input type="date" name="day" value="{day}" data-autosubmit></label>'
        + (_select("camera", cameras, filters.get("camera") or "") if len(cameras) > 1 else "")
        + f"<noscript><button>filter</button></noscript></form>{table}{older}"
    )
    return layout("/events", "Events", body, refresh_s=0 if filters.get("before") else 15)


def _people_list(names: list[str]) -> str:
    return (
        '<datalist id="people">'
        + "".join(f'<option value="{escape(n)}">' for n in names)
        + "</datalist>"
    )


def visitors(items: list[dict[str, Any]], names: list[str]) -> str:
    """Unknown visitors with their crops and times; name, ignore, delete."""
    cards = []
    for v in items:
        vid = v["id"]
        thumbs = "".join(
            f'<img src="/api/visitors/{vid}/crops/{_u(c)}" alt="visitor {vid}">' for c in v["crops"]
        )
        same = (
            "<p><small>looks like visitor(s) "
            + ", ".join(str(s) for s in v["same_as"])
            + "</small></p>"
            if v["same_as"]
            else ""
        )
        cards.append(
            f'<div class="card visitor" id="visitor-{vid}" data-scope><h2>Visitor {vid}</h2>'
            f'<div class="thumbs">{thumbs}</div><p><small>{_when(v["first"])}'
            f"{' - ' + _when(v['last']) if v['last'] - v['first'] > 1 else ''}</small></p>{same}"
            '<div class="row"><input name="name" list="people" placeholder="name (existing or new)" '
            f'autocomplete="off"><button data-action="name-visitor" data-id="{vid}">Name</button></div>'
            f'<div class="row"><button data-action="ignore-visitor" data-id="{vid}">Ignore</button>'
            f'<button class="danger" data-action="delete-visitor" data-id="{vid}">Delete</button></div></div>'
        )
    body = (
        "<p class=muted>Name a visitor to have them recognized next time; Ignore teaches the "
        "model never to name that face; Delete only removes the crops.</p>"
        + _people_list(names)
        + (
            f'<div class="cards">{"".join(cards)}</div>'
            if cards
            else "<p>No unknown visitors saved.</p>"
        )
    )
    return layout("/visitors", "Visitors", body)


def people(items: list[dict[str, Any]]) -> str:
    """Each person's photos; upload, delete a photo, rename, forget."""
    cards = []
    for p in items:
        n, q = escape(p["name"]), _u(p["name"])
        thumbs = "".join(
            f'<figure><img src="/api/people/{q}/photos/{_u(f)}" alt="{escape(f)}" loading="lazy">'
            f'<button class="danger" data-action="delete-photo" data-name="{n}" '
            f'data-file="{escape(f)}" title="delete {escape(f)}">&times;</button></figure>'
            for f in p["photos"]
        )
        state = "" if p["in_model"] else ' <small class="no">(not in the model)</small>'
        cards.append(
            f'<div class="card person" data-person="{n}" data-scope><h2>{n}{state}</h2>'
            f'<p><small>{len(p["photos"])} photo(s)</small></p><div class="thumbs">{thumbs}</div>'
            '<div class="row"><input type="file" accept="image/*" multiple>'
            f'<button data-action="upload" data-name="{n}">Add photos</button></div>'
            '<div class="row"><input name="new-name" placeholder="new name" autocomplete="off">'
            f'<button data-action="rename" data-name="{n}">Rename</button>'
            f'<button class="danger" data-action="forget" data-name="{n}">Forget</button></div></div>'
        )
    add = (
        '<div class="card" data-scope><h2>Add a person</h2><div class="row">'
        '<input name="name" placeholder="name" autocomplete="off"></div><div class="row">'
        '<input type="file" accept="image/*" multiple><button data-action="upload">Enroll</button>'
        "</div></div>"
    )
    body = f'<div class="cards">{add}{"".join(cards)}</div>'
    return layout("/people", "People", body)


def status(s: dict[str, Any]) -> str:
    """Frames/s, per-stage ms, CPU temperature, model, uptime, MQTT state."""
    temp = s.get("cpu_temp_c")
    rows = [
        ("frames/s", s.get("fps", "-")),
        (
            "frames read / processed / dropped",
            f"{s.get('frames_read', '-')} / {s.get('frames_processed', '-')} / {s.get('frames_dropped', '-')}",
        ),  # fmt: skip
        ("events", s.get("events", "-")),
        ("present now", s.get("present", "-")),
        ("CPU temperature", f"{temp:.1f} &deg;C" if temp is not None else "not available"),
        (
            "model",
            f"{escape(str(s.get('model') or 'none (detect only)'))}, {s.get('people', 0)} people",
        ),  # fmt: skip
        ("MQTT", escape(str(s.get("mqtt", "-")))),
        ("source", escape(str(s.get("source", "-")))),
        (
            "uptime",
            f"{int(s['uptime_s'] // 3600)} h {int(s['uptime_s'] % 3600 // 60)} min {int(s['uptime_s'] % 60)} s",
        ),  # fmt: skip
    ]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    stages = "".join(
        f"<tr><td>{escape(name)}</td><td>{v.get('median_ms', '-')}</td><td>{v.get('p95_ms', '-')}</td></tr>"
        for name, v in s.get("stages", {}).items()
    )
    body = (
        f'<table id="status">{table}</table><h2>Per stage, ms</h2>'
        f"<table><tr><th>stage</th><th>median</th><th>p95</th></tr>{stages}</table>"
    )
    return layout("/status", "Status", body, refresh_s=5)
