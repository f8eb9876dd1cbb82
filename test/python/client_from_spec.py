#!/usr/bin/env python3
"""A Cell Bridge client written from protocol/README.md alone: Python's standard library plus the
`websockets` package (Debian: python3-websockets), nothing from this repository.

    client_from_spec.py URL PIXELS.rgb WIDTH HEIGHT IMAGE_NAME MICRONS_PER_PIXEL OUT.json

PIXELS.rgb holds the image as packed RGB8 rows (top row first). The whole image is one ROI. The
client offers no pyramid levels, so it reads every tile at full resolution and never resamples
(protocol 2.0: the daemon does). It writes the detections, the job/completed params, the order in which the job/cancel
response and job/completed of a cancelled second job arrived, and the largest message it received.
websockets' default max_size (1 MiB) stays in force on purpose: the spec promises smaller messages.
"""
import asyncio
import json
import struct
import sys

import websockets

PROTOCOL_VERSION = "2.3"  # protocol/README.md, title


async def main(url, pixels_path, width, height, image_name, mpp, out_path):
    with open(pixels_path, "rb") as f:
        pixels = f.read()
    assert len(pixels) == width * height * 3, "PIXELS.rgb must hold WIDTH*HEIGHT*3 bytes"
    largest = 0
    next_id = 0

    async with websockets.connect(url) as ws:  # default max_size = 2**20
        async def request(method, params):
            nonlocal next_id
            next_id += 1
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": next_id, "method": method, "params": params}))
            return next_id

        async def receive():
            nonlocal largest
            text = await ws.recv()
            largest = max(largest, len(text.encode("utf-8")) if isinstance(text, str) else len(text))
            return json.loads(text)

        # §2 initialize: clientInfo.name is required.
        init_id = await request("initialize", {"clientInfo": {"name": "python-from-spec", "version": "1"}, "protocolVersion": PROTOCOL_VERSION})
        init = await receive()
        assert init.get("id") == init_id and "result" in init, init
        assert init["result"]["protocolVersion"].split(".")[0] == PROTOCOL_VERSION.split(".")[0]
        limits = init["result"]["limits"]

        roi = {"id": "whole", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [width, 0], [width, height], [0, height], [0, 0]]]}}
        job_params = {"image": {"name": image_name, "width": width, "height": height, "micronsPerPixel": mpp},
                      "rois": [roi], "options": {"pixelFormat": "rgb8", "maxTilesInFlight": 4}}

        def frame(job_id, tile):
            # §4: big-endian header, then RGB8 rows of the tile, no padding.
            # §3: the region at readDownsample (1: no levels offered), readWidth x readHeight, never resized.
            assert plan["readDownsample"] == 1, plan["readDownsample"]
            w, h = tile["readWidth"], tile["readHeight"]
            rows = [pixels[((tile["y"] + r) * width + tile["x"]) * 3:((tile["y"] + r) * width + tile["x"] + w) * 3] for r in range(h)]
            return struct.pack(">4sBBHIIII", b"CBT1", 1, 1, 0, job_id, tile["id"], w, h) + b"".join(rows)

        # §2 job/start, §5 notifications. Notifications for a job id not known yet are buffered (§5).
        start_id = await request("job/start", job_params)
        plan, pending, features, completed = None, [], [], None
        while completed is None:
            msg = await receive()
            if msg.get("id") == start_id:
                assert "result" in msg, msg
                plan = msg["result"]
                # §3: each job/requestTiles carries the rectangles of the tiles it asks for.
                for p in pending:
                    for tile in p["tiles"]:
                        await ws.send(frame(plan["jobId"], tile))
                pending = []
                continue
            method, params = msg.get("method"), msg.get("params", {})
            if method == "job/requestTiles":
                if plan is None:
                    pending.append(params)
                else:
                    for tile in params["tiles"]:
                        await ws.send(frame(plan["jobId"], tile))
            elif method == "job/detections":
                assert params["roiId"] == "whole"
                features.extend(params["features"])
            elif method == "job/completed":
                completed = params
            elif method == "frame/rejected":
                raise AssertionError(f"frame rejected: {params}")

        # §2 job/cancel: a second job, cancelled as soon as the server asks for its first tiles.
        order = []
        second_id = await request("job/start", job_params)
        second, cancel_id = None, None
        while len(order) < 2:
            msg = await receive()
            if msg.get("id") == second_id:
                second = msg["result"]["jobId"]
            elif msg.get("method") == "job/requestTiles" and cancel_id is None:
                cancel_id = await request("job/cancel", {"jobId": second})
            elif cancel_id is not None and msg.get("id") == cancel_id:
                order.append({"response": msg["result"]})
            elif msg.get("method") == "job/completed" and msg["params"]["jobId"] == second:
                order.append({"completed": msg["params"]["status"]})

    with open(out_path, "w") as f:
        json.dump({"limits": limits, "plan": plan, "completed": completed, "features": features,
                   "cancelOrder": order, "largestMessageBytes": largest}, f)


if __name__ == "__main__":
    u, p, w, h, name, mpp, out = sys.argv[1:8]
    asyncio.run(main(u, p, int(w), int(h), name, float(mpp), out))
