#!/usr/bin/env python3
"""Drives `procwarden mcp` with the official MCP Python SDK client (the `mcp` package), so
that the server is checked against another implementation's reading of the protocol, not
against our own.

Usage: mcp_client.py SCENARIO PROCWARDEN_BINARY

Scenarios:
  session    the SDK's own stdio transport: connect (the SDK probes server/discover, falls
             back to initialize), list tools, call execute, a background start plus
             process_output, failing calls, progress, concurrency, every result checked
             against its tool's outputSchema; then the legacy initialize handshake
  lifecycle  a transport of ours that records every line and owns the process: cancel a
             long call (no answer ever comes; process_list shows the process running), then
             close stdin: the server exits 0 by itself and no process it started is left

Prints one line per check; exits 0 when every check held, else 1 with the failure.
tests/mcp.rs runs it (see there for how the virtualenv is found).
"""

import json
import os
import subprocess
import sys
import time
import warnings
from contextlib import asynccontextmanager

import anyio
import jsonschema
import mcp_types as types
from mcp import Client, ClientSession, MCPDeprecationWarning, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.message import SessionMessage

TOOLS = ["execute", "process_output", "process_list", "process_signal"]
# The protocol version the server answers to this SDK (which offers a newer one).
NEWEST = "2025-06-18"
# No scenario may take longer than this.
SCENARIO_SECONDS = 90

# ping and logging/setLevel are deprecated by the SDK's newest protocol (2026-07-28), not by
# the versions this server speaks.
warnings.simplefilter("ignore", MCPDeprecationWarning)


def check(condition, what, detail=""):
    if not condition:
        raise AssertionError(f"{what}: {detail}")
    print(f"ok: {what}", flush=True)


def dump(result):
    return json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True))


class Results:
    """Checks each tool result's shape and its structured content against the tool's
    outputSchema (errors included: the SDK itself validates only successes)."""

    def __init__(self, tools):
        self.validators = {}
        for tool in tools:
            jsonschema.Draft202012Validator.check_schema(tool.output_schema)
            self.validators[tool.name] = jsonschema.Draft202012Validator(tool.output_schema)

    def check(self, name, result, is_error):
        structured = result.structured_content
        errors = sorted(self.validators[name].iter_errors(structured), key=str)
        check(not errors, f"{name} result matches its outputSchema", errors)
        check(result.is_error == is_error, f"{name} isError is {is_error}", dump(result))
        check(len(result.content) == 1 and result.content[0].type == "text",
              f"{name} has one text content item", dump(result))
        check(json.loads(result.content[0].text) == structured,
              f"{name} text content is the structured content as JSON", dump(result))
        return structured


