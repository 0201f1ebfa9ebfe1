// The TypeScript SDK client (npm @modelcontextprotocol/sdk) driven through Bastion, for the interop tests.
// Usage: node ts_client.mjs http|sse URL   or   node ts_client.mjs stdio COMMAND [ARGS...]
// Declares sampling, elicitation and roots; lists tools, calls echo, asks for sampling mid-call and cancels a
// long call; prints one JSON line with what it saw.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
} from "@modelcontextprotocol/sdk/types.js";

const [mode, target, ...rest] = process.argv.slice(2);
const transport =
  mode === "http"
    ? new StreamableHTTPClientTransport(new URL(target))
    : mode === "sse"
      ? new SSEClientTransport(new URL(target))
      : new StdioClientTransport({ command: target, args: rest, env: process.env, stderr: "ignore" });

const client = new Client(
  { name: "ts-interop", version: "1.0.0" },
  { capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } } },
);
let sampled = 0;
client.setRequestHandler(CreateMessageRequestSchema, async () => {
  sampled += 1;
  return { role: "assistant", content: { type: "text", text: "stub answer" }, model: "stub-model" };
});
client.setRequestHandler(ElicitRequestSchema, async () => ({ action: "accept", content: { approve: true } }));
client.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: "file:///srv/project" }] }));

const text = (result) => (result.content || []).filter((c) => c.type === "text").map((c) => c.text).join("");
const out = {};
await client.connect(transport);
out.server = client.getServerVersion();
out.protocol = transport.protocolVersion ?? null;
out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
out.echo = text(await client.callTool({ name: "everything__echo", arguments: { message: "hi from ts" } }));
const sampling = await client.callTool({
  name: "everything__trigger-sampling-request",
  arguments: { prompt: "hello", maxTokens: 10 },
});
out.sampled = sampled;
out.samplingText = text(sampling).slice(0, 200);
const controller = new AbortController();
const slow = client
  .callTool(
    { name: "everything__trigger-long-running-operation", arguments: { duration: 30, steps: 30 } },
    undefined,
    { signal: controller.signal, onprogress: () => controller.abort("stop") },
  )
  .then(() => "finished", (err) => `cancelled: ${err?.name ?? "error"}`);
out.cancel = await slow;
out.afterCancel = text(await client.callTool({ name: "everything__echo", arguments: { message: "still here" } }));
console.log(JSON.stringify(out));
await client.close();
