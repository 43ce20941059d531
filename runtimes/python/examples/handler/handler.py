"""Veil sample Python handler: no server, just `handle(request)`.

Veil's shim serves it on 0.0.0.0:$PORT (see runtimes/python/shim/veil_shim.py
for the request and response shapes).

GET  /anything?name=x  -> 200 {"hello": "x", "runtime": "python", ...}
POST /anything         -> 201 with the JSON body echoed back (400 if it is not JSON)
"""


def handle(request):
    if request.method == "POST":
        try:
            data = request.json()
        except ValueError:
            return 400, {"error": "send a JSON body"}
        return 201, {"X-Veil-Example": "python-handler"}, {"echo": data}
    return {
        "hello": request.query.get("name", "world"),
        "runtime": "python",
        "contract": "handler",
        "method": request.method,
        "path": request.path,
    }
