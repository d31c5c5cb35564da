"""The server-rendered pages: Live, Events, Visitors, People, Status (HTML, escaped). Each
decision in plain words, its numbers one click away; regions with `data-region` are updated
in place by app.js when /api/changes says something new happened."""

from __future__ import annotations

import time
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

PAGES = (("/", "Live"), ("/events", "Events"), ("/visitors", "Visitors"), ("/people", "People"), ("/status", "Status"))  # fmt: skip
MIN_PHOTOS = 3  # fewer photos the model learned from: recognition is unreliable
MAX_NAME = 64


def _u(text: str) -> str:
    """One URL path segment."""
    return quote(text, safe="")


def _when(t: float | None) -> str:
    if not t:
        return "-"
    day = time.strftime("%a %d %b", time.localtime(t))
    today = time.strftime("%a %d %b", time.localtime())
    clock = time.strftime("%H:%M:%S", time.localtime(t))
    return clock if day == today else f"{day}, {clock}"


def person_id(name: str) -> str:
    """The id of a person's card (and the target of links to it)."""
    return "person-" + _u(name)


def layout(path: str, title: str, body: str, live: str = "") -> str:
    """A whole page: head, navigation, the message line and `body`; `live` names the key of
    /api/changes whose change refreshes the page's regions."""
    nav = "".join(
        f'<a href="{href}"{" class=here" if href == path else ""}>{name}</a>'
        for href, name in PAGES
    )
    live_attr = f' data-live="{live}"' if live else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - edge-faces</title>
<link rel="stylesheet" href="/static/style.css"><script src="/static/app.js" defer></script>
</head><body{live_attr}><nav>{nav}</nav><div id="msg" role="status" aria-live="polite"></div>
<h1>{escape(title)}</h1>
{body}
</body></html>
"""


def live(cameras: list[str] | None = None) -> str:
    """The annotated stream; with several cameras, one per camera under its name."""
    legend = "Green: recognized, red: not recognized, yellow: still deciding."
    if not cameras:
        body = (
            '<img class="live" src="/live.mjpeg" alt="live camera view">'
            f'<p class="muted">{legend} <a href="/snapshot.jpg">one frame</a></p>'
        )
        return layout("/", "Live", body)
    views = "".join(
        f'<section class="camera"><h2>{escape(name)}</h2>'
        f'<img class="live" src="/live.mjpeg?camera={quote(name)}" alt="{escape(name)}: live view">'
        f'<p class="muted"><a href="/snapshot.jpg?camera={quote(name)}">one frame</a></p></section>'
        for name in cameras
    )
    return layout("/", "Live", views + f'<p class="muted">{legend}</p>')


# --- a decision in plain words -----------------------------------------------------------


def _sureness(why: dict[str, Any]) -> str:
    """How sure a recognition was, from how far past both thresholds it got."""
    p, pmin = why.get("probability"), why.get("min_probability")
    d, dmax = why.get("distance"), why.get("max_distance")
    if None in (p, pmin, d, dmax):
        return ""
    margin = min((p - pmin) / max(1e-6, 1 - pmin), (dmax - d) / max(1e-6, dmax))
    return "very sure" if margin >= 0.5 else "sure" if margin >= 0.2 else "only just sure enough"


def verdict(event: dict[str, Any]) -> str:
    """One plain sentence for an event's decision."""
    why, name = event.get("why") or {}, event.get("name")
    if event["type"] == "left":
        return f"Left: {name}" if name else "Left"
    if event["type"] == "recognized" or name:
        sure = _sureness(why)
        return f"Recognized: {name}" + (f", {sure}" if sure else "")
    w, h = why.get("face_px") or (0, 0)
    if why.get("min_face_px") and min(w, h) < why["min_face_px"]:
        return "Not recognized: the face was too small (too far from the camera)"
    if "votes" in why and why["votes"] < why.get("votes_needed", 0):
        return "Not recognized: seen too briefly to be sure"
    if "distance" not in why:
        return "Not recognized: no one is in the library yet"
    if why["distance"] > why["max_distance"]:
        return "Not recognized: no one in the library looks close enough"
    return "Not recognized: a little like someone in the library, but not enough to be sure"


