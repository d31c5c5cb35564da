"""The face library in the browser: a small web app served by the Pi while `edge` runs.

The loop only hands data to a Feed (events, stats, the annotated frame); pages, the JSON API
and enrolment run in the web server's own threads (docs/web.md).
"""
