"""The web UI: the single-page app in `frontend/`, served by the gateway at `/`."""