def _numbers(event: dict[str, Any]) -> str:
    """The figures behind a decision, folded; a stranger is never compared by name."""
    why = event.get("why") or {}
    rows = []
    if "votes" in why:
        rows.append(
            f"views of the face used: {why['votes']} ({why['votes_needed']} needed, "
            f"up to {why['max_crops']})"
        )
    if "probability" in why:
        rows.append(
            f"match strength {why['probability']:.2f} "
            f"(at least {why['min_probability']:.2f} names someone)"
        )
        to = f" to {escape(why['closest'])}" if event.get("name") else ""
        rows.append(
            f"difference{to} {why['distance']:.2f} "
            f"(at most {why['max_distance']:.2f} names someone; 0 = the same face)"
        )
    if "face_px" in why:
        w, h = why["face_px"]
        rows.append(f"face {w}x{h} px (at least {why['min_face_px']} px)")
    if not rows:
        return ""
    items = "".join(f"<li>{r}</li>" for r in rows)
    return f"<details><summary>the numbers</summary><ul>{items}</ul></details>"


def _who(event: dict[str, Any], visitor_ids: set[int]) -> str:
    """The person or visitor an event is about, linked to their card."""
    name = event.get("name")
    if name:
        return f'<a href="/people#{person_id(name)}">{escape(name)}</a>'
    visit = event.get("visit")
    if visit in visitor_ids:
        return f'<a href="/visitors#visitor-{visit}">visitor {visit}</a>'
    return f"visitor {visit}" if visit is not None else "someone"


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
    visitor_ids: set[int] = frozenset(),  # type: ignore[assignment]
) -> str:
    """The timeline, newest first, each decision in words with its numbers folded; filtered
    by person, day and camera (when there are several), a page at a time."""
    rows = []
    for e in items:
        img = (
            f'<a href="/api/events/{e["id"]}/snapshot.jpg" target="_blank">'
            f'<img src="/api/events/{e["id"]}/snapshot.jpg" alt="" loading="lazy"></a>'
            if e["snapshot"]
            else '<span class="noimg"></span>'
        )
        kind = "ok" if e["type"] == "recognized" else "left" if e["type"] == "left" else "no"
        where = f" &middot; {escape(e['camera'])}" if len(cameras) > 1 and e.get("camera") else ""
        rows.append(
            f'<li class="event" id="event-{e["id"]}" data-type="{escape(e["type"])}">{img}'
            f'<div><b class="{kind}">{escape(verdict(e))}</b><br>'
            f"<small>{_when(e['time'])}{where} &middot; {_who(e, visitor_ids)}</small>"
            f"{'' if e['type'] == 'left' else _numbers(e)}"
            f"{_correct(e) if e['snapshot'] and e['type'] != 'left' else ''}</div></li>"
        )
    listing = (
        f'<ul class="events" id="events" data-region>{"".join(rows)}</ul>'
        if rows
        else '<ul class="events" id="events" data-region><li id="no-events">No events yet.</li></ul>'
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
        + f"<noscript><button>filter</button></noscript></form>{listing}{older}"
    )
    return layout("/events", "Events", body, live="" if filters.get("before") else "events")


def _correct(e: dict[str, Any]) -> str:
    """The folded "wrong person?" (a recognized face) or "who is this?" control of an event."""
    eid = e["id"]
    ask = "wrong person?" if e["type"] == "recognized" else "who is this?"
    return (
        f'<details class="correct" data-scope><summary>{ask}</summary><div class="row">'
        f'<input name="name" list="people" maxlength="{MAX_NAME}" placeholder="who is it?" '
        f'autocomplete="off"><button data-action="correct-event" data-id="{eid}">This is them</button>'
        f'<button data-action="never-event" data-id="{eid}">Never name this face</button>'
        "</div></details>"
    )


def _people_list(names: list[str]) -> str:
    return (
        '<datalist id="people">'
        + "".join(f'<option value="{escape(n)}">' for n in names)
        + "</datalist>"
    )


