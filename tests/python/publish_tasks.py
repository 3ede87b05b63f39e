"""Publishes tasks to Taskyard from Python, as any client would: plain JSON on
`taskyard.submit`, acknowledged by JetStream.

usage: publish_tasks.py NATS_URL COUNT TENANT
"""

import asyncio
import json
import sys

import nats


async def main(url: str, count: int, tenant: str) -> None:
    client = await nats.connect(url)
    js = client.jetstream()
    acks = []
    for i in range(count):
        kind = "echo" if i % 2 else "noop"
        task = {"kind": kind, "tenant": tenant, "labels": {"n": str(i)}}
        if kind == "echo":
            task["spec"] = {"n": i}
        acks.append(js.publish("taskyard.submit", json.dumps(task).encode()))
        if len(acks) == 100:
            await asyncio.gather(*acks)
            acks = []
    await asyncio.gather(*acks)
    await client.drain()
    print(f"published {count}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
