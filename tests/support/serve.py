"""`loopsync serve` as a real process on 127.0.0.1, and Shopify-style signed deliveries to it.

Until the sandbox delivers webhooks itself, tests sign deliveries the way Shopify does
(base64 HMAC-SHA256 of the raw body with the webhook secret) and post them over HTTP.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import requests

from loopsync.serve.verify import sign
from loopsync.store.part import iso
from support.forkserver import ForkServer

WEBHOOK_SECRET = "whsec_test_serve_6b1f0c2e9d"
SHOP = "sandbox-store.myshopify.com"
_IDS = itertools.count(1)
LISTENING = re.compile(r"listening on http://[0-9.]+:(\d+)")


class Served:
    """One `loopsync serve --port 0` process; its stderr goes to a file the test can read.

    It is forked from the warm zygote (support/forkserver.py), which saves each start the 0.6 s
    of importing uvicorn, Starlette and loopsync; ``real`` runs `python -m loopsync serve`, the
    entry point systemd runs. Either way serve starts its worker as a fresh interpreter."""

    _runs = itertools.count(1)

    def __init__(self, db: Path, log: Path, *extra: str, real: bool = False) -> None:
        self.db = db
        # One file a run, so that a restart's lines are its own.
        self.log_path = log.with_name(f"{log.stem}-{next(self._runs)}{log.suffix}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPSYNC_")}
        argv = ["serve", "--db", str(db), "--port", "0", *extra]
        if real:
            with open(self.log_path, "w") as err:
                self.proc = subprocess.Popen([sys.executable, "-m", "loopsync", *argv],
                                             stdout=subprocess.DEVNULL, stderr=err, env=env)
        else:
            self.proc = ForkServer.get().spawn(argv, env=env, out=Path(os.devnull), err=self.log_path)
        line = self.wait_for(LISTENING.pattern)
        self.url = f"http://127.0.0.1:{LISTENING.search(line).group(1)}"

    def log(self) -> str:
        """What this run of serve wrote on stderr."""
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        """The first line of this run's stderr matching ``pattern``, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log().splitlines():
                if re.search(pattern, line):
                    return line
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} from serve within {timeout} s:\n{self.log()}")

    def ready(self) -> Served:
        """Wait for the catch-up scan, so what a test does next is the webhooks' doing."""
        self.wait_for(r"catch-up scan (ok|pending)")
        return self

    def post(self, topic: str, payload: dict, *, secret: str | None = WEBHOOK_SECRET, webhook_id: str | None = None,
             shop: str = SHOP, signature: str | None = None) -> requests.Response:
        body = json.dumps(payload).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-API-Version": "2026-10",
            "X-Shopify-Webhook-Id": webhook_id or f"test-webhook-{next(_IDS)}",
            "X-Shopify-Event-Id": f"test-event-{next(_IDS)}",
            "X-Shopify-Triggered-At": iso(datetime.now(UTC)),
        }
        if signature is not None:
            headers["X-Shopify-Hmac-Sha256"] = signature
        elif secret is not None:
            headers["X-Shopify-Hmac-Sha256"] = sign(secret, body)
        return requests.post(f"{self.url}/webhooks/shopify", data=body, headers=headers, timeout=5)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        return self.proc.wait(timeout=timeout)


def order_payload(order) -> dict:
    """orders/create and orders/updated, REST-shaped, from a sandbox world's order."""
    number = int(order.id.rsplit("/", 1)[-1])
    return {
        "id": number,
        "admin_graphql_api_id": order.id,
        "name": order.name,
        "tags": ", ".join(order.tags),
        "created_at": iso(order.created_at),
        "updated_at": iso(order.updated_at),
        "line_items": [
            {"id": int(li.id.rsplit("/", 1)[-1]), "admin_graphql_api_id": li.id, "quantity": li.quantity,
             "sku": li.sku, "variant_id": int(li.variant_id.rsplit("/", 1)[-1]) if li.variant_id else None}
            for li in order.line_items
        ],
    }


def hold_released_payload(fo_id: str, hold) -> dict:
    return {
        "fulfillment_order": {"id": fo_id, "status": "open"},
        "fulfillment_hold": {"id": hold.id, "reason": hold.reason, "reason_notes": hold.reason_notes,
                             "handle": hold.handle, "held_by_requesting_app": True,
                             "held_by_app": {"id": hold.app_id}},
    }