def visitors(items: list[dict[str, Any]], names: list[str]) -> str:
    """One card per stranger (their visits that look alike grouped), with crops and times;
    name, ignore or delete all of them at once."""
    cards, shown = [], set()
    by_id = {v["id"]: v for v in items}
    for v in items:
        if v["id"] in shown:
            continue
        group = [by_id[g] for g in v.get("group", [v["id"]]) if g in by_id]
        shown |= {g["id"] for g in group}
        vid = v["id"]
        thumbs = "".join(
            f'<a href="/api/visitors/{g["id"]}/crops/{_u(c)}" target="_blank">'
            f'<img src="/api/visitors/{g["id"]}/crops/{_u(c)}" alt="visitor {g["id"]}"></a>'
            for g in group
            for c in g["crops"][:4]
        )
        first, last = min(g["first"] for g in group), max(g["last"] for g in group)
        span = f" to {_when(last)}" if last - first > 1 else ""
        ids = [g["id"] for g in group]
        title = (
            f"Visitor {vid}"
            if len(ids) == 1
            else f"Visitor {vid} <small>({len(ids)} visits: {', '.join(map(str, ids))})</small>"
        )
        each = " (every visit)" if len(ids) > 1 else ""
        cards.append(
            f'<div class="card visitor" id="visitor-{vid}" data-scope data-together><h2>{title}</h2>'
            f'<div class="thumbs">{thumbs}</div><p><small>{_when(first)}{span}</small></p>'
            f'<div class="row"><input name="name" list="people" maxlength="{MAX_NAME}" '
            'placeholder="who is this? (name)" autocomplete="off">'
            f'<button data-action="name-visitor" data-id="{vid}">Name{each}</button></div>'
            f"<details><summary>not someone to name</summary>"
            f'<div class="row"><button data-action="ignore-visitor" data-id="{vid}">Never name this face</button>'
            f'<button class="danger" data-action="delete-visitor" data-id="{vid}" '
            f'data-ids="{",".join(map(str, ids))}">Delete the pictures</button></div>'
            "</details></div>"
        )
    body = (
        "<p class=muted>People the camera did not recognize. Name one to have them recognized "
        "next time.</p>"
        + _people_list(names)
        + f'<div class="cards" id="visitor-cards" data-region>{"".join(cards)}'
        + ("" if cards else '<p id="no-visitors">No visitors waiting for a name.</p>')
        + "</div>"
    )
    return layout("/visitors", "Visitors", body, live="visitors")


def _person_card(p: dict[str, Any]) -> str:
    n, q = escape(p["name"]), _u(p["name"])
    unused = set(p.get("unused", []))
    thumbs = "".join(
        f"<figure{' class=unused' if f in unused else ''}>"
        f'<a href="/api/people/{q}/photos/{_u(f)}" target="_blank">'
        f'<img src="/api/people/{q}/photos/{_u(f)}" alt="{escape(f)}" loading="lazy"></a>'
        + ("<figcaption>not used</figcaption>" if f in unused and p["in_model"] else "")
        + f'<button class="danger" data-action="delete-photo" data-name="{n}" '
        f'data-file="{escape(f)}" title="delete {escape(f)}">&times;</button></figure>'
        for f in p["photos"]
    )
    used = p.get("faces_learned", len(p["photos"]) - len(unused))
    notes = []
    if not p["in_model"]:
        notes.append('<p class="warn">Not recognized yet: add a photo with one clear face.</p>')
    elif used < MIN_PHOTOS:
        notes.append(
            f'<p class="warn">Learned from only {used} face{"s" if used != 1 else ""}: add '
            f"{MIN_PHOTOS} or more photos, from different days and angles, for reliable "
            "recognition.</p>"
        )
    if unused and p["in_model"]:
        notes.append(
            f"<p><small>{len(unused)} photo(s) marked &ldquo;not used&rdquo;: the model found "
            "no single clear face in them.</small></p>"
        )
    return (
        f'<div class="card person" id="{person_id(p["name"])}" data-person="{n}" data-scope>'
        f"<h2>{n}</h2><p><small>{len(p['photos'])} photo(s) here; the model learned from "
        f"{used} face(s)</small></p>{''.join(notes)}"
        f'<div class="thumbs">{thumbs}</div>'
        f'<label class="row">Add photos: <input type="file" accept="image/*" multiple '
        f'data-upload="{n}"></label>'
        "<details><summary>rename, forget, delete photos</summary>"
        f'<div class="row"><input name="new-name" maxlength="{MAX_NAME}" placeholder="new name" '
        f'autocomplete="off"><button data-action="rename" data-name="{n}">Rename</button></div>'
        f'<div class="row"><button class="danger" data-action="forget" data-name="{n}">'
        f"Forget {n}</button></div><p><small>Delete a photo with its &times;.</small></p>"
        "</details></div>"
    )


