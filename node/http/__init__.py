"""The only place that knows HTTP: the JSON API (api/), the pages (web/), the
parent's side of sync (sync), enrolment (enroll), request limits and timeouts, and
the mapping of every refusal to a status (errors)."""
