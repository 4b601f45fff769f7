"""Independent MCP client for the tests: the official Python SDK over Streamable HTTP.

usage: client.py URL TOKEN|- [DOCUMENT_ID ...]

Connects (with `Authorization: Bearer TOKEN` unless TOKEN is `-`), lists the
tools, calls `search` (query "router", and again for space OPS), `list_spaces`
and `get_document` for each id, and prints one JSON object with the results.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def result(r):
    text = "".join(c.text for c in r.content if getattr(c, "type", "") == "text")
    return {"error": bool(r.is_error), "structured": r.structured_content, "text": text}


async def main(url, token, ids):
    headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
    out = {}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            read, write = streams[0], streams[1]
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                out["tools"] = sorted(t.name for t in tools.tools)
                out["search"] = result(await session.call_tool("search", {"query": "router", "limit": 10}))
                out["search_ops"] = result(
                    await session.call_tool("search", {"query": "router", "space": "OPS"})
                )
                out["list_spaces"] = result(await session.call_tool("list_spaces", {}))
                out["documents"] = {
                    i: result(await session.call_tool("get_document", {"id": i})) for i in ids
                }
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