def people(items: list[dict[str, Any]]) -> str:
    """Each person's photos; upload (one step), and folded: rename, forget, delete a photo."""
    add = (
        '<div class="card" id="add-person" data-scope><h2>Add a person</h2><div class="row">'
        f'<input name="name" maxlength="{MAX_NAME}" placeholder="name" autocomplete="off"></div>'
        '<label class="row">Photos: <input type="file" accept="image/*" multiple data-upload=""></label>'
        f"<p><small>{MIN_PHOTOS} or more photos of one face each, from different days.</small></p>"
        "</div>"
    )
    cards = "".join(_person_card(p) for p in items)
    body = f'<div class="cards" id="people-cards" data-region>{add}{cards}</div>'
    return layout("/people", "People", body, live="people")


def _ms(v: Any) -> str:
    return "-" if v is None else f"{v}"


def status(s: dict[str, Any]) -> str:
    """Who is here, frames/s, the work per frame, CPU temperature, model, uptime, MQTT."""
    temp = s.get("cpu_temp_c")
    here = s.get("present_names") or []
    rows = [
        ("at the camera now", escape(", ".join(here)) if here else "no one"),
        ("frames/s", s.get("fps", "-")),
        (
            "frames read / processed / dropped",
            f"{s.get('frames_read', '-')} / {s.get('frames_processed', '-')} / {s.get('frames_dropped', '-')}",
        ),  # fmt: skip
        ("events", s.get("events", "-")),
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
    table = "".join(
        f'<tr id="status-{i}"><th>{k}</th><td>{v}</td></tr>' for i, (k, v) in enumerate(rows)
    )
    stages = s.get("stages", {})
    work = "".join(
        f'<tr id="stage-{escape(name)}"><td>{escape(name)}</td><td>{_ms(v.get("median_ms"))}</td>'
        f"<td>{_ms(v.get('p95_ms'))}</td></tr>"
        for name, v in stages.items()
        if name != "capture"
    )
    cams = s.get("cameras") or {}
    per_camera = "".join(
        f'<tr class="camera-row"><td>{escape(name)}</td><td>{c.get("fps", "-")}</td>'
        f"<td>{c.get('frames_processed', '-')} / {c.get('frames_dropped', '-')}</td>"
        f"<td>{'lost, retrying' if c.get('lost') else 'ok'}</td></tr>"
        for name, c in cams.items()
    )
    if per_camera:
        per_camera = (
            '<h2 id="cameras-title">Cameras</h2><table id="cameras"><tr><th>camera</th>'
            f"<th>frames/s</th><th>processed / dropped</th><th>state</th></tr>{per_camera}</table>"
        )
    wait = stages.get("capture", {})
    pace = (
        f'<p id="camera-wait"><small>Waiting for the camera&rsquo;s next frame: '
        f"{_ms(wait.get('median_ms'))} ms typical (the camera&rsquo;s pace, not work; "
        "a stage at 0.0 had nothing to do).</small></p>"
        if wait
        else '<p id="camera-wait"></p>'
    )
    body = (
        f'<div id="status-all" data-region><table id="status">{table}</table>{per_camera}'
        f'<h2 id="stages-title">Work per frame, ms</h2>'
        f'<table id="stages"><tr><th>stage</th><th>median</th><th>p95</th></tr>{work}</table>'
        f"{pace}</div>"
    )
    return layout("/status", "Status", body, live="status")