async def session_scenario(binary):
    names = []
    params = StdioServerParameters(command=binary, args=["mcp"], env={"RUST_LOG": "warn"})
    async with Client(params) as client:
        check(client.protocol_version == NEWEST, "negotiated the newest version",
              client.protocol_version)
        check(client.server_info.name == "procwarden", "server name", client.server_info)
        check(client.server_capabilities.tools is not None, "tools capability")
        await client.send_ping()
        check(True, "ping")
        await client.set_logging_level("warning")
        check(True, "logging/setLevel")

        listed = (await client.list_tools()).tools
        cli = json.loads(subprocess.run([binary, "tools", "--schema"], check=True,
                                        capture_output=True, text=True).stdout)
        names = [t.name for t in listed]
        check(names == [d["name"] for d in cli], "tools/list lists the tools of `tools --schema`", names)
        check(set(TOOLS) <= set(names), "the four process tools are there", names)
        by_name = {t.name: t for t in listed}
        for definition in cli:
            tool = by_name[definition["name"]]
            check(tool.input_schema == definition["parameters"],
                  f"{tool.name} inputSchema is `tools --schema`'s parameters")
            check(tool.output_schema == definition["outputSchema"],
                  f"{tool.name} outputSchema is `tools --schema`'s")
            check(tool.output_schema["type"] == "object", f"{tool.name} outputSchema is an object")
            jsonschema.Draft202012Validator.check_schema(tool.input_schema)
            check(tool.annotations is not None and tool.title, f"{tool.name} has annotations and a title")
        check(by_name["process_output"].annotations.read_only_hint is True, "process_output is read-only")
        check(by_name["process_list"].annotations.read_only_hint is True, "process_list is read-only")
        check(by_name["process_signal"].annotations.destructive_hint is True, "process_signal is destructive")
        check(by_name["execute"].annotations.read_only_hint is False, "execute is not read-only")
        results = Results(listed)

        hello = await client.call_tool("execute", {"command": "echo hello; echo oops >&2"})
        out = results.check("execute", hello, False)
        check(out["output"] == "hello\noops\n" and out["exit_code"] == 0, "execute output", out)

        started = await client.call_tool(
            "execute", {"command": "echo ready; sleep 0.5; echo bye", "run_in_background": True})
        bg = results.check("execute", started, False)
        pid = bg.get("background_process_id")
        check(isinstance(pid, str) and pid, "background start gives an id", bg)
        read = await client.call_tool("process_output", {"process_id": pid, "wait_timeout": "10s"})
        out = results.check("process_output", read, False)
        check(out["output"] == "ready\nbye\n" and out["exit_code"] == 0, "process_output waits for the exit", out)
        again = await client.call_tool(
            "process_output", {"process_id": pid, "cursor": out["next_cursor"], "wait_timeout": "0s"})
        out = results.check("process_output", again, False)
        check(out["output"] == "", "a cursor read has nothing new", out)

        failed = await client.call_tool("execute", {"command": "echo no; exit 7"})
        out = results.check("execute", failed, True)
        check(out["exit_code"] == 7 and out["success"] is False, "a failing command is isError", out)
        missing = await client.call_tool("process_output", {"process_id": "no-such-id"})
        out = results.check("process_output", missing, True)
        check("not found" in out["error"], "an unknown process is isError", out)
        invalid = await client.call_tool("execute", {"timeout": 3})
        out = results.check("execute", invalid, True)
        check(out["error"].startswith("invalid arguments"), "invalid arguments are isError", out)
        exited = await client.call_tool("process_signal", {"process_id": pid, "signal": "kill"})
        out = results.check("process_signal", exited, True)
        check("not running" in out["error"], "signalling an exited process is isError", out)
        try:
            await client.call_tool("no_such_tool", {})
            check(False, "an unknown tool is a protocol error")
        except MCPError as e:
            check(e.error.code == -32602, "an unknown tool is -32602", e.error)

        reports = []

        async def on_progress(progress, total, message):
            reports.append((progress, message))

        progressed = await client.call_tool(
            "execute", {"command": "echo one; sleep 0.7; echo two; sleep 0.7; echo three"},
            progress_callback=on_progress)
        out = results.check("execute", progressed, False)
        check(out["output"] == "one\ntwo\nthree\n", "the progressed call's output", out)
        messages = [m for _, m in reports]
        check(messages[:2] == ["one", "two"], "progress carries the newest line", reports)
        values = [p for p, _ in reports]
        check(all(a < b for a, b in zip(values, values[1:])) and values[1] >= 0.5,
              "progress is the elapsed seconds, increasing", reports)

        # A long call does not hold up another one.
        async with anyio.create_task_group() as tg:
            slow = {}

            async def long_call():
                slow["result"] = await client.call_tool("execute", {"command": "sleep 2"})
                slow["done"] = time.monotonic()

            tg.start_soon(long_call)
            await anyio.sleep(0.3)
            asked = time.monotonic()
            listing = await client.call_tool("process_list", {})
            answered = time.monotonic()
            out = results.check("process_list", listing, False)
            check(any(p["command"] == "sleep 2" and p["running"] for p in out["processes"]),
                  "process_list sees the long call's process", out)
        check(answered - asked < 1.5 and answered < slow["done"],
              "process_list answered while execute still ran", (answered - asked))
        results.check("execute", slow["result"], False)

        listing = await client.call_tool("process_list", {})
        out = results.check("process_list", listing, False)
        check(len(out["processes"]) >= 5, "process_list lists the session's processes", out)

    # The SDK's initialize handshake directly (offering its newest handshake version).
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            result = await session.initialize()
            check(result.protocol_version == NEWEST, "legacy initialize answers the newest version",
                  result.protocol_version)
            check(result.instructions and "execute" in result.instructions, "instructions")
            listed = await session.list_tools()
            check([t.name for t in listed.tools] == names, "tools/list after initialize")


