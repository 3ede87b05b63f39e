"""Publishes tasks to Taskyard from Python, as any client would: plain JSON on
`taskyard.submit`, acknowledged by JetStream.

usage: publish_tasks.py NATS_URL COUNT TENANT [--nkey SEED_FILE] [--ca CA_FILE]

--nkey connects with a credential from `taskyard creds create` (a submitter's
will do); --ca trusts the CA of a bus that speaks TLS.
"""

import argparse
import asyncio
import json
import ssl

import nats


async def main(args: argparse.Namespace) -> None:
    # A client that cannot get in should say so at once: with reconnects
    # on, nats-py keeps retrying a refused TLS handshake.
    options = {"connect_timeout": 5, "allow_reconnect": False}
    if args.nkey:
        options["nkeys_seed"] = args.nkey
    if args.ca:
        options["tls"] = ssl.create_default_context(cafile=args.ca)
    client = await nats.connect(args.url, **options)
    js = client.jetstream()
    acks = []
    for i in range(args.count):
        kind = "echo" if i % 2 else "noop"
        task = {"kind": kind, "tenant": args.tenant, "labels": {"n": str(i)}}
        if kind == "echo":
            task["spec"] = {"n": i}
        acks.append(js.publish("taskyard.submit", json.dumps(task).encode()))
        if len(acks) == 100:
            await asyncio.gather(*acks)
            acks = []
    await asyncio.gather(*acks)
    await client.drain()
    print(f"published {args.count}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("tenant")
    parser.add_argument("--nkey")
    parser.add_argument("--ca")
    asyncio.run(main(parser.parse_args()))
