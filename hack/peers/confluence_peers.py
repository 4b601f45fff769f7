#!/usr/bin/env python3
"""Runs a third-party Confluence client against a site with its default
options and prints, as JSON, the documents it returned.

    confluence_peers.py {langchain,llamaindex} --url URL --flavor {cloud,datacenter}
                        --space KEY --user USER   (token in CONFLUENCE_TOKEN)
                        [--timing] [--include-restricted] [--max-pages N]

Cloud authenticates with HTTP basic (user + API token), Data Center with a
personal access token (bearer), as the operator does. Used by tests/peers.rs
to compare these clients with what the operator stores, and by hack/bench
(`--timing`) to time them.

Output: {"client": ..., "flavor": ..., "documents": [{"id", "title", "url", "text"}]},
or with --timing {"seconds": time spent loading, "documents": count, "peak_rss_kib": ...}.
--include-restricted turns LangChain's per-page restriction check off;
--max-pages raises LangChain's default cap of 1000 pages a space (LlamaIndex has none).
"""

import argparse
import json
import logging
import os
import resource
import sys
import time


def langchain(url, flavor, space, user, token, include_restricted=False, max_pages=None):
    from langchain_community.document_loaders import ConfluenceLoader

    options = {}
    if include_restricted:
        options["include_restricted_content"] = True
    if max_pages is not None:
        options["max_pages"] = max_pages
    if flavor == "cloud":
        loader = ConfluenceLoader(
            url=url, username=user, api_key=token, space_key=space, **options
        )
    else:
        loader = ConfluenceLoader(url=url, token=token, cloud=False, space_key=space, **options)
    return [
        {
            "id": str(d.metadata["id"]),
            "title": d.metadata["title"],
            "url": d.metadata["source"],
            "text": d.page_content,
        }
        for d in loader.load()
    ]


def llamaindex(url, flavor, space, user, token, include_restricted=False, max_pages=None):
    from llama_index.readers.confluence import ConfluenceReader

    if flavor == "cloud":
        reader = ConfluenceReader(base_url=url, user_name=user, password=token, cloud=True)
    else:
        reader = ConfluenceReader(base_url=url, api_token=token, cloud=False)
    return [
        {
            "id": str(d.metadata["page_id"]),
            "title": d.metadata["title"],
            "url": d.metadata["url"],
            "text": d.text,
        }
        for d in reader.load_data(space_key=space)
    ]


CLIENTS = {"langchain": langchain, "llamaindex": llamaindex}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("client", choices=sorted(CLIENTS))
    parser.add_argument("--url", required=True)
    parser.add_argument("--flavor", choices=["cloud", "datacenter"], required=True)
    parser.add_argument("--space", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--timing", action="store_true")
    parser.add_argument("--include-restricted", action="store_true")
    parser.add_argument("--max-pages", type=int)
    args = parser.parse_args()
    token = os.environ.get("CONFLUENCE_TOKEN")
    if not token:
        sys.exit("CONFLUENCE_TOKEN is not set")
    # The clients log to stderr; stdout carries only the JSON.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    load = CLIENTS[args.client]
    if args.timing:
        # Imports are done before the clock starts: only loading is timed.
        if args.client == "langchain":
            from langchain_community.document_loaders import ConfluenceLoader  # noqa: F401
        else:
            from llama_index.readers.confluence import ConfluenceReader  # noqa: F401
        started = time.monotonic()
        docs = load(
            args.url, args.flavor, args.space, args.user, token,
            args.include_restricted, args.max_pages,
        )
        seconds = time.monotonic() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        json.dump({"seconds": seconds, "documents": len(docs), "peak_rss_kib": peak}, sys.stdout)
        sys.stdout.write("\n")
        return
    docs = load(args.url, args.flavor, args.space, args.user, token)
    json.dump({"client": args.client, "flavor": args.flavor, "documents": docs}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