@asynccontextmanager
async def recorded_process(binary, seen, sent, ended):
    """A transport of our own: the server as our child, every line it writes recorded in
    `seen` (parsed), every message we send in `sent`; on exit it only closes stdin and waits
    for the server to exit by itself, recording its exit code in `ended`."""
    process = await anyio.open_process([binary, "mcp"], stderr=None,
                                       env={**os.environ, "RUST_LOG": "warn"})
    to_session, session_reads = anyio.create_memory_object_stream(100)
    session_writes, from_session = anyio.create_memory_object_stream(100)

    async def read_stdout():
        pending = b""
        async with to_session:
            async for chunk in process.stdout:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    seen.append(json.loads(line))
                    message = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
                    await to_session.send(SessionMessage(message))

    async def write_stdin():
        async with from_session:
            async for item in from_session:
                text = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                sent.append(json.loads(text))
                await process.stdin.send((text + "\n").encode())

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stdout)
        tg.start_soon(write_stdin)
        try:
            yield session_reads, session_writes
        finally:
            with anyio.CancelScope(shield=True):
                begun = time.monotonic()
                await process.stdin.aclose()
                with anyio.fail_after(20):
                    ended["code"] = await process.wait()
                ended["seconds"] = time.monotonic() - begun
            tg.cancel_scope.cancel()


def alive(pid):
    """Whether `pid` is a live process (not gone, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


async def lifecycle_scenario(binary):
    seen, sent, ended = [], [], {}
    transport = recorded_process(binary, seen, sent, ended)
    async with Client(transport) as client:
        check(client.protocol_version == NEWEST, "negotiated over our transport")
        bg = (await client.call_tool(
            "execute", {"command": "sleep 300", "run_in_background": True})).structured_content
        check(bg["success"], "background sleep started", bg)

        first_line = anyio.Event()

        async def on_progress(progress, total, message):
            if message == "started":
                first_line.set()

        long_command = "echo started; sleep 300"
        async with anyio.create_task_group() as tg:
            async def long_call():
                await client.call_tool("execute", {"command": long_command, "timeout": "10m"},
                                       progress_callback=on_progress)
                raise AssertionError("the cancelled call returned")

            tg.start_soon(long_call)
            with anyio.fail_after(20):
                await first_line.wait()
            check(True, "the long call reported its first line")
            tg.cancel_scope.cancel()  # the SDK sends notifications/cancelled for it
        call_id = next(m["id"] for m in sent if m.get("method") == "tools/call"
                       and m["params"]["arguments"].get("command") == long_command)
        with anyio.fail_after(10):
            while not any(m.get("method") == "notifications/cancelled"
                          and m["params"]["requestId"] == call_id for m in sent):
                await anyio.sleep(0.01)
        check(True, f"the SDK sent notifications/cancelled for request {call_id}")

        listing = (await client.call_tool("process_list", {})).structured_content
        running = {p["command"]: p for p in listing["processes"] if p["running"]}
        check(long_command in running, "process_list shows the cancelled call's process running", listing)
        check("sleep 300" in running, "and the background one", listing)
        pids = [running[long_command]["pid"], running["sleep 300"]["pid"]]
        check(all(alive(pid) for pid in pids), "both are alive", pids)
        await client.send_ping()
    # Leaving the client closed stdin; the server ended by itself (the transport waited).
    check(ended.get("code") == 0, "stdin close ends the server with exit code 0", ended)
    check(ended["seconds"] < 10, "promptly", ended)
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    check(not any(alive(pid) for pid in pids), "no process it started is left", pids)
    answers = [m for m in seen if m.get("id") == call_id]
    check(answers == [], "the cancelled request never got an answer", answers)
    strays = [m for m in seen if m.get("jsonrpc") != "2.0"]
    check(not strays and len(seen) > 5, f"all {len(seen)} lines were JSON-RPC", strays)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("session", "lifecycle"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    scenario, binary = sys.argv[1], sys.argv[2]

    async def run():
        with anyio.fail_after(SCENARIO_SECONDS):
            if scenario == "session":
                await session_scenario(binary)
            else:
                await lifecycle_scenario(binary)

    try:
        anyio.run(run)
    except BaseException as e:  # noqa: BLE001 - report whatever failed, as one line
        print(f"FAILED: {scenario}: {type(e).__name__}: {e}", flush=True)
        raise SystemExit(1)
    print(f"all checks passed: {scenario}", flush=True)


if __name__ == "__main__":
    main()
