"""An MCP client on the official Python SDK (`mcp` on PyPI), driven by the Rust tests.

usage: client.py stdio COMMAND [ARGS...]
       client.py http URL TOKEN

Lists the tools, calls `word_count` (following progress), calls `publish_note` three times
answering the approval elicitation with "approve", then "approve: false", then "decline",
follows the first run with `logline_run_status`, and prints one JSON object with what it saw.
"""

import json
import sys

import anyio
from mcp import ClientSession, types


ANSWERS = [
    types.ElicitResult(action="accept", content={"approve": True, "reason": "ok from python"}),
    types.ElicitResult(action="accept", content={"approve": False, "reason": "no from python"}),
    types.ElicitResult(action="decline"),
]


async def elicit(context, params):
    elicit.asked.append(params.message)
    return ANSWERS[min(len(elicit.asked), len(ANSWERS)) - 1]


elicit.asked = []


def field(obj, snake, camel):
    return getattr(obj, snake, None) if hasattr(obj, snake) else getattr(obj, camel, None)


def plain(result):
    return {
        "is_error": bool(field(result, "is_error", "isError")),
        "structured": field(result, "structured_content", "structuredContent"),
        "text": [c.text for c in result.content if getattr(c, "type", "") == "text"],
    }


async def exercise(read, write):
    out = {}
    async with ClientSession(read, write, elicitation_callback=elicit) as client:
        await client.initialize()
        tools = await client.list_tools()
        out["tools"] = sorted(t.name for t in tools.tools)
        out["schemas"] = {t.name: field(t, "input_schema", "inputSchema") for t in tools.tools}
        progress = []

        async def on_progress(p, total, message):
            progress.append({"progress": p, "message": message})

        r = await client.call_tool("word_count", {"text": "one two three"}, progress_callback=on_progress)
        out["word_count"] = plain(r)
        out["progress"] = progress
        r = await client.call_tool("word_count", {"text": ""})
        out["invalid"] = plain(r)
        r = await client.call_tool("publish_note", {"text": "hello mcp world"})
        out["publish"] = plain(r)
        run_id = (field(r, "structured_content", "structuredContent") or {}).get("run_id")
        out["denied"] = plain(await client.call_tool("publish_note", {"text": "not this one"}))
        out["declined"] = plain(await client.call_tool("publish_note", {"text": "nor this one"}))
        out["elicitations"] = list(elicit.asked)
        if run_id:
            r = await client.call_tool("logline_run_status", {"run_id": run_id})
            out["status"] = plain(r)
        r = await client.call_tool("logline_run_status", {"run_id": "00000000-0000-0000-0000-000000000000"})
        out["unknown_run"] = plain(r)
    return out


async def main():
    mode = sys.argv[1]
    if mode == "stdio":
        from mcp import StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(command=sys.argv[2], args=sys.argv[3:])
        async with stdio_client(params) as streams:
            out = await exercise(streams[0], streams[1])
    else:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        url, token = sys.argv[2], sys.argv[3]
        client = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        async with client:
            async with streamable_http_client(url, http_client=client) as streams:
                out = await exercise(streams[0], streams[1])
    print(json.dumps(out))


anyio.run(main)
